"""Where the MovieLens archive comes from."""

from dagster import ConfigurableResource

DEFAULT_SOURCE = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"


class MovieLensSource(ConfigurableResource):
    """A URL, a local .zip, or a folder holding the MovieLens CSVs (`MOVIELENS_SOURCE`)."""

    location: str = DEFAULT_SOURCE
