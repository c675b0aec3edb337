"""Biases, scoring fallbacks and ranking metrics, checked against hand or plain-Python numbers."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F

from glue_jobs import contracts as c
from glue_jobs.recommender import evaluate, model
from glue_jobs.recommender.config import Feedback

pytestmark = pytest.mark.spark


def frame(spark, rows):  # type: ignore[no-untyped-def]
    return spark.createDataFrame(rows, f"{c.USER_ID} int, {c.ARTIST_ID} int, {c.RATING} int")


def test_biases_match_the_alternating_least_squares_formula(spark) -> None:
    rows = [(1, 10, 90), (1, 11, 70), (2, 10, 50), (2, 12, 10), (3, 11, 40)]
    reg = 2.0
    biases = model.fit_biases(frame(spark, rows), reg)
    mu = sum(r for _, _, r in rows) / len(rows)
    bu = {u: 0.0 for u, _, _ in rows}
    bi: dict[int, float] = {}
    for _ in range(model.BIAS_SWEEPS):
        bi = {i: sum(r - mu - bu[u] for u, a, r in rows if a == i) / (reg + sum(1 for _, a, _ in rows if a == i))
              for i in {a for _, a, _ in rows}}
        bu = {u: sum(r - mu - bi[a] for uu, a, r in rows if uu == u) / (reg + sum(1 for uu, _, _ in rows if uu == u))
              for u in bu}
    assert biases.global_mean == pytest.approx(mu)
    assert {r.artist_id: r.bias for r in biases.items.collect()} == pytest.approx(bi)
    assert {r.user_id: r.bias for r in biases.users.collect()} == pytest.approx(bu)


def test_scores_fall_back_to_biases_then_the_mean_and_are_clipped(spark) -> None:
    """predicted_rating: the prediction clipped to the scale; score: the unclipped prediction plus
    the popularity prior, as the lists rank (popularity_weight * ln(1 + n_ratings))."""
    params = model.ModelParams(Feedback.EXPLICIT, 2, 0.1, 5, 50.0, 10.0, 0.0, 100.0, 1, popularity_weight=2.0)
    users = spark.createDataFrame([(1, 5.0, [1.0, 2.0]), (2, -80.0, [0.0, 0.0])],
                                  "user_id int, bias double, features array<float>")
    items = spark.createDataFrame([(10, 3.0, [2.0, 1.0], 4), (11, 0.0, None, 1)],
                                  "artist_id int, bias double, features array<float>, n_ratings long")
    m = model.RecommenderModel(params, users, items)
    pairs = spark.createDataFrame([(1, 10), (1, 11), (1, 99), (3, 10), (3, 99), (2, 10)], "user_id int, artist_id int")
    got = model.score_pairs(m, pairs).collect()
    ratings = {(r.user_id, r.artist_id): r.predicted_rating for r in got}
    raw = {
        (1, 10): 50 + 5 + 3 + 10 * (2 + 2),   # full model
        (1, 11): 50 + 5 + 0,                   # artist without factors: biases
        (1, 99): 50 + 5,                       # unknown artist: user bias
        (3, 10): 50 + 3,                       # unknown user: artist bias
        (3, 99): 50,                           # both unknown: global mean
        (2, 10): 50 - 80 + 3,                  # below the scale
    }
    assert ratings == pytest.approx({pair: min(max(v, 0.0), 100.0) for pair, v in raw.items()})
    prior = {10: 2.0 * math.log1p(4), 11: 2.0 * math.log1p(1), 99: 0.0}  # an unknown artist has no prior
    scores = {(r.user_id, r.artist_id): r.score for r in got}
    assert scores == pytest.approx({(u, a): v + prior[a] for (u, a), v in raw.items()}, abs=1e-4)
    assert all(not math.isnan(v) for v in scores.values())


def test_implicit_feedback_predicts_no_rating(spark) -> None:
    params = model.ModelParams(Feedback.IMPLICIT, 2, 0.1, 5, 0.0, 1.0, 0.0, 1.0, 1, popularity_weight=0.5)
    users = spark.createDataFrame([(1, 0.0, [0.5, 0.25])], "user_id int, bias double, features array<float>")
    items = spark.createDataFrame([(10, 0.2, [1.0, 2.0], 3)],
                                  "artist_id int, bias double, features array<float>, n_ratings long")
    m = model.RecommenderModel(params, users, items)
    (row,) = model.score_pairs(m, spark.createDataFrame([(1, 10)], "user_id int, artist_id int")).collect()
    assert row.predicted_rating is None
    assert row.score == pytest.approx(0.5 + 0.5 + 0.5 * math.log1p(3), abs=1e-4)


def test_implicit_feedback_learns_a_play_scaled_to_0_as_a_play(spark) -> None:
    """Listening counts scaled per user give each user's fewest plays 0. They are still plays:
    the model must score them like the user's other plays, not like artists never played (Spark's
    implicit ALS reads a raw 0 as "not played")."""
    rows = [(u, a, r) for u in range(1, 9) for a, r in ((10, 0), (11, 100), (12, 50))]
    rows += [(u, a, 100) for u in range(9, 17) for a in (20, 21)]  # other users, other artists
    train = spark.createDataFrame(rows, f"{c.USER_ID} int, {c.ARTIST_ID} int, {c.RATING} int")
    prepared = model.prepare(train, Feedback.IMPLICIT, 10.0)
    fitted = model.fit(prepared, feedback=Feedback.IMPLICIT, rank=4, reg_param=0.1, max_iter=10, alpha=10.0,
                       seed=1, blocks=2)
    pairs = spark.createDataFrame([(1, 10), (1, 11), (1, 20)], "user_id int, artist_id int")
    scores = {r.artist_id: r.score for r in model.score_pairs(fitted, pairs).collect()}
    assert scores[10] > 0.8 and scores[11] > 0.8, scores  # played: preference near 1
    assert scores[20] < 0.2, scores  # never played by this user or anyone like them


def test_top_n_scores_and_ratings_are_what_score_pairs_gives(spark) -> None:
    """A list's `score` and `predicted_rating` mean what score_pairs' do, for users with
    factors and without: one meaning of each everywhere."""
    from glue_jobs.recommender import recommend

    params = model.ModelParams(Feedback.EXPLICIT, 2, 0.1, 5, 40.0, 10.0, 0.0, 100.0, 1, popularity_weight=3.0)
    users = spark.createDataFrame([(1, 5.0, [1.0, 2.0]), (2, -3.0, None)],
                                  "user_id int, bias double, features array<float>")
    items = spark.createDataFrame([(10, 3.0, [2.0, 1.0], 4), (11, -2.0, [0.5, -1.0], 2)],
                                  "artist_id int, bias double, features array<float>, n_ratings long")
    m = model.RecommenderModel(params, users, items)
    none_seen = spark.createDataFrame([], "user_id int, artist_id int")
    shown = {(r.user_id, r.artist_id): (r.score, r.predicted_rating)
             for r in recommend.recommend(spark, m, users.select(c.USER_ID), none_seen, 2).collect()}
    predicted = {(r.user_id, r.artist_id): (r.score, r.predicted_rating)
                 for r in model.score_pairs(m, spark.createDataFrame(list(shown), "user_id int, artist_id int"))
                 .collect()}
    assert len(shown) == 4 and set(shown) == set(predicted)
    for pair, (score, rating) in shown.items():
        assert score == pytest.approx(predicted[pair][0], abs=1e-4)
        assert rating == pytest.approx(predicted[pair][1], abs=1e-4)
    assert shown[(1, 10)] == pytest.approx((88 + 3 * math.log1p(4), 40 + 5 + 3 + 10 * (2 + 2)), abs=1e-4)


def test_ranking_metrics_are_measured_on_a_seeded_sample_of_whole_users(spark) -> None:
    from glue_jobs.recommender.stages import some_users

    rows = frame(spark, [(u, a, 80) for u in range(1, 2001) for a in (1, 2)])
    kept = some_users(rows, 200, 42)
    users = {r.user_id for r in kept.select(c.USER_ID).distinct().collect()}
    assert 120 <= len(users) <= 280  # about the bound: a hash draw, not an exact count
    assert kept.count() == 2 * len(users)  # whole users: every row of each one kept
    again = {r.user_id for r in some_users(rows.repartition(7), 200, 42).select(c.USER_ID).distinct().collect()}
    assert again == users  # the same users whatever the partitioning
    assert {r.user_id for r in some_users(rows, 200, 7).select(c.USER_ID).distinct().collect()} != users
    assert some_users(rows, 5000, 42).count() == some_users(rows, 0, 42).count() == 4000


def plain_ranking(recs: dict[int, list[int]], relevant: dict[int, set[int]], k: int) -> dict[str, float]:
    """Textbook definitions, one user at a time, averaged over users with relevant items."""
    p = r = n = ap = 0.0
    for user, rel in relevant.items():
        got = recs.get(user, [])[:k]
        hits = [1.0 if a in rel else 0.0 for a in got]
        p += sum(hits) / k
        r += sum(hits) / len(rel)
        dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
        idcg = sum(1 / math.log2(i + 2) for i in range(min(len(rel), k)))
        n += dcg / idcg
        cum = 0.0
        prec_sum = 0.0
        for i, h in enumerate(hits):
            if h:
                cum += 1
                prec_sum += cum / (i + 1)
        ap += prec_sum / min(len(rel), k)
    users = len(relevant)
    return {"precision_at_k": p / users, "recall_at_k": r / users, "ndcg_at_k": n / users, "map_at_k": ap / users}


def test_ranking_metrics_match_a_plain_python_computation(spark) -> None:
    recs = {1: [10, 11, 12], 2: [13, 10, 14], 4: [10, 11, 12]}
    relevant = {1: {11, 15}, 2: {13, 14, 10, 16}, 3: {10}}  # user 3 got nothing: scores zero
    rec_df = spark.createDataFrame(
        [(u, i + 1, a) for u, lst in recs.items() for i, a in enumerate(lst)], "user_id int, rank int, artist_id int")
    rel_df = spark.createDataFrame([(u, a) for u, s in relevant.items() for a in s], "user_id int, artist_id int")
    got = evaluate.ranking_metrics(rec_df, rel_df, k=3)
    assert got == pytest.approx(plain_ranking(recs, relevant, 3))


def test_relevance_uses_the_threshold_and_never_counts_255(spark) -> None:
    test = frame(spark, [(1, 10, 70), (1, 11, 69), (1, 12, 255), (2, 10, 100), (2, 13, 0)])
    rel = {(r.user_id, r.artist_id) for r in evaluate.relevant_items(test, Feedback.EXPLICIT, 70).collect()}
    assert rel == {(1, 10), (2, 10)}
    # Implicit: every play is a hit, a user's fewest plays (0 once scaled per user) too.
    implicit = {(r.user_id, r.artist_id) for r in evaluate.relevant_items(test, Feedback.IMPLICIT, 70).collect()}
    assert implicit == {(1, 10), (1, 11), (2, 10), (2, 13)}


def test_popularity_counts_likes_and_breaks_ties_by_volume(spark) -> None:
    train = frame(spark, [(1, 10, 90), (2, 10, 80), (1, 11, 90), (2, 11, 10), (3, 11, 20), (1, 12, 10),
                          (2, 13, 95)])
    pop = {r.artist_id: r for r in evaluate.popularity(train, Feedback.EXPLICIT, 70).collect()}
    assert pop[10].n_ratings == 2 and pop[11].n_ratings == 3
    # two likes beat one; among one-like artists the more rated wins; no like comes last
    assert pop[10].popularity > pop[11].popularity > pop[13].popularity > pop[12].popularity


def test_implicit_popularity_counts_every_play(spark) -> None:
    """With listening counts a user's fewest plays are 0 once scaled: still plays, for the popularity
    baseline and the fallback list as for the model."""
    train = frame(spark, [(1, 10, 0), (2, 10, 0), (3, 10, 0), (1, 11, 100), (2, 11, 90)])
    pop = {r.artist_id: r.popularity for r in evaluate.popularity(train, Feedback.IMPLICIT, 70).collect()}
    assert pop[10] > pop[11], pop  # three plays beat two, whatever their scaled counts


def test_popularity_lists_by_walking_the_ranking_equal_the_scored_ones(spark) -> None:
    """evaluate.popular_top_k: the most popular artists each user has not rated, ties by artist id,
    rated and blocked artists skipped (an artist outside the ranking too), fewer than k when the user
    rated nearly all."""
    popularity = spark.createDataFrame([(a, float(p), 1) for a, p in
                                        [(10, 5.0), (11, 3.0), (12, 5.0), (13, 1.0), (14, 3.0), (15, 0.5)]],
                                       "artist_id int, popularity double, n_ratings long")
    users = spark.createDataFrame([(u,) for u in (1, 2, 3, 4)], "user_id int")
    exclude = spark.createDataFrame([(1, 10), (1, 14), (1, 99), (3, 10), (3, 11), (3, 12), (3, 13), (3, 14),
                                     (4, 12)], "user_id int, artist_id int")

    def lists(df):  # type: ignore[no-untyped-def]
        return sorted((r.user_id, r.rank, r.artist_id, r.score) for r in df.collect())

    walked = lists(evaluate.popular_top_k(spark, popularity, users, exclude, 3))
    # the ranking: 10 and 12 (5.0, tie to the lower id), 11 and 14 (3.0), 13, 15
    expected = {1: [(12, 5.0), (11, 3.0), (13, 1.0)], 2: [(10, 5.0), (12, 5.0), (11, 3.0)], 3: [(15, 0.5)],
                4: [(10, 5.0), (11, 3.0), (14, 3.0)]}
    assert walked == sorted((u, rank, a, score) for u, top in expected.items()
                            for rank, (a, score) in enumerate(top, start=1))


def test_errors_of_several_predictions_in_one_pass_equal_each_alone(spark) -> None:
    test = frame(spark, [(1, 10, 70), (1, 11, 20), (2, 10, 100), (2, 13, 0)])
    predictions = {"a": F.lit(50.0), "b": F.col(c.RATING) * 0.5 + 10}
    together = evaluate.errors_of(test, predictions)
    assert together == {name: pytest.approx(evaluate.rating_errors(test, p)) for name, p in predictions.items()}
    assert together["a"]["mae"] == pytest.approx((20 + 30 + 50 + 50) / 4)
    assert together["a"]["rmse"] == pytest.approx(((20**2 + 30**2 + 50**2 + 50**2) / 4) ** 0.5)
    # b = rating / 2 + 10: errors -25, 0, -40, 10
    assert together["b"] == pytest.approx({"rmse": ((25**2 + 40**2 + 10**2) / 4) ** 0.5, "mae": (25 + 40 + 10) / 4})
    empty = evaluate.errors_of(test.limit(0), predictions)
    assert all(math.isnan(v) for errors in empty.values() for v in errors.values())
