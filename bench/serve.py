"""Serving: the HTTP API under load (wrk), and the dashboard's first paint in a browser, both on the lake `make demo`
built.

    .venv/bin/python -m bench.serve <subcommand> [options]     (--help after a subcommand for its options)

Subcommands:
    http                   the HTTP API under wrk: requests/s, latency percentiles and the serving processes' memory,
                           on the demo's lake and on a copy at the 25M shape (`make bench-serve`); --fold-in: fresh
                           users' fold-in lists at the 25M shape, and the time from a POST to a GET that reflects it
    fold-in-cpu            one fold-in's time in this process, without HTTP, at the 25M shape, and the memory it holds
    dashboard-first-paint  the first paint of a user's dashboard view in headless Chromium; --screenshot

Both read the lake from MOVIEREC_LAKE or $MOVIEREC_HOME/lake (default ./.movierec/lake).
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from bench.common import family_parser, free_port, subcommand
from movierec_dagster.dashboard.data import Lake, LakeError
from movierec_dagster.tables import LakeFiles, adls_credentials, arrow_dataset, lake_location, write_arrow
from tests.dashboard.browser import chromium, missing_browser, running_dashboard, select_user, wait_for_user_view

# ---- http: the HTTP API under wrk ----

LARGE_USERS = 162_541  # ml-25m's users
TOP_K = 10
WRK_SCRIPT = """
local n = tonumber(os.getenv("IDS_MAX"))
local path = os.getenv("PATH_TEMPLATE")
math.randomseed(42)
request = function()
  return wrk.format("GET", (path:gsub("{id}", tostring(math.random(1, n)))))
end
"""


def synthesize_large_lake(demo_lake: Path, target: Path, users: int) -> None:
    """A copy of the demo's lake whose newest recommendations part has `users` users x 10 (the 25M shape)."""
    shutil.copytree(demo_lake, target, ignore=shutil.ignore_patterns("landing*", "checkpoints", "raw"))
    files = LakeFiles(str(target))
    movies = files.table("tables", "movies")
    movie_ids = arrow_dataset(movies, movies.current()).to_table(columns=["movie_id"]).column("movie_id").to_numpy()
    table = files.table("tables", "user_recommendations")
    current = table.current()
    part = max(current.parts)
    model_version = arrow_dataset(table, current, [part]).to_table(columns=["model_version"]).column(0)[0].as_py()
    rng = np.random.default_rng(7)
    rows = users * TOP_K
    batch = pa.table(
        {
            "user_id": np.repeat(np.arange(1, users + 1, dtype=np.int32), TOP_K),
            "movie_id": rng.choice(movie_ids, size=rows).astype(np.int32),
            "rank": np.tile(np.arange(1, TOP_K + 1, dtype=np.int32), users),
            "score": np.tile(np.linspace(0.9, 0.45, TOP_K), users),
            "predicted_rating": np.round(rng.uniform(3.0, 5.0, size=rows), 4),
            "model_version": pa.array([model_version] * rows, pa.string()),
            "generated_at": pa.array(np.full(rows, np.datetime64("now", "us"))).cast(pa.timestamp("us", tz="UTC")),
            "source": pa.array(["model"] * rows, pa.string()),
        }
    )
    write_arrow(table, batch, part=part)


FOLD_IN_MOVIES = 59_047  # ml-25m's movies
FOLD_IN_RATINGS = 25_000_095  # ml-25m's ratings
FOLD_IN_VERSION = "20260101T000000Z-bench0"
FOLD_IN_SETTLE_SECONDS = 5  # from ready to the first wrk run: every worker has loaded


def _replace_table(target: Path, name: str, rows: pa.Table) -> None:
    """The table `name` of the copy made anew with `rows` (its old layout and partitioning dropped)."""
    shutil.rmtree(target / "tables" / name, ignore_errors=True)
    write_arrow(LakeFiles(str(target)).table("tables", name), rows)


def _factors_parquet(folder: Path, ids: np.ndarray, factors: np.ndarray) -> None:
    """A Spark ALS model's itemFactors as Spark saves them: id, features (array of float)."""
    folder.mkdir(parents=True, exist_ok=True)
    features = pa.FixedSizeListArray.from_arrays(pa.array(factors.ravel(), pa.float32()), factors.shape[1]).cast(pa.list_(pa.float32()))
    pq.write_table(pa.table({"id": pa.array(ids, pa.int32()), "features": features}), folder / "part-00000.parquet")


