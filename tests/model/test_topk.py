"""The exact top-k kernel on factor matrices: unseen items only, ties to the smaller id, equal to brute force."""

from collections import Counter

import numpy as np
import pytest

from movierec_dagster.model.topk import (
    PROBE_SLABS,
    USERS_PER_BLOCK,
    ItemSlabs,
    slabs_to_score,
    most_popular_unseen,
    top_k_block,
    top_k_unseen,
)


def brute_force_top_k(
    user_factors: dict[int, list[float]], item_factors: dict[int, list[float]], seen: dict[int, set[int]], k: int
) -> dict[int, list[int]]:
    """The reference: score every item for every user, drop seen ones, sort by (score desc, id asc)."""
    result = {}
    for user, u in user_factors.items():
        scored = [
            (-float(np.dot(np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64))), item)
            for item, v in item_factors.items()
            if item not in seen.get(user, set())
        ]
        result[user] = [item for _, item in sorted(scored)[:k]]
    return result


def _top_k_of_scores(scores, item_ids, seen_rows, seen_ids, k, slabs=4):
    """`top_k_block` on given scores: users are the score rows, items the unit vectors."""
    items = ItemSlabs.of(np.asarray(item_ids), np.eye(len(item_ids), dtype=np.float32), slabs)
    return top_k_block(scores, items, seen_rows, seen_ids, k)


def test_block_excludes_seen_and_orders_by_score():
    scores = np.array([[0.1, 0.9, 0.5, 0.7]], dtype=np.float32)
    item_ids = np.array([10, 20, 30, 40])
    rows, ids, top, ranks = _top_k_of_scores(scores, item_ids, np.array([0]), np.array([20]), k=2)
    assert ids.tolist() == [40, 30]
    assert rows.tolist() == [0, 0]
    assert top.tolist() == pytest.approx([0.7, 0.5])
    assert ranks.tolist() == [1, 2]


def test_block_ties_go_to_the_smaller_id():
    scores = np.array([[1.0, 2.0, 2.0, 2.0, 2.0]], dtype=np.float32)
    item_ids = np.array([1, 2, 3, 4, 5])
    _, ids, _, _ = _top_k_of_scores(scores, item_ids, np.empty(0, int), np.empty(0, int), k=2)
    assert ids.tolist() == [2, 3]


def test_block_user_with_fewer_unseen_than_k_gets_only_those():
    scores = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    item_ids = np.array([1, 2, 3])
    rows, ids, _, ranks = _top_k_of_scores(scores, item_ids, np.array([0, 0, 0, 1]), np.array([1, 2, 3, 3]), k=10)
    assert rows.tolist() == [1, 1]
    assert ids.tolist() == [2, 1]
    assert ranks.tolist() == [1, 2]


def test_block_ignores_seen_ids_unknown_to_the_model():
    scores = np.array([[1.0, 2.0]], dtype=np.float32)
    _, ids, _, _ = _top_k_of_scores(scores, np.array([5, 7]), np.array([0, 0]), np.array([6, 99]), k=2)
    assert ids.tolist() == [7, 5]


@pytest.mark.parametrize("k", [10, 40])
@pytest.mark.parametrize("slabs", [1, 3, 7, 64, 1000])
def test_block_matches_brute_force_whatever_the_slabs(slabs, k):
    # Small integers: many ties, also across groups; 1000 slabs leave fewer groups than k: the exact k-th best.
    # k = 40 finds the k-th best by a partition, k = 10 by striking out the best.
    rng = np.random.default_rng(slabs)
    users = {u: rng.integers(-2, 3, size=3).tolist() for u in range(12)}
    items = {i: rng.integers(-2, 3, size=3).tolist() for i in range(100, 200)}
    seen = {u: set(rng.choice(list(items), size=int(rng.integers(0, 99)), replace=False).tolist()) for u in users}
    seen[3] |= {7, 1000}  # ids that are not items
    item_ids = np.array(sorted(items))
    user_matrix = np.array([users[u] for u in users], dtype=np.float32)
    item_slabs = ItemSlabs.of(item_ids, np.array([items[i] for i in item_ids], dtype=np.float32), slabs)
    seen_rows = np.array([row for row, u in enumerate(users) for _ in seen[u]], dtype=np.int64)
    seen_ids = np.array([i for u in users for i in seen[u]], dtype=np.int64)
    rows, ids, _, ranks = top_k_block(user_matrix, item_slabs, seen_rows, seen_ids, k=k)
    got = {u: [] for u in users}
    for row, item in zip(rows, ids):
        got[row].append(int(item))
    assert got == brute_force_top_k(users, items, seen, k=k)
    assert all(rank == position + 1 for u in users for position, rank in enumerate(ranks[rows == u]))


