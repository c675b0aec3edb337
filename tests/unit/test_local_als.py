"""The NumPy ALS used for tuning: Spark's weighted-lambda normal equations, biases, top-k and NDCG."""

from __future__ import annotations

import math

import numpy as np
import pytest

from glue_jobs import datagen
from glue_jobs.recommender import local_als, local_eval, recommend
from glue_jobs.recommender.model import BIAS_SWEEPS


def generated(n: int, seed: int = 3) -> local_als.Ratings:
    data = datagen.generate(n, seed=seed, bad_share=0.0)
    keep = data.ratings <= 100
    users, u = np.unique(data.users[keep], return_inverse=True)
    items, i = np.unique(data.artists[keep], return_inverse=True)
    return local_als.Ratings(u.astype(np.int64), i.astype(np.int64), data.ratings[keep].astype(np.float64),
                             users.size, items.size)


def test_each_factor_solves_the_weighted_lambda_normal_equations() -> None:
    """(Y_u^T Y_u + regParam * n_u * I) x_u = Y_u^T r_u for every user, both for users with
    fewer ratings than factors (solved through the smaller system) and with more."""
    prepared = local_als.prepare(generated(4000), 10.0)
    r, rank, reg = prepared.residuals, 12, 0.07
    factors = local_als.fit(local_als.Layout.of(r), rank=rank, reg_param=reg, iterations=3, seed=1)
    counts = np.bincount(r.users, minlength=r.n_users)
    assert (counts[counts > 0] < rank).any() and (counts > rank).any()
    for user in np.flatnonzero(counts):
        mine = r.users == user
        y = factors.items[r.items[mine]]
        lhs = (y.T @ y + reg * mine.sum() * np.eye(rank)) @ factors.users[user]
        assert lhs == pytest.approx(y.T @ r.values[mine], rel=1e-5, abs=1e-4)  # solved in float32


def test_fit_is_deterministic_for_a_seed_and_continues_from_a_start() -> None:
    layout = local_als.Layout.of(local_als.prepare(generated(3000), 10.0).residuals)
    a = local_als.fit(layout, rank=5, reg_param=0.1, iterations=4, seed=9)
    b = local_als.fit(layout, rank=5, reg_param=0.1, iterations=4, seed=9)
    other = local_als.fit(layout, rank=5, reg_param=0.1, iterations=4, seed=10)
    assert np.array_equal(a.users, b.users) and np.array_equal(a.items, b.items)
    assert not np.allclose(a.users, other.users)
    half = local_als.fit(layout, rank=5, reg_param=0.1, iterations=2, seed=9)
    resumed = local_als.fit(layout, rank=5, reg_param=0.1, iterations=2, seed=9, start=half)
    assert np.allclose(resumed.users, a.users)


def test_biases_and_scale_follow_model_prepare_formula() -> None:
    rows = [(0, 0, 90.0), (0, 1, 70.0), (1, 0, 50.0), (1, 2, 10.0), (2, 1, 40.0)]
    u, i, v = (np.array(col) for col in zip(*rows))
    reg = 2.0
    got = local_als.prepare(local_als.Ratings(u, i, v, 4, 4), reg)  # user 3 and item 3 unseen
    mu = v.mean()
    bu, bi = {x: 0.0 for x in range(3)}, {}
    for _ in range(BIAS_SWEEPS):
        bi = {a: sum(r - mu - bu[uu] for uu, aa, r in rows if aa == a) / (reg + sum(aa == a for _, aa, _ in rows))
              for a in range(3)}
        bu = {x: sum(r - mu - bi[a] for uu, a, r in rows if uu == x) / (reg + sum(uu == x for uu, _, _ in rows))
              for x in range(3)}
    assert got.global_mean == pytest.approx(mu)
    assert got.user_bias == pytest.approx([bu[0], bu[1], bu[2], 0.0])
    assert got.item_bias == pytest.approx([bi[0], bi[1], bi[2], 0.0])
    resid = np.array([r - mu - bu[uu] - bi[a] for uu, a, r in rows])
    assert got.scale == pytest.approx(resid.std())
    assert got.residuals.values == pytest.approx(resid / resid.std())


def test_predictions_are_clipped_and_unknown_ids_fall_back_to_the_mean() -> None:
    prepared = local_als.Prepared(50.0, np.array([5.0]), np.array([3.0]), 10.0,
                                  local_als.Ratings(np.zeros(0, int), np.zeros(0, int), np.zeros(0), 1, 1))
    factors = local_als.Factors(np.array([[1.0, 2.0]]), np.array([[0.5, 1.0]]))
    got = local_als.predict(prepared, factors, np.array([0, -1, 0]), np.array([0, 0, -1]), (0.0, 70.0))
    assert got == pytest.approx([70.0, 53.0, 55.0])  # 50+5+3+10*2.5 clipped; item bias; user bias


