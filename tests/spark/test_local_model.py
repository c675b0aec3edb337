"""The final model fitted and evaluated on the driver is the Spark path's model and metrics."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import functions as F

from glue_jobs import contracts as c
from glue_jobs import datagen
from glue_jobs.recommender import local_model, recommend, stages, tuning
from glue_jobs.recommender.config import Feedback, GateOptions, InputOptions, JobConfig, ModelOptions, TuningOptions
from glue_jobs.recommender.main import execute
from glue_jobs.recommender.model import BIAS
from glue_jobs.recommender.model import N_RATINGS as PLAYS

pytestmark = pytest.mark.spark
N_RATINGS, SEED = 20_000, 11


@pytest.fixture(scope="module")
def ratings_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("local") / "ratings.tsv"
    datagen.write_r1(path, datagen.r1_lines(datagen.generate(N_RATINGS, seed=SEED, bad_share=0.0), SEED))
    return path


@pytest.fixture(scope="module")
def fitted(spark, ratings_file: Path):  # type: ignore[no-untyped-def]
    """Inputs and splits read by the job's stages, the model fitted on the driver."""
    options = TuningOptions(eval_users=0)
    inputs = stages.read_inputs(spark, InputOptions((str(ratings_file),)), GateOptions())
    splits = stages.split(inputs, options, SEED)
    assert splits.local is not None, "20k ratings are under the driver bound"
    chosen = tuning.TuningResult(tuning.Candidate(6, 0.1, "rmse", math.nan), [], 8.0, [])
    fit = stages.fit(spark, splits, chosen, ModelOptions(max_iter=6, seed=SEED))
    assert fit.local is not None and fit.prepared is None
    return {"inputs": inputs, "splits": splits, "fit": fit, "options": options}


def test_test_metrics_on_the_driver_equal_sparks_for_the_same_model(spark, fitted) -> None:  # type: ignore[no-untyped-def]
    """The Spark evaluation reads the model back from the DataFrames built from the arrays; both
    must give the same errors, the same model and popularity rankings and the same user count."""
    splits, fit, options = fitted["splits"], fitted["fit"], fitted["options"]
    on_spark = stages._spark_test_metrics(spark, fit, splits, fitted["inputs"].blocked, Feedback.EXPLICIT,
                                          options, SEED)
    on_driver = stages._local_test_metrics(fit.local, options, SEED)
    errors_spark, errors_driver = on_spark[0], on_driver[0]
    assert set(errors_driver) == {"rmse", "mae", "bias_rmse", "bias_mae", "global_mean_rmse", "global_mean_mae"}
    for name, value in errors_spark.items():
        assert errors_driver[name] == pytest.approx(value, rel=1e-5), name
    assert errors_driver["rmse"] < errors_driver["bias_rmse"] < errors_driver["global_mean_rmse"]
    for spark_metrics, driver_metrics in zip(on_spark[1:3], on_driver[1:3]):
        assert set(driver_metrics) == set(spark_metrics)
        for name, value in spark_metrics.items():
            assert driver_metrics[name] == pytest.approx(value, abs=1e-9), name
    assert on_driver[1]["ndcg_at_k"] != on_driver[2]["ndcg_at_k"], "model and popularity ranked apart"
    assert on_driver[3] == on_spark[3] > 100