def test_a_slab_is_skipped_only_when_its_longest_factor_cannot_reach_the_bound():
    slab_norms = np.array([4.0, 2.0, 1.0, 0.5])
    user_norms = np.array([1.0, 1.0, 2.0, 0.0, 1.0])
    lower = np.array([1.5, 2.0, 2.0, 0.0, -1.0])
    # 2.0 reaches 2.0 (a tie may still enter the top k); a zero vector or a negative bound prunes nothing.
    assert slabs_to_score(user_norms, slab_norms, lower).tolist() == [2, 2, 3, 4, 4]


def test_block_keeps_an_item_of_a_late_slab_that_ties_the_bound():
    # One item a slab, longest first. After the probe slabs the best score is 3 (item 50); item 10, in a
    # later slab, can reach exactly 3 and wins the tie by its smaller id; the slabs after it cannot reach 3.
    items = {50: [3, 9], 51: [0, -8], 52: [0, 7], 10: [3, 0], 11: [2, 2], 12: [1, 1]}
    item_ids = np.array(list(items))
    item_slabs = ItemSlabs.of(item_ids, np.array(list(items.values()), dtype=np.float32), slabs=len(items))
    assert item_slabs.ids.tolist() == [50, 51, 52, 10, 11, 12]
    assert PROBE_SLABS <= 2
    _, ids, scores, _ = top_k_block(np.array([[1, 0]], dtype=np.float32), item_slabs, np.empty(0, int), np.empty(0, int), k=1)
    assert ids.tolist() == [10]
    assert scores.tolist() == [3.0]


def test_block_with_a_long_tail_of_short_factors_matches_brute_force():
    """Item factors of very different lengths, as a trained model's long tail has: users stop early, results stay exact."""
    rng = np.random.default_rng(11)
    lengths = rng.choice([0, 1, 1, 1, 1, 2, 8], size=300)
    users = {u: rng.integers(-3, 4, size=4).tolist() for u in range(40)}
    items = {i: (rng.integers(-2, 3, size=4) * lengths[i - 1000]).tolist() for i in range(1000, 1300)}
    seen = {u: set(rng.choice(list(items), size=int(rng.integers(0, 60)), replace=False).tolist()) for u in users}
    item_ids = np.array(list(items))
    item_slabs = ItemSlabs.of(item_ids, np.array([items[i] for i in item_ids], dtype=np.float32), slabs=15)
    user_matrix = np.array([users[u] for u in users], dtype=np.float32)
    expected = brute_force_top_k(users, items, seen, k=10)
    kth = np.array([float(np.dot(users[u], items[expected[u][-1]])) for u in users])
    needed = slabs_to_score(np.linalg.norm(user_matrix, axis=1), item_slabs.slab_norms, kth)
    assert needed.min() < len(item_slabs.slabs), "the data should let some user stop before the last slab"
    seen_rows = np.array([row for row, u in enumerate(users) for _ in seen[u]], dtype=np.int64)
    seen_ids = np.array([i for u in users for i in seen[u]], dtype=np.int64)
    rows, ids, _, _ = top_k_block(user_matrix, item_slabs, seen_rows, seen_ids, k=10)
    got = {u: [int(i) for i in ids[rows == u]] for u in users}
    assert got == expected


def _frames(spark, users, items, seen):
    user_df = spark.createDataFrame([(u, [float(x) for x in f]) for u, f in users.items()], "id int, features array<float>")
    item_df = spark.createDataFrame([(i, [float(x) for x in f]) for i, f in items.items()], "id int, features array<float>")
    seen_df = spark.createDataFrame([(u, m) for u, ms in seen.items() for m in ms], "user_id int, movie_id int")
    return user_df, item_df, seen_df


