"""The HTTP API: recommendations, similar movies, health and Prometheus metrics, from the lake without Spark.

`Service` holds the one `Served` in use and replaces it whole when the lake's source changes (a
new `date=` part, a batch made again, a new champion, a new movies table): a request reads the
reference once, so it answers from the old data or the new, never a mix, and no request waits for
a load. `create_app` wires a service to FastAPI; with `poll_seconds` a background thread loads the
data at start and looks for a new source that often.
"""

import hmac
import logging
import threading
import time
from datetime import UTC, datetime
from collections.abc import Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field

from movierec_dagster.serve.data import MAX_K, LakeReader, NotServable, Served, micros
from movierec_dagster.serve.writes import (
    MAX_BODY_BYTES,
    MAX_RATINGS_PER_REQUEST,
    TOO_LARGE,
    EventWriter,
    PostedRating,
    RatingsRejected,
    parse_ratings,
)
from movierec_dagster.tables import LakeFiles

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
    source: Literal["model", "fold_in", "popularity"] = Field(
        description=(
            "model: the daily batch; fold_in: scored now over the champion from the user's ratings, some newer than "
            "the batch; popularity: the most-rated movies the user has not rated (too few ratings, or none)"
        )
    )
    known_user: bool  # false: the batch did not know the user
    date: str
    model_version: str | None
    generated_at: str
    newest_rating_at: str | None = Field(description="When the user's newest rating was given; null without ratings")
    recommendations: list[Recommendation]
    note: str | None = Field(default=None, description="Present when fewer than k exist: how many were asked, how many there are")


class RatingIn(BaseModel):
    movie_id: int = Field(ge=1, le=MAX_ID)
    rating: float = Field(ge=0.5, le=5.0, multiple_of=0.5)
    rated_at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="ISO 8601 time (UTC without an offset); default: now"
    )
    event_id: str | None = Field(
        default=None, max_length=128, description="The client's id for this event (default: a new UUID); an id seen before is refused"
    )


# The body the write path takes, documented here and checked by `writes.parse_ratings` (with the ingest's messages).
RATINGS_BODY = {
    "type": "object",
    "required": ["ratings"],
    "properties": {
        "ratings": {"type": "array", "minItems": 1, "maxItems": MAX_RATINGS_PER_REQUEST, "items": RatingIn.model_json_schema()}
    },
}


class RatingsAccepted(BaseModel):
    user_id: int
    accepted: int
    event_ids: list[str]
    written_to: str = Field(description="The event source the events were written to; the ingest takes them into rating_events")


class SimilarMovie(Movie):
    similarity: float = Field(description="Implicit ALS: the cosine of the item factors; EASE: this movie's weight")


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
    champion: str | None = None  # the model /similar and fold-in use
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
        self.posted = Counter("movierec_serve_posted_ratings", "Ratings posted and written to the event source", registry=self.registry)


class Service:
    """The data in use for one lake, replaced whole by `refresh`."""

    def __init__(
        self,
        location: str,
        metrics: Metrics | None = None,
        writer: EventWriter | None = None,
        no_writer: str = "",
        credentials: Mapping[str, str] | None = None,
    ):
        """The lake at `location`, reached with ADLS `credentials` (adlfs's option names) when it is on ADLS."""
        self.location = location
        self.metrics = metrics or Metrics()
        self._reader = LakeReader(LakeFiles(location, credentials))
        self._refresh_lock = threading.Lock()  # one refresh at a time
        self._state_lock = threading.Lock()  # `served` and the posted ratings: held briefly, never while the lake is read
        self.served: Served | None = None
        self.problem = "The data is being loaded."
        self.writer, self.no_writer = writer, no_writer or "No event source is configured for this service."
        self._posted: list[tuple[int, PostedRating]] = []  # (when posted, µs; the rating) until a batch holds it
        self._posted_ids: set[str] = set()

    def refresh(self) -> bool:
        """Load the lake's data if its source changed, or only the new rating events; True when new data is in use.

        On failure the data in use stays (and `problem` says why), so the service answers on.
        """
        with self._refresh_lock:
            try:
                source, _ = self._reader.current_source()
                served = self.served  # only a refresh changes its source and events files, and one runs at a time
                if served is not None and served.source == source:
                    events = self._reader.events_version()
                    if events is None or frozenset(f.path for f in events.files) == served.events_files:
                        return False
                    rows, files = self._reader.new_events(served, events)  # read without the lock a POST takes
                    with self._state_lock:  # onto the data in use, which holds the ratings posted meanwhile
                        self.served = self.served.with_fresh(rows, files)
                    return True
                loaded = self._reader.load()  # seconds: a POST meanwhile is served from the data in use
            except NotServable as problem:
                self._failed(str(problem))
                return False
            except Exception as error:  # an unreadable lake must not end the polling thread
                log.exception("Loading the lake at %s failed", self.location)
                self._failed(f"Loading the lake failed: {type(error).__name__}: {error}")
                return False
            with self._state_lock:  # the ratings posted during the load are in `_posted`: none is lost
                served = self.served = self._with_posted(loaded)
                self.problem = ""
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

    def _with_posted(self, served: Served) -> Served:
        """`served` plus the ratings posted here since its batch was made (older ones are in it, or in rating_events)."""
        since = micros(datetime.fromisoformat(served.generated_at.replace("Z", "+00:00")))
        self._posted = [(at, rating) for at, rating in self._posted if at >= since]
        self._posted_ids = {rating.event_id for _, rating in self._posted}  # older ids: the ingest refuses them again
        return served.with_fresh((r.user_id, r.movie_id, r.rating, r.rated_at_micros) for _, r in self._posted)

    def post_ratings(self, user_id: int, body: bytes) -> list[PostedRating]:
        """Check the ratings, write them to the event source, and serve them at once; `RatingsRejected` writes nothing."""
        with self._state_lock:
            served = self.served
            if served is None:
                raise RatingsRejected(503, self.problem)
            if self.writer is None:
                raise RatingsRejected(503, self.no_writer)
            now = datetime.now(UTC)
            posted = parse_ratings(body, user_id, served.movies, self._posted_ids, now)
            try:
                self.writer.write([rating.line() for rating in posted])
            except Exception as error:
                log.exception("Writing %d rating events to %s failed", len(posted), self.writer.describe())
                raise RatingsRejected(503, f"Writing to {self.writer.describe()} failed ({type(error).__name__}): try again.") from None
            at = micros(now)
            self._posted.extend((at, rating) for rating in posted)
            self._posted_ids.update(rating.event_id for rating in posted)
            self.served = served.with_fresh((r.user_id, r.movie_id, r.rating, r.rated_at_micros) for r in posted)
            self.metrics.posted.inc(len(posted))
            return posted

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


