"""The implicit companion blended into the ranking: chosen on validation, better on held-out
data where which artists a user rates says much, and the same model on the driver and on Spark."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest

from glue_jobs import contracts as c
from glue_jobs import datagen
from glue_jobs.recommender import local_als, local_model, model, recommend, stages, tuning
from glue_jobs.recommender.config import GateOptions, InputOptions, ModelOptions, TuningOptions

pytestmark = pytest.mark.spark
SEED = 7
OPTIONS = ModelOptions(max_iter=10, seed=SEED)
TUNE_OPTIONS = dataclasses.replace(OPTIONS, bias_reg=(10.0,))


@pytest.fixture(scope="module")
def stars(spark, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A 1..5 star catalogue (600 users) read and split by the job's stages, tuned by the job's tuning."""
    path: Path = tmp_path_factory.mktemp("blend") / "stars.tsv"
    datagen.write_r1(path, datagen.r1_lines(datagen.generate(60_000, seed=SEED, bad_share=0.0, shape="stars"), SEED))
    options = TuningOptions(ranks=(10,), reg_params=(0.2,), eval_users=0)
    inputs = stages.read_inputs(spark, InputOptions((str(path),)), GateOptions())
    splits = stages.split(inputs, options, SEED)
    assert splits.local is not None
    tuned = tuning.tune(spark, splits.train, splits.valid, inputs.blocked, TUNE_OPTIONS, options, splits.local)
    return {"inputs": inputs, "splits": splits, "tuned": tuned, "options": options}


@pytest.fixture(scope="module")
def blended(spark, stars):  # type: ignore[no-untyped-def]
    return stages.fit(spark, stars["splits"], stars["tuned"], OPTIONS)


def test_the_blend_is_chosen_on_validation_and_ranks_better_on_the_test_split(spark, stars, blended) -> None:  # type: ignore[no-untyped-def]
    tuned = stars["tuned"]
    assert tuned.blend_weight > 0, "on star ratings the companion helps on validation"
    curve = tuned.blend_curve
    unblended = curve[0]  # the unblended ranking at the popularity curve's choice: a point of the curve
    assert unblended["blend_weight"] == 0.0
    assert unblended["popularity_weight"] == tuning.best_weight(tuned.weight_curve)
    chosen = [p for p in curve if (p["blend_weight"], p["popularity_weight"]) == (tuned.blend_weight,
                                                                                    tuned.popularity_weight)]
    assert len(chosen) == 1 and chosen[0]["ndcg_at_k"] == max(p["ndcg_at_k"] for p in curve) > curve[0]["ndcg_at_k"]
    # the blend weights in increasing order, until one ranks worse than the one before
    walked = [p["ndcg_at_k"] for p in curve if p["popularity_weight"] == unblended["popularity_weight"]]
    tried = [p["blend_weight"] for p in curve if p["popularity_weight"] == unblended["popularity_weight"]]
    assert tried == sorted(TuningOptions().blend_weights)[:len(tried)]
    assert all(later >= earlier for earlier, later in itertools.pairwise(walked[:-1]))
    assert len(tried) == len(TuningOptions().blend_weights) or walked[-1] < walked[-2]

    # what the run would have published unblended: its popularity curve's choice, no companion
    unblended_result = dataclasses.replace(tuned, blend_weight=0.0, popularity_weight=unblended["popularity_weight"])
    plain = stages.fit(spark, stars["splits"], unblended_result, OPTIONS)
    assert plain.local is not None and plain.local.companion is None and not plain.model.params.blended
    options = stars["options"]
    with_blend = stages._local_test_metrics(blended.local, options, SEED)
    without = stages._local_test_metrics(plain.local, options, SEED)
    # 600 users: NDCG@10 0.0997 -> 0.1040, P@10 0.0596 -> 0.0616 (the 300k-rating runs: +6%)
    assert with_blend[1]["ndcg_at_k"] > 1.02 * without[1]["ndcg_at_k"], "held-out NDCG@10 rises"
    assert with_blend[1]["precision_at_k"] > without[1]["precision_at_k"]
    assert with_blend[0] == without[0], "the blend changes rankings, never the rating errors"


def test_blend_weights_zero_fits_no_companion(spark, stars) -> None:  # type: ignore[no-untyped-def]
    splits = stars["splits"]
    options = dataclasses.replace(stars["options"], blend_weights=(0.0,))
    tuned = tuning.tune(spark, splits.train, splits.valid, stars["inputs"].blocked, TUNE_OPTIONS, options,
                        splits.local)
    assert tuned.blend_weight == 0.0 and tuned.blend_curve == []
    assert tuned.weight_curve == stars["tuned"].weight_curve, "the popularity curve is the same, unblended"
    assert tuned.popularity_weight == tuning.best_weight(tuned.weight_curve)


