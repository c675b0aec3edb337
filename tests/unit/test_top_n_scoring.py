"""The top-N kernel that every recommendation goes through, on hand-made catalogs."""

from __future__ import annotations

import numpy as np

from glue_jobs.recommender.recommend import Catalog, score_block


def catalog(scores: list[float], prior: list[float] | None = None) -> Catalog:
    ids = np.arange(1, len(scores) + 1, dtype=np.int64) * 10
    return Catalog(ids, np.array(scores, dtype=np.float64).reshape(-1, 1), np.zeros(len(scores)),
                   None if prior is None else np.array(prior))


def top(cat: Catalog, seen: list[int] | None, n: int, clip: tuple[float, float] | None = (0, 100),
        offset: float = 0.0) -> list[tuple[int, int, int, float, float | None]]:
    row = {"user_id": 7, "vec": [1.0], "offset": offset, "seen": seen}
    return list(score_block([row], cat, n, clip))


def test_highest_scores_first_and_seen_artists_never_returned() -> None:
    cat = catalog([50, 90, 70, 95, 10])
    recs = top(cat, seen=[40], n=3)  # artist 40 has the best score but was rated
    assert [r[2] for r in recs] == [20, 30, 10]
    assert [r[1] for r in recs] == [1, 2, 3]
    assert all(r[0] == 7 for r in recs)


def test_ties_are_broken_by_artist_id_whatever_the_catalog_order() -> None:
    cat = catalog([80, 80, 80, 80])
    assert [r[2] for r in top(cat, None, n=2)] == [10, 20]
    assert [r[2] for r in top(cat, [10], n=2)] == [20, 30]


def test_predicted_ratings_are_clipped_to_the_scale_scores_are_the_raw_ranking_values() -> None:
    cat = catalog([130, 150, -20])
    recs = top(cat, None, n=3)
    assert [r[2] for r in recs] == [20, 10, 30]
    assert [r[3] for r in recs] == [150.0, 130.0, -20.0]
    assert [r[4] for r in recs] == [100.0, 100.0, 0.0]


def test_without_a_rating_scale_there_is_no_predicted_rating() -> None:
    recs = top(catalog([0.3, 0.9]), None, n=2, clip=None)
    assert [(r[2], r[3], r[4]) for r in recs] == [(20, 0.9, None), (10, 0.3, None)]


def test_fewer_recommendations_when_the_user_has_rated_almost_everything() -> None:
    cat = catalog([1, 2, 3])
    assert [r[2] for r in top(cat, [10, 30], n=5)] == [20]
    assert top(cat, [10, 20, 30], n=5) == []


def test_seen_artists_outside_the_catalog_are_ignored() -> None:
    cat = catalog([1, 2, 3])
    assert [r[2] for r in top(cat, [5, 999, 30], n=2)] == [20, 10]


def test_prior_is_in_the_score_but_not_in_the_predicted_rating() -> None:
    """The issue's list (rank 1 score 74.3, rank 3 82.9): the score shown is the one the list is
    ordered by, so it never rises down the list; the predicted rating may."""
    cat = catalog([60, 70, 65], prior=[20, 0, 10.123456])
    recs = top(cat, None, n=3)
    assert [r[2] for r in recs] == [10, 30, 20]
    assert [r[3] for r in recs] == [80.0, 75.1235, 70.0]
    assert [r[4] for r in recs] == [60.0, 65.0, 70.0]


def test_the_companions_blend_is_in_the_score_but_not_in_the_predicted_rating() -> None:
    """A blended catalog: the user's vector holds the model's factors, then the companion's; the
    ranking adds the companion's weighted score, the predicted rating does not."""
    cat = Catalog(np.array([10, 20, 30]), np.array([[60.0], [70.0], [65.0]]), np.zeros(3),
                  np.array([0.0, 0.0, 1.0]), blend=np.array([[0.0, 30.0], [0.0, -5.0], [10.0, 0.0]]))
    row = {"user_id": 7, "vec": [1.0, 1.0, 0.5], "offset": 0.0, "seen": None}
    recs = list(score_block([row], cat, 3, (0, 100)))
    # ranking: 10 -> 60 + 15 = 75; 20 -> 70 - 2.5 = 67.5; 30 -> 65 + 1 (prior) + 10 = 76
    assert [(r[2], r[3], r[4]) for r in recs] == [(30, 76.0, 65.0), (10, 75.0, 60.0), (20, 67.5, 70.0)]
    unblended = Catalog(cat.artist_ids, cat.matrix, cat.offsets, cat.prior)
    plain = list(score_block([{**row, "vec": [1.0]}], unblended, 3, (0, 100)))
    assert [r[2] for r in plain] == [20, 30, 10], "the blend reorders the list"
    assert sorted((r[2], r[4]) for r in plain) == sorted((r[2], r[4]) for r in recs), "same predicted ratings"


def test_user_offset_is_added_to_every_score() -> None:
    recs = top(catalog([40, 20]), None, n=2, offset=5.0)
    assert [(r[3], r[4]) for r in recs] == [(45.0, 45.0), (25.0, 25.0)]


def test_a_block_of_users_matches_scoring_each_alone() -> None:
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(50, 3))
    cat = Catalog(np.arange(50, dtype=np.int64), matrix, rng.normal(size=50))
    rows = [{"user_id": u, "vec": rng.normal(size=3).tolist(), "offset": 0.0,
             "seen": rng.choice(50, size=5, replace=False).tolist()} for u in range(6)]
    together = list(score_block(rows, cat, 4, (-1e9, 1e9)))
    alone = [r for row in rows for r in score_block([row], cat, 4, (-1e9, 1e9))]
    assert together == alone
    for row in rows:
        expected = matrix @ np.array(row["vec"]) + cat.offsets
        expected[row["seen"]] = -np.inf
        best = np.argsort(-expected, kind="stable")[:4]
        assert [r[2] for r in together if r[0] == row["user_id"]] == best.tolist()


def test_scores_never_rise_down_any_list_and_ratings_are_the_clipped_predictions() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.normal(scale=30, size=(200, 4))
    prior = rng.uniform(0, 25, size=200)
    cat = Catalog(np.arange(200, dtype=np.int64), matrix, np.full(200, 50.0), prior)
    rows = [{"user_id": u, "vec": rng.normal(size=4).tolist(), "offset": float(rng.normal(scale=5)),
             "seen": rng.choice(200, size=20, replace=False).tolist()} for u in range(40)]
    recs = list(score_block(rows, cat, 10, (0.0, 100.0)))
    rising_ratings = 0
    for row in rows:
        mine = [r for r in recs if r[0] == row["user_id"]]
        assert len(mine) == 10
        scores = [r[3] for r in mine]
        assert scores == sorted(scores, reverse=True)
        predicted = matrix @ np.array(row["vec"]) + cat.offsets + row["offset"]
        ids = [r[2] for r in mine]
        assert [r[3] for r in mine] == [round(float(predicted[j] + prior[j]), 4) for j in ids]
        assert [r[4] for r in mine] == [round(float(np.clip(predicted[j], 0, 100)), 4) for j in ids]
        ratings = [r[4] for r in mine]
        rising_ratings += ratings != sorted(ratings, reverse=True)
    assert rising_ratings, "the prior must reorder some list for this test to mean anything"
