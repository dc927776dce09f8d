"""The names every part of movierec shares, defined once: the lake's areas and tables, the model registry's files,
the rating scale and where a list came from.

Plain constants with no imports, so the pipeline, the dashboard and the HTTP API read the same names, and the
readers still start without Dagster or Spark.
"""

# The lake's areas: folders under its root.
TABLES = "tables"
QUARANTINE = "quarantine"
RAW = "raw"
MODELS = "models"
CHECKPOINTS = "checkpoints"
LANDING = "landing"
LANDING_ARCHIVE = "landing_archive"
CURRENT_FOLDER = "_current.json"  # in raw/<key>/: names the folder of the current download

# Tables, under tables/: each is also its asset's key.
MOVIES, RATINGS, TAGS, LINKS = "movies", "ratings", "tags", "links"
EVENTS, REJECTED_EVENTS = "rating_events", "rejected_rating_events"
EVENT_IDS = "rating_event_ids"  # the hash of each rating_events id, in the same parts
TRAINING_RATINGS = "training_ratings"
RECOMMENDATIONS = "user_recommendations"

# The model registry: models/als/<version>/ holds a version, champion.json names the one in use.
MODEL_NAME = "als"
MODEL_REGISTRY = f"{MODELS}/{MODEL_NAME}"  # the registry's folder, as the readers join it to the lake's root
MODEL_INFO = "model.json"
CHAMPION = "champion.json"
# An EASE ranking model's files, in <version>/ease/.
EASE_FOLDER, EASE_PARAMS, EASE_ITEM_IDS, EASE_WEIGHTS = "ease", "params.json", "item_ids.npy", "weights.npy"

# Where a list came from (user_recommendations' `source`).
MODEL_SOURCE, POPULARITY_SOURCE = "model", "popularity"
FOLD_IN_SOURCE = "fold_in"  # the API's list scored at request time from ratings newer than the batch
# model.json's `rating_model` when the star ratings are the biases alone (no residual ALS).
BIASES_ONLY = "biases"
# Users with fewer ratings than this get the popularity list, in the daily batch and in the API's fold-in.
DEFAULT_MIN_RATINGS = 5

# The rating scale: half stars from 0.5 to 5.
MIN_RATING, MAX_RATING, RATING_STEP = 0.5, 5.0, 0.5

# MovieLens' genres of a movie without any.
NO_GENRES = "(no genres listed)"