def synthesize_fold_in_lake(demo_lake: Path, target: Path, users: int, fresh_users: int) -> None:
    """The demo lake's copy at the 25M shape: training ratings, a champion with ALS factors, and fresh events."""
    synthesize_large_lake(demo_lake, target, users)
    rng = np.random.default_rng(11)
    # Every movie of the model is in the catalogue, as at the 25M shape: the demo's titles, years and genres, cycled.
    movies = LakeFiles(str(target)).table("tables", "movies")
    demo_movies = arrow_dataset(movies, movies.current()).to_table(columns=["title", "year", "genres"])
    cycled = demo_movies.take(np.arange(FOLD_IN_MOVIES) % demo_movies.num_rows)
    _replace_table(target, "movies", cycled.add_column(0, "movie_id", pa.array(np.arange(1, FOLD_IN_MOVIES + 1, dtype=np.int32))))
    per_user = FOLD_IN_RATINGS // users
    rated_at = pa.array(np.full(users * per_user, np.datetime64("2020-01-01T00:00:00", "us"))).cast(pa.timestamp("us", tz="UTC"))
    _replace_table(target, "training_ratings", pa.table({
        "user_id": np.repeat(np.arange(1, users + 1, dtype=np.int32), per_user),
        "movie_id": rng.integers(1, FOLD_IN_MOVIES + 1, users * per_user, dtype=np.int32),
        "rating": (rng.integers(1, 11, users * per_user) / 2.0),
        "rated_at": rated_at,
    }))
    streamed = fresh_users * 10
    later = np.datetime64("now", "us") + np.timedelta64(3600, "s")  # after the batch: every one of these users is fresh
    _replace_table(target, "rating_events", pa.table({
        "event_id": pa.array([f"bench-{i}" for i in range(streamed)], pa.string()),
        "user_id": np.repeat(np.arange(1, fresh_users + 1, dtype=np.int32), 10),
        "movie_id": rng.integers(1, FOLD_IN_MOVIES + 1, streamed, dtype=np.int32),
        "rating": rng.integers(1, 11, streamed) / 2.0,
        "rated_at": pa.array(np.full(streamed, later)).cast(pa.timestamp("us", tz="UTC")),
        "ingested_at": pa.array(np.full(streamed, later)).cast(pa.timestamp("us", tz="UTC")),
    }))
    version = target / "models" / "als" / FOLD_IN_VERSION
    ids = np.arange(1, FOLD_IN_MOVIES + 1)
    _factors_parquet(version / "ranking" / "itemFactors", ids, rng.normal(0, 0.1, (FOLD_IN_MOVIES, 30)).astype(np.float32))
    _factors_parquet(version / "rating" / "itemFactors", ids, rng.normal(0, 0.05, (FOLD_IN_MOVIES, 50)).astype(np.float32))
    (version / "item_bias").mkdir(parents=True)
    pq.write_table(
        pa.table({"movie_id": pa.array(ids, pa.int32()), "item_bias": rng.normal(0, 0.3, FOLD_IN_MOVIES)}),
        version / "item_bias" / "part-00000.parquet",
    )
    info = {
        "version": FOLD_IN_VERSION, "ranking_model": "implicit ALS", "rating_model": "biases + residual ALS", "global_mean": 3.5,
        "params": {"alpha": 1.0, "ranking_reg_param": 0.1, "neutral_rating": 3.0, "user_bias_reg": 15.0, "rating_reg_param": 0.1},
    }
    (version / "model.json").write_text(json.dumps(info))
    (target / "models" / "als" / "champion.json").write_text(json.dumps({"version": FOLD_IN_VERSION}))


def post_to_get_seconds(port: int, user: int, movie: int, key: str, attempts: int = 20) -> list[float]:
    """Seconds from each POST of one rating (a new user each time) to the first GET of that user that counts it."""
    times = []
    for attempt in range(attempts):
        asker = user + attempt
        body = json.dumps({"ratings": [{"movie_id": movie, "rating": 5.0}]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/users/{asker}/ratings", data=body, method="POST",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/users/{asker}/recommendations", timeout=10) as response:
                answer = json.loads(response.read())
            if answer["newest_rating_at"] is not None:
                break
        times.append(time.perf_counter() - started)
    return times


@contextmanager
def serving(environment: dict[str, str], workers: int, timeout: float = 300) -> Iterator[tuple[int, dict, float]]:
    """`movierec serve` with `environment` on a free port: (its pid, /health once ready, seconds to ready); stopped after."""
    port = int(environment["MOVIEREC_SERVE_PORT"])
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "movierec_dagster.serve.cli", "serve", "--workers", str(workers)],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        health = wait_until_ready(port, timeout=timeout)
        yield server.pid, health, time.perf_counter() - started
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def wrk_line(label: str, figures: dict) -> str:
    return (
        f"{label}: {figures['requests_per_second']:,.0f} req/s, p50 {figures['p50']}, p90 {figures['p90']}, "
        f"p99 {figures['p99']} ({figures['requests']:,} requests, {figures['non_2xx']:,} non-2xx)"
    )


