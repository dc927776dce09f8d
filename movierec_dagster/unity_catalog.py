"""The lake's Delta tables registered in Unity Catalog as external tables, for Databricks SQL.

    python -m movierec_dagster.unity_catalog --lake abfss://... --catalog main [--schema movierec]

prints one SQL statement a line: the schema, then `CREATE TABLE IF NOT EXISTS <catalog>.<schema>.<name>
LOCATION '<lake>/tables/<name>'` for each table (the quarantine's as `quarantine_<name>`).
`infra/azure/deploy.sh --warehouse <id>` runs them on a SQL warehouse. An external table reads the
Delta log at its location, so it shows each new commit without being registered again. Unity Catalog
accepts the location only under an external location the caller may use (see docs/databricks.md).

Imports nothing but the pipeline's names, so it runs without the project's packages installed.
"""

import argparse
import sys

from movierec_dagster.names import (
    EVENT_IDS,
    EVENTS,
    LINKS,
    MOVIES,
    QUARANTINE,
    RATINGS,
    RECOMMENDATIONS,
    REJECTED_EVENTS,
    TABLES,
    TAGS,
    TRAINING_RATINGS,
)

DEFAULT_SCHEMA = "movierec"
LAKE_TABLES = (MOVIES, RATINGS, TAGS, LINKS, EVENTS, REJECTED_EVENTS, EVENT_IDS, TRAINING_RATINGS, RECOMMENDATIONS)
QUARANTINED = (MOVIES, RATINGS, TAGS, LINKS)  # the MovieLens tables' rejected rows


def _quoted(*names: str) -> str:
    return ".".join("`" + name.replace("`", "``") + "`" for name in names)


def register_statements(lake: str, catalog: str, schema: str = DEFAULT_SCHEMA) -> list[str]:
    """The SQL that registers every table of the lake at `lake` (an abfss:// URI) in `catalog`.`schema`."""
    if not lake.startswith("abfss://"):
        raise ValueError(f"Unity Catalog registers tables on cloud storage, abfss://...; not {lake}.")
    root = lake.rstrip("/")
    locations = [(name, f"{root}/{TABLES}/{name}") for name in LAKE_TABLES]
    locations += [(f"{QUARANTINE}_{name}", f"{root}/{QUARANTINE}/{name}") for name in QUARANTINED]
    return [
        f"CREATE SCHEMA IF NOT EXISTS {_quoted(catalog, schema)} COMMENT 'movierec: the lake''s tables'",
        *(
            f"CREATE TABLE IF NOT EXISTS {_quoted(catalog, schema, name)} LOCATION '{location.replace(chr(39), chr(39) * 2)}'"
            for name, location in locations
        ),
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lake", required=True, help="the lake, abfss://<container>@<account>.dfs.core.windows.net/<prefix>")
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--schema", default=DEFAULT_SCHEMA)
    args = parser.parse_args(argv)
    try:
        statements = register_statements(args.lake, args.catalog, args.schema)
    except ValueError as error:
        parser.error(str(error))
    print("\n".join(statements))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
