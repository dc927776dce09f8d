"""The generator: sources, malformed mix, the local sink's atomic files, Event Hubs batching, the CLI and Ctrl-C."""

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from itertools import islice
from pathlib import Path

import pytest
from azure.eventhub import EventDataBatch

from generator.cli import main
from generator.sinks import EventHubSink, LocalSink, partition_key
from generator.events import Counts, encode_events
from generator.movielens import read_movielens_genres, read_movielens_ratings, replay
from generator.ratings import RATINGS as HALF_STARS, GeneratorInputError, Rating
from generator.streams import RATING_KINDS, planted, synthetic
from generator.tastes import Population, Tastes
from movierec_dagster.deployment import build_deployment
from movierec_dagster.resources import LocalLake
from movierec_dagster.demo_stream import history_tastes, land_burst

ROOT = Path(__file__).resolve().parents[2]
RATINGS = [Rating(u, m, 4.0, 1_000 + u * 10 + m) for u in (1, 2, 3) for m in (10, 20)]


def test_replay_in_time_order_or_shuffled_reproducibly():
    in_time = list(islice(replay(list(reversed(RATINGS)), random.Random(1), order="time"), 6))
    assert [r.timestamp for r in in_time] == sorted(r.timestamp for r in RATINGS)
    shuffled = [list(islice(replay(RATINGS, random.Random(seed)), 12)) for seed in (5, 5, 6)]
    assert shuffled[0] == shuffled[1] != shuffled[2]
    assert sorted(shuffled[0][:6]) == sorted(RATINGS)
    now = next(replay(RATINGS, random.Random(1), timestamps="now"))
    assert abs(now.timestamp - time.time()) < 5


@pytest.mark.parametrize("kind", RATING_KINDS)
def test_synthetic_activity_includes_unseen_users_and_movies(kind):
    population = Population.from_ratings(RATINGS, new_users=5, new_movies=5)
    ratings = list(islice(synthetic(population, random.Random(3), new_fraction=0.3, ratings=kind), 2000))
    new_users = {r.user_id for r in ratings if r.user_id > 3}
    assert new_users and new_users <= set(range(4, 9))
    new_movies = {r.movie_id for r in ratings if r.movie_id > 20}
    assert new_movies and new_movies <= set(range(21, 26))
    assert {r.movie_id for r in ratings} - new_movies <= {10, 20}
    assert {r.rating for r in ratings} <= {x / 2 for x in range(1, 11)}


