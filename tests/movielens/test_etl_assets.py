"""The MovieLens ETL materialized through Dagster on synthetic data: tables, metadata, checks, bad input."""

from dagster import DagsterEventType

from movierec_dagster.resources.lake import QUARANTINE
from tests.conftest import local_definitions


def _run_etl(home, source, instance):
    defs = local_definitions(home, source)
    result = defs.resolve_job_def("movielens_etl").execute_in_process(instance=instance, raise_on_error=False)
    return defs, result


def _check_results(result):
    return {
        (e.event_specific_data.asset_key.to_user_string(), e.event_specific_data.check_name): e.event_specific_data.passed
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    }


def test_etl_materializes_typed_tables_and_passes_checks(spark, home, synthetic, synthetic_zip, instance):
    defs, result = _run_etl(home, synthetic_zip, instance)
    assert result.success
    lake = defs.resources["lake"]
    assert lake.read_table(spark, "movies").count() == synthetic.count("movies.csv")
    assert lake.read_table(spark, "ratings").count() == synthetic.count("ratings.csv")
    assert lake.read_table(spark, "tags").count() == synthetic.count("tags.csv")
    assert lake.read_table(spark, "links").count() == synthetic.count("links.csv")
    assert [row.year for row in lake.read_table(spark, "ratings").select("year").distinct().collect()] == [2017]
    assert dict(lake.read_table(spark, "ratings").dtypes)["rated_at"] == "timestamp"

    checks = _check_results(result)
    assert len(checks) == 10 and all(checks.values()), checks

    ratings_event = instance.get_latest_materialization_event(result.asset_materializations_for_node("movielens_tables")[1].asset_key)
    metadata = ratings_event.asset_materialization.metadata
    assert metadata["dagster/row_count"].value == synthetic.count("ratings.csv")
    assert metadata["rejected_rows"].value == 0
    assert "user_id" in metadata["preview"].value


def test_malformed_rows_are_counted_and_the_row_count_check_still_balances(spark, home, synthetic, tmp_path, instance):
    folder = synthetic.write_folder(tmp_path / "csvs")
    with (folder / "ratings.csv").open("a") as handle:
        handle.write("1,2,9.0,1500000000\nnot,a,rating,row\n")
    defs, result = _run_etl(home, folder, instance)
    assert result.success
    lake = defs.resources["lake"]
    assert lake.read_table(spark, "ratings").count() == synthetic.count("ratings.csv")
    reasons = sorted(r.reject_reason for r in lake.read_table(spark, "ratings", area=QUARANTINE).collect())
    assert reasons == ["rating is outside 0.5-5.0", "userId is not a positive integer"]
    assert _check_results(result)[("ratings", "row_count_matches_source")]


def test_wrong_header_fails_the_step_with_the_file_name(home, synthetic, tmp_path, instance):
    folder = synthetic.write_folder(tmp_path / "csvs")
    (folder / "tags.csv").write_text("who,what\n1,2\n")
    _, result = _run_etl(home, folder, instance)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert [e.step_key for e in failures] == ["movielens_tables"]
    assert "tags.csv has the header who,what" in failures[0].step_failure_data.user_failure_data.description


def test_a_missing_source_fails_the_archive_with_the_fix(home, tmp_path, instance):
    _, result = _run_etl(home, tmp_path / "missing.zip", instance)
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert failure.step_key == "movielens_archive"
    assert "MOVIELENS_SOURCE" in failure.step_failure_data.user_failure_data.description


def test_ratings_of_unknown_movies_fail_their_check_with_a_sample(home, synthetic, tmp_path, instance):
    folder = synthetic.write_folder(tmp_path / "csvs")
    with (folder / "ratings.csv").open("a") as handle:
        handle.write("1,900001,4.0,1500000000\n2,900001,3.5,1500000000\n1,900002,3.0,1500000000\n")
    _, result = _run_etl(home, folder, instance)
    evaluation = next(
        e.event_specific_data
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION and e.event_specific_data.check_name == "rated_movies_exist"
    )
    assert not evaluation.passed
    assert evaluation.metadata["unknown_movie_ids"].value == 2
    assert evaluation.metadata["sample"].value == "[900001, 900002]"
    assert _check_results(result)[("ratings", "row_count_matches_source")]
