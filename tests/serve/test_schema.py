"""schemathesis against the service's own OpenAPI schema, on the pipeline's lake: no server error, answers as documented;
and what the schema says a recommendation's numbers mean."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from movierec_dagster.serve.app import Service, create_app

OPERATIONS = ["/users/{user_id}/recommendations", "/movies/{movie_id}/similar", "/movies", "/health"]


@pytest.fixture(scope="module")
def api_schema(api):
    return schemathesis.openapi.from_asgi("/openapi.json", api)


@pytest.mark.slow  # the session's whole-graph run
def test_the_schema_has_every_operation(api_schema):
    assert sorted(f"{o.ok().method.upper()} {o.ok().path}" for o in api_schema.get_all_operations()) == sorted(
        f"GET {path}" for path in OPERATIONS
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "mode"),
    [(path, GenerationMode.POSITIVE) for path in OPERATIONS]
    # /health takes no input, so it has no invalid input either.
    + [(path, GenerationMode.NEGATIVE) for path in OPERATIONS if path != "/health"],
)
def test_the_api_keeps_to_its_schema(api_schema, path, mode):
    """Valid input and (negative mode) input the schema rules out: every answer documented, none a 5xx."""

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=api_schema[path]["GET"].as_strategy(generation_mode=mode))
    def call_and_validate(case):
        case.call_and_validate()

    call_and_validate()


def test_a_recommendation_documents_its_order_and_its_numbers(tmp_path):
    schema = create_app(Service(str(tmp_path))).openapi()["components"]["schemas"]["Recommendation"]
    assert {"rank", "score", "predicted_rating"} <= set(schema["required"])
    score = schema["properties"]["score"]
    assert (score["type"], score["minimum"], score["maximum"]) == ("number", 0.0, 1.0)
    assert "ordered by" in score["description"] and "match" in score["description"]
    assert "order of `score`" in schema["properties"]["rank"]["description"]
    assert "predicted stars" in schema["properties"]["predicted_rating"]["description"]
