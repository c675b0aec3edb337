"""Explicit tuning tries ranks in increasing order and stops at the first larger rank that did not
beat the rank before it (`--all-ranks` tries them all). Candidates are scored by a stand-in with
known validation figures (no ALS, no Spark): what is fitted, and in what order, is the point."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from glue_jobs.recommender import local_als, tuning
from glue_jobs.recommender.config import ModelOptions, TuningOptions


def run_grid(monkeypatch: pytest.MonkeyPatch, rmse_by_rank: dict[int, float], *,
             all_ranks: bool = False, metric: str = "rmse") -> list[tuple[int, float]]:
    """The grid _fit_grid returns when each candidate's validation figure is its rank's
    (plus a little per regParam, so the regParams stay distinct)."""
    def fake(folds: object, params: tuple[int, float], model: ModelOptions,
             options: TuningOptions) -> tuple[tuning.Candidate, local_als.Factors]:
        value = rmse_by_rank[params[0]] + params[1]
        factors = local_als.Factors(np.zeros((1, params[0])), np.zeros((1, params[0])))
        return tuning.Candidate(params[0], params[1], options.metric, value, 0.1), factors

    monkeypatch.setattr(tuning, "_evaluate_candidate", fake)
    options = TuningOptions(ranks=tuple(r for r in rmse_by_rank if r), reg_params=(0.05, 0.1),
                            all_ranks=all_ranks, metric=metric)
    grid, first_fold = tuning._fit_grid([], ModelOptions(), options)
    assert set(first_fold) == {(g.rank, g.reg_param) for g in grid}
    return [(g.rank, g.reg_param) for g in grid]


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
