"""deploy.sh and destroy.sh run end to end against a stand-in `az` (tests/infra/fake_az.py), with no cloud.

What this shows: the scripts' own logic (the order of the steps, the JMESPath queries against the documented
response shapes, az's output rules, the idempotence of a second run, the OAuth secret's rotation and its expiry in
the Key Vault, the teardown). What it cannot show: that Azure and Databricks answer as the stand-in does.
"""

import json
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import AZURE, REPO, parse

FAKE_PYTHON = REPO / ".venv" / "checkov" / "bin" / "python"  # pins jmespath, which az's --query is
pytestmark = [
    pytest.mark.skipif(not FAKE_PYTHON.is_file(), reason="the stand-in az runs in the checkov venv (jmespath): `make checkov`"),
    pytest.mark.slow,  # about ten runs of the scripts, some 70 az calls each
]
GROUP = "movierec"
HOST = "https://adb-1234567890123456.7.azuredatabricks.net"
WORKSPACE_ID = f"/subscriptions/s-1/resourceGroups/{GROUP}/providers/Microsoft.Databricks/workspaces/dbw-movierec-x"
VAULT = "kv-movierec-x"
CATALOG = "dbw_movierec_x"
CANNED = {
    "keyVaultName": VAULT,
    "keyVaultId": f"/subscriptions/s-1/resourceGroups/{GROUP}/providers/Microsoft.KeyVault/vaults/{VAULT}",
    "keyVaultUri": f"https://{VAULT}.vault.azure.net/",
    "databricksWorkspaceId": WORKSPACE_ID,
    "DATABRICKS_HOST": HOST,
    "registryName": "movierecacrx",
    "listenRuleName": "ingest-listen",
    "postgresServerName": "psql-movierec-x",
    "webserverUrl": "",
    "AZURE_TENANT_ID": "tenant-1",
    "EVENTHUB_NAMESPACE": "evhns-movierec-x",
    "EVENTHUB_NAME": "ratings",
    "MOVIEREC_LAKE": "abfss://lake@stmovierecx.dfs.core.windows.net/movierec",
}
WRITES = re.compile(r"create|update|set|delete|purge|reset|build|restart")


def template_spec() -> dict[str, Any]:
    main = parse(AZURE / "main.bicep")
    parameters = main["parameters"]
    outputs = {}
    for name, output in main["outputs"].items():
        value = output["value"]
        if isinstance(value, str) and value in parameters:
            outputs[name] = {"param": value}
        elif isinstance(value, dict) and value.get("function", {}).get("type") == "string":
            outputs[name] = {"param": value["function"]["parameters"]["value_to_convert"]}
        elif isinstance(value, str) and value not in main.get("variables", {}):
            outputs[name] = {"literal": value}
        else:
            outputs[name] = {}
    return {
        "parameters": sorted(parameters),
        "required": sorted(n for n, p in parameters.items() if p["default"] is None),
        "defaults": {n: p["default"] for n, p in parameters.items() if isinstance(p["default"], (str, int, bool, list))},
        "outputs": outputs,
        "canned": CANNED,
    }


class Cloud:
    def __init__(self, folder: Path):
        self.folder = folder
        self.state_file, self.log_file = folder / "state.json", folder / "calls.log"
        bin_dir = folder / "bin"
        bin_dir.mkdir()
        az = bin_dir / "az"
        az.write_text(f'#!/bin/sh\nexec "{FAKE_PYTHON}" "{Path(__file__).with_name("fake_az.py")}" "$@"\n')
        az.chmod(0o755)
        self.path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
        self.state_file.write_text(json.dumps({
            "groups": {}, "vaults": {}, "apps": {}, "sps": [], "deployments": {}, "images": [], "restarts": [],
            "calls": [], "template": template_spec(),
            "workspace": {
                "host": HOST, "id": WORKSPACE_ID, "exists": False, "scopes": {}, "sps": {}, "deleted_sps": [],
                "oauth_secrets": {}, "default_namespace": CATALOG, "metastore_default": CATALOG,
                "catalogs": {CATALOG: {"grants": {}}}, "uc": {}, "pools": {},
            },
        }))

    @property
    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    def edit(self, change) -> None:
        state = self.state
        change(state)
        self.state_file.write_text(json.dumps(state))

    def run(self, script: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        self.log_file.write_text("")
        self.edit(lambda s: s.update(calls=[], restarts=[]))
        env = {**os.environ, "PATH": self.path, "FAKE_AZ_STATE": str(self.state_file), "FAKE_AZ_LOG": str(self.log_file)}
        result = subprocess.run(
            ["bash", str(AZURE / script), "-g", GROUP, *args], env=env, cwd=REPO, capture_output=True, text=True,
            timeout=600, stdin=subprocess.DEVNULL,
        )
        if ok:
            assert result.returncode == 0, result.stderr[-4000:]
        return result

    def az_calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log_file.read_text().splitlines()]

    def writes(self) -> list[str]:
        """The calls that change something, other than the (idempotent) ARM deployments."""
        changed = [" ".join(c) for c in self.az_calls() if c[0] != "rest" and WRITES.search(" ".join(c[:4]))]
        changed = [c for c in changed if not c.startswith("deployment group create")]
        return changed + [f"{c['method']} {c['path']}" for c in self.state["calls"] if c["method"] != "GET"]


