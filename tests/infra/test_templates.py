"""The Bicep templates, parsed with pycep: the settings the deployment depends on, and no key in any output."""

import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import MAIN, TEMPLATES, AZURE, parse, resources_of_type, walk

EVENT_HUBS_DATA_SENDER = "2b629674-e913-4c01-ae53-ef4638d8f975"
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(AZURE)))
def test_template_parses(path: Path):
    parsed = parse(path)  # a syntax error raises, with its line and column
    assert parsed.get("resources") or parsed.get("modules"), f"{path} declares nothing"


def test_main_uses_every_module(templates):
    used = {module["detail"]["path"] for module in templates["main.bicep"]["modules"].values()}
    modules = {name for name in templates if name.startswith("modules/")}
    assert used == modules


def test_lake_is_adls_gen2_without_keys(templates):
    (account,) = resources_of_type(templates, "Microsoft.Storage/storageAccounts")
    properties = account["properties"]
    assert account["kind"] == "StorageV2"
    assert properties["isHnsEnabled"] is True, "ADLS Gen2 needs the hierarchical namespace"
    assert properties["allowSharedKeyAccess"] is False, "nobody may use the account keys"
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2" and properties["supportsHttpsTrafficOnly"] is True
    containers = resources_of_type(templates, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert sorted(c["name"] for c in containers) == ["computeLogContainer", "lakeContainer"]
    assert all(c["properties"]["publicAccess"] == "None" for c in containers)


def test_event_hubs_is_standard_with_kafka(templates):
    (namespace,) = resources_of_type(templates, "Microsoft.EventHub/namespaces")
    assert namespace["sku"]["name"] == namespace["sku"]["tier"] == "Standard", "Basic has no Kafka endpoint"
    assert namespace["properties"]["kafkaEnabled"] is True
    assert namespace["properties"]["minimumTlsVersion"] == "1.2"
    assert len(resources_of_type(templates, "Microsoft.EventHub/namespaces/eventhubs")) == 1
    assert len(resources_of_type(templates, "Microsoft.EventHub/namespaces/eventhubs/consumergroups")) == 1


def test_ingest_listens_and_generator_only_sends(templates):
    rules = resources_of_type(templates, "Microsoft.EventHub/namespaces/eventhubs/authorizationRules")
    rules += resources_of_type(templates, "Microsoft.EventHub/namespaces/authorizationRules")
    assert [rule["properties"]["rights"] for rule in rules] == [["Listen"]], "one policy, Listen only"
    generator = parse(AZURE / "modules" / "generator.bicep")
    (group,) = generator["resources"].values()
    env = group["config"]["properties"]["containers"][0]["properties"]["environmentVariables"]
    assert {e["name"] for e in env} == {"EVENTHUB_NAMESPACE", "EVENTHUB_NAME", "AZURE_CLIENT_ID"}, (
        "the generator sends with its managed identity, never a connection string"
    )
    eventhubs = parse(AZURE / "modules" / "eventhubs.bicep")
    assert EVENT_HUBS_DATA_SENDER in str(eventhubs["variables"]["dataSenderRole"])
    (assignment,) = [r for r in eventhubs["resources"].values() if r["type"] == "Microsoft.Authorization/roleAssignments"]
    assert assignment["config"]["scope"] == "hub", "the sender role is on the hub, not the namespace"
    assert assignment["config"]["properties"]["principalId"] == "senderPrincipalId"


def test_lake_access_is_a_data_role_for_the_service_principal(templates):
    storage = templates["modules/storage.bicep"]
    assert BLOB_DATA_CONTRIBUTOR in str(storage["variables"]["blobDataContributor"])
    (assignment,) = [r for r in storage["resources"].values() if r["type"] == "Microsoft.Authorization/roleAssignments"]
    assert assignment["config"]["scope"] == "account"
    assert assignment["config"]["properties"]["principalId"] == "lakePrincipalId"


def test_postgres_is_burstable_b1ms_with_tls_required(templates):
    (server,) = resources_of_type(templates, "Microsoft.DBforPostgreSQL/flexibleServers")
    assert server["sku"] == {"name": "Standard_B1ms", "tier": "Burstable"}
    settings = {
        c["name"]: c["properties"]["value"]
        for c in resources_of_type(templates, "Microsoft.DBforPostgreSQL/flexibleServers/configurations")
    }
    assert settings["require_secure_transport"] == "ON"
    assert settings["ssl_min_protocol_version"] == "TLSv1.2"
    assert len(resources_of_type(templates, "Microsoft.DBforPostgreSQL/flexibleServers/databases")) == 1


def test_databricks_is_premium(templates):
    (workspace,) = resources_of_type(templates, "Microsoft.Databricks/workspaces")
    assert workspace["sku"]["name"] == "premium", "Key Vault-backed secret scopes need premium"


def test_key_vault_is_rbac_with_readers_and_one_writer(templates):
    (vault,) = resources_of_type(templates, "Microsoft.KeyVault/vaults")
    assert vault["properties"]["enableRbacAuthorization"] is True
    keyvault = templates["modules/keyvault.bicep"]
    roles = {
        r["config"]["properties"]["principalId"]: r["config"]["properties"]["roleDefinitionId"]
        for r in keyvault["resources"].values()
        if r["type"] == "Microsoft.Authorization/roleAssignments"
    }
    officer = str(keyvault["variables"]["secretsOfficer"])
    user = str(keyvault["variables"]["secretsUser"])
    assert SECRETS_OFFICER in officer and SECRETS_USER in user
    assert roles == {
        "deployerObjectId": "secretsOfficer",
        "databricksAppObjectId": "secretsUser",
        "readerPrincipalId": "secretsUser",
    }


def test_container_apps_take_secrets_from_the_vault_only(templates):
    apps = resources_of_type(templates, "Microsoft.App/containerApps")
    assert len(apps) == 3, "webserver, daemon and code location"
    dagster = templates["modules/dagster.bicep"]
    (secrets,) = [v for k, v in dagster["variables"].items() if k == "appSecrets"]
    assert set(secrets["value"]["config"]) == {"name", "keyVaultUrl", "identity"}, "a secret by Key Vault reference only"
    for app in apps:
        assert app["properties"]["configuration"]["secrets"] == "appSecrets"
    group = resources_of_type(templates, "Microsoft.ContainerInstance/containerGroups")[0]
    for node in walk(group):
        assert not (isinstance(node, dict) and "secureValue" in node), "the generator needs no secret"


LEAKY = re.compile(r"(?i)listkeys|primary|secondary|sharedkey|accountkey|connectionstring|password|sastoken|^keys$")
LEAKY_NAME = re.compile(r"(?i)(key|password|connectionstring|secret|token)$")


def key_references(node: Any) -> list[str]:
    """Calls and properties in a parsed expression that would put a key or secret in a template's output."""
    found = []
    for item in walk(node):
        if isinstance(item, str) and LEAKY.search(item):
            found.append(item)
        elif isinstance(item, dict):
            name = item.get("func_name") or item.get("type")
            if isinstance(name, str) and name.lower().startswith("list"):
                found.append(name)
    return found


def test_no_key_in_any_output(templates):
    for path, template in templates.items():
        secure = {
            name
            for name, parameter in template.get("parameters", {}).items()
            if any(d["type"] == "secure" for d in parameter["decorators"])
        }
        for name, output in template.get("outputs", {}).items():
            assert not LEAKY_NAME.search(name), f"{path}: output {name}"
            assert not key_references(output["value"]), f"{path}: output {name} exposes {key_references(output['value'])}"
            assert not secure & {str(v) for v in walk(output["value"])}, f"{path}: output {name} returns a @secure parameter"


def test_the_key_detector_finds_keys(tmp_path: Path):
    """The check above would fail on the usual ways of leaking a key."""
    bad = tmp_path / "bad.bicep"
    bad.write_text(
        "resource sa 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {\n  name: 'x'\n}\n"
        "output a string = sa.listKeys().keys[0].value\n"
        "output b string = 'DefaultEndpointsProtocol=https;AccountKey=${sa.listKeys().keys[0].value}'\n"
        "output c string = listConnectionStrings(sa.id, '2023-05-01').connectionStrings[0].connectionString\n"
    )
    outputs = parse(bad)["outputs"]
    assert all(key_references(output["value"]) for output in outputs.values())
    assert not key_references(parse(MAIN)["outputs"]["MOVIEREC_LAKE"]["value"])