def test_evaluated_users_are_bounded_and_drawn_by_seed(fitted) -> None:  # type: ignore[no-untyped-def]
    fit, options = fitted["fit"], fitted["options"]
    everyone = stages._local_test_metrics(fit.local, options, SEED)[3]
    bound = dataclasses.replace(options, eval_users=everyone // 3)
    some = [stages._local_test_metrics(fit.local, bound, seed) for seed in (SEED, SEED, SEED + 1)]
    assert [s[3] for s in some] == [everyone // 3] * 3
    assert some[0][1] == some[1][1] != some[2][1], "same seed, same users; another seed, others"


def test_catalog_from_the_arrays_equals_the_one_read_back_from_spark(fitted) -> None:  # type: ignore[no-untyped-def]
    fit = fitted["fit"]
    read_back = recommend.model_catalog(fit.model)
    assert np.array_equal(fit.catalog.artist_ids, read_back.artist_ids)
    for name in ("matrix", "offsets", "prior"):
        assert np.allclose(getattr(fit.catalog, name), getattr(read_back, name), rtol=1e-12, atol=0), name
    assert fit.catalog.prior is not None and fit.catalog.prior.max() > 0, "the popularity weight reaches the ranking"
    # Users and artists without a fit rating (test only, 255 only) are not in the model, as on the Spark path.
    data, model = fitted["splits"].local, fit.local
    assert int((model.item_counts > 0).sum()) < data.item_ids.size
    assert fit.model.users.count() == int((model.user_counts > 0).sum())
    assert fit.model.items.count() == read_back.artist_ids.size == int((model.item_counts > 0).sum())


def test_top_n_on_the_driver_equals_sparks_for_every_user(spark, fitted) -> None:  # type: ignore[no-untyped-def]
    """Every user of the input, rated or 255 only, gets the same list, never one of their rated
    (any split) or 255 artists."""
    fit, splits, inputs = fitted["fit"], fitted["splits"], fitted["inputs"]
    exclude = splits.whole.select(c.USER_ID, c.ARTIST_ID).unionByName(inputs.blocked)
    on_spark = recommend.recommend(spark, fit.model, exclude.select(c.USER_ID).distinct(), exclude, 5,
                                   fit.catalog).collect()
    on_driver = local_model.top_n(spark, fit.local, fit.catalog, 5).collect()
    assert sorted(map(tuple, on_driver)) == sorted(map(tuple, on_spark))
    assert len({r[c.USER_ID] for r in on_driver}) == fit.local.data.user_ids.size
    seen = {(r[c.USER_ID], r[c.ARTIST_ID]) for r in exclude.collect()}
    assert not seen & {(r[c.USER_ID], r[c.ARTIST_ID]) for r in on_driver}


def test_many_users_are_ranked_by_spark_with_the_same_lists(spark, fitted, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Above DRIVER_LIST_ROWS recommendations, recommend_all ranks with Spark: the same lists."""
    fit, splits, inputs = fitted["fit"], fitted["splits"], fitted["inputs"]
    options = ModelOptions(top_n=5)
    users = fit.local.data.user_ids.size
    assert local_model.lists_fit_driver(fit.local, 5)
    on_driver = stages.recommend_all(spark, fit, splits.whole, inputs, options, 70.0)
    monkeypatch.setattr(local_model, "DRIVER_LIST_ROWS", users * 5 - 1)
    assert not local_model.lists_fit_driver(fit.local, 5)
    monkeypatch.setattr(local_model, "top_n", lambda *args: pytest.fail("ranked on the driver above the bound"))
    on_spark = stages.recommend_all(spark, fit, splits.whole, inputs, options, 70.0)
    assert on_driver.recs.collect() == on_spark.recs.collect()
    assert (on_driver.count, on_driver.users) == (on_spark.count, on_spark.users) == (users * 5, users)
    assert on_driver.items == on_spark.items == splits.whole.select(c.ARTIST_ID).distinct().count()
    # Spark's tasks time their block scoring (tools/estimate_r1.py prices it apart); the driver's is not a task.
    assert on_driver.scoring_core_s is None and on_spark.scoring_core_s is not None and on_spark.scoring_core_s > 0


def test_above_the_driver_bound_the_job_fits_on_spark_to_the_same_quality(spark, ratings_file: Path,
                                                                          tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runs = {}
    # Just under the learnable ratings: the model fits on Spark, while train + validation still fit
    # the bound, so both runs tune on the same ratings and choose the same parameters.
    for name, bound in (("driver", None), ("spark", 19_000)):
        fields = dict(inputs=(str(ratings_file),), output=str(tmp_path / name), ranks=(6,), reg_params=(0.1,),
                      max_iter=6, popularity_weights=(0.1,), shuffle_partitions=2, seed=SEED)
        if bound is not None:
            fields["sample_ratings"] = bound
        runs[name] = execute(spark, JobConfig.from_fields(**fields)).metrics
    driver, on_spark = runs["driver"], runs["spark"]
    assert driver.spark["model"] == "numpy" and on_spark.spark["model"] == "spark"
    assert driver.task_s == {} and 0 < on_spark.task_s["recommend_scoring"] <= 2 * on_spark.timings_s["recommend"]
    assert on_spark.counts.train + on_spark.counts.validation < 19_000 < on_spark.counts.ratings
    assert driver.best_params == on_spark.best_params and driver.best_params.rank == 6
    assert driver.test.rmse == pytest.approx(on_spark.test.rmse, rel=0.03)
    for m in (driver, on_spark):
        assert m.test.rmse < m.test.baselines.bias_rmse
        assert m.counts.recommendations == m.counts.users * m.top_n
    assert driver.test.baselines.bias_rmse == pytest.approx(on_spark.test.baselines.bias_rmse, rel=1e-6)
    assert c.METRICS_FILE in {p.name for p in (tmp_path / "spark").iterdir()}


def test_the_bias_baseline_refitted_with_its_own_shrinkage_is_the_same_on_both_paths(  # type: ignore[no-untyped-def]
        spark, fitted) -> None:
    """--bias-reg: the baseline's biases are refitted with the shrinkage best for biases alone when
    the model took another; the Spark path and the driver must refit the same biases."""
    import dataclasses

    splits, fit, options = fitted["splits"], fitted["fit"], fitted["options"]
    other = dataclasses.replace(fit, baseline_bias_reg=100.0)
    on_spark = stages._rating_errors(other, splits)
    on_driver = stages._local_test_metrics(fit.local, options, SEED, 100.0)[0]
    own = stages._local_test_metrics(fit.local, options, SEED)[0]
    for name in ("bias_rmse", "bias_mae"):
        assert on_driver[name] == pytest.approx(on_spark[name], rel=1e-5), name
        assert on_driver[name] != pytest.approx(own[name], rel=1e-3), "another shrinkage, other biases"
    assert on_driver["rmse"] == own["rmse"], "the model itself is untouched"


@pytest.fixture(scope="module")
def plays_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("local_implicit") / "plays.tsv"
    datagen.write_r1(path, datagen.r1_lines(datagen.generate(N_RATINGS, seed=SEED, bad_share=0.0, shape="listening")))
    return path


@pytest.fixture(scope="module")
def implicit_fitted(spark, plays_file: Path):  # type: ignore[no-untyped-def]
    """An implicit model fitted on the driver from generated listening data, as the job's stages do."""
    options = TuningOptions(eval_users=0, metric="ndcg")
    inputs = stages.read_inputs(spark, InputOptions((str(plays_file),)), GateOptions())
    splits = stages.split(inputs, options, SEED)
    assert splits.local is not None, "implicit feedback under the driver bound is collected too"
    chosen = tuning.TuningResult(tuning.Candidate(6, 0.1, "ndcg", math.nan), [], 0.2, [])
    fit = stages.fit(spark, splits, chosen, ModelOptions(feedback=Feedback.IMPLICIT, max_iter=6, seed=SEED))
    assert fit.local is not None and fit.prepared is None
    return {"inputs": inputs, "splits": splits, "fit": fit, "options": options}


def test_implicit_test_metrics_and_top_n_on_the_driver_equal_sparks(spark, implicit_fitted) -> None:  # type: ignore[no-untyped-def]
    """The same implicit model scored by the Spark path (read back from the DataFrames) and on the
    driver: no rating errors, the same ranking metrics for the model and for popularity (every
    play counts), the same users, and the same top-N for every user, with no predicted rating."""
    splits, fit, options, inputs = (implicit_fitted[k] for k in ("splits", "fit", "options", "inputs"))
    assert fit.model.params.global_mean == 0.0 and fit.model.params.residual_scale == 1.0
    on_spark = stages._spark_test_metrics(spark, fit, splits, inputs.blocked, Feedback.IMPLICIT, options, SEED)
    on_driver = stages._local_test_metrics(fit.local, options, SEED)
    assert on_driver[0] == on_spark[0] == {}
    for spark_metrics, driver_metrics in zip(on_spark[1:3], on_driver[1:3]):
        assert set(driver_metrics) == set(spark_metrics)
        for name, value in spark_metrics.items():
            assert driver_metrics[name] == pytest.approx(value, abs=1e-9), name
    assert on_driver[1]["ndcg_at_k"] > on_driver[2]["ndcg_at_k"] > 0, "the model beats popularity on plays"
    assert on_driver[3] == on_spark[3] == len({int(u) for u in splits.local.part(local_model.TEST).users})

    exclude = splits.whole.select(c.USER_ID, c.ARTIST_ID).unionByName(inputs.blocked)
    by_spark = recommend.recommend(spark, fit.model, exclude.select(c.USER_ID).distinct(), exclude, 5,
                                   fit.catalog).collect()
    by_driver = local_model.top_n(spark, fit.local, fit.catalog, 5).collect()
    assert sorted(map(tuple, by_driver)) == sorted(map(tuple, by_spark))
    assert all(r[c.PREDICTED_RATING] is None for r in by_driver)
    assert len(by_driver) == 5 * fit.local.data.user_ids.size


def test_implicit_model_written_from_the_arrays_is_model_fits(spark, implicit_fitted) -> None:  # type: ignore[no-untyped-def]
    """What model.fit writes for implicit feedback: users' bias 0, each artist's the share of the
    fit's users who played it, and n_ratings its plays."""
    fit, splits = implicit_fitted["fit"], implicit_fitted["splits"]
    fit_data = splits.fit_data
    users = fit_data.select(c.USER_ID).distinct().count()
    expected = {r[0]: (r[1] / users, r[2]) for r in fit_data.groupBy(c.ARTIST_ID).agg(
        F.countDistinct(c.USER_ID), F.count("*")).collect()}
    written = {r[c.ARTIST_ID]: (r[BIAS], r[PLAYS]) for r in fit.model.items.collect()}
    assert written.keys() == expected.keys()
    for artist, (share, plays) in expected.items():
        assert written[artist][0] == pytest.approx(share, rel=1e-12) and written[artist][1] == plays
    assert {r[BIAS] for r in fit.model.users.collect()} == {0.0}
    assert fit.model.users.count() == users


def test_implicit_input_above_the_driver_bound_is_tuned_and_fitted_on_spark_alike(  # type: ignore[no-untyped-def]
        spark, plays_file: Path, tmp_path: Path) -> None:
    """The same grid tuned in NumPy and with Spark fits (tuning.tune_on_spark) picks the same
    candidate, and the two models rank the test plays alike (different random starts)."""
    runs = {}
    for name, bound in (("driver", None), ("spark", N_RATINGS - 1000)):
        fields = dict(inputs=(str(plays_file),), output=str(tmp_path / name), feedback="implicit", ranks=(4, 8),
                      reg_params=(0.1,), max_iter=5, popularity_weights=(0.0, 0.2), shuffle_partitions=2, seed=SEED,
                      min_ndcg_gain=-1.0)
        if bound is not None:
            fields["sample_ratings"] = bound
        runs[name] = execute(spark, JobConfig.from_fields(**fields)).metrics
    driver, on_spark = runs["driver"], runs["spark"]
    assert driver.spark["model"] == "numpy" and on_spark.spark["model"] == "spark"
    assert driver.task_s == {} and 0 < on_spark.task_s["recommend_scoring"] <= 2 * on_spark.timings_s["recommend"]
    assert [g["rank"] for g in driver.grid] == [g["rank"] for g in on_spark.grid] == [4, 8]
    for mine, theirs in zip(driver.grid, on_spark.grid):
        assert mine["ndcg"] == pytest.approx(theirs["ndcg"], abs=0.03)
    assert driver.best_params.popularity_weight == on_spark.best_params.popularity_weight
    assert driver.test.ranking.ndcg_at_k == pytest.approx(on_spark.test.ranking.ndcg_at_k, abs=0.03)
    assert driver.test.baselines.popularity.ndcg_at_k == pytest.approx(on_spark.test.baselines.popularity.ndcg_at_k,
                                                                       abs=1e-6)
