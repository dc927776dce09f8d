"""The ETL on the genuine ml-latest-small archive (skipped when it is absent)."""

import pytest

from tests.conftest import local_definitions

pytestmark = pytest.mark.real_data


def test_real_movielens_counts(spark, home, real_movielens, instance):
    defs = local_definitions(home, real_movielens)
    result = defs.resolve_job_def("movielens_etl").execute_in_process(instance=instance)
    assert result.success
    lake = defs.resources["lake"]
    counts = {table: lake.read_table(spark, table).count() for table in ("ratings", "movies", "tags", "links")}
    assert counts == {"ratings": 100_836, "movies": 9_742, "tags": 3_683, "links": 9_742}
    toy_story = lake.read_table(spark, "movies").where("movie_id = 1").first()
    assert (toy_story.title, toy_story.year) == ("Toy Story", 1995)