def dotenv(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if line and not line.startswith("#"))


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> tuple[Cloud, subprocess.CompletedProcess]:
    cloud = Cloud(tmp_path_factory.mktemp("cloud"))
    return cloud, cloud.run("deploy.sh")


def oauth_secrets(cloud: Cloud) -> list[dict[str, Any]]:
    (secrets,) = cloud.state["workspace"]["oauth_secrets"].values()
    return secrets


def vault_secret(cloud: Cloud, name: str = "databricks-client-secret") -> dict[str, Any]:
    return cloud.state["vaults"][VAULT]["secrets"][name]


def test_first_run_makes_the_service_principal_its_secret_and_grants(deployed):
    cloud, result = deployed
    env = dotenv(result.stdout)
    workspace = cloud.state["workspace"]
    (sp,) = workspace["sps"].values()
    assert sp["displayName"] == f"movierec-orchestrator-{GROUP}"
    assert {e["value"] for e in sp["entitlements"]} == {"workspace-access", "allow-cluster-create"}
    assert env["DATABRICKS_CLIENT_ID"] == sp["applicationId"]
    assert env["DATABRICKS_HOST"] == HOST
    volume = f"{CATALOG}.movierec.staging"
    assert env["MOVIEREC_DATABRICKS_VOLUME"] == f"/Volumes/{CATALOG}/movierec/staging"
    app = sp["applicationId"]
    assert workspace["catalogs"][CATALOG]["grants"] == {app: ["USE_CATALOG"]}
    assert workspace["uc"][f"{CATALOG}.movierec"]["grants"] == {app: ["USE_SCHEMA"]}
    assert workspace["uc"][volume]["grants"] == {app: ["READ_VOLUME", "WRITE_VOLUME"]}
    assert workspace["scopes"]["movierec"]["acls"] == {app: "READ"}
    (pool,) = workspace["pools"].values()
    assert env["MOVIEREC_DATABRICKS_INSTANCE_POOL_ID"] == pool["instance_pool_id"]
    assert pool["node_type_id"] == env["MOVIEREC_DATABRICKS_NODE_TYPE"] and pool["min_idle_instances"] == 0
    assert pool["acl"] == {app: "CAN_ATTACH_TO"}
    # The apps get the same names as the .env.
    apps = cloud.state["deployments"]["movierec"]["properties"]["parameters"]
    assert apps["databricksClientId"] == app and apps["databricksInstancePoolId"] == pool["instance_pool_id"]


def test_without_a_warehouse_the_table_registration_is_printed(deployed):
    cloud, result = deployed
    lake = dotenv(result.stdout)["MOVIEREC_LAKE"]
    assert "the lake's tables are not registered in Unity Catalog (no --warehouse)" in result.stderr
    assert f"CREATE TABLE IF NOT EXISTS `{CATALOG}`.`movierec`.`ratings` LOCATION '{lake}/tables/ratings';" in result.stderr
    assert not any("sql/statements" in c["path"] for c in cloud.state["calls"])


def test_the_oauth_secret_is_in_the_vault_with_its_expiry(deployed):
    cloud, result = deployed
    (secret,) = oauth_secrets(cloud)
    held = vault_secret(cloud)
    assert held["value"] == secret["secret"], "the value the workspace returned"
    assert held["tags"]["databricks-secret-id"] == secret["id"]
    assert held["attributes"]["expires"][:19] == secret["expire_time"][:19]
    expires = datetime.fromisoformat(held["attributes"]["expires"])
    assert timedelta(days=360) < expires - datetime.now(UTC) <= timedelta(days=366)
    assert f"expires {secret['expire_time'][:10]}" in result.stderr, "the expiry date, every run"


def test_no_personal_access_token_and_the_client_secret_only_from_the_vault(deployed):
    cloud, result = deployed
    env = dotenv(result.stdout)
    assert "DATABRICKS_TOKEN" not in result.stdout
    assert "DATABRICKS_CLIENT_SECRET" not in env, "printed only with --with-secrets"
    assert "# DATABRICKS_CLIENT_SECRET=$(az keyvault secret show" in result.stdout
    assert not any("token" in c["path"] for c in cloud.state["calls"])
    assert vault_secret(cloud)["value"] not in result.stdout + result.stderr