def bench_fold_in(lake: str, arguments, script: str) -> None:
    """POST-to-GET on one worker, then wrk on the fresh users (every answer a fold-in)."""
    port, key = free_port(), "bench-key"
    environment = {
        **os.environ, "MOVIEREC_LAKE": lake, "MOVIEREC_SERVE_PORT": str(port), "MOVIEREC_SERVE_POLL_SECONDS": "3600",
        "MOVIEREC_SERVE_API_KEYS": key, "MOVIEREC_LANDING_FOLDER": str(Path(lake) / "landing" / "rating_events"),
    }
    with serving(environment, 1, timeout=900):
        times = sorted(post_to_get_seconds(port, 10_000_000, 1, key))
    with serving(environment, arguments.workers, timeout=900) as (pid, health, ready_seconds):
        time.sleep(FOLD_IN_SETTLE_SECONDS)
        memory = serving_memory_mib(pid)
        runs = [
            run_wrk(port, "/users/{id}/recommendations?k=10", arguments.fresh_users, arguments.seconds, arguments.connections, script)
            for _ in range(arguments.runs)
        ]
    print(f"\n== fold-in at the 25M shape: {health['users']:,} users in the batch, {arguments.fresh_users:,} with fresh "
          f"ratings; ready in {ready_seconds:.1f} s (load {health['load_seconds']:.2f} s per worker), {arguments.workers} workers")
    print(f"memory (RSS, all serving processes): {memory:.0f} MiB")
    for number, figures in enumerate(runs, 1):
        start = FOLD_IN_SETTLE_SECONDS + (number - 1) * arguments.seconds
        print(wrk_line(f"fold-in recommendations, run {number} ({start}-{start + arguments.seconds} s after ready)", figures))
    print(f"POST to a GET that reflects it (1 worker, {len(times)} posts): median {times[len(times) // 2] * 1000:.1f} ms, "
          f"max {times[-1] * 1000:.1f} ms")


def fold_in_cpu(arguments: argparse.Namespace) -> None:
    """One fold-in's time in this process, without HTTP: `Served.recommendations_json` for the fresh users of the
    25M-shape copy `http --fold-in` serves, on one BLAS thread as each worker runs, and the process's memory once the
    lake is loaded.

        .venv/bin/python -m bench.serve fold-in-cpu [--requests 20000]
    """
    from threadpoolctl import threadpool_limits

    from movierec_dagster.serve.data import LakeReader

    demo_lake = Path(lake_location())
    if not (demo_lake / "tables" / "user_recommendations").is_dir():
        sys.exit(f"No recommendations in {demo_lake}: run make demo first.")
    with tempfile.TemporaryDirectory(prefix="bench-fold-in-") as scratch:
        large = Path(scratch) / "lake"
        synthesize_fold_in_lake(demo_lake, large, arguments.users, arguments.fresh_users)
        served = LakeReader(LakeFiles(str(large))).load()
        statm = Path(f"/proc/{os.getpid()}/statm")
        resident = int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20 if statm.exists() else float("nan")
        print(f"loaded in {served.load_seconds:.1f} s; resident {resident:,.0f} MiB")
        with threadpool_limits(1):
            for user in range(1, min(arguments.fresh_users, 1_000) + 1):  # warm-up
                served.recommendations_json(user, 10)
            seconds = []
            for number in range(arguments.requests):
                user = 1 + (number * 7919) % arguments.fresh_users
                started = time.perf_counter()
                served.recommendations_json(user, 10)
                seconds.append(time.perf_counter() - started)
    milliseconds = np.array(seconds) * 1000
    print(f"fold-in in process ({arguments.requests:,} requests of {arguments.fresh_users:,} fresh users): mean "
          f"{milliseconds.mean():.3f} ms, p50 {np.percentile(milliseconds, 50):.3f} ms, p99 {np.percentile(milliseconds, 99):.3f} ms, "
          f"max {milliseconds.max():.2f} ms")


def serving_memory_mib(pid: int) -> float:
    """Resident memory of the server and its worker processes."""
    pids = [pid, *map(int, subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split())]
    total = 0
    for each in pids:
        status = Path(f"/proc/{each}/status").read_text()
        total += int(re.search(r"VmRSS:\s+(\d+)", status)[1])
    return total / 1024


