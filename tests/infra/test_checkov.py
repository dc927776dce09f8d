"""checkov's Bicep checks on infra/azure, offline: no failed check, no parsing error, every skip with a reason."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.infra.conftest import AZURE, REPO, TEMPLATES, find_tool

CHECKOV = find_tool("checkov", REPO / ".venv" / "checkov" / "bin" / "checkov")
pytestmark = pytest.mark.skipif(CHECKOV is None, reason="checkov is not installed: `make checkov` (make test does it)")
SKIP = re.compile(r"checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def checkov(folder: Path) -> dict:
    result = subprocess.run(
        [CHECKOV, "-d", str(folder), "--framework", "bicep", "--skip-download", "-o", "json", "--compact"],
        capture_output=True, text=True, timeout=120, cwd=folder,
    )
    assert result.stdout.strip(), f"checkov printed nothing (rc {result.returncode}): {result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    report["returncode"] = result.returncode
    return report


@pytest.fixture(scope="module")
def report() -> dict:
    return checkov(AZURE)


def test_no_parsing_error(report):
    # checkov exits 0 when a file does not parse; only the summary says so.
    assert report["summary"]["parsing_errors"] == 0


def test_no_failed_check(report):
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}" for c in report["results"]["failed_checks"]]
    assert not failed, "\n".join(failed)
    assert report["returncode"] == 0


def test_every_template_was_scanned(report):
    checked = {c["file_path"] for kind in ("passed_checks", "skipped_checks") for c in report["results"][kind]}
    with_checks = {"/" + str(p.relative_to(AZURE)) for p in TEMPLATES if p.parent.name == "modules"} & checked
    assert len(with_checks) >= 5 and report["summary"]["resource_count"] >= 40


def test_every_skip_has_a_reason_and_a_check(report):
    inline = {}
    for path in TEMPLATES:
        for check, reason in SKIP.findall(path.read_text()):
            assert reason.strip(), f"{path.name}: {check} is skipped without a reason"
            inline[check] = reason
    skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}
    assert inline, "no inline skip found: the pattern is wrong or the templates changed"
    assert set(inline) == skipped, f"skips that match no check checkov ran: {sorted(set(inline) - skipped)}"


def test_a_parse_error_would_be_seen(tmp_path: Path):
    """The guard above is not vacuous: a broken template shows up in the summary (and checkov still exits 0)."""
    (tmp_path / "broken.bicep").write_text("resource sa 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: \n")
    assert checkov(tmp_path)["summary"]["parsing_errors"] == 1
