"""What a step's process does on the cluster before Dagster starts there: its settings and secrets, into its environment.

The launcher pickles a `ClusterSetup` as the step's `config.pkl`; dagster-databricks' entry script
unpickles it once the step's code is on the path and calls `setup(dbutils, sc)`. It imports nothing
beyond the standard library, so the cluster needs neither dagster-databricks nor the Databricks SDK.
"""

import os
from typing import Any


class ClusterSetup:
    """`env_variables` are plain settings (staged in plain text: never secrets); `secrets` maps a variable to (scope, key)."""

    def __init__(self, env_variables: dict[str, str], secrets: dict[str, tuple[str, str]]):
        self.env_variables = dict(env_variables)
        self.secrets = dict(secrets)

    def setup(self, dbutils: Any, sc: Any) -> None:
        os.environ.update(self.env_variables)
        for name, (scope, key) in sorted(self.secrets.items()):
            print(f"Exporting {name} from Databricks secret {key}, scope {scope}")  # noqa: T201 - the step's stdout
            os.environ[name] = dbutils.secrets.get(scope=scope, key=key)