def wait_until_ready(port: int, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the service on port {port} was not ready after {timeout} s")


def run_wrk(port: int, path_template: str, ids_max: int, seconds: int, connections: int, script: str) -> dict:
    environment = {**os.environ, "IDS_MAX": str(ids_max), "PATH_TEMPLATE": path_template}
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, env=environment, timeout=seconds + 30, check=True,
    )
    output = result.stdout

    def latency(percentile: str) -> str:
        return re.search(rf"^\s+{percentile}%\s+(\S+)", output, flags=re.M)[1]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1]),
        "requests": int(re.search(r"(\d+) requests in", output)[1]),
        "p50": latency("50"), "p90": latency("90"), "p99": latency("99"),
        "non_2xx": int(errors[1]) if errors else 0,
    }


def bench_lake(name: str, lake: str, arguments, script: str) -> None:
    environment = {**os.environ, "MOVIEREC_LAKE": lake, "MOVIEREC_SERVE_PORT": str(free_port()), "MOVIEREC_SERVE_POLL_SECONDS": "30"}
    port = int(environment["MOVIEREC_SERVE_PORT"])
    with serving(environment, arguments.workers) as (pid, health, ready_seconds):
        time.sleep(2)  # every worker loaded (each polls at start)
        idle_memory = serving_memory_mib(pid)
        users = run_wrk(port, "/users/{id}/recommendations?k=10", health["users"], arguments.seconds, arguments.connections, script)
        busy_memory = serving_memory_mib(pid)
        similar = run_wrk(port, "/movies/{id}/similar?k=10", 2000, arguments.seconds, arguments.connections, script)
        load = os.getloadavg()
    print(f"\n== {name}: {health['users']:,} users, {health['rows']:,} rows; ready in {ready_seconds:.1f} s "
          f"(load {health['load_seconds']:.2f} s per worker), {arguments.workers} workers")
    print(f"memory (RSS, all serving processes): {idle_memory:.0f} MiB loaded, {busy_memory:.0f} MiB after the load")
    for label, figures in (("recommendations", users), ("similar (ids 1-2000, some 404)", similar)):
        print(wrk_line(label, figures))
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)")


def http(arguments: argparse.Namespace) -> None:
    """The HTTP API under load: requests/s, latency percentiles and the serving processes' memory, driven by wrk.

    Two lakes: the demo's (`$MOVIEREC_HOME/lake`: `make demo` on ml-latest-small), and a copy of it whose
    recommendations are synthesized at the 25M-rating shape (162,541 users x 10, committed through the
    table layer). For each, `movierec serve` runs on loopback (`--workers`, default 2: the server and wrk
    share the machine's cores), wrk asks for random users' recommendations for a bounded time, then for
    similar movies. Needs Debian's wrk (`apt-get install -y wrk`).

    `--fold-in` measures fresh recommendations instead, on a copy synthesized at the 25M shape whole:
    25M training ratings of 162,541 users over 59,047 movies, an implicit ALS champion of rank 30 with a
    residual ALS of rank 50, and ratings streamed after the batch by the first `--fresh-users` users, whom
    wrk asks for (every answer a fold-in), in `--runs` runs one after another from 5 s after the service is
    ready: the first seconds of serving have a longer tail than the runs after them, so each run is reported.
    Then, on one worker, the time from a POST of ratings to the first GET that reflects them.

        .venv/bin/python -m bench.serve http [--seconds 10] [--connections 16] [--workers 2] [--fold-in [--runs 3]]
    """
    if shutil.which("wrk") is None:
        sys.exit("bench.serve http needs wrk: apt-get install -y wrk")
    demo_lake = Path(lake_location())
    if not (demo_lake / "tables" / "user_recommendations").is_dir():
        sys.exit(f"No recommendations in {demo_lake}: run make demo first.")
    print(f"wrk: 1 thread, {arguments.connections} connections, {arguments.seconds} s per run; server and wrk on this machine")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        script = str(Path(scratch) / "ids.lua")
        Path(script).write_text(WRK_SCRIPT)
        if arguments.fold_in:
            large = Path(scratch) / "lake"
            synthesize_fold_in_lake(demo_lake, large, arguments.users, arguments.fresh_users)
            bench_fold_in(str(large), arguments, script)
            return
        bench_lake("ml-latest-small (the demo's lake)", str(demo_lake), arguments, script)
        large = Path(scratch) / "lake"
        synthesize_large_lake(demo_lake, large, arguments.users)
        bench_lake(f"25M shape ({arguments.users:,} users, synthesized recommendations)", str(large), arguments, script)


