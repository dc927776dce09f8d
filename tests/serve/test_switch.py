"""A new recommendations partition while requests keep coming: each answer is all old or all new, none fails."""

import shutil
import threading
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from pyspark.sql import functions as F

from movierec_dagster.recommendations.assets import TABLE, day_part
from movierec_dagster.resources import LocalLake
from movierec_dagster.serve.app import Service, create_app
from tests.pipeline import today

USERS = (1, 2, 3)


@pytest.mark.slow  # the session's whole-graph run
def test_a_new_partition_is_switched_to_whole_under_concurrent_requests(pipeline_lake, spark, tmp_path):
    shutil.copytree(pipeline_lake.fs_path(), tmp_path / "lake")
    lake = LocalLake(root=str(tmp_path / "lake"))
    service = Service(lake.uri())
    assert service.refresh()
    with TestClient(create_app(service, poll_seconds=0.05)) as client:
        old = {user: client.get(f"/users/{user}/recommendations").json() for user in USERS}
        answers: list[tuple[int, int, dict]] = []
        stop = threading.Event()

        def ask(user: int) -> None:
            while not stop.is_set():
                response = client.get(f"/users/{user}/recommendations")
                answers.append((user, response.status_code, response.json()))

        askers = [threading.Thread(target=ask, args=(user,)) for user in USERS]
        for asker in askers:
            asker.start()
        try:
            # Tomorrow's batch, as the pipeline's lake layer commits a day: today's rows in reverse rank order.
            tomorrow = (date.fromisoformat(today()) + timedelta(days=1)).isoformat()
            batch = lake.read_table(spark, TABLE).where(F.col("date") == today()).drop("date")
            lake.write_table(batch.withColumn("rank", 11 - F.col("rank")), TABLE, part=day_part(tomorrow))
            switched = threading.Event()
            for _ in range(600):  # the poller looks every 0.05 s; give it up to a minute on a busy machine
                if client.get("/health").json()["date"] == tomorrow:
                    switched.set()
                    break
                switched.wait(0.1)
            answers_when_switched = len(answers)
            while len(answers) < answers_when_switched + 30:
                switched.wait(0.05)
        finally:
            stop.set()
            for asker in askers:
                asker.join()
        new = {user: client.get(f"/users/{user}/recommendations").json() for user in USERS}

    assert switched.is_set()
    assert all(status == 200 for _, status, _ in answers)
    for user in USERS:
        assert new[user]["date"] == tomorrow
        assert [r["movie_id"] for r in new[user]["recommendations"]] == [r["movie_id"] for r in reversed(old[user]["recommendations"])]
    # Each answer is one whole batch: exactly the old or exactly the new, and both were seen.
    kinds = [("old" if body == old[user] else "new" if body == new[user] else "mixed") for user, _, body in answers]
    assert "mixed" not in kinds and {"old", "new"} <= set(kinds)