def _shape(ratings: list[Rating]) -> tuple[float, float]:
    """The top 10% of the movies' share of the ratings, and the spread of the users' mean ratings."""
    per_movie = sorted(Counter(r.movie_id for r in ratings).values(), reverse=True)
    by_user = defaultdict(list)
    for r in ratings:
        by_user[r.user_id].append(r.rating)
    top_share = sum(per_movie[: len(Population.default().known_movies) // 10]) / len(ratings)
    return top_share, statistics.pstdev(statistics.mean(v) for v in by_user.values() if len(v) >= 20)


def test_planted_ratings_are_shaped_like_movielens_and_random_ones_are_noise():
    planted_ratings = list(islice(synthetic(Population.default(), random.Random(3)), 20_000))
    random_ratings = list(islice(synthetic(Population.default(), random.Random(3), ratings="random"), 20_000))
    assert {r.rating for r in planted_ratings} == set(HALF_STARS)
    assert 3.2 < statistics.mean(r.rating for r in planted_ratings) < 3.8  # MovieLens: 3.5
    top_share, user_spread = _shape(planted_ratings)
    # ml-latest-small: the top 10% of the movies get 60% of the ratings; users' means spread by 0.48.
    assert top_share > 0.5 and user_spread > 0.35
    random_top_share, random_user_spread = _shape(random_ratings)
    assert random_top_share < 0.35 and random_user_spread < 0.25, "noise: no popular movies, no user biases"


def test_planted_ratings_are_reproducible_with_a_seed():
    def draw(seed, kind="planted"):
        return [r[:3] for r in islice(synthetic(Population.default(), random.Random(seed), ratings=kind), 500)]

    assert draw(8) == draw(8) != draw(9)
    assert draw(8, "random") == draw(8, "random") != draw(8)


def test_unknown_ratings_kind_is_refused():
    with pytest.raises(GeneratorInputError, match="planted, random"):
        synthetic(Population.default(), random.Random(1), ratings="uniform")


def _genre_gap(ratings, synthetic) -> float:
    """Mean rating of the user's loved genre minus the other one's, over the fixture's known users and movies."""
    known = [r for r in ratings if r.user_id in synthetic.user_genre and r.movie_id in synthetic.movie_genre]
    loved = [r.rating for r in known if synthetic.movie_genre[r.movie_id] == synthetic.user_genre[r.user_id]]
    other = [r.rating for r in known if synthetic.movie_genre[r.movie_id] != synthetic.user_genre[r.user_id]]
    return statistics.mean(loved) - statistics.mean(other)


def test_tastes_from_a_history_agree_with_it(synthetic, synthetic_zip):
    history = read_movielens_ratings(synthetic_zip)
    tastes = Tastes.from_history(history, random.Random(1), genres=read_movielens_genres(synthetic_zip), new_users=5, new_movies=5)
    assert tastes.population == Population.from_ratings(history, new_users=5, new_movies=5)
    ratings = list(islice(planted(tastes, random.Random(2), new_fraction=0.1), 3000))
    # The fixture's comedy fans love comedies and dislike horror, and horror fans the reverse: so does the stream.
    assert _genre_gap(ratings, synthetic) > 0.8
    rated = {(r.user_id, r.movie_id) for r in history}
    assert not [r for r in ratings if (r.user_id, r.movie_id) in rated], "users do not rate again what they rated"
    assert {r.user_id for r in ratings} <= set(range(1, 46)) and {r.movie_id for r in ratings} <= set(range(1, 66))
    assert {r.user_id for r in ratings if r.user_id > 40} and {r.movie_id for r in ratings if r.movie_id > 60}
    assert [r[:3] for r in islice(planted(tastes, random.Random(2), new_fraction=0.1), 3000)] == [r[:3] for r in ratings]


def _landed(landing: Path) -> list[dict]:
    events = []
    for path in sorted(landing.iterdir()):
        for line in path.read_bytes().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and {"user_id", "movie_id", "rating"} <= set(event):
                events.append(event)
    return events


@pytest.mark.parametrize("kind, gap", [("planted", (0.8, 9)), ("random", (-0.3, 0.3))])
def test_cli_draws_planted_or_random_ratings(kind, gap, synthetic, synthetic_zip, tmp_path):
    landing = tmp_path / kind
    argv = ["--count", "3000", "--seed", "5", "--movielens", str(synthetic_zip), "--landing", str(landing), "--quiet"]
    assert main([*argv, "--ratings", kind]) == 0
    ratings = [Rating(e["user_id"], e["movie_id"], e["rating"], e["timestamp"]) for e in _landed(landing)]
    assert len(ratings) == 3000
    assert gap[0] < _genre_gap(ratings, synthetic) < gap[1]


def test_demo_burst_draws_from_the_lake_history_and_repeats_its_ratings(spark, synthetic, synthetic_zip, tmp_path, capsys):
    lake = LocalLake(root=str(tmp_path / "lake"))
    history = read_movielens_ratings(synthetic_zip)
    genres = read_movielens_genres(synthetic_zip)
    lake.write_table(spark.createDataFrame([r[:3] for r in history], "user_id int, movie_id int, rating double"), "ratings")
    lake.write_table(
        spark.createDataFrame(list(genres.items()), "movie_id int, genres array<string>"), "movies"
    )
    landing = Path(lake.fs_path("landing", "rating_events"))
    land_burst(landing, lake=lake, count=2000, malformed=0.0)
    assert "ratings from the history's tastes" in capsys.readouterr().out
    first = _landed(landing)
    assert _genre_gap([Rating(e["user_id"], e["movie_id"], e["rating"], 0) for e in first], synthetic) > 0.8
    for path in landing.iterdir():
        path.unlink()
    land_burst(landing, lake=lake, count=2000, malformed=0.0)
    again = _landed(landing)
    # Every demo lands the same ratings under new event ids: repeated demos re-rate, they do not pile up.
    assert [(e["user_id"], e["movie_id"], e["rating"]) for e in again] == [(e["user_id"], e["movie_id"], e["rating"]) for e in first]
    assert not {e["event_id"] for e in again} & {e["event_id"] for e in first}


def test_a_large_history_is_sampled_by_user(spark, tmp_path):
    lake = LocalLake(root=str(tmp_path / "lake"))
    rows = [(u, m, float(1 + (u + m) % 5)) for u in range(1, 41) for m in range(1, 11)]
    lake.write_table(spark.createDataFrame(rows, "user_id int, movie_id int, rating double"), "ratings")
    sampled = history_tastes(lake, random.Random(1), max_ratings=100)
    # Every 4th user keeps all of their ratings: 10 users, each still with their 10 movies.
    assert sorted(sampled.user_activity) == list(range(1, 41, 4))
    assert all(len(sampled.rated[user]) == 10 for user in sampled.user_activity)
    assert sorted(history_tastes(lake, random.Random(1)).user_activity) == list(range(1, 41))


def test_demo_burst_without_a_history_or_with_random_ratings(tmp_path, capsys):
    land_burst(tmp_path / "planted", count=300, malformed=0.0, seed=1)
    assert "planted tastes: no history yet" in capsys.readouterr().out
    land_burst(tmp_path / "random", count=300, malformed=0.0, seed=1, ratings="random")
    assert "random ratings" in capsys.readouterr().out
    assert len(_landed(tmp_path / "random")) == 300


def test_events_are_reproducible_and_malformed_share_as_asked():
    def run(seed):
        counts = Counts()
        return list(encode_events(iter(RATINGS * 500), random.Random(seed), malformed_fraction=0.2, counts=counts)), counts

    (lines, counts), (again, _) = run(9), run(9)
    assert lines == again
    assert counts.total == 3000 and 450 < counts.malformed < 750
    valid = [json.loads(line) for line in lines if line.startswith(b'{"event_id":"') and line.endswith(b"}\n") and b"\xff" not in line]
    assert all(set(event) == {"event_id", "user_id", "movie_id", "rating", "timestamp"} for event in valid)


def test_movielens_archive_is_read(synthetic_zip):
    ratings = read_movielens_ratings(synthetic_zip)
    assert len(ratings) == 800 and all(0.5 <= r.rating <= 5 for r in ratings)


def test_local_sink_publishes_whole_files_rolled_by_count(tmp_path):
    sink = LocalSink(tmp_path, roll_events=4, roll_seconds=3600)
    for i in range(10):
        sink.write(f"{i}\n".encode())
    assert len(sink.files) == 2 and not list(tmp_path.glob(".*")), "the file being filled is not published"
    sink.close()
    assert [len(f.read_text().splitlines()) for f in sorted(sink.files)] == [4, 4, 2]
    assert sorted(tmp_path.iterdir()) == sorted(sink.files)


def test_local_sink_rolls_by_time(tmp_path):
    sink = LocalSink(tmp_path, roll_events=1000, roll_seconds=0.05)
    sink.write(b"a\n")
    time.sleep(0.1)
    sink.write(b"b\n")
    assert len(sink.files) == 1 and sink.files[0].read_bytes() == b"a\nb\n"


class BatchingProducer:
    """The producer interface EventHubSink uses, making real EventDataBatch objects with a small size limit."""

    def __init__(self, max_size_in_bytes: int):
        self.max_size_in_bytes, self.sent, self.closed = max_size_in_bytes, [], False

    def create_batch(self, partition_key=None):
        return EventDataBatch(max_size_in_bytes=self.max_size_in_bytes, partition_key=partition_key)

    def send_batch(self, batch):
        assert batch.size_in_bytes <= self.max_size_in_bytes
        self.sent.append(batch)

    def close(self):
        self.closed = True


def test_event_hub_sink_fills_batches_by_user_without_losing_any(tmp_path):
    producer = BatchingProducer(max_size_in_bytes=1024)
    sink = EventHubSink(producer, flush_events=1000, flush_seconds=3600)
    lines = list(encode_events(iter(RATINGS * 30), random.Random(2)))
    for line in lines:
        sink.write(line)
    sink.close()
    assert producer.closed and sink.sent_events == len(lines) == 180
    assert sum(len(batch) for batch in producer.sent) == 180
    assert len(producer.sent) > 3, "a full batch is sent and a new one started"
    for batch in producer.sent:
        keys = {partition_key(event.body_as_str().encode()) for event in batch._internal_events}
        assert keys == {batch._partition_key.decode() if isinstance(batch._partition_key, bytes) else batch._partition_key}


def test_event_hub_sink_rejects_an_event_larger_than_a_batch():
    sink = EventHubSink(BatchingProducer(max_size_in_bytes=300), flush_events=1)
    with pytest.raises(ValueError, match="larger than an Event Hubs batch"):
        sink.write(b'{"user_id": 1, "pad": "' + b"x" * 400 + b'"}\n')


def test_cli_writes_count_events_into_the_landing_folder(tmp_path, capsys):
    landing = tmp_path / "landing"
    assert main(["--count", "2500", "--landing", str(landing), "--roll-events", "1000", "--seed", "4", "--malformed", "0.1"]) == 0
    files = sorted(landing.iterdir())
    assert len(files) == 3 and sum(len(f.read_bytes().splitlines()) for f in files) == 2500
    assert "2,500 events" in capsys.readouterr().err


def test_cli_explains_bad_input(tmp_path, capsys):
    assert main(["--source", "movielens", "--movielens", str(tmp_path / "none.zip"), "--landing", str(tmp_path)]) == 2
    assert "MovieLens" in capsys.readouterr().err


def test_ctrl_c_flushes_and_leaves_no_partial_file(tmp_path):
    landing = tmp_path / "landing"
    process = subprocess.Popen(
        [sys.executable, "-m", "generator.cli", "--landing", str(landing), "--rate", "2000", "--roll-events", "100000",
         "--roll-seconds", "3600"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30
    while "events" not in (process.stderr.readline() or "") and time.monotonic() < deadline:
        pass
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and "stopped" in err
    files = list(landing.iterdir())
    assert len(files) == 1 and not files[0].name.startswith(".")
    lines = files[0].read_bytes().splitlines()
    assert lines and all(json.loads(line)["event_id"] for line in lines)


@pytest.mark.parametrize("home", ["{tmp}/home", "", "  "], ids=["set", "blank", "spaces"])
def test_events_land_where_the_local_deployment_ingests_from(tmp_path, home, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a blank home means ./.movierec
    monkeypatch.setenv("MOVIEREC_HOME", home.format(tmp=tmp_path))
    assert main(["--count", "3", "--seed", "1"]) == 0
    folder = Path(build_deployment().resources["event_source"].folder)
    assert [path.suffix for path in folder.iterdir() if not path.name.startswith(".")] == [".jsonl"]
