"""The benchmarks stay runnable: every module under bench/ imports and has the `main` that `python -m` runs."""

import importlib
import re
import pkgutil
from pathlib import Path

import pytest

import bench

MODULES = sorted(name for _, name, _ in pkgutil.iter_modules(bench.__path__) if name not in {"model_data", "paths"})


@pytest.mark.parametrize("name", MODULES)
def test_each_benchmark_imports_and_has_a_main(name):
    module = importlib.import_module(f"bench.{name}")
    assert callable(getattr(module, "main", None)), f"bench.{name} has no main()"


def test_make_bench_runs_only_modules_that_exist():
    makefile = (Path(bench.__file__).parents[1] / "Makefile").read_text()
    listed = re.search(r"^BENCHMARKS := (.+)$", makefile, re.MULTILINE)[1].split()
    assert listed and set(listed) <= set(MODULES)