# ---- dashboard-first-paint: the dashboard in headless Chromium ----


def _paint(browser, url: str, user: int) -> float:
    started = time.perf_counter()
    browser.get(f"{url}/?user={user}")
    wait_for_user_view(browser, user)
    return time.perf_counter() - started


def save_view(browser, url: str, user: int, path: Path) -> None:
    """A screenshot of `user`'s whole view once both charts are drawn."""
    browser.set_window_size(1440, 1700)
    browser.get(f"{url}/?user={user}")
    wait_for_user_view(browser, user)
    WebDriverWait(browser, 30).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"] svg')) >= 2
    )
    time.sleep(1)  # let the charts' entry transitions finish
    path.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(path))
    print(f"screenshot of user {user} in {path}")


def dashboard_first_paint(args: argparse.Namespace) -> None:
    """First paint of a user's dashboard view in headless Chromium, on the lake `make demo` built.

        .venv/bin/python -m bench.serve dashboard-first-paint [--users 20] [--screenshot docs/dashboard.png]

    Reads the lake from MOVIEREC_LAKE or $MOVIEREC_HOME/lake (default ./.movierec/lake). "First paint" is
    the time from asking the browser for `/?user=N` until that user's ten recommendation rows are in the page.
    With --screenshot, it then saves a whole view of a user the model scored (docs/dashboard.md's picture).
    """
    if reason := missing_browser():
        sys.exit(f"Cannot benchmark in a browser: {reason}.")
    location = lake_location()
    try:
        lake = Lake(location, adls_credentials(os.environ))
        lake.check_exists()
        date = lake.newest_recommendation_date()
        users = lake.recommended_users(date)
    except LakeError as problem:
        sys.exit(f"{problem} Run `make demo` first.")
    ratings = ", ".join(lake.own_ratings_tables())
    print(f"lake {location}: {len(users):,} users with recommendations on {date}; own ratings from {ratings}")
    sample = random.Random(7).sample(users, min(len(users), args.users + 2))

    with tempfile.TemporaryDirectory(prefix="movierec-bench-") as scratch:
        started = time.perf_counter()
        with running_dashboard(location, Path(scratch) / "streamlit.log") as url:
            print(f"streamlit run answers after        {time.perf_counter() - started:6.2f} s")
            with chromium() as browser:
                browser.get(f"{url}/_stcore/health")  # the browser is up before the clock starts
                cold = _paint(browser, url, sample[0])
                print(f"first paint, first visit (cold)    {cold:6.2f} s   user {sample[0]}")
                warm = [_paint(browser, url, user) for user in sample[2:]]
                print(
                    f"first paint, page load, {len(warm)} users   median {statistics.median(warm):.2f} s"
                    f"   max {max(warm):.2f} s"
                )
                started = time.perf_counter()
                select_user(browser, sample[1])
                wait_for_user_view(browser, sample[1])
                print(f"switch user in the selector        {time.perf_counter() - started:6.2f} s")
                if args.screenshot:
                    scored = next((u for u in sample if not lake.recommendations(date, u).cold_start), sample[0])
                    save_view(browser, url, scored, args.screenshot)


# ---- the command line ----


def build_parser() -> argparse.ArgumentParser:
    parser, commands = family_parser("python -m bench.serve", __doc__)

    command = subcommand(commands, "http", http)
    command.add_argument("--seconds", type=int, default=10)
    command.add_argument("--connections", type=int, default=16)
    command.add_argument("--workers", type=int, default=2)
    command.add_argument("--users", type=int, default=LARGE_USERS)
    command.add_argument("--fold-in", action="store_true", help="fresh users' fold-in lists and POST-to-GET instead")
    command.add_argument("--fresh-users", type=int, default=20_000)
    command.add_argument(
        "--runs", type=int, default=3, help="--fold-in: wrk runs one after another (the first seconds of serving, then after)"
    )

    command = subcommand(commands, "fold-in-cpu", fold_in_cpu)
    command.add_argument("--requests", type=int, default=20_000)
    command.add_argument("--users", type=int, default=LARGE_USERS)
    command.add_argument("--fresh-users", type=int, default=20_000)

    command = subcommand(commands, "dashboard-first-paint", dashboard_first_paint)
    command.add_argument("--users", type=int, default=20, help="users to open after the first (default 20)")
    command.add_argument("--screenshot", type=Path, help="save a picture of a model-scored user's view here")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.benchmark(args)


if __name__ == "__main__":
    main()
