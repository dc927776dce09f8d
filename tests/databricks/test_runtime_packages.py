"""What pip installs on a Databricks Runtime 17.3 LTS cluster replaces only the allowed runtime packages and breaks none of their requirements."""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from uv import find_uv_bin

from movierec_dagster.resources.databricks import CLUSTER_LIBRARIES, DATABRICKS_RUNTIME, RUNTIME_PYTHON, RUNTIME_SPARK

# The runtime's published package list, copied with its source (docs/databricks-runtime.md says how to renew it).
RUNTIME_PACKAGE_LIST = Path(__file__).parent / "runtime" / "dbr-17.3.x-scala2.13-constraints.txt"
ORCHESTRATOR_CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints.txt"
# DBR 17.3 runs Ubuntu 24.04 (glibc 2.39) on x86_64 nodes.
CLUSTER_PLATFORM = "x86_64-manylinux_2_39"
# The runtime keeps its Spark's pyspark and py4j under /databricks/spark/python: first on sys.path, so they are
# what Python imports, but not installed distributions, so pip would install a copy of its own for any library that
# requires pyspark (dagster-pyspark does: the cluster does without it). A copy at another version counts as a
# replacement.
RUNTIME_PACKAGES_PIP_CANNOT_SEE = {"pyspark": Version(RUNTIME_SPARK), "py4j": Version("0.10.9.9")}
# The step's remote half (dagster-databricks' databricks_step_main.py) unpickles dagster's objects, so the
# cluster must have the orchestrator's version.
REMOTE_HALF_PACKAGES = ("dagster",)
# Each runtime package the cluster's pip may replace, and why that is safe. Anything else replaced fails the
# test, and so does an entry here that nothing replaces any more.
ALLOWED_REPLACEMENTS = {
    "fsspec": (
        "2023.5.0 is too old for adlfs (fsspec>=2023.12.0) and for dagster's universal-pathlib (>=2024.5.0); the "
        "lake's filesystem layer runs at the orchestrator's version. The one runtime package that requires fsspec, "
        "pyiceberg 0.9.0, asks only >=2023.1.0, and the runtime's Spark reads abfss:// through Hadoop, not fsspec."
    ),
}
# uv says one of these when it could not reach the package index: DNS, refused or timed-out connections, or offline.
INDEX_UNREACHABLE = re.compile(r"error sending request for url|operation timed out|dns error|the network was disabled")


def pins(lines: list[str], operator: str) -> dict[str, Version]:
    """`name<operator>version` lines (comments and blanks skipped) as {canonical name: version}."""
    found = {}
    for line in lines:
        if line.strip() and not line.startswith("#"):
            name, version = line.strip().split(operator)
            found[canonicalize_name(name)] = Version(version)
    return found


def runtime_packages_pip_sees() -> dict[str, Version]:
    """The runtime's package list: each `name~=V` names the version V the runtime has installed."""
    return pins(RUNTIME_PACKAGE_LIST.read_text().splitlines(), "~=")


def orchestrator_pins() -> dict[str, Version]:
    return pins(ORCHESTRATOR_CONSTRAINTS.read_text().splitlines(), "==")


def write_pins(path: Path, packages: dict[str, Version]) -> Path:
    path.write_text("".join(f"{name}=={version}\n" for name, version in sorted(packages.items())))
    return path


