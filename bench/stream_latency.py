"""Stream latency: seconds from a file of events landing to those events being in `rating_events`, under `dagster dev`.

Starts `dagster dev` on a free localhost port with a temporary MOVIEREC_HOME
(its dagster_home holds a copy of infra/local/dagster.yaml), makes sure
`rating_events_sensor` is running (it defaults to running; it is started
through the GraphQL API otherwise), waits for the sensor's first tick, then
`--rounds` times: lands `--events` events with the generator's LocalSink and
polls the `rating_events` Parquet table (pyarrow, no Spark) until every one of
them is there. The ingest reads only the landing folder: no ETL run is needed.
Stops `dagster dev` (its whole process group) at the end.

    .venv/bin/python -m bench.stream_latency [--rounds 3 --events 1000]
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from itertools import islice
from pathlib import Path

import pyarrow.dataset as ds

from generator.sinks import LocalSink
from generator.sources import Population, event_line, synthetic

ROOT = Path(__file__).resolve().parents[1]
SENSOR = "rating_events_sensor"
POLL_SECONDS = 0.5

SENSORS_QUERY = """
query {
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes { name location { name } sensors { name sensorState { status ticks(limit: 1) { timestamp status } } } }
    }
    ... on PythonError { message }
  }
}
"""
START_SENSOR = """
mutation ($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    if body.get("errors"):
        raise RuntimeError(f"GraphQL error: {body['errors']}")
    return body["data"]


def sensor_state(port: int) -> tuple[dict, dict] | None:
    """(repository selector, sensor) for the ingest sensor, or None while the code location is loading."""
    data = graphql(port, SENSORS_QUERY)["repositoriesOrError"]
    if "message" in data:
        raise RuntimeError(f"The code location failed to load: {data['message']}")
    for repository in data.get("nodes", []):
        for found in repository["sensors"]:
            if found["name"] == SENSOR:
                selector = {
                    "repositoryLocationName": repository["location"]["name"],
                    "repositoryName": repository["name"],
                    "sensorName": SENSOR,
                }
                return selector, found
    return None


def wait_until(what: str, condition, timeout: float, process: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited ({process.returncode}) while waiting for {what}; see {log}")
        try:
            result = condition()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            result = None
        if result:
            return result
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"Gave up after {timeout:.0f} s waiting for {what}; see {log}")


def ingested_ids(table: Path) -> set[str]:
    """The event ids in the table now; a folder being swapped in mid-read is read again on the next poll."""
    if not table.is_dir():
        return set()
    try:
        events = ds.dataset(table, format="parquet", partitioning="hive").to_table(columns=["event_id"])
        return set(events["event_id"].to_pylist())
    except (OSError, ValueError):  # a batch folder renamed while it was listed
        return set()


def land(landing: Path, count: int, rng: random.Random) -> set[str]:
    sink = LocalSink(landing, roll_events=count, roll_seconds=3_600, prefix="latency")
    ids = set()
    for rating in islice(synthetic(Population.default(), rng), count):
        event_id = str(uuid.UUID(int=rng.getrandbits(128)))
        ids.add(event_id)
        sink.write(event_line(event_id, rating).encode())
    sink.close()  # renames the file into the landing folder: the moment it lands
    return ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=1_000)
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for one round's events")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home (logs, lake) afterwards")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="movierec-latency-"))
    dagster_home = home / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(ROOT / "infra" / "local" / "dagster.yaml", dagster_home / "dagster.yaml")
    lake = home / "lake"
    landing, table = lake / "landing" / "rating_events", lake / "tables" / "rating_events"
    port = free_port()
    log = home / "dagster-dev.log"
    env = {**os.environ, "MOVIEREC_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    print(f"dagster dev on 127.0.0.1:{port}, MOVIEREC_HOME={home}, log {log}", flush=True)
    started = time.monotonic()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the webserver, the daemon, code servers, run workers
        )
    latencies = []
    try:
        selector, found = wait_until("the code location to load", lambda: sensor_state(port), 300, process, log)
        print(f"code location loaded in {time.monotonic() - started:.1f} s; {SENSOR} is {found['sensorState']['status']}")
        if found["sensorState"]["status"] != "RUNNING":
            result = graphql(port, START_SENSOR, {"selector": selector})["startSensor"]
            if result.get("sensorState", {}).get("status") != "RUNNING":
                raise RuntimeError(f"Could not start {SENSOR}: {result}")
            print(f"started {SENSOR} through the GraphQL API")
        first_tick = lambda: sensor_state(port)[1]["sensorState"]["ticks"]  # noqa: E731
        wait_until(f"the first tick of {SENSOR}", first_tick, 300, process, log)
        print(f"{SENSOR} ticking {time.monotonic() - started:.1f} s after start\n", flush=True)

        rng = random.Random(7)
        for round_ in range(1, args.rounds + 1):
            ids = land(landing, args.events, rng)
            landed = time.monotonic()
            arrived = lambda ids=ids: ids <= ingested_ids(table)  # noqa: E731
            wait_until(f"round {round_}'s events in rating_events", arrived, args.timeout, process, log)
            seconds = time.monotonic() - landed
            latencies.append(seconds)
            print(f"round {round_}: {args.events:,} events landed -> in rating_events after {seconds:.1f} s", flush=True)
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    print(
        f"\nlanding -> rating_events: median {statistics.median(latencies):.1f} s, "
        f"min {min(latencies):.1f} s, max {max(latencies):.1f} s over {len(latencies)} round(s); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
