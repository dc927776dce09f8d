"""The service on a copy of the pipeline's lake in Azurite (ADLS through adlfs and delta-rs): the answers it gives from the folder, and a new day's commit picked up."""

import os
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from movierec_dagster.recommendations.assets import TABLE, day_part
from movierec_dagster.resources.lake import TABLES
from movierec_dagster.serve.app import Service, create_app
from movierec_dagster.tables import LakeFiles, adls_credentials, arrow_dataset, part_values, write_arrow
from tests.azure_storage.azurite import upload
from tests.pipeline import today

SAME_AS_LOADED = ("status", "date", "table_version", "model_version", "champion", "users", "rows")


@pytest.mark.slow  # the session's whole-graph run
def test_the_service_on_adls_answers_as_from_the_folder_and_takes_a_new_day(client, pipeline_lake, graph_run, adls_location):
    credentials = adls_credentials(os.environ)  # as the service's entry point reads them: the connection string
    files = LakeFiles(adls_location, credentials)
    upload(Path(pipeline_lake.fs_path()), files.fs, files.root)
    service = Service(adls_location, credentials=credentials)
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

        # Tomorrow's batch (today's rows, read from ADLS and written again as a new part) committed on ADLS:
        # the next look takes it.
        recommendations = files.table(TABLES, TABLE)
        todays = arrow_dataset(recommendations, recommendations.current(), [day_part(today())]).to_table()
        tomorrow = (date.fromisoformat(today()) + timedelta(days=1)).isoformat()
        committed = write_arrow(recommendations, todays.drop_columns(list(part_values(day_part(today())))), part=day_part(tomorrow))
        assert service.refresh(), service.problem
        health = on_adls.get("/health").json()
        assert (health["date"], health["table_version"]) == (tomorrow, committed.version)
        assert (
            on_adls.get("/users/1/recommendations").json()["recommendations"]
            == (client.get("/users/1/recommendations").json()["recommendations"])
        )