def uv_compile(requirements: Path, output: Path, cache: str) -> subprocess.CompletedProcess:
    """`uv pip compile` for the cluster's Python and platform; pins already in `output` are preferred.

    Skips the test when the package index cannot be reached (the resolution needs it).
    """
    result = subprocess.run(
        [find_uv_bin(), "pip", "compile", str(requirements), "--output-file", str(output), "--cache-dir", cache,
         "--python", sys.executable, "--python-version", RUNTIME_PYTHON, "--python-platform", CLUSTER_PLATFORM,
         "--no-header", "--no-annotate"],
        capture_output=True, text=True, env={**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"},
    )
    unreachable = [line.strip() for line in result.stderr.splitlines() if INDEX_UNREACHABLE.search(line)]
    if result.returncode and unreachable:
        pytest.skip(f"the resolver cannot reach the package index ({unreachable[0]})")
    return result


@pytest.fixture(scope="module")
def uv_cache():
    """A uv cache for this module's resolutions alone, removed afterwards: the index's answers here carry no cache
    headers, so a shared cache would keep another copy of every download at every run."""
    with tempfile.TemporaryDirectory(prefix="uv-cache-") as folder:
        yield folder


@pytest.fixture(scope="module")
def cluster_install(tmp_path_factory, uv_cache) -> dict[str, Version]:
    """Every package pip leaves on the cluster for CLUSTER_LIBRARIES: what it keeps from the runtime and what it installs.

    pip on the cluster keeps an installed package whenever it satisfies the requirements and takes the newest
    version of anything new: here the runtime's versions are the resolver's preferences, never constraints, so a
    new package whose newest release wants a newer runtime package moves that package, as pip would.
    """
    folder = tmp_path_factory.mktemp("cluster")
    requirements = folder / "cluster-libraries.in"
    requirements.write_text("".join(f"{spec}\n" for spec in CLUSTER_LIBRARIES))
    installed = write_pins(folder / "cluster-installed.txt", runtime_packages_pip_sees())
    result = uv_compile(requirements, installed, uv_cache)
    if result.returncode:
        pytest.fail(f"pip could not install CLUSTER_LIBRARIES on the runtime:\n{result.stderr}", pytrace=False)
    return pins(installed.read_text().splitlines(), "==")


def test_the_copied_package_list_is_the_configured_runtimes():
    assert f"# constraints.txt file for Databricks Runtime {DATABRICKS_RUNTIME}\n" in RUNTIME_PACKAGE_LIST.read_text()


def test_the_cluster_libraries_pin_the_remote_halfs_packages_to_the_orchestrators_versions():
    pinned = {canonicalize_name(Requirement(spec).name): str(Requirement(spec).specifier) for spec in CLUSTER_LIBRARIES}
    orchestrator = orchestrator_pins()
    assert {name: pinned.get(name) for name in REMOTE_HALF_PACKAGES} == {
        name: f"=={orchestrator[name]}" for name in REMOTE_HALF_PACKAGES
    }


@pytest.mark.slow
def test_pip_on_the_cluster_replaces_only_the_allowed_runtime_packages(cluster_install):
    runtime = {**runtime_packages_pip_sees(), **RUNTIME_PACKAGES_PIP_CANNOT_SEE}
    replaced = {
        name: f"{runtime[name]} -> {version}"
        for name, version in cluster_install.items()
        if name in runtime and version != runtime[name]
    }
    unexplained = {name: change for name, change in replaced.items() if name not in ALLOWED_REPLACEMENTS}
    no_longer_replaced = sorted(set(ALLOWED_REPLACEMENTS) - set(replaced))
    assert not unexplained, f"the cluster's pip would replace these runtime packages: {unexplained}"
    assert not no_longer_replaced, f"nothing replaces these any more; drop them from ALLOWED_REPLACEMENTS: {no_longer_replaced}"


@pytest.mark.slow
def test_the_clusters_dagster_packages_are_the_orchestrators(cluster_install):
    orchestrator = orchestrator_pins()
    dagster = {name: version for name, version in cluster_install.items() if name.startswith("dagster")}
    assert dagster == {name: orchestrator.get(name) for name in dagster}


@pytest.mark.slow
def test_every_runtime_package_keeps_its_requirements_after_the_install(cluster_install, uv_cache, tmp_path):
    """The cluster's whole environment afterwards, each package at its version, resolves as one set."""
    environment = write_pins(tmp_path / "environment.in", {**runtime_packages_pip_sees(), **cluster_install})
    result = uv_compile(environment, tmp_path / "environment.txt", uv_cache)
    if result.returncode:
        pytest.fail(f"a runtime package's requirement breaks after the install:\n{result.stderr}", pytrace=False)
