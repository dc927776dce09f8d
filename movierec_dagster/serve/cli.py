"""`movierec serve`: the HTTP API on uvicorn, on the lake that `MOVIEREC_LAKE` (else `$MOVIEREC_HOME/lake`) names.

Configuration from the environment: `MOVIEREC_SERVE_HOST` (default 127.0.0.1), `MOVIEREC_SERVE_PORT`
(8000), `MOVIEREC_SERVE_WORKERS` (1; each worker process holds its own copy of the data),
`MOVIEREC_SERVE_POLL_SECONDS` (10: how often to look for a new batch or champion),
`MOVIEREC_SERVE_CORS_ORIGINS` (none: comma-separated origins whose pages may call the API),
`MOVIEREC_SERVE_API_KEYS` (none: comma-separated keys that may post ratings; without keys writing is off);
the flags override the first three. Posted ratings go to `MOVIEREC_LANDING_FOLDER`, else Event Hubs
(`EVENTHUB_*`), else the local lake's landing folder.
"""

import argparse
import logging
import os
import sys

import uvicorn
from threadpoolctl import threadpool_limits
from fastapi import FastAPI

from movierec_dagster.serve.app import Service, create_app
from movierec_dagster.serve.writes import event_writer
from movierec_dagster.tables import adls_credentials, lake_location


def app_from_environment() -> FastAPI:
    """The app on the environment's lake (uvicorn's factory: every worker process builds its own)."""
    # One BLAS thread per worker: a request's products are small, and each worker already takes a core; BLAS threads
    # of several workers spinning on the same cores made every fold-in several times slower.
    threadpool_limits(limits=1, user_api="blas")
    poll_seconds = float(os.environ.get("MOVIEREC_SERVE_POLL_SECONDS", "10"))
    location = lake_location()
    writer, no_writer = event_writer(os.environ, location)
    service = Service(location, writer=writer, no_writer=no_writer, credentials=adls_credentials(os.environ))
    return create_app(service, poll_seconds=poll_seconds, cors_origins=cors_origins(os.environ), api_keys=api_keys(os.environ))


def api_keys(environ: dict[str, str]) -> tuple[str, ...]:
    """`MOVIEREC_SERVE_API_KEYS`, comma-separated: the bearer tokens that may post ratings (none: writing is off)."""
    return tuple(key.strip() for key in environ.get("MOVIEREC_SERVE_API_KEYS", "").split(",") if key.strip())


def cors_origins(environ: dict[str, str]) -> tuple[str, ...]:
    """`MOVIEREC_SERVE_CORS_ORIGINS`, comma-separated (e.g. https://app.example.com); none when unset."""
    return tuple(origin.strip() for origin in environ.get("MOVIEREC_SERVE_CORS_ORIGINS", "").split(",") if origin.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="movierec", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the recommendations over HTTP")
    serve.add_argument("--host", default=os.environ.get("MOVIEREC_SERVE_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("MOVIEREC_SERVE_PORT", "8000")))
    serve.add_argument("--workers", type=int, default=int(os.environ.get("MOVIEREC_SERVE_WORKERS", "1")))
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"Serving the lake at {lake_location()} on http://{arguments.host}:{arguments.port}", file=sys.stderr)
    uvicorn.run(
        "movierec_dagster.serve.cli:app_from_environment",
        factory=True,
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
