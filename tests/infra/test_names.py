"""Every variable the templates and scripts hand over has the name the code and .env.example read."""

import re
from pathlib import Path

import pytest

from movierec_dagster.deployment import DATABRICKS_SETTINGS, EVENT_HUB_SETTINGS, SCOPE_SECRETS
from tests.infra.conftest import AZURE, REPO, SCRIPTS, UPPER_SNAKE, walk

READ = re.compile(
    r"""(?:environ\.get\(|getenv\(|EnvVar\(|environ\[|_value\(environ,\s*|_env_or_blank\(environ,\s*|Setting\()\s*"([A-Z][A-Z0-9_]+)\""""
)
ENV_SOURCE = re.compile(r"\{env:\s*([A-Z][A-Z0-9_]*)\s*\}")


def env_example() -> set[str]:
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), flags=re.M))


def read_by_code() -> set[str]:
    """Variables the package and the generator read (os.environ, EnvVar, the deployment's settings)."""
    names = set()
    for folder in ("movierec_dagster", "generator"):
        for path in (REPO / folder).rglob("*.py"):
            names |= set(READ.findall(path.read_text()))
    return names


def read_by_yaml(path: Path) -> set[str]:
    """The {env: NAME} sources of a Dagster YAML file, comments left out."""
    return set(ENV_SOURCE.findall(re.sub(r"#.*", "", path.read_text())))


INSTANCE = read_by_yaml(AZURE / "dagster.yaml")
WORKSPACE = read_by_yaml(AZURE / "docker" / "workspace.yaml")


def deploy_secrets() -> dict[str, str]:
    """deploy.sh's SECRETS: environment variable -> Key Vault secret."""
    block = re.search(r"^SECRETS=\((.*?)^\)", (AZURE / "deploy.sh").read_text(), flags=re.M | re.S).group(1)
    return dict(pair.split("=", 1) for pair in re.findall(r'"([^"]+)"', block))


def test_the_readers_are_found():
    """The sets the other tests compare with are the real ones, not empty by a broken pattern."""
    assert {"MOVIEREC_LAKE", "EVENTHUB_NAME", "DATABRICKS_TOKEN", "AZURE_CLIENT_ID"} <= read_by_code()
    assert {"DAGSTER_PG_HOST", "DAGSTER_PG_PASSWORD", "AZURE_STORAGE_ACCOUNT"} <= INSTANCE
    assert {"MOVIEREC_LAKE", "DAGSTER_PG_HOST", "MOVIEREC_SECRET_SCOPE"} <= env_example()


def test_env_outputs_are_variables_of_env_example_and_the_code(templates):
    outputs = [name for name in templates["main.bicep"]["outputs"] if UPPER_SNAKE.match(name)]
    assert outputs
    read = read_by_code() | INSTANCE
    assert not set(outputs) - env_example(), "outputs that .env.example does not list"
    assert not set(outputs) - read, "outputs that neither the code nor infra/azure/dagster.yaml reads"


def test_parameters_name_the_variable_they_set(templates):
    main = templates["main.bicep"]
    tagged = {}
    for name, parameter in main["parameters"].items():
        for decorator in parameter["decorators"]:
            if decorator["type"] == "metadata" and "env" in decorator["argument"]:
                tagged[name] = decorator["argument"]["env"]
    assert len(tagged) >= 5
    read = read_by_code() | INSTANCE
    for parameter, variable in tagged.items():
        assert variable in env_example() and variable in read, f"param {parameter}: {variable} is read by no one"
        assert variable in main["outputs"], f"param {parameter}: no output {variable} hands it over"


