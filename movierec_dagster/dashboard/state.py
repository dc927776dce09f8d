"""Streamlit glue shared by the pages: the cached lake and queries, and how a problem is shown.

Query results are cached for `CACHE_SECONDS`, so a new batch of recommendations or a new model
shows up within a minute; the sidebar's "Reload data" button drops the cache at once.
"""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pandas as pd
import pyarrow as pa
import streamlit as st

from movierec_dagster.dashboard.data import (
    FIX_COMMAND,
    Lake,
    LakeError,
    LakeNotFound,
    ModelHistory,
    Recommendations,
)
from movierec_dagster.tables import adls_credentials, lake_location

CACHE_SECONDS = 60


@st.cache_resource(show_spinner=False)
def _lake(location: str) -> Lake:
    """The lake's reader, made once per location (its ADLS credentials read from the environment then)."""
    return Lake(location, adls_credentials(os.environ))


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def newest_recommendation_date(location: str) -> str:
    return _lake(location).newest_recommendation_date()


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def recommended_users(location: str, date: str) -> list[int]:
    return _lake(location).recommended_users(date)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def recommendations(location: str, date: str, user_id: int) -> Recommendations:
    return _lake(location).recommendations(date, user_id)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def top_rated(location: str, user_id: int) -> tuple[list[str], pd.DataFrame]:
    return _lake(location).top_rated(user_id)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def rated_after(location: str, user_id: int, moment: pd.Timestamp) -> tuple[int, pd.Timestamp | None]:
    return _lake(location).rated_after(user_id, moment)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def model_history(location: str) -> ModelHistory:
    return _lake(location).model_history()


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def check_lake(location: str) -> None:
    _lake(location).check_exists()


def clear_caches() -> None:
    """Forget every cached query (the lake handle, a cache_resource, is kept)."""
    st.cache_data.clear()


def show_fix(message: str, *, error: bool = False) -> None:
    """A problem the user can fix: what is wrong, and the command that fixes it."""
    (st.error if error else st.info)(message, icon=":material/error:" if error else ":material/info:")
    st.markdown("Run this in the movierec checkout, then reload this page:")
    st.code(FIX_COMMAND, language="bash")


@contextmanager
def shown_problems() -> Iterator[None]:
    """Turn a missing lake or table, or an unreadable file, into a message with its fix, never a stack trace."""
    try:
        yield
    except LakeNotFound as problem:
        show_fix(f"{problem} Build it with the demo pipeline (or point MOVIEREC_LAKE at an existing lake).")
    except LakeError as problem:
        show_fix(f"{problem} The demo pipeline makes it.")
    except (duckdb.Error, pa.ArrowException, OSError, json.JSONDecodeError) as problem:
        show_fix(
            f"The lake at {lake_location()} could not be read ({type(problem).__name__}: {problem}). "
            "If a pipeline run is rewriting it, reload in a moment; otherwise rebuild it.",
            error=True,
        )
