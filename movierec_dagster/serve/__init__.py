"""`movierec serve`: the recommendations over HTTP, read from the lake without Spark (FastAPI on uvicorn)."""