def test_the_deployment_gets_every_variable_it_needs(templates):
    outputs = set(templates["main.bicep"]["outputs"])
    needed = {s.name for s in DATABRICKS_SETTINGS + EVENT_HUB_SETTINGS} | INSTANCE
    needed |= {"MOVIEREC_DEPLOYMENT", "MOVIEREC_DATABRICKS_NODE_TYPE", "AZURE_TENANT_ID", "AZURE_CLIENT_ID"}
    # The orchestrator's OAuth M2M credentials, and what deploy.sh makes for it in the workspace.
    needed |= {"DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET", "MOVIEREC_DATABRICKS_VOLUME", "MOVIEREC_DATABRICKS_INSTANCE_POOL_ID"}
    needed |= set(SCOPE_SECRETS)
    missing = needed - outputs - set(deploy_secrets())
    assert not missing, f"deploy.sh's .env would lack {sorted(missing)}"


def test_secret_names_agree_with_the_code_and_the_apps(templates):
    secrets = deploy_secrets()
    assert {name: secrets[name] for name in SCOPE_SECRETS} == SCOPE_SECRETS, "the secret scope's keys"
    assert set(secrets) <= env_example()
    apps = templates["modules/dagster.bicep"]["variables"]["secrets"]["value"]
    assert {s["env"]: s["ref"] for s in apps} == secrets, "modules/dagster.bicep reads other secrets than deploy.sh writes"


def container_variables(templates) -> set[str]:
    """Names of the environment variables the templates set on a container (literal name/value pairs)."""
    names = set()
    for template in templates.values():
        for node in walk(template):
            if isinstance(node, dict) and {"name"} < set(node) <= {"name", "value", "secretRef"}:
                if isinstance(node["name"], str) and UPPER_SNAKE.match(node["name"]):
                    names.add(node["name"])
    return names


def test_containers_get_only_variables_someone_reads(templates):
    names = container_variables(templates)
    assert {"MOVIEREC_LAKE", "EVENTHUB_NAMESPACE", "DAGSTER_CODE_SERVER_HOST"} <= names
    unread = names - read_by_code() - INSTANCE - WORKSPACE
    assert not unread, f"set on a container, read by nothing: {sorted(unread)}"
    assert WORKSPACE <= names, "infra/azure/docker/workspace.yaml reads a variable no container gets"
    assert INSTANCE <= names | set(deploy_secrets()), "the instance (dagster.yaml) reads a variable no container gets"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_read_only_outputs_that_exist(templates, script: Path):
    outputs = set(templates["main.bicep"]["outputs"])
    text = script.read_text()
    used = set(re.findall(r'output "\$\w+" (\w+)', text)) | set(re.findall(r"properties\.outputs\.(\w+)\.value", text))
    assert used, f"{script.name} reads no output"
    assert not used - outputs, f"{script.name} reads outputs main.bicep does not have"


def test_every_script_output_is_used(templates):
    scripts = " ".join(script.read_text() for script in SCRIPTS)
    for name in templates["main.bicep"]["outputs"]:
        if not UPPER_SNAKE.match(name):
            assert re.search(rf"\b{name}\b", scripts), f"output {name} is for the scripts, which do not read it"


def test_the_orchestrator_uses_oauth_m2m_and_its_secret_comes_from_the_vault_only(templates):
    outputs = set(templates["main.bicep"]["outputs"])
    secrets = deploy_secrets()
    assert secrets["DATABRICKS_CLIENT_SECRET"] == "databricks-client-secret"
    assert "DATABRICKS_CLIENT_ID" in outputs and "DATABRICKS_CLIENT_SECRET" not in outputs
    names = container_variables(templates)
    assert "DATABRICKS_CLIENT_ID" in names
    apps = {s["env"]: s["ref"] for s in templates["modules/dagster.bicep"]["variables"]["secrets"]["value"]}
    assert apps["DATABRICKS_CLIENT_SECRET"] == "databricks-client-secret", "the apps read it as a Key Vault reference"
    for where in (outputs, set(secrets), names):
        assert "DATABRICKS_TOKEN" not in where, "a personal access token is set by hand, never by the deployment"
    plain = {
        node["name"] for template in templates.values() for node in walk(template)
        if isinstance(node, dict) and set(node) == {"name", "value"} and isinstance(node["name"], str)
    }
    assert not plain & set(secrets), f"secrets set as plain values: {sorted(plain & set(secrets))}"
