"""Asset metadata a person wants in the Dagster UI: counts, schema, a preview."""

from typing import Any

from dagster import DataVersion, MetadataValue, TableColumn, TableSchema
from pyspark.sql import DataFrame

from movierec_dagster.tables import TableVersion

PREVIEW_ROWS = 5
ROW_COUNT = "dagster/row_count"  # the metadata key Dagster shows as a table's row count
DELTA_VERSION = "delta_version"


def committed(version: TableVersion) -> dict[str, Any]:
    """The Delta version a materialization committed, as metadata (`data_version` gives it as the data version)."""
    return {DELTA_VERSION: MetadataValue.int(version.version)}


def data_version(version: TableVersion) -> DataVersion:
    """The data version of a table asset: the Delta version its materialization committed, so that what was
    computed from it (a model from training_ratings) names exactly which table it read."""
    return DataVersion(str(version.version))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "_no rows_"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = (str(row[column]).replace("|", "\\|").replace("\n", " ") for column in columns)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_metadata(table: DataFrame, **extra: Any) -> dict[str, Any]:
    """Row count, column schema and a preview of a table as written to the lake."""
    schema = TableSchema(
        columns=[
            TableColumn(name=field.name, type=field.dataType.simpleString(), description=None)
            for field in table.schema.fields
        ]
    )
    preview = [row.asDict() for row in table.limit(PREVIEW_ROWS).collect()]
    return {
        ROW_COUNT: MetadataValue.int(table.count()),
        "dagster/column_schema": schema,
        "preview": MetadataValue.md(markdown_table(preview)),
        **extra,
    }
