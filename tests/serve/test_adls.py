"""The service on a copy of the pipeline's lake in Azurite (ADLS through adlfs): the answers it gives from the folder, and a new day's commit picked up."""

from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from movierec_dagster.recommendations.assets import TABLE, day_part
from movierec_dagster.resources.lake import TABLES
from movierec_dagster.serve.app import Service, create_app
from movierec_dagster.tables import Part, Table, join, lake_filesystem, new_snapshot_id
from tests.azure_storage.azurite import upload
from tests.pipeline import today

SAME_AS_LOADED = ("status", "date", "snapshot", "model_version", "champion", "users", "rows")


@pytest.mark.slow  # the session's whole-graph run
def test_the_service_on_adls_answers_as_from_the_folder_and_takes_a_new_day(
    client, pipeline_lake, graph_run, adls_location
):
    fs, root = lake_filesystem(adls_location)  # the service's own way in: the connection string from the environment
    upload(Path(pipeline_lake.fs_path()), fs, root)
    service = Service(adls_location)
    assert service.refresh(), service.problem
    stranger = graph_run.new_user + 1000
    paths = [
        "/users/1/recommendations",
        f"/users/{graph_run.new_user}/recommendations",
        f"/users/{stranger}/recommendations?k=5",
        "/movies/1/similar?k=4",
    ]
    with TestClient(create_app(service)) as on_adls:
        for path in paths:
            assert on_adls.get(path).json() == client.get(path).json(), path
        health = {key: on_adls.get("/health").json()[key] for key in SAME_AS_LOADED}
        assert health == {key: client.get("/health").json()[key] for key in SAME_AS_LOADED}

        # Tomorrow's batch (today's rows, copied into a new snapshot) committed on ADLS: the next look takes it.
        recommendations = Table(fs, join(root, TABLES, TABLE), join(adls_location, TABLES, TABLE))
        todays = recommendations.current().parts[day_part(today())]
        tomorrow = (date.fromisoformat(today()) + timedelta(days=1)).isoformat()
        snapshot = new_snapshot_id()
        source = recommendations.snapshot_path(todays.snapshot, day_part(today()))
        for file in fs.find(source):
            fs.copy(file, recommendations.snapshot_path(snapshot, day_part(tomorrow)) + file.removeprefix(source))
        recommendations.commit({day_part(tomorrow): Part(snapshot, todays.rows)})
        assert service.refresh(), service.problem
        assert on_adls.get("/health").json()["date"] == tomorrow
        assert on_adls.get("/users/1/recommendations").json()["recommendations"] == (
            client.get("/users/1/recommendations").json()["recommendations"]
        )
