"""Resources: the only code besides deployment.py that knows where the pipeline runs.

Assets, checks and sensors ask for the contracts (`Lake`, `SparkResource`, `EventSource`);
the implementations stand behind them.
"""

from movierec_dagster.resources.event_source import EventHubsSource, EventSource, LandingFolderSource
from movierec_dagster.resources.lake import Lake, LocalLake
from movierec_dagster.resources.movielens_source import MovieLensSource
from movierec_dagster.resources.spark import LocalSpark, SparkResource

__all__ = [
    "EventHubsSource",
    "EventSource",
    "LandingFolderSource",
    "Lake",
    "LocalLake",
    "LocalSpark",
    "MovieLensSource",
    "SparkResource",
]