def _movies_by_user(rows) -> dict[int, list[int]]:
    """Each user's recommended movie ids, in rank order, from the scorers' rows."""
    got: dict[int, list[int]] = {}
    for row in sorted(rows, key=lambda r: (r.user_id, r.rank)):
        got.setdefault(row.user_id, []).append(row.movie_id)
    return got


def test_spark_scorer_matches_brute_force(spark):
    rng = np.random.default_rng(3)
    # Small integer factors: exact in float32, and many ties to exercise the tie rule.
    users = {u: rng.integers(-2, 3, size=4).tolist() for u in range(1, 41)}
    items = {i: rng.integers(-2, 3, size=4).tolist() for i in range(100, 160)}
    seen = {u: set(rng.choice(list(items), size=int(rng.integers(0, 58)), replace=False).tolist()) for u in users}
    seen[7] = set(items)  # has seen everything
    result = top_k_unseen(*_frames(spark, users, items, seen), k=5).collect()
    got = _movies_by_user(result)
    expected = {u: top for u, top in brute_force_top_k(users, items, seen, k=5).items() if top}
    assert got == expected
    assert 7 not in got
    assert {row.rank for row in result} == {1, 2, 3, 4, 5}


def test_spark_scorer_matches_brute_force_over_many_blocks(spark):
    """More users than a block holds, users in no order, and seen pairs of users who have no factors."""
    rng = np.random.default_rng(5)
    users = {int(u): rng.integers(-3, 4, size=3).tolist() for u in rng.permutation(np.arange(1, 3 * USERS_PER_BLOCK))}
    items = {i: rng.integers(-3, 4, size=3).tolist() for i in range(1, 41)}
    seen = {u: set(rng.choice(list(items), size=int(rng.integers(0, 30)), replace=False).tolist()) for u in users}
    without_factors = {10_000 + u: set(items) for u in range(5)}
    result = top_k_unseen(*_frames(spark, users, items, seen | without_factors), k=4).collect()
    got = _movies_by_user(result)
    assert got == brute_force_top_k(users, items, seen, k=4)


def test_spark_scorer_excludes_seen_movies_spread_over_several_partitions(spark):
    """Each user's seen pairs in several partitions of `seen` (grouped per user in each): all are excluded."""
    rng = np.random.default_rng(11)
    users = {u: rng.integers(-3, 4, size=3).tolist() for u in range(1, 81)}
    items = {i: rng.integers(-3, 4, size=3).tolist() for i in range(1, 31)}
    seen = {u: set(rng.choice(list(items), size=int(rng.integers(10, 27)), replace=False).tolist()) for u in users}
    user_df, item_df, seen_df = _frames(spark, users, items, seen)
    spread = seen_df.repartition(5)  # round-robin: a user's pairs land in several partitions
    assert spread.rdd.glom().map(lambda rows: len({r.user_id for r in rows})).sum() > len(users)
    result = top_k_unseen(user_df, item_df, spread, k=4).collect()
    got = _movies_by_user(result)
    assert got == brute_force_top_k(users, items, seen, k=4)


def test_spark_scorer_keeps_apart_users_whose_ids_share_their_low_16_bits(spark):
    """Ids past 65,535, some sharing their low 16 bits: each user's own seen movies are excluded, and only theirs."""
    rng = np.random.default_rng(13)
    users = {low + (high << 16): rng.integers(-3, 4, size=3).tolist() for low in (1, 2, 700) for high in (0, 1, 2, 300)}
    items = {i: rng.integers(-3, 4, size=3).tolist() for i in range(1, 31)}
    seen = {u: set(rng.choice(list(items), size=int(rng.integers(5, 27)), replace=False).tolist()) for u in users}
    user_df, item_df, seen_df = _frames(spark, users, items, seen)
    result = top_k_unseen(user_df, item_df, seen_df.repartition(3), k=4).collect()
    got = _movies_by_user(result)
    assert got == brute_force_top_k(users, items, seen, k=4)


