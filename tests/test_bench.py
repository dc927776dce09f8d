"""The benchmarks stay runnable: every module under bench/ imports, its subcommands parse, what the Makefile and the
docs run exists, and the cheap ones run end to end."""

import importlib
import importlib.util
import json
import pkgutil
import re
from pathlib import Path

import pytest

import bench
from bench.common import subcommands

ROOT = Path(bench.__file__).parents[1]
HELPERS = {"common"}  # shared code, no benchmark of its own
MODULES = sorted(name for _, name, _ in pkgutil.iter_modules(bench.__path__) if name not in HELPERS)
SINGLE = {"scale"}  # one benchmark with options of its own, no subcommands


def commands() -> dict[str, set[str]]:
    """Each family module's subcommands by name (a module without subcommands: an empty set)."""
    found = {}
    for name in MODULES:
        module = importlib.import_module(f"bench.{name}")
        found[name] = set() if name in SINGLE else set(subcommands(module.build_parser()))
    return found


COMMANDS = commands()
PAIRS = [(name, sub) for name, subs in COMMANDS.items() for sub in sorted(subs)]


@pytest.mark.parametrize("name", MODULES)
def test_each_benchmark_module_imports_and_has_a_main(name):
    module = importlib.import_module(f"bench.{name}")
    assert callable(getattr(module, "main", None)), f"bench.{name} has no main()"
    assert name in SINGLE or COMMANDS[name], f"bench.{name} has no subcommands"


@pytest.mark.parametrize(("name", "sub"), PAIRS + [(name, None) for name in sorted(SINGLE)])
def test_each_subcommand_parses_its_help(name, sub, capsys):
    argv = ["--help"] if sub is None else [sub, "--help"]
    with pytest.raises(SystemExit) as exit:
        importlib.import_module(f"bench.{name}").main(argv)
    assert exit.value.code == 0
    assert f"usage: python -m bench.{name}" + (f" {sub}" if sub else "") in capsys.readouterr().out


def test_make_bench_runs_only_subcommands_that_exist():
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")  # continued lines joined
    listed = re.search(r"^BENCHMARKS := (.+)$", makefile, re.MULTILINE)[1].split()
    assert listed
    for entry in listed:
        name, _, sub = entry.partition(":")
        assert sub in COMMANDS.get(name, ()), f"make bench lists {entry}, which is no bench module:subcommand"


@pytest.mark.parametrize("path", ["Makefile", "README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))])
def test_the_makefile_and_the_docs_name_only_benchmarks_that_exist(path):
    # A command run in a worktree of older code (`cd ../before && ...`) names that code's modules.
    text = "\n".join(line for line in (ROOT / path).read_text().splitlines() if "cd ../" not in line)
    for name in re.findall(r"\bbench[./](\w+)", text):
        assert name in COMMANDS or name in HELPERS, f"{path} names bench.{name}, which is no module of bench/"
    for name, sub in re.findall(r"python -m bench\.(\w+)(?: ([a-z][\w-]*))?", text):
        if name not in SINGLE:
            assert sub in COMMANDS[name], f"{path} runs bench.{name} {sub or ''}: its subcommands are {sorted(COMMANDS[name])}"


# The one cheap end-to-end run per module, where there is one. bench.pipeline, bench.model and bench.scoring run
# Spark (and most the genuine ml-latest-small); bench.serve needs wrk or Chromium and the demo's lake: none is cheap.


def test_the_generator_throughput_runs(capsys):
    from bench import stream

    stream.main(["generator-throughput", "--count", "20000"])
    out = capsys.readouterr().out
    assert "generator -> local sink: 20,000 events in 2 files" in out
    assert re.search(r"wall [\d.]+ s = [\d,]+ events/s; CPU [\d.]+ s = [\d,]+ events/s per core", out)


def test_the_scale_table_and_plot_from_saved_results(tmp_path, capsys):
    from bench import scale

    def result(name: str, ratings: int, seconds: dict[str, float]) -> dict:
        stages = {stage: {"seconds": value, "load_1min": 2.0} for stage, value in seconds.items()}
        return {
            "size": name, "ratings": ratings, "outcome": "ok", "seconds": sum(seconds.values()), "peak_rss_gib": 4.0,
            "peak_jvm_rss_gib": 3.0, "peak_pss_gib": 3.5, "load_1min": 2.0, "stages": stages,
        }

    results = tmp_path / "results.json"
    results.write_text(json.dumps({
        "1m": result("1m", 1_000_000, {"etl": 10.0, "training": 40.0}),
        "25m": result("25m", 25_000_000, {"etl": 50.0, "training": 1600.0}),
    }))
    plot = tmp_path / "scale.png"
    scale.main(["--plot-only", "--results", str(results), "--plot", str(plot)])
    out = capsys.readouterr().out
    assert re.search(r"^1m\s+ok\s+50\.0\s+4\.00", out, re.MULTILINE)
    assert re.search(r"^  etl\s+0\.20$", out, re.MULTILINE)  # 50 s / 25M against 10 s / 1M
    assert re.search(r"^  training\s+1\.60  <- faster than linear$", out, re.MULTILINE)
    if importlib.util.find_spec("matplotlib"):
        assert plot.stat().st_size > 0
    else:
        assert "No plot: matplotlib is not installed" in out