def test_a_second_run_changes_nothing(deployed):
    cloud, first = deployed
    before = cloud.state
    second = cloud.run("deploy.sh")
    assert cloud.writes() == []
    assert second.stdout == first.stdout
    after = cloud.state
    for key in ("workspace", "vaults", "apps", "groups", "images"):
        assert after[key] == before[key], key


def test_the_secret_is_replaced_within_30_days_of_expiry(deployed):
    cloud, _ = deployed
    soon = datetime.now(UTC) + timedelta(days=20)

    def expire_soon(state):
        secret = state["vaults"][VAULT]["secrets"]["databricks-client-secret"]
        secret["attributes"]["expires"] = soon.replace(microsecond=0).isoformat()
        for sp_secret in next(iter(state["workspace"]["oauth_secrets"].values())):
            sp_secret["expire_time"] = soon.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    old_value = vault_secret(cloud)["value"]
    (old,) = oauth_secrets(cloud)
    cloud.edit(expire_soon)
    cloud.run("deploy.sh")
    held = vault_secret(cloud)
    assert held["value"] != old_value
    assert datetime.fromisoformat(held["attributes"]["expires"]) > datetime.now(UTC) + timedelta(days=360)
    ids = [s["id"] for s in oauth_secrets(cloud)]
    assert ids == [old["id"], held["tags"]["databricks-secret-id"]], "the replaced one stays valid until it expires"
    assert sorted(cloud.state["restarts"]) == ["ca-movierec-code", "ca-movierec-daemon", "ca-movierec-webserver"]
    # The next replacement deletes the oldest: two at most.
    cloud.edit(expire_soon)
    cloud.run("deploy.sh")
    assert [s["id"] for s in oauth_secrets(cloud)] == [ids[1], vault_secret(cloud)["tags"]["databricks-secret-id"]]


def test_a_secret_missing_from_the_vault_or_the_workspace_is_made_again(deployed):
    cloud, _ = deployed
    cloud.edit(lambda s: s["vaults"][VAULT]["secrets"].pop("databricks-client-secret"))
    cloud.run("deploy.sh")
    held = vault_secret(cloud)
    assert [s["id"] for s in oauth_secrets(cloud)] == [held["tags"]["databricks-secret-id"]]
    cloud.edit(lambda s: next(iter(s["workspace"]["oauth_secrets"].values())).clear())
    cloud.run("deploy.sh")
    assert [s["id"] for s in oauth_secrets(cloud)] == [vault_secret(cloud)["tags"]["databricks-secret-id"]]
    assert vault_secret(cloud)["value"] != held["value"]


def test_without_a_unity_catalog_default_it_asks_for_a_catalog_and_destroy_leaves_what_it_did_not_make(tmp_path):
    cloud = Cloud(tmp_path)
    cloud.edit(lambda s: s["workspace"].update(default_namespace=None, metastore_default="hive_metastore"))
    result = cloud.run("deploy.sh", ok=False)
    assert result.returncode != 0 and "--catalog" in result.stderr
    someone_s = {"kind": "schema", "full_name": "main.movierec", "comment": "someone's", "grants": {}}
    cloud.edit(lambda s: (s["workspace"]["catalogs"].update(main={"grants": {}}), s["workspace"]["uc"].update({"main.movierec": someone_s})))
    env = dotenv(cloud.run("deploy.sh", "--catalog", "main").stdout)
    assert env["MOVIEREC_DATABRICKS_VOLUME"] == "/Volumes/main/movierec/staging"
    cloud.run("destroy.sh", "--yes")
    assert list(cloud.state["workspace"]["uc"]) == ["main.movierec"], "its volume dropped, someone's schema kept"


def test_destroy_removes_what_deploy_made(deployed):
    cloud, _ = deployed
    app_id = cloud.state["groups"][GROUP]["tags"]["movierec-lake-app"]
    cloud.run("destroy.sh", "--yes")
    state = cloud.state
    workspace = state["workspace"]
    assert GROUP not in state["groups"] and VAULT not in state["vaults"] and app_id not in state["apps"]
    assert workspace["sps"] == {} and [sp["displayName"] for sp in workspace["deleted_sps"]] == [f"movierec-orchestrator-{GROUP}"]
    assert all(secrets == [] for secrets in workspace["oauth_secrets"].values())
    assert workspace["uc"] == {}, "the volume and its schema (Unity Catalog outlives the workspace)"
