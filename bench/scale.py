"""The whole pipeline at 100k, 1M, 5M and 25M ratings: each stage's wall time and peak memory, with the load beside it.

For each size: the dataset (ml-latest-small for 100k, else a synthetic zip from
`movierec-generate dataset`, cached under --data), then `movierec_dagster.demo`
(ETL, a burst of 5,000 events landed and ingested, training with evaluation and
the gate, scoring every user) in a fresh process on an empty MOVIEREC_HOME,
bounded by a timeout. While it runs the process tree (Python driver, Spark's JVM,
its Python workers) is sampled every 0.5 s: resident memory of the whole tree
and of the JVM alone, the tree's proportional set size (PSS: a page shared by n
processes, as a forked Python worker shares its parent's, counts 1/n in each,
where the sum of resident sets counts it n times), and the machine's 1-minute
load average. Afterwards each stage's wall time is read back from the run's
Dagster instance, with the gate's decision and the scoring's fallback count, and
each stage's peak memory and mean load from the samples within it.

Results are merged into a JSON (--results; one entry per size, so sizes can be
run separately) and plotted, log-log, time per stage against ratings (--plot).
Sizes whose time per rating grows more than 1.5x from 1M to 25M are listed.

    .venv/bin/python -m bench.scale --sizes 100k,1m,5m,25m
    .venv/bin/python -m bench.scale --sizes 25m --env MOVIEREC_SPARK_DRIVER_MEMORY=8g
    .venv/bin/python -m bench.scale --plot-only

One benchmark with options of its own, so no subcommands (`make bench-scale` runs it; SCALE_ARGS are its options).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.common import MOVIELENS, ROOT, dagster_home, demo_environment

GIB = 1024**3


@dataclass(frozen=True)
class Size:
    name: str
    ratings: int
    users: int | None = None  # None: the generator's default (MovieLens-25M's ratings per user)
    movies: int | None = None  # None: the generator's default (grows as ratings^0.33)


SIZES = {
    "100k": Size("100k", 100_836),  # ml-latest-small itself
    "1m": Size("1m", 1_000_000),
    "5m": Size("5m", 5_000_000),
    "25m": Size("25m", 25_000_095, users=162_541, movies=59_047),  # MovieLens-25M's shape
}
# The pipeline's stages, each one run of the demo (the burst: the gap between the ETL and the ingest runs).
STAGES = ("etl", "burst", "ingest", "training", "scoring")
RUN_STAGES = {"movielens_etl": "etl", "ingest_rating_events": "ingest", "retrain_model": "training", "score_recommendations": "scoring"}
SAMPLE_SECONDS = 0.5


def dataset(size: Size, data: Path) -> tuple[Path, float | None]:
    """The size's zip (made once and cached), and the seconds generating it took (None when cached or real)."""
    if size.name == "100k":
        return MOVIELENS, None
    data.mkdir(parents=True, exist_ok=True)
    target = data / f"ml-synthetic-{size.name}.zip"
    if target.exists():
        return target, None
    command = [str(Path(sys.executable).with_name("movierec-generate")), "dataset", "--ratings", str(size.ratings), "--seed", "1"]
    command += ["--users", str(size.users)] if size.users else []
    command += ["--movies", str(size.movies)] if size.movies else []
    partial = target.with_suffix(".partial.zip")
    started = time.perf_counter()
    subprocess.run([*command, "--out", str(partial), "--quiet"], check=True)
    partial.rename(target)
    return target, time.perf_counter() - started


