"""Tuning in NumPy carries over to Spark: same model as Spark's ALS, same NDCG as the Spark path."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from glue_jobs import contracts as c
from glue_jobs import datagen
from glue_jobs.recommender import evaluate, local_als, local_eval, model, recommend, tuning
from glue_jobs.recommender.config import Feedback, ModelOptions, TuningOptions

pytestmark = pytest.mark.spark
# regParam 0.2: well-posed enough that Spark's own fits from two seeds agree (r ~ 0.98); at 0.1
# on this little data they agree only to r ~ 0.93, with NumPy no further from Spark than that.
RANK, REG, ITERS, SEED = 8, 0.2, 10, 42


@pytest.fixture(scope="module")
def small(spark):  # type: ignore[no-untyped-def]
    """Generated ratings split 90/10 by a seeded mask, as Spark frames and as indexed arrays."""
    data = datagen.generate(12_000, seed=5, bad_share=0.0)
    rows = np.column_stack([data.users, data.artists, data.ratings]).astype(np.int64)
    blocked_rows = rows[rows[:, 2] == c.NEVER_PLAY_AGAIN]
    rows = rows[rows[:, 2] <= c.RATING_MAX]
    held = np.random.default_rng(1).random(len(rows)) < 0.1
    schema = f"{c.USER_ID} int, {c.ARTIST_ID} int, {c.RATING} int"
    frames = [spark.createDataFrame([tuple(map(int, r)) for r in part], schema).cache()
              for part in (rows[~held], rows[held])]
    blocked = spark.createDataFrame([(int(u), int(a)) for u, a, _ in blocked_rows],
                                    f"{c.USER_ID} int, {c.ARTIST_ID} int")
    user_ids = np.unique(rows[:, 0])
    item_ids = np.unique(np.concatenate([rows[:, 1], blocked_rows[:, 1]]))
    indexed = local_als.Ratings(np.searchsorted(user_ids, rows[:, 0]), np.searchsorted(item_ids, rows[:, 1]),
                                rows[:, 2].astype(np.float64), user_ids.size, item_ids.size)
    return {"train": frames[0], "test": frames[1], "blocked": blocked, "blocked_rows": blocked_rows,
            "indexed": indexed, "held": held, "user_ids": user_ids, "item_ids": item_ids}


def spark_fit(prepared: model.Prepared) -> model.RecommenderModel:
    return model.fit(prepared, feedback=Feedback.EXPLICIT, rank=RANK, reg_param=REG, max_iter=ITERS, alpha=1.0,
                     seed=SEED, blocks=2)


def test_numpy_als_matches_spark_als_on_held_out_ratings(spark, small) -> None:  # type: ignore[no-untyped-def]
    spark_prepared = model.prepare(small["train"], Feedback.EXPLICIT, 10.0)
    fitted = spark_fit(spark_prepared)
    scored = {(r[c.USER_ID], r[c.ARTIST_ID]): r[c.PREDICTED_RATING]
              for r in model.score_pairs(fitted, small["test"]).collect()}
    spark_rmse = evaluate.prediction_errors(fitted, small["test"])["rmse"]

    r, held = small["indexed"], small["held"]
    prepared = local_als.prepare(r.subset(~held), 10.0)
    assert prepared.global_mean == pytest.approx(spark_prepared.biases.global_mean)
    assert prepared.scale == pytest.approx(spark_prepared.scale)
    factors = local_als.fit(local_als.Layout.of(prepared.residuals), rank=RANK, reg_param=REG,
                            iterations=ITERS, seed=SEED)
    test = r.subset(held)
    mine = local_als.predict(prepared, factors, test.users, test.items, (0.0, 100.0))
    theirs = np.array([scored[(int(small["user_ids"][u]), int(small["item_ids"][i]))]
                       for u, i in zip(test.users, test.items)])
    my_rmse = float(np.sqrt(np.mean((mine - test.values) ** 2)))
    assert abs(my_rmse - spark_rmse) / spark_rmse < 0.02
    assert np.corrcoef(mine, theirs)[0, 1] > 0.95


def as_spark_model(spark, small, prepared: local_als.Prepared, factors: local_als.Factors,  # type: ignore[no-untyped-def]
                   counts: np.ndarray, weight: float) -> model.RecommenderModel:
    users = spark.createDataFrame(
        [(int(small["user_ids"][u]), float(prepared.user_bias[u]), factors.users[u].tolist())
         for u in range(factors.users.shape[0])], "user_id int, bias double, features array<float>")
    items = spark.createDataFrame(
        [(int(small["item_ids"][i]), float(prepared.item_bias[i]),
          factors.items[i].tolist() if counts[i] else None, int(counts[i]))
         for i in range(factors.items.shape[0])],
        "artist_id int, bias double, features array<float>, n_ratings long")
    params = model.ModelParams(Feedback.EXPLICIT, RANK, REG, ITERS, prepared.global_mean, prepared.scale,
                               0.0, 100.0, SEED, weight)
    return model.RecommenderModel(params, users, items)


def test_numpy_ndcg_equals_the_spark_ranking_and_evaluator(spark, small) -> None:  # type: ignore[no-untyped-def]
    r, held = small["indexed"], small["held"]
    train, valid = r.subset(~held), r.subset(held)
    prepared = local_als.prepare(train, 10.0)
    fitted = local_als.fit(local_als.Layout.of(prepared.residuals), rank=RANK, reg_param=REG, iterations=3, seed=1)
    # Spark keeps factors as float: both sides score the same rounded numbers.
    factors = local_als.Factors(fitted.users.astype(np.float32).astype(np.float64),
                                fitted.items.astype(np.float32).astype(np.float64))
    counts = np.bincount(train.items, minlength=train.n_items)
    blocked = small["blocked_rows"]
    b_users = np.searchsorted(small["user_ids"], blocked[:, 0])
    liked = valid.values >= 70
    task = local_eval.ranking_task(valid.users[liked], valid.items[liked],
                                   np.concatenate([train.users, b_users]),
                                   np.concatenate([train.items, np.searchsorted(small["item_ids"], blocked[:, 1])]),
                                   train.n_items)
    k, weights = 5, [0.0, 20.0]
    mine = local_eval.ndcg_at_k(task, prepared, factors, counts, k, weights)
    relevant = evaluate.relevant_items(small["test"], Feedback.EXPLICIT, 70.0)
    exclude = small["train"].select(c.USER_ID, c.ARTIST_ID).unionByName(small["blocked"])
    for weight, value in zip(weights, mine):
        fitted_model = as_spark_model(spark, small, prepared, factors, counts, weight)
        recs = recommend.recommend(spark, fitted_model, relevant.select(c.USER_ID).distinct(), exclude, k)
        assert value == pytest.approx(evaluate.ranking_metrics(recs, relevant, k)["ndcg_at_k"], abs=1e-9)
    assert mine[0] != pytest.approx(mine[1])  # the prior changes the ranking: the check has teeth


def test_tuning_sample_keeps_whole_users_within_the_bound(spark, small) -> None:  # type: ignore[no-untyped-def]
    full = tuning.collect_tuning_data(spark, small["train"], small["test"], small["blocked"], 0, SEED)
    bound = full.ratings.values.size // 3
    once = tuning.collect_tuning_data(spark, small["train"], small["test"], small["blocked"], bound, SEED)
    again = tuning.collect_tuning_data(spark, small["train"], small["test"], small["blocked"], bound, SEED)
    assert 0.8 * bound < once.ratings.values.size <= bound
    assert np.array_equal(once.ratings.values, again.ratings.values)
    assert np.array_equal(once.in_valid, again.in_valid)
    # whole users: each sampled user keeps every rating, train and validation alike
    full_counts = dict(zip(full.user_ids, np.bincount(full.ratings.users)))
    assert dict(zip(once.user_ids, np.bincount(once.ratings.users))) == {u: full_counts[u] for u in once.user_ids}
    in_valid = np.bincount(full.ratings.users[full.in_valid], minlength=full.user_ids.size)
    valid_counts = dict(zip(full.user_ids, in_valid))
    assert once.in_valid.sum() == sum(valid_counts[u] for u in once.user_ids)
    assert set(once.user_ids[once.blocked_users]) <= set(once.user_ids)
    assert once.user_ids.size < full.user_ids.size


def test_tune_logs_each_candidate_and_records_its_seconds(spark, small, caplog) -> None:  # type: ignore[no-untyped-def]
    options = TuningOptions(ranks=(4, 8), reg_params=(0.05, 0.2), popularity_weights=(0.0, 0.2))
    with caplog.at_level(logging.INFO, logger="recommender"):
        result = tuning.tune(spark, small["train"], small["test"], small["blocked"],
                             ModelOptions(max_iter=5, bias_reg=(10.0,)), options)
    lines = [m for m in caplog.messages if m.startswith("candidate ")]
    assert len(lines) == 5
    assert all(re.fullmatch(r"candidate \d/5 rank=\d reg=0(\.\d+)? rmse=[\d.]+ in [\d.]+ s", m) for m in lines)
    assert [(g.rank, g.reg_param) for g in result.grid] == [(0, 0.0), (4, 0.05), (4, 0.2), (8, 0.05), (8, 0.2)]
    assert all(g.seconds > 0 and "seconds" in g.as_dict() for g in result.grid)
    assert result.best == tuning.choose(result.grid)
    assert all(10 < g.value < 30 for g in result.grid)
    assert [p["popularity_weight"] for p in result.weight_curve] == [0.0, 20.0]
