"""A Delta commit on Azure Storage creates its log file only if it is absent: racing writers never both win one version."""

import json
import re
import threading

import pyarrow as pa

from movierec_dagster.tables import PROPERTY_PREFIX, arrow_dataset, join, write_arrow

WRITERS = 4
COMMITS = 3


def test_racing_appends_each_win_a_version_of_their_own(adls_lake):
    """Each commit is in the log once, in a version file of its own, and its rows are in the table."""
    table = adls_lake.table("events")
    barrier = threading.Barrier(WRITERS)
    errors = []

    def writer(n: int) -> None:
        try:
            barrier.wait()
            for commit in range(COMMITS):
                write_arrow(table, pa.table({"marker": [f"{n}-{commit}"]}), replace="nothing", properties={"marker": f"{n}-{commit}"})
        except Exception as error:  # reported below: a thread's exception is otherwise lost
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors

    expected = sorted(f"{n}-{commit}" for n in range(WRITERS) for commit in range(COMMITS))
    fs, log = table.fs, join(table.path, "_delta_log")
    committed = []  # the marker of each version's write, one per log file
    for path in sorted(p for p in fs.ls(log, detail=False) if re.fullmatch(r"\d{20}\.json", p.rsplit("/", 1)[-1])):
        actions = [json.loads(line) for line in fs.cat_file(path).decode().splitlines() if line.strip()]
        info = next(action["commitInfo"] for action in actions if "commitInfo" in action)
        if info.get("operation") == "WRITE":
            committed.append(info[PROPERTY_PREFIX + "marker"])
    assert sorted(committed) == expected
    current = table.current()
    assert sorted(arrow_dataset(table, current).to_table().column("marker").to_pylist()) == expected
