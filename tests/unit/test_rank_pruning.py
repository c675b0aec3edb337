"""Tuning on the driver tries ranks in increasing order and stops at the first larger rank that did
not beat the rank before it, and walks each rank's regParams (`--all-ranks` fits the whole grid).
Candidates are scored by a stand-in with known validation figures (no ALS, no Spark): what is
fitted, and in what order, is the point."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pytest

from glue_jobs.recommender import local_als, tuning
from glue_jobs.recommender.config import ModelOptions, TuningOptions


def fit_grid(monkeypatch: pytest.MonkeyPatch, score: Callable[[tuple[int, float]], float],
             options: TuningOptions) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """_fit_grid with each candidate's validation figure `score((rank, reg))`: the grid it
    returns (in --ranks order) and the candidates in the order they were fitted."""
    fitted: list[tuple[int, float]] = []

    def fake(folds: object, params: tuple[int, float], model: ModelOptions,
             options: TuningOptions) -> tuple[tuning.Candidate, local_als.Factors]:
        fitted.append(params)
        factors = local_als.Factors(np.zeros((1, params[0])), np.zeros((1, params[0])))
        return tuning.Candidate(params[0], params[1], options.metric, score(params), 0.1), factors

    monkeypatch.setattr(tuning, "_evaluate_candidate", fake)
    grid, first_fold = tuning._fit_grid([], ModelOptions(), options)
    reported = [(g.rank, g.reg_param) for g in grid]
    assert set(first_fold) == set(reported) and sorted(fitted) == sorted(reported)
    return reported, fitted


def run_grid(monkeypatch: pytest.MonkeyPatch, rmse_by_rank: dict[int, float], *,
             all_ranks: bool = False, metric: str = "rmse") -> list[tuple[int, float]]:
    """The grid _fit_grid returns when each candidate's validation figure is its rank's
    (plus a little per regParam, so the regParams stay distinct)."""
    options = TuningOptions(ranks=tuple(r for r in rmse_by_rank if r), reg_params=(0.05, 0.1),
                            all_ranks=all_ranks, metric=metric)
    return fit_grid(monkeypatch, lambda params: rmse_by_rank[params[0]] + params[1], options)[0]


def test_a_larger_rank_is_not_fitted_once_the_rank_before_stopped_helping(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="recommender"):
        grid = run_grid(monkeypatch, {0: 20.0, 10: 12.0, 20: 13.0, 50: 11.0})  # 50 would have won
    assert grid == [(0, 0.0), (10, 0.05), (10, 0.1), (20, 0.05), (20, 0.1)]
    assert "ranks 50 not tried: rank 20's best rmse (13.05) did not beat rank 10's (12.05)" in caplog.text


def test_ranks_are_fitted_in_increasing_order_while_each_beats_the_one_before(monkeypatch: pytest.MonkeyPatch) -> None:
    # --ranks in any order: 30 beat 10 (tried), 60 did not beat 30, so 90 is never fitted
    grid = run_grid(monkeypatch, {0: 20.0, 60: 12.5, 10: 13.0, 90: 11.0, 5: 14.0, 30: 12.0})
    assert sorted({rank for rank, _ in grid}) == [0, 5, 10, 30, 60]
    assert [rank for rank, _ in grid] == [0, 60, 60, 10, 10, 5, 5, 30, 30]  # reported in --ranks order


def test_ndcg_selection_compares_the_other_way(monkeypatch: pytest.MonkeyPatch) -> None:
    # higher is better: rank 20 beat rank 10, so 50 is tried
    grid = run_grid(monkeypatch, {0: 0.01, 10: 0.10, 20: 0.12, 50: 0.11}, metric="ndcg")
    assert {rank for rank, _ in grid} == {0, 10, 20, 50}
    grid = run_grid(monkeypatch, {0: 0.01, 10: 0.12, 20: 0.10, 50: 0.20}, metric="ndcg")
    assert {rank for rank, _ in grid} == {0, 10, 20}


def test_all_ranks_fits_every_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    grid = run_grid(monkeypatch, {0: 20.0, 10: 12.0, 20: 13.0, 50: 14.0}, all_ranks=True)
    assert grid == [(0, 0.0), (10, 0.05), (10, 0.1), (20, 0.05), (20, 0.1), (50, 0.05), (50, 0.1)]


def walk(monkeypatch: pytest.MonkeyPatch, value: dict[tuple[int, float], float], regs: tuple[float, ...],
         all_ranks: bool = False) -> list[tuple[int, float]]:
    """The candidates fitted, in the order they were submitted, when (rank, reg) scores `value`."""
    options = TuningOptions(ranks=tuple(sorted({r for r, _ in value if r})), reg_params=regs, all_ranks=all_ranks,
                            parallelism=1)
    return fit_grid(monkeypatch, lambda params: value.get(params, 20.0), options)[1]


REGS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


def test_regparams_are_walked_to_the_grids_best_with_fewer_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    # unimodal in regParam, best at 0.01 for rank 10 and at 0.2 for rank 20: the walk starts at the
    # middle (0.05) for rank 10 and at rank 10's choice (0.01) for rank 20
    curve10 = dict(zip(REGS, [11.0, 11.5, 12.0, 13.0, 14.0, 15.0]))
    curve20 = dict(zip(REGS, [14.0, 13.0, 12.5, 12.2, 10.5, 10.9]))
    value = {(0, 0.0): 19.0, **{(10, g): v for g, v in curve10.items()}, **{(20, g): v for g, v in curve20.items()}}
    fitted = walk(monkeypatch, value, REGS)
    assert set(fitted) == {(0, 0.0), (10, 0.02), (10, 0.05), (10, 0.1), (10, 0.01),
                           (20, 0.01), (20, 0.02), (20, 0.05), (20, 0.1), (20, 0.2), (20, 0.5)}
    assert fitted[:4] == [(0, 0.0), (10, 0.02), (10, 0.05), (10, 0.1)]
    assert fitted[5:7] == [(20, 0.01), (20, 0.02)], "rank 20 starts where rank 10 ended"
    full = walk(monkeypatch, value, REGS, all_ranks=True)
    assert len(full) == 1 + 2 * len(REGS)
    best = min(value, key=lambda params: value[params])
    assert best in fitted, "the walk reaches the whole grid's best"


def test_a_flat_curve_stops_after_the_first_three(monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    value = {(0, 0.0): 19.0, **{(10, g): 12.0 - abs(g - 0.05) for g in REGS}}
    value[(10, 0.05)] = 11.0  # best in the middle: its neighbours are fitted, nothing further
    with caplog.at_level(logging.INFO, logger="recommender"):
        fitted = walk(monkeypatch, value, REGS)
    assert fitted == [(0, 0.0), (10, 0.02), (10, 0.05), (10, 0.1)]
    assert "regParams not tried" in caplog.text and "rank=10 reg=0.5" in caplog.text
