"""Where the MovieLens archive comes from."""

from dagster import ConfigurableResource

from movierec_dagster.movielens.archive import DEFAULT_SOURCE


class MovieLensSource(ConfigurableResource):
    """A URL, a local .zip, or a folder holding the MovieLens CSVs (`MOVIELENS_SOURCE`)."""

    location: str = DEFAULT_SOURCE
