"""The HTTP API: recommendations, similar movies, health and Prometheus metrics, from the lake without Spark.

`Service` holds the one `Served` in use and replaces it whole when the lake's source changes (a
new `date=` part, a batch made again, a new champion, a new movies table): a request reads the
reference once, so it answers from the old data or the new, never a mix, and no request waits for
a load. `create_app` wires a service to FastAPI; with `poll_seconds` a background thread loads the
data at start and looks for a new source that often.
"""

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field

from movierec_dagster.serve.data import MAX_K, LakeReader, NotServable, Served
from movierec_dagster.tables import lake_filesystem

log = logging.getLogger("movierec.serve")

MAX_ID = 2**31 - 1  # ids are 32-bit in the tables
JSON = "application/json"


class Movie(BaseModel):
    movie_id: int
    title: str
    year: int | None
    genres: list[str]


class Recommendation(Movie):
    rank: int = Field(description="1 first: the list is in the order of `score`")
    score: float = Field(
        ge=0.0,
        le=1.0,
        description=(
            "What the list is ordered by, never higher than the score of the rank above. Source 'model': the match, "
            "how much the ranking model expects the user to want the movie; source 'popularity': the share of users "
            "who rated the movie."
        ),
    )
    predicted_rating: float = Field(
        description="The rating model's predicted stars (0.5-5.0): a second opinion, which need not follow the order."
    )


class UserRecommendations(BaseModel):
    user_id: int
    source: Literal["model", "popularity"]
    known_user: bool  # false: the batch did not know the user, who gets the popularity fallback
    date: str
    model_version: str | None
    generated_at: str
    recommendations: list[Recommendation]
    note: str | None = Field(default=None, description="Present when fewer than k exist: how many were asked, how many there are")


class SimilarMovie(Movie):
    similarity: float


class SimilarMovies(Movie):
    model_version: str
    similar: list[SimilarMovie]
    note: str | None = Field(default=None, description="Present when fewer than k exist: how many were asked, how many there are")


class MovieSearch(BaseModel):
    query: str
    matches: int = Field(description="How many titles match, of which `movies` holds the first k")
    movies: list[Movie]
    note: str | None = Field(default=None, description="Present when fewer than k exist: how many were asked, how many there are")


class Health(BaseModel):
    status: Literal["ready", "unavailable"]
    detail: str | None = None
    date: str | None = None
    table_version: int | None = None  # the Delta version of user_recommendations served
    model_version: str | None = None  # the model that made the batch served
    champion: str | None = None  # the model whose item vectors /similar uses
    users: int | None = None
    rows: int | None = None
    loaded_at: str | None = None
    load_seconds: float | None = None


class Error(BaseModel):
    detail: str
    errors: list[dict[str, Any]] | None = None


ERRORS = {
    404: {"model": Error, "description": "No such movie in the champion model"},
    422: {"model": Error, "description": "A non-numeric id, or k out of range"},
    503: {"model": Error, "description": "Nothing to serve yet; the message says what to run"},
}


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app, so tests can build several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "movierec_serve_requests", "HTTP requests answered", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "movierec_serve_request_seconds",
            "Time to answer a request, in the application",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
            registry=self.registry,
        )
        self.loads = Counter("movierec_serve_loads", "Loads of the lake's data, by outcome", ["outcome"], registry=self.registry)
        self.ready = Gauge("movierec_serve_ready", "1 once data is loaded", registry=self.registry)
        self.users = Gauge("movierec_serve_users", "Users in the recommendations served", registry=self.registry)
        self.loaded_at = Gauge(
            "movierec_serve_loaded_timestamp_seconds", "When the data served was loaded", registry=self.registry
        )
        self.load_seconds = Gauge("movierec_serve_load_seconds", "How long the last load took", registry=self.registry)


class Service:
    """The data in use for one lake, replaced whole by `refresh`."""

    def __init__(self, location: str, metrics: Metrics | None = None):
        self.location = location
        self.metrics = metrics or Metrics()
        fs, root = lake_filesystem(location)
        self._reader = LakeReader(fs, root, location)
        self._refresh_lock = threading.Lock()
        self.served: Served | None = None
        self.problem = "The data is being loaded."

    def refresh(self) -> bool:
        """Load the lake's data if its source changed; True when a new `Served` is in use.

        On failure the data in use stays (and `problem` says why), so the service answers on.
        """
        with self._refresh_lock:
            try:
                source, _ = self._reader.current_source()
                if self.served is not None and self.served.source == source:
                    return False
                served = self._reader.load()
            except NotServable as problem:
                self._failed(str(problem))
                return False
            except Exception as error:  # an unreadable lake must not end the polling thread
                log.exception("Loading the lake at %s failed", self.location)
                self._failed(f"Loading the lake failed: {type(error).__name__}: {error}")
                return False
            self.served, self.problem = served, ""
            self.metrics.loads.labels("loaded").inc()
            self.metrics.ready.set(1)
            self.metrics.users.set(served.users)
            self.metrics.loaded_at.set(time.time())
            self.metrics.load_seconds.set(served.load_seconds)
            log.info(
                "Serving %s (user_recommendations version %s, champion %s): %d users, loaded in %.2f s",
                served.source.date, served.source.table_version, served.source.champion, served.users, served.load_seconds,
            )
            return True

    def _failed(self, problem: str) -> None:
        self.problem = problem
        self.metrics.loads.labels("failed").inc()
        if self.served is None:
            self.metrics.ready.set(0)