def test_the_blended_model_read_back_from_spark_ranks_and_scores_as_on_the_driver(spark, stars, blended) -> None:  # type: ignore[no-untyped-def]
    """Catalog, every user's list, the test metrics and --score-pairs agree between the arrays and
    the DataFrames the outputs and the Spark path read."""
    splits, inputs, options = stars["splits"], stars["inputs"], stars["options"]
    assert blended.model.params.blended and blended.catalog.blend is not None
    read_back = recommend.model_catalog(blended.model)
    assert read_back.blend is not None
    for name in ("matrix", "offsets", "prior", "blend"):
        assert np.allclose(getattr(blended.catalog, name), getattr(read_back, name), rtol=1e-12, atol=0), name

    exclude = splits.whole.select(c.USER_ID, c.ARTIST_ID).unionByName(inputs.blocked)
    on_spark = recommend.recommend(spark, blended.model, exclude.select(c.USER_ID).distinct(), exclude, 5,
                                   blended.catalog).collect()
    on_driver = local_model.top_n(spark, blended.local, blended.catalog, 5).collect()
    assert sorted(map(tuple, on_driver)) == sorted(map(tuple, on_spark))

    spark_metrics = stages._spark_test_metrics(spark, blended, splits, inputs.blocked, blended.model.params.feedback,
                                               options, SEED)
    driver_metrics = stages._local_test_metrics(blended.local, options, SEED)
    for name, value in spark_metrics[1].items():
        assert driver_metrics[1][name] == pytest.approx(value, abs=1e-9), name

    # --score-pairs scores a pair as its list ranks it: the blend is in the score, not in the rating.
    listed = {(r[c.USER_ID], r[c.ARTIST_ID]): (r[c.SCORE], r[c.PREDICTED_RATING]) for r in on_driver}
    pairs = spark.createDataFrame(list(listed), f"{c.USER_ID} int, {c.ARTIST_ID} int")
    scored = model.score_pairs(blended.model, pairs).collect()
    assert len(scored) == len(listed)
    for r in scored:
        score, rating = listed[(r[c.USER_ID], r[c.ARTIST_ID])]
        assert r[c.SCORE] == pytest.approx(score, abs=2e-4) and r[c.PREDICTED_RATING] == pytest.approx(rating, abs=2e-4)


def test_the_spark_path_fits_the_same_companion(spark, stars, blended) -> None:  # type: ignore[no-untyped-def]
    """Above the driver bound the companion is Spark's implicit ALS on the same rated pairs: its scores
    agree with NumPy's (both from a random start, so not to the digit), and the lists rank as well."""
    splits = dataclasses.replace(stars["splits"], local=None)
    on_spark = stages.fit(spark, splits, stars["tuned"], OPTIONS)
    assert on_spark.local is None and on_spark.model.params.blended
    assert on_spark.model.params.blend_rank == OPTIONS.blend_rank == blended.model.params.blend_rank
    spark_cat, driver_cat = on_spark.catalog, blended.catalog
    assert spark_cat.blend is not None and driver_cat.blend is not None
    assert np.array_equal(spark_cat.artist_ids, driver_cat.artist_ids)

    users = on_spark.model.users.select(c.USER_ID, model.BLEND_FEATURES).orderBy(c.USER_ID).collect()
    data = blended.local.data
    index = np.searchsorted(data.user_ids, [r[c.USER_ID] for r in users])
    spark_scores = np.array([r[model.BLEND_FEATURES] for r in users]) @ spark_cat.blend.T
    assert blended.local.companion is not None
    driver_scores = blended.local.companion.users[index] @ driver_cat.blend.T
    # r = 0.96 here; the equations themselves are checked exactly below (test_the_companion_in_numpy_...)
    assert np.corrcoef(spark_scores.ravel(), driver_scores.ravel())[0, 1] > 0.9

    options = stars["options"]
    spark_ndcg = stages._spark_test_metrics(spark, on_spark, stars["splits"], stars["inputs"].blocked,
                                            on_spark.model.params.feedback, options, SEED)[1]["ndcg_at_k"]
    driver_ndcg = stages._local_test_metrics(blended.local, options, SEED)[1]["ndcg_at_k"]
    assert spark_ndcg == pytest.approx(driver_ndcg, rel=0.05)
    on_spark.__exit__(None, None, None)


def test_the_companion_in_numpy_is_sparks_objective(spark) -> None:  # type: ignore[no-untyped-def]
    """local_als.fit_companion solves Spark's implicit equations on the rated pairs: Spark's final
    user factors, solved again from Spark's item factors, come back."""
    data = datagen.generate(6_000, seed=3, bad_share=0.0, shape="stars")
    rows = [(int(u), int(a), int(r)) for u, a, r in zip(data.users, data.artists, data.ratings)]
    frame = spark.createDataFrame(rows, f"{c.USER_ID} int, {c.ARTIST_ID} int, {c.RATING} int")
    base = model.RecommenderModel(model.ModelParams(OPTIONS.feedback, 0, 0.0, 1, 0.0, 1.0, 0.0, 100.0, SEED),
                                  frame.select(c.USER_ID).distinct(), frame.select(c.ARTIST_ID).distinct())
    fitted = model.fit_companion(base, frame, weight=1.0, rank=4, reg_param=0.1, max_iter=8, seed=SEED, blocks=2)
    users = {r[c.USER_ID]: r[model.BLEND_FEATURES] for r in fitted.users.collect()}
    items = {r[c.ARTIST_ID]: r[model.BLEND_FEATURES] for r in fitted.items.collect()}
    user_ids, item_ids = np.array(sorted(users)), np.array(sorted(items))
    ratings = local_als.Ratings(np.searchsorted(user_ids, data.users), np.searchsorted(item_ids, data.artists),
                                np.ones(data.users.size), user_ids.size, item_ids.size)
    layout = local_als.Layout.of(ratings)
    item_factors = np.array([items[i] for i in item_ids], dtype=np.float64)
    again = local_als.solve_side_implicit(layout.users, item_factors, 0.1, model.BLEND_ALPHA)
    spark_users = np.array([users[u] for u in user_ids], dtype=np.float64)
    assert np.abs(again - spark_users).max() < 1e-4 * max(1.0, float(np.abs(spark_users).max()))