def test_lowest_k_breaks_ties_by_lower_column_and_skips_masked_items() -> None:
    cost = -np.array([[1.0, 3.0, 3.0, 2.0, 3.0],
                      [-np.inf, 1.0, -np.inf, -np.inf, -np.inf]])
    assert recommend.lowest_k(cost, 2).tolist() == [[1, 2], [1, -1]]
    assert recommend.lowest_k(cost, 4).tolist() == [[1, 2, 4, 3], [1, -1, -1, -1]]


def full_sort_top_k(cost: np.ndarray, k: int) -> list[list[int]]:
    """Each row's k lowest finite costs' columns, ties to the lower column, -1 past the finite ones."""
    out = []
    for row in cost:
        finite = np.flatnonzero(np.isfinite(row))
        best = finite[np.lexsort((finite, row[finite]))][:k]
        out.append(np.pad(best, (0, k - best.size), constant_values=-1).tolist())
    return out


def test_lowest_k_on_wide_rows_equals_a_full_sort_with_ties_and_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Wide enough for the sampled-bound prefilter; costs on a grid of 0.01 make ties at the k-th
    # value happen, masked cells (+inf) leave some rows short of k and some sampled columns empty.
    full = recommend._lowest_k_full
    whole_blocks = []

    def spy(cost: np.ndarray, k: int) -> np.ndarray:
        if cost.shape[1] == width:  # a selection over whole rows, not over the prefilter's candidates
            whole_blocks.append(cost.shape[0])
        return full(cost, k)

    monkeypatch.setattr(recommend, "_lowest_k_full", spy)
    rng = np.random.default_rng(11)
    for k, width in [(10, 3000), (3, 1000), (10, 5000)]:
        cost = np.round(rng.standard_normal((40, width)) * 100) / 100
        cost[rng.random(cost.shape) < 0.3] = np.inf
        cost[0, :] = np.inf
        cost[1, ::recommend.PREFILTER_STRIDE] = np.inf  # its sample is all masked: the whole row
        cost[2, :] = np.inf
        cost[2, [5, 600 % width]] = [1.0, 1.0]  # two unmasked cells, tied
        cost[3] = 10 + np.abs(cost[3])  # its k lowest all sampled: the bound is its k-th lowest itself
        cost[3, ::recommend.PREFILTER_STRIDE][:k] = np.arange(k)
        whole_blocks.clear()
        assert recommend.lowest_k(cost, k).tolist() == full_sort_top_k(cost, k)
        assert whole_blocks == [3]  # only the rows the sample cannot bound went the long way
    # every cell tied with the sampled bound: too many candidates, the whole block the long way
    tied = np.full((2, 700), 2.0)
    tied[0, -1] = 1.0
    assert recommend.lowest_k(tied, 10).tolist() == full_sort_top_k(tied, 10)


def test_ndcg_uses_binary_relevance_and_the_ideal_over_min_relevant_k() -> None:
    # Two items per user; user 0 likes item 1 (ranked second), user 1 likes both but rated item 0.
    prepared = local_als.Prepared(0.0, np.zeros(2), np.array([1.0, 0.0]), 1.0,
                                  local_als.Ratings(np.zeros(0, int), np.zeros(0, int), np.zeros(0), 2, 2))
    factors = local_als.Factors(np.zeros((2, 1)), np.zeros((2, 1)))
    task = local_eval.ranking_task(np.array([0, 1, 1]), np.array([1, 0, 1]), np.array([1]), np.array([0]), 2)
    got = local_eval.ndcg_at_k(task, prepared, factors, np.array([1, 1]), 2, [0.0])
    user0 = (1 / math.log2(3)) / 1.0
    user1 = 1.0 / (1 + 1 / math.log2(3))  # item 1 first (item 0 masked); ideal counts both relevant
    assert got == pytest.approx([(user0 + user1) / 2])


def test_grid_entries_get_their_cost_against_the_spark_fit() -> None:
    from glue_jobs.recommender import tuning

    grid = [{"rank": 10, "reg_param": 0.1, "rmse": 15.0, "seconds": 2.0}, {"rank": 20, "reg_param": 0.1, "rmse": 14.0}]
    assert tuning.relative_to_fit(grid, 8.0) == [{**grid[0], "vs_spark_fit": 0.25}, grid[1]]
    assert tuning.relative_to_fit(grid, 0.0) == grid
    assert tuning.relative_to_fit(grid, 4.0, "numpy") == [{**grid[0], "vs_numpy_fit": 0.5}, grid[1]]
