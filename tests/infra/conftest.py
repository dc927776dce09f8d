"""What the infra/azure checks share: the paths, the templates parsed by pycep, where each tool is."""

import functools
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

REPO = Path(__file__).resolve().parents[2]
AZURE = REPO / "infra" / "azure"
MAIN = AZURE / "main.bicep"
TEMPLATES = sorted(AZURE.rglob("*.bicep"))
SCRIPTS = [AZURE / "deploy.sh", AZURE / "destroy.sh"]
DOCKERFILES = sorted((AZURE / "docker").glob("*.Dockerfile"))
UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9_]*$")


@functools.cache
def _parser() -> BicepParser:
    """One parser for the session: building pycep's grammar takes longer than parsing every template."""
    return BicepParser()


def parse(path: Path) -> dict[str, Any]:
    return _parser().parse(file_path=path)


@pytest.fixture(scope="session")
def templates() -> dict[str, dict[str, Any]]:
    """Every template under infra/azure, parsed: {path relative to infra/azure: pycep's JSON}."""
    return {str(path.relative_to(AZURE)): parse(path) for path in TEMPLATES}


def resources_of_type(templates: dict[str, dict[str, Any]], resource_type: str) -> list[dict[str, Any]]:
    """The `config` of every resource of that type, over all templates (modules' conditions unwrapped)."""
    found = []
    for template in templates.values():
        for resource in template.get("resources", {}).values():
            if resource["type"].lower() == resource_type.lower():
                config = resource["config"]
                found.append(config.get("config", config) if "condition" in config else config)
    return found


def walk(node: Any):
    """Every dict and list inside a parsed template, depth first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def find_tool(name: str, *candidates: Path) -> str | None:
    """$<NAME> (upper case), else the first candidate that exists, else next to this Python, else PATH."""
    configured = os.environ.get(name.upper())
    if configured:
        return configured
    for candidate in (*candidates, Path(sys.executable).parent / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)