@dataclass
class Sampler:
    """Samples a process tree's memory (resident: all of it and the JVM's; proportional: all of it) and the load, every 0.5 s."""

    pid: int
    # (epoch s, tree resident bytes, JVM resident bytes, load 1 min, tree proportional bytes)
    samples: list[tuple[float, int, int, float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            tree = jvm = proportional = 0
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for process in processes:
                try:
                    memory = process.memory_full_info()  # smaps_rollup: rss and pss in one read
                    tree += memory.rss
                    proportional += memory.pss
                    if process.name() == "java":
                        jvm += memory.rss
                except psutil.NoSuchProcess:
                    pass
            self.samples.append((time.time(), tree, jvm, os.getloadavg()[0], proportional))
            self._stop.wait(SAMPLE_SECONDS)

    def window(self, start: float, end: float) -> dict[str, float | None]:
        inside = [s for s in self.samples if start <= s[0] <= end] or [
            min(self.samples, key=lambda s: abs(s[0] - end), default=(end, 0, 0, 0.0, 0))
        ]
        return {
            "peak_rss_gib": round(max(s[1] for s in inside) / GIB, 2),
            "peak_jvm_rss_gib": round(max(s[2] for s in inside) / GIB, 2),
            "peak_pss_gib": round(max(s[4] for s in inside) / GIB, 2),
            "load_1min": round(sum(s[3] for s in inside) / len(inside), 2),
        }


def stage_times(dagster_home: Path) -> tuple[dict[str, dict], dict[str, float]]:
    """Each run's stage: wall time, start and end (epoch), its steps' times; and the steps' times by key."""
    from dagster import DagsterInstance, RunsFilter

    stages, steps = {}, {}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for run in reversed(instance.get_runs(RunsFilter())):
            stats = instance.get_run_stats(run.run_id)
            start = stats.launch_time or stats.start_time
            if start is None or stats.end_time is None:
                continue
            run_steps = {s.step_key: round(s.end_time - s.start_time, 2) for s in instance.get_run_step_stats(run.run_id) if s.end_time}
            stages[RUN_STAGES.get(run.job_name, run.job_name)] = {
                "seconds": round(stats.end_time - start, 2), "start": start, "end": stats.end_time,
                "status": run.status.value, "steps": run_steps,
            }
            steps.update(run_steps)
    if "etl" in stages and "ingest" in stages:
        stages["burst"] = {"seconds": round(stages["ingest"]["start"] - stages["etl"]["end"], 2), "start": stages["etl"]["end"], "end": stages["ingest"]["start"]}
    return stages, steps


def decisions(dagster_home: Path) -> dict[str, dict]:
    """What the runs decided: the gate's verdict on the candidate, and which model scored how many users."""
    from dagster import DagsterEventType, DagsterInstance, RunsFilter

    found: dict[str, dict] = {}
    wanted = {DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.ASSET_MATERIALIZATION}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for run in reversed(instance.get_runs(RunsFilter())):
            for entry in instance.all_logs(run.run_id, of_type=wanted):
                event = entry.dagster_event
                if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION and event.event_specific_data.check_name == "model_gate":
                    evaluation = event.event_specific_data
                    found["gate"] = {"passed": evaluation.passed, "summary": evaluation.description}
                elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION and event.asset_key.path == ["user_recommendations"]:
                    metadata = {name: value.value for name, value in event.event_specific_data.materialization.metadata.items()}
                    found["scoring"] = {name: metadata.get(name) for name in ("model_version", "users", "popularity_fallback_users")}
    return found


def demo_with_random_burst() -> None:
    """The demo's runs, one after another, with a burst of random ratings instead of ones drawn from the history's tastes.

    Random ratings cost the same whatever the history; before `history_tastes` sampled a large
    history by user, the default burst did not fit in memory at 25M ratings, and this was the way round it.
    """
    from dagster import DagsterInstance

    from movierec_dagster import demo
    from movierec_dagster.definitions import build_definitions
    from movierec_dagster.demo_stream import land_burst

    defs = build_definitions()
    demo._start_spark_early(defs.resources["spark"])
    with DagsterInstance.get() as instance:
        demo.run_job(defs, instance, "movielens_etl")
        land_burst(
            defs.resources["event_source"].folder, lake=defs.resources["lake"], count=demo.BURST_EVENTS,
            malformed=demo.BURST_MALFORMED_SHARE, ratings="random",
        )
        for job in ("ingest_rating_events", "retrain_model", "score_recommendations"):
            demo.run_job(defs, instance, job)


def run_size(
    size: Size, source: Path, timeout: float, extra_env: dict[str, str], keep: Path | None, random_burst: bool = False
) -> dict:
    """The demo on `source` in a fresh process on an empty home; the outcome, the stages, memory and load."""
    folder = Path(tempfile.mkdtemp(prefix=f"movierec-scale-{size.name}-"))
    log_path = Path(tempfile.gettempdir()) / f"movierec-scale-{size.name}.log"
    try:
        instance_home = dagster_home(folder / "dagster_home")
        environment = {**demo_environment(folder, instance_home, str(source)), **extra_env}
        load_before = os.getloadavg()[0]
        started_epoch, started = time.time(), time.perf_counter()
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.scale", "--demo-random-burst"] if random_burst else [sys.executable, "-m", "movierec_dagster.demo"],
                env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            sampler = Sampler(process.pid)
            sampler.start()
            try:
                returncode = process.wait(timeout=timeout)
                outcome = "ok" if returncode == 0 else f"failed (exit {returncode})"
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGTERM)  # the demo's own session: its JVM and workers with it
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                outcome = f"timed out after {timeout:.0f} s"
            finally:
                sampler.stop()
        total = time.perf_counter() - started
        stages, steps = stage_times(instance_home)
        decided = decisions(instance_home)
        for stage in stages.values():
            stage.update(sampler.window(stage["start"], stage["end"]))
        whole = sampler.window(started_epoch, time.time())
        tail = log_path.read_text(errors="replace").splitlines()[-25:] if outcome != "ok" else []
        lake_bytes = sum(f.stat().st_size for f in (folder / "lake").rglob("*") if f.is_file()) if (folder / "lake").exists() else 0
        if keep is not None:
            shutil.copytree(folder, keep / size.name, dirs_exist_ok=True)
        return {
            "size": size.name, "ratings": size.ratings, "outcome": outcome, "seconds": round(total, 1),
            "load_1min_before": round(load_before, 2), **whole, "lake_gib": round(lake_bytes / GIB, 2),
            "stages": stages, "steps": steps, **decided, "log": str(log_path), "log_tail": tail,
            "env": extra_env, "burst": "random ratings" if random_burst else "the history's tastes", "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def per_rating_growth(results: dict[str, dict], low: str = "1m", high: str = "25m") -> dict[str, float]:
    """Each stage's time per rating at `high` over that at `low` (1.0: linear)."""
    if low not in results or high not in results:
        return {}
    a, b = results[low], results[high]
    growth = {}
    for stage in STAGES:
        if stage in a["stages"] and stage in b["stages"] and a["stages"][stage]["seconds"] > 0:
            growth[stage] = round((b["stages"][stage]["seconds"] / b["ratings"]) / (a["stages"][stage]["seconds"] / a["ratings"]), 2)
    return growth


def print_table(results: dict[str, dict]) -> None:
    print(f"\n{'size':<6}{'outcome':<26}{'total s':>9}{'peak GiB':>10}{'JVM GiB':>9}{'PSS GiB':>9}{'load':>6}  " + "".join(f"{s:>16}" for s in STAGES))
    for name in sorted(results, key=lambda n: results[n]["ratings"]):
        r = results[name]
        cells = "".join(
            f"{r['stages'][s]['seconds']:>8.1f} s ({r['stages'][s]['load_1min']:>4.1f})" if s in r["stages"] else f"{'-':>16}" for s in STAGES
        )
        proportional = f"{r['peak_pss_gib']:>9.2f}" if "peak_pss_gib" in r else f"{'-':>9}"  # results from before PSS was sampled
        print(f"{name:<6}{r['outcome'][:25]:<26}{r['seconds']:>9.1f}{r['peak_rss_gib']:>10.2f}{r['peak_jvm_rss_gib']:>9.2f}{proportional}{r['load_1min']:>6.1f}  {cells}")
    growth = per_rating_growth(results)
    if growth:
        print("\ntime per rating, 25M over 1M (above 1.5: grows faster than the data):")
        for stage, ratio in growth.items():
            print(f"  {stage:<10}{ratio:6.2f}{'  <- faster than linear' if ratio > 1.5 else ''}")


def plot(results: dict[str, dict], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted((r for r in results.values() if r["stages"]), key=lambda r: r["ratings"])
    figure, axes = plt.subplots(figsize=(7.5, 5))
    for stage in STAGES:
        points = [(r["ratings"], r["stages"][stage]["seconds"]) for r in ordered if stage in r["stages"] and r["stages"][stage]["seconds"] > 0]
        if points:
            axes.plot(*zip(*points), marker="o", label=stage)
    reference = next((r for r in ordered if r["ratings"] >= 1e6 and "training" in r["stages"]), None)
    if reference:
        # Slope one (time linear in the ratings) through training at the first size of a million or more.
        x0, y0 = reference["ratings"], reference["stages"]["training"]["seconds"]
        xs = [r["ratings"] for r in ordered]
        axes.plot(xs, [y0 * x / x0 for x in xs], linestyle=":", color="grey", label="linear")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("ratings")
    axes.set_ylabel("wall time (s)")
    loads = ", ".join(f"{r['size']} {r['load_1min']:.0f}" for r in ordered)
    axes.set_title(f"movierec pipeline, time per stage ({os.cpu_count()} cores; mean load {loads})", fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    print(f"plot: {target}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100k,1m,5m,25m", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "scale-data", help="where the generated zips are cached")
    parser.add_argument("--results", type=Path, default=Path(tempfile.gettempdir()) / "scale-data" / "results.json", help="the JSON the results are merged into")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "scale.png")
    parser.add_argument("--plot-only", action="store_true", help="plot the results file, run nothing")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per run (default 600 + 200 s per million ratings)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a variable for the pipeline's process (repeatable)")
    parser.add_argument("--label", default="", help="stored under <size><label> in the results, e.g. -blas")
    parser.add_argument("--random-burst", action="store_true", help="land random ratings, not ones drawn from the history's tastes")
    parser.add_argument("--demo-random-burst", action="store_true", help=argparse.SUPPRESS)  # the pipeline's process itself
    parser.add_argument("--keep", type=Path, default=None, help="copy each run's home (lake, instance) here")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.demo_random_burst:
        demo_with_random_burst()
        return
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    if not args.plot_only:
        extra_env = dict(item.split("=", 1) for item in args.env)
        for name in args.sizes.split(","):
            size = SIZES[name.strip()]
            source, generated = dataset(size, args.data)
            timeout = args.timeout or 600 + 200 * size.ratings / 1e6
            print(f"== {size.name}: {size.ratings:,} ratings from {source} (timeout {timeout:.0f} s)", flush=True)
            result = run_size(size, source, timeout, extra_env, args.keep, args.random_burst)
            result["generate_seconds"] = generated
            results[size.name + args.label] = result
            print(
                f"   {result['outcome']} in {result['seconds']:.0f} s, peak {result['peak_rss_gib']} GiB resident "
                f"(JVM {result['peak_jvm_rss_gib']}; proportional {result['peak_pss_gib']}), load {result['load_1min']}", flush=True
            )
            if "gate" in result:
                print(f"   gate: {result['gate']['summary']}")
            if "scoring" in result:
                scoring = result["scoring"]
                print(f"   scored {scoring['users']:,} users with {scoring['model_version']} ({scoring['popularity_fallback_users']:,} on the popularity fallback)")
            for line in result["log_tail"]:
                print(f"   | {line}")
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(json.dumps(results, indent=2))
    print_table({k: v for k, v in results.items() if k in SIZES})
    if args.plot:
        try:
            plot({k: v for k, v in results.items() if k in SIZES}, args.plot)
        except ModuleNotFoundError as missing:  # the results are saved; only the plot needs the `bench` extra
            print(f"No plot: {missing.name} is not installed (`.venv/bin/pip install matplotlib`, then --plot-only).")


if __name__ == "__main__":
    main()
