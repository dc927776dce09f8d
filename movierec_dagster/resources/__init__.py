"""Resources: the only code besides deployment.py that knows where the pipeline runs."""

from movierec_dagster.resources.event_source import EventHubsSource, EventSource, LandingFolderSource
from movierec_dagster.resources.lake import LocalLake
from movierec_dagster.resources.movielens_source import MovieLensSource
from movierec_dagster.resources.spark import LocalSpark

__all__ = ["EventHubsSource", "EventSource", "LandingFolderSource", "LocalLake", "LocalSpark", "MovieLensSource"]
