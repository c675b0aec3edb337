"""--bias-reg tuning: the grid's best refitted at each other shrinkage, chosen on validation, and
the bias baseline's shrinkage chosen for biases alone (no Spark)."""

from __future__ import annotations

import numpy as np
import pytest

from glue_jobs import datagen
from glue_jobs.recommender import local_als, tuning
from glue_jobs.recommender.config import ModelOptions, TuningOptions

OPTIONS = TuningOptions(ranks=(10,), reg_params=(0.05,), popularity_weights=(0.0,))


def tuning_data(users: np.ndarray, items: np.ndarray, values: np.ndarray, seed: int = 1) -> tuning.TuningData:
    user_ids, u = np.unique(users, return_inverse=True)
    item_ids, i = np.unique(items, return_inverse=True)
    ratings = local_als.Ratings(u.astype(np.int64), i.astype(np.int64), values.astype(np.float64),
                                user_ids.size, item_ids.size)
    in_valid = np.random.default_rng(seed).random(values.size) < 0.15
    none = np.zeros(0, np.int64)
    return tuning.TuningData(ratings, in_valid, none, none, user_ids, item_ids)


def shrink(data: tuning.TuningData, bias_reg: tuple[float, ...]) -> tuning.BiasShrinkage:
    model = ModelOptions(max_iter=8, bias_reg=bias_reg)
    folds = tuning.local_folds(data, model, OPTIONS, bias_reg[0])
    grid, first_fold = tuning._fit_grid(folds, model, OPTIONS)
    return tuning.tune_bias_reg(data, folds, grid, first_fold, model, OPTIONS)


@pytest.fixture(scope="module")
def generated() -> tuning.TuningData:
    data = datagen.generate(100_000, seed=3, bad_share=0.0)
    keep = data.ratings <= 100
    return tuning_data(data.users[keep], data.artists[keep], data.ratings[keep])


def test_the_model_takes_the_shrinkage_with_the_best_validation_figure(generated: tuning.TuningData) -> None:
    result = shrink(generated, (10.0, 30.0, 100.0))
    assert [p["bias_reg"] for p in result.curve] == [10.0, 30.0, 100.0]
    best = min(result.curve, key=lambda p: p["rmse"])
    assert result.bias_reg == best["bias_reg"] and result.best.value == pytest.approx(best["rmse"], abs=1e-6)
    # The chosen model's folds (the popularity weight and the refit use them) carry its biases.
    train = generated.ratings.subset(~generated.in_valid)
    expected = local_als.prepare(train, result.bias_reg)
    np.testing.assert_allclose(result.folds[0].prepared.item_bias, expected.item_bias)
    baseline = min(result.curve, key=lambda p: p["bias_only_rmse"])
    assert result.baseline_bias_reg == baseline["bias_reg"]
    # On this data ALS wants the biases shrunk harder than biases alone do (the point of tuning
    # them): the bias baseline is not weakened by the model's choice.
    assert result.bias_reg > result.baseline_bias_reg


def test_the_baseline_shrinkage_follows_the_data_not_the_model() -> None:
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 300, 12_000), rng.integers(0, 200, 12_000)
    # No biases at all: the strongest shrinkage predicts best.
    noise = tuning_data(users, items, np.clip(np.round(50 + 15 * rng.standard_normal(users.size)), 0, 100))
    assert shrink(noise, (10.0, 30.0, 100.0)).baseline_bias_reg == 100.0
    # Strong, well-sampled biases and little noise: the weakest shrinkage predicts best.
    user_bias, item_bias = rng.normal(0, 20, 300), rng.normal(0, 20, 200)
    clear = np.clip(np.round(50 + user_bias[users] + item_bias[items] + rng.normal(0, 3, users.size)), 0, 100)
    assert shrink(tuning_data(users, items, clear), (100.0, 30.0, 10.0)).baseline_bias_reg == 10.0


def test_one_value_is_not_tuned(generated: tuning.TuningData) -> None:
    result = shrink(generated, (25.0,))
    assert result.curve == [] and result.bias_reg == result.baseline_bias_reg == 25.0


def test_the_model_is_never_worse_on_validation_than_biases_alone_at_any_shrinkage() -> None:
    """A weak rank-2 signal under heavy noise: ALS narrowly beats the biases at the first value,
    while at a stronger shrinkage the biases alone beat both (seed found by search). The bias-only
    model competes at every value, so it wins there."""
    rng = np.random.default_rng(3)
    n_users, n_items, n = 300, 200, 12_000
    users, items = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    user_bias, item_bias = rng.normal(0, 2, n_users), rng.normal(0, 2, n_items)
    taste_u, taste_i = rng.normal(0, 1, (n_users, 2)), rng.normal(0, 1, (n_items, 2))
    signal = rng.uniform(1, 4)
    values = np.clip(np.round(50 + user_bias[users] + item_bias[items]
                              + signal * (taste_u[users] * taste_i[items]).sum(1) + 15 * rng.standard_normal(n)),
                     0, 100)
    data = tuning_data(users, items, values)
    options = TuningOptions(ranks=(2,), reg_params=(0.1, 0.2), popularity_weights=(0.0,))
    model = ModelOptions(max_iter=8, bias_reg=(10.0, 30.0, 100.0))
    folds = tuning.local_folds(data, model, options, 10.0)
    grid, first_fold = tuning._fit_grid(folds, model, options)
    assert tuning.choose(grid).rank == 2, "ALS wins the grid at the first value: the case this is about"
    result = tuning.tune_bias_reg(data, folds, grid, first_fold, model, options)
    assert result.best.value <= min(p["bias_only_rmse"] for p in result.curve) + 1e-6, result  # curve: 6 digits
    assert (result.best.rank, result.bias_reg) == (0, result.baseline_bias_reg)