@pytest.mark.parametrize("seen_schema", ["user_id int not null, movie_id int", "user_id int not null, movie_id int not null"])
def test_spark_scorer_takes_seen_pairs_whose_columns_are_declared_not_null(spark, seen_schema):
    """As a table of the lake may declare them (the pipeline's training ratings do)."""
    rng = np.random.default_rng(17)
    users = {u: rng.integers(-3, 4, size=3).tolist() for u in range(1, 21)}
    items = {i: rng.integers(-3, 4, size=3).tolist() for i in range(1, 31)}
    seen = {u: set(rng.choice(list(items), size=int(rng.integers(1, 20)), replace=False).tolist()) for u in users}
    user_df, item_df, _ = _frames(spark, users, items, seen)
    seen_df = spark.createDataFrame([(u, m) for u, ms in seen.items() for m in ms], seen_schema)
    result = top_k_unseen(user_df, item_df, seen_df, k=4).collect()
    got = _movies_by_user(result)
    assert got == brute_force_top_k(users, items, seen, k=4)


def test_most_popular_unseen_given_only_its_users_seen_pairs_still_counts_everyone(spark):
    ratings = spark.createDataFrame(
        [(1, 10, 4.0), (2, 10, 3.0), (3, 10, 5.0), (1, 20, 4.0), (2, 20, 1.0), (3, 30, 2.0)],
        "user_id int, movie_id int, rating double",
    )
    users = spark.createDataFrame([(3,), (4,)], "user_id int")  # users 1 and 2 rated, but are not asked for
    seen = ratings.where("user_id = 3").select("user_id", "movie_id")
    rows = most_popular_unseen(ratings, users, k=2, seen=seen).collect()
    by_user = {u: [r.movie_id for r in sorted(rows, key=lambda r: r.rank) if r.user_id == u] for u in (1, 2, 3, 4)}
    assert by_user == {1: [], 2: [], 3: [20], 4: [10, 20]}


def test_most_popular_unseen_ranks_by_count_and_skips_what_was_rated(spark):
    ratings = spark.createDataFrame(
        [(1, 10, 4.0), (2, 10, 3.0), (3, 10, 5.0), (1, 20, 4.0), (2, 20, 1.0), (3, 30, 2.0)],
        "user_id int, movie_id int, rating double",
    )
    users = spark.createDataFrame([(1,), (2,), (3,), (4,)], "user_id int")  # user 4 rated nothing
    rows = most_popular_unseen(ratings, users, k=3).collect()
    by_user = {u: [r.movie_id for r in sorted(rows, key=lambda r: r.rank) if r.user_id == u] for u in (1, 2, 3, 4)}
    assert by_user == {1: [30], 2: [30], 3: [20], 4: [10, 20, 30]}
    assert {(r.movie_id, r.score) for r in rows if r.user_id == 4} == {(10, 3.0), (20, 2.0), (30, 1.0)}


def test_most_popular_unseen_matches_scoring_by_counts_over_many_blocks(spark):
    """The popularity order's prefix per user gives what scoring every item by its count gives (ties: smaller id)."""
    rng = np.random.default_rng(8)
    pairs = {(int(u), int(m)) for u, m in zip(rng.integers(1, 700, 6000), np.minimum(rng.zipf(1.3, 6000), 60))}
    ratings = spark.createDataFrame([(u, m, 3.0) for u, m in pairs], "user_id int, movie_id int, rating double")
    counts = Counter(m for _, m in pairs)
    seen: dict[int, set[int]] = {}
    for user, movie in pairs:
        seen.setdefault(user, set()).add(movie)
    users = sorted(seen) + [5000]  # one user who rated nothing
    rows = most_popular_unseen(ratings, spark.createDataFrame([(u,) for u in users], "user_id int"), k=6).collect()
    got = _movies_by_user(rows)
    expected = brute_force_top_k({u: [1.0] for u in users}, {m: [float(c)] for m, c in counts.items()}, seen, k=6)
    assert got == {u: top for u, top in expected.items() if top}


def test_k_must_be_positive(spark):
    users, items, seen = _frames(spark, {1: [1.0]}, {2: [1.0]}, {1: {2}})
    with pytest.raises(ValueError, match="k must be"):
        top_k_unseen(users, items, seen, k=0)