def create_app(
    service: Service, poll_seconds: float | None = None, cors_origins: tuple[str, ...] = (), api_keys: tuple[str, ...] = ()
) -> FastAPI:
    """The API on `service`; with `poll_seconds`, a thread loads the data now and looks for a new source that often.
    Browsers on `cors_origins` may call it from their pages (none by default). Posting ratings needs one of
    `api_keys` as a bearer token; without keys the write path is off."""

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
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "HEAD", "POST"], allow_headers=["*"])

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
        """The user's recommendations: from the latest batch (source "model"); for a user with ratings newer than the
        batch, scored now over the champion from all their ratings (source "fold_in"); for a user with too few
        ratings or none, the most-rated movies they have not rated (source "popularity"). Movies the user rated are
        never recommended.

        From the batch, at most as many as it made per user (10), however large `k`.
        """
        served = service.served
        if served is None:
            return unavailable()
        return _json(served.recommendations_json(user_id, k))

    keys = [key.encode() for key in api_keys]

    def authorised(request: Request) -> Response | None:
        """None when the request carries one of the keys; else the 401/403 that says what is missing."""
        if not keys:
            return JSONResponse(
                {"detail": "Writing is off on this service: set MOVIEREC_SERVE_API_KEYS (comma-separated keys) to turn it on."},
                status_code=403,
            )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return JSONResponse(
                {"detail": "Posting ratings needs an API key: send the header 'Authorization: Bearer <key>'."},
                status_code=401, headers={"WWW-Authenticate": "Bearer"},
            )
        given = token.strip().encode()
        matches = [hmac.compare_digest(given, key) for key in keys]  # every key compared: the time does not tell which
        if not any(matches):
            return JSONResponse({"detail": "The API key is not one of this service's keys."}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return None

    async def bounded_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise RatingsRejected(413, TOO_LARGE)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise RatingsRejected(413, TOO_LARGE)
        return body

    @app.post(
        "/users/{user_id}/ratings",
        status_code=202,
        response_model=RatingsAccepted,
        openapi_extra={"requestBody": {"required": True, "content": {JSON: {"schema": RATINGS_BODY}}}},
        responses={
            400: {"model": Error, "description": "The body is not JSON"},
            401: {"model": Error, "description": "No API key, or not one of the service's"},
            403: {"model": Error, "description": "Writing is off: no API keys are configured"},
            409: {"model": Error, "description": "An event id was seen before; nothing was written"},
            413: {"model": Error, "description": "The body is too large"},
            422: {"model": Error, "description": "A rating breaks the ingest's rules, or its movie is unknown; nothing was written"},
            503: ERRORS[503],
        },
    )
    async def post_ratings(request: Request, user_id: int = user_id_path) -> Response:
        """Record the user's ratings (at most 100): checked by the ingest's rules, written to the event source, and
        reflected in the user's next recommendations at once (source "fold_in"). 202 once they are durably written;
        the ingest then takes them into rating_events, exactly once. Needs `Authorization: Bearer <key>`."""
        refused = authorised(request)
        if refused is not None:
            return refused
        try:
            body = await bounded_body(request)
            posted = await run_in_threadpool(service.post_ratings, user_id, body)
        except RatingsRejected as rejected:
            content: dict[str, Any] = {"detail": rejected.detail}
            if rejected.errors:
                content["errors"] = rejected.errors
            return JSONResponse(content, status_code=rejected.status)
        accepted = RatingsAccepted(
            user_id=user_id, accepted=len(posted), event_ids=[r.event_id for r in posted], written_to=service.writer.describe()
        )
        return JSONResponse(accepted.model_dump(), status_code=202)

    @app.get("/movies/{movie_id}/similar", response_model=SimilarMovies, responses=ERRORS)
    async def similar(movie_id: int = movie_id_path, k: int = k_query) -> Response:
        """The movies most like this one by the champion's ranking model, itself excluded.

        Implicit ALS: the cosine of the item factors. EASE: the weight of each movie in this one's row, the list EASE
        gives a user whose one rating is five stars for this movie.
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
        # At least one character that is not white space to Python's str.split either: it also splits on \x1c-\x1f and
        # \x85, which the Unicode \s the validation uses keeps.
        q: str = Query(
            min_length=1, max_length=200, pattern=r"[^\s\x1c-\x1f\x85]", description="Words of a title, in any case"
        ),
        k: int = k_query,
    ) -> Response:
        """Movies whose title holds every word of `q`; titles that start with its first word first, then by movie id."""
        served = service.served
        if served is None:
            return unavailable()
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