def _poll(service: Service, poll_seconds: float, stop: threading.Event) -> None:
    service.refresh()
    while not stop.wait(poll_seconds):
        service.refresh()


def _json(body: str, status: int = 200) -> Response:
    return Response(content=body.encode(), status_code=status, media_type=JSON)


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for problem in error.errors():
        where = ".".join(str(piece) for piece in problem.get("loc", ())[1:]) or "request"
        parts.append(f"{where}: {problem.get('msg')} (got {problem.get('input')!r})")
    return "; ".join(parts)


class _MetricsMiddleware:
    """Counts and times every request by route template (a raw ASGI middleware: no per-request task)."""

    def __init__(self, app: Callable[..., Awaitable[None]], metrics: Metrics):
        self.app, self.metrics = app, metrics
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            children = self._children.get((route, status))
            if children is None:
                children = (self.metrics.requests.labels(route, str(status)), self.metrics.latency.labels(route))
                self._children[(route, status)] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - started)


def create_app(service: Service, poll_seconds: float | None = None, cors_origins: tuple[str, ...] = ()) -> FastAPI:
    """The API on `service`; with `poll_seconds`, a thread loads the data now and looks for a new source that often.
    Browsers on `cors_origins` may call it from their pages (none by default)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        stop = threading.Event()
        poller = None
        if poll_seconds is not None:
            poller = threading.Thread(target=_poll, args=(service, poll_seconds, stop), name="lake-poller", daemon=True)
            poller.start()
        try:
            yield
        finally:
            stop.set()
            if poller is not None:
                poller.join(timeout=30)

    # The docs' Swagger UI and ReDoc assets come from the service itself: the page works without the internet.
    app = FastAPIOffline(
        title="movierec",
        version="1",
        summary="Movie recommendations served from the lake: each user's latest batch, and similar movies.",
        lifespan=lifespan,
    )
    app.add_middleware(_MetricsMiddleware, metrics=service.metrics)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "HEAD"], allow_headers=["*"])

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(p.get("loc", ())), "msg": p.get("msg"), "type": p.get("type")} for p in error.errors()]
        return JSONResponse({"detail": _validation_message(error), "errors": errors}, status_code=422)

    def unavailable() -> Response:
        return JSONResponse({"detail": service.problem}, status_code=503)

    user_id_path = Path(ge=1, le=MAX_ID, description="A MovieLens user id")
    movie_id_path = Path(ge=1, le=MAX_ID, description="A MovieLens movie id")
    k_query = Query(10, ge=1, le=MAX_K, description=f"How many (1 to {MAX_K})")

    @app.get("/users/{user_id}/recommendations", response_model=UserRecommendations, responses=ERRORS)
    async def recommendations(user_id: int = user_id_path, k: int = k_query) -> Response:
        """The user's recommendations from the latest batch; a user the batch did not know gets the popularity fallback.

        At most as many as the batch made per user (10), however large `k`.
        """
        served = service.served
        if served is None:
            return unavailable()
        return _json(served.recommendations_json(user_id, k))

    @app.get("/movies/{movie_id}/similar", response_model=SimilarMovies, responses=ERRORS)
    async def similar(movie_id: int = movie_id_path, k: int = k_query) -> Response:
        """The movies closest to this one in the champion model's item vectors (cosine similarity), itself excluded.

        The vectors are the ranking model's: implicit ALS's item factors, or the rows of EASE's item-to-item weights.
        """
        served = service.served
        if served is None:
            return unavailable()
        try:
            return _json(served.similar_json(movie_id, k))
        except KeyError as missing:
            return JSONResponse({"detail": missing.args[0]}, status_code=404)
        except NotServable as problem:
            return JSONResponse({"detail": str(problem)}, status_code=503)

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        """The interactive documentation."""
        return RedirectResponse("/docs")

    @app.get("/movies", response_model=MovieSearch, responses={503: ERRORS[503], 422: ERRORS[422]})
    async def search(
        q: str = Query(min_length=1, max_length=200, description="Words of a title, in any case"), k: int = k_query
    ) -> Response:
        """Movies whose title holds every word of `q`; titles that start with its first word first, then by movie id."""
        served = service.served
        if served is None:
            return unavailable()
        if not q.split():
            return JSONResponse({"detail": "q: give at least one word of a title"}, status_code=422)
        return _json(served.search_json(q, k))

    @app.head("/health", include_in_schema=False)
    async def health_head() -> Response:
        """The status of GET /health (200 ready, 503 not), without its body: for load balancers' probes."""
        return Response(status_code=200 if service.served is not None else 503)

    @app.get("/health", response_model=Health, responses={503: {"model": Health, "description": "Not ready"}})
    async def health() -> Response:
        """Ready (200) once data is loaded: which partition and which model it serves."""
        served = service.served
        if served is None:
            return JSONResponse(Health(status="unavailable", detail=service.problem).model_dump(), status_code=503)
        body = Health(
            status="ready",
            detail=service.problem or None,  # a failed reload, while the previous data is served
            date=served.source.date,
            table_version=served.source.table_version,
            model_version=served.batch_model_version,
            champion=served.source.champion,
            users=served.users,
            rows=served.rows,
            loaded_at=served.loaded_at,
            load_seconds=served.load_seconds,
        )
        return JSONResponse(body.model_dump())

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
