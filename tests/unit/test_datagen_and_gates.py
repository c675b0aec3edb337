"""Sample data structure, gates and reporting helpers."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from glue_jobs import contracts as c
from glue_jobs import datagen
from glue_jobs.recommender import report
from glue_jobs.recommender.config import Feedback, JobConfig
from glue_jobs.recommender.errors import JobFailed
from glue_jobs.recommender.metrics import Baselines, Ranking, RunMetrics, TestMetrics
from glue_jobs.recommender.stages import Choice, check_quarantine, quality_gate
from glue_jobs.recommender.tuning import Candidate, choose


def test_generated_data_has_heavy_tails_and_labelled_bad_rows() -> None:
    data = datagen.generate(50_000, seed=1, bad_share=0.01)
    assert data.users.size == 50_000
    per_user = np.bincount(np.unique(data.users, return_inverse=True)[1])
    per_artist = np.bincount(np.unique(data.artists, return_inverse=True)[1])
    assert per_user.max() > 8 * np.median(per_user)  # a few very active users
    assert per_artist.max() > 20 * np.median(per_artist)  # a few very popular artists
    assert ((data.ratings == c.NEVER_PLAY_AGAIN).mean()) > 0.001
    clean = data.ratings[data.ratings != c.NEVER_PLAY_AGAIN]
    assert clean.min() >= 0 and clean.max() <= 100
    assert len(set(zip(data.users.tolist(), data.artists.tolist()))) == data.users.size
    kinds = Counter(kind for kind, _ in data.bad_lines)
    assert set(kinds) == set(datagen.BAD_ROW_KINDS)
    assert set(datagen.BAD_ROW_KINDS) <= set(c.QUARANTINE_REASONS)


def test_generation_is_reproducible_for_a_seed() -> None:
    a, b = datagen.generate(5_000, seed=9), datagen.generate(5_000, seed=9)
    assert np.array_equal(a.ratings, b.ratings) and a.bad_lines == b.bad_lines
    assert not np.array_equal(a.ratings, datagen.generate(5_000, seed=10).ratings)


def test_files_round_trip_r1_layout_gzip_and_windows_1252(tmp_path: Path) -> None:
    data = datagen.generate(2_000, seed=2)
    datagen.write_r1(tmp_path / "r.tsv.gz", datagen.r1_lines(data, 2))
    with gzip.open(tmp_path / "r.tsv.gz", "rt") as fh:
        lines = fh.read().splitlines()
    assert len(lines) == 2_000 + len(data.bad_lines)
    names = datagen.artist_names(data.artists[:50])
    datagen.write_artist_names(tmp_path / "a.txt", names)
    raw = (tmp_path / "a.txt").read_bytes()
    assert raw.decode("cp1252").splitlines()[0] == "-100\tNot Applicable"
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # really Windows-1252, like R1's names file, when accents appear


def test_dms_output_carries_the_labelled_bad_rows_among_its_changes(tmp_path: Path) -> None:
    data = datagen.generate(3_000, seed=4, bad_share=0.02)
    written = datagen.write_dms(tmp_path, data, seed=4)
    assert len(written.bad_lines) == len(data.bad_lines) > 0
    # Every kind a DMS replay can quarantine, and the R1 duplicates turned into unknown Ops.
    kinds = Counter(kind for kind, _ in written.bad_lines)
    assert set(kinds) == set(datagen.DMS_BAD_ROW_KINDS) == set(c.QUARANTINE_REASONS) - {c.DUPLICATE_PAIR}
    r1_kinds = Counter(kind for kind, _ in data.bad_lines)
    assert kinds[c.UNKNOWN_DMS_OP] == r1_kinds[c.DUPLICATE_PAIR]
    changes = [line for path in sorted(tmp_path.glob("2026*.csv"))
               for line in path.read_text().splitlines()[1:]]
    load = (tmp_path / "LOAD00000001.csv").read_text().splitlines()[1:]
    assert len(load) == written.rows["load"]
    good = written.rows["insert"] + written.rows["update"] + written.rows["delete"]
    assert len(changes) == good + len(written.bad_lines)
    assert Counter(changes) >= Counter(line for _, line in written.bad_lines)


def config(**kw: object) -> JobConfig:
    return JobConfig.from_fields(inputs=("in",), output="out", **kw)


def test_quarantine_gate_fails_above_the_share_and_names_reasons() -> None:
    max_share = config().gates.max_quarantine_share
    check_quarantine({"malformed_line": 5}, 100, ("in",), max_share)  # exactly 5% is allowed
    with pytest.raises(JobFailed, match=r"6 of 100 input rows \(6.0%\).*malformed_line=4, pseudo_artist=2"):
        check_quarantine({"malformed_line": 4, "pseudo_artist": 2}, 100, ("in",), max_share)
    with pytest.raises(JobFailed, match="input in holds no rows"):
        check_quarantine({}, 0, ("in",), max_share)


def measured(rmse: float | None, ndcg: float, global_mean: float = 20.0) -> TestMetrics:
    return TestMetrics(rmse, None, Ranking(ndcg_at_k=ndcg),
                       Baselines(bias_rmse=16.0, global_mean_rmse=global_mean, popularity=Ranking(ndcg_at_k=0.12)), 10)


def test_quality_gate_compares_with_the_right_baseline() -> None:
    explicit, implicit = Feedback.EXPLICIT, Feedback.IMPLICIT
    gate = quality_gate(measured(15.0, 0.1), explicit, config().gates)
    assert gate.passed and gate.below and gate.limit == 16.16, "1% of test noise by default"
    # The bias-only model won: its test RMSE is the bias baseline's, and that passes.
    assert quality_gate(measured(16.0, 0.1), explicit, config().gates).passed
    assert quality_gate(measured(16.16, 0.1), explicit, config().gates).passed
    with pytest.raises(JobFailed, match=r"rmse = 16.2 is not at most 16.16 .*Test noise or the code: ALS rank 8 "
                                        r"beat the bias-only model on validation RMSE but lost"):
        quality_gate(measured(16.2, 0.1), explicit, config().gates, Choice(8, "rmse"))
    # Where the settings explain a failure, the message names the setting, not a bug.
    for choice, blamed in ((Choice(0, "rmse"), r"the bias-only model won on validation.*--min-rmse-gain 0.1"),
                           (Choice(8, "rmse", "20261130T000000Z-abcd"), r"reused from run 20261130T000000Z-abcd"),
                           (Choice(8, "ndcg_at_k"), r"chosen by validation ndcg_at_k, not RMSE")):
        with pytest.raises(JobFailed, match=r"The settings: .*" + blamed):
            quality_gate(measured(16.0, 0.1), explicit, config(min_rmse_gain=0.1).gates, choice)
    with pytest.raises(JobFailed, match=r"quality gate failed: rmse = 15.0 is not at most 14.4 \(bias_rmse"):
        quality_gate(measured(15.0, 0.1), explicit, config(min_rmse_gain=0.1).gates)
    with pytest.raises(JobFailed, match=r"The data: user and artist biases \(16.0\) predict no better than the "
                                        r"global mean \(15.9\)"):
        quality_gate(measured(17.0, 0.1, global_mean=15.9), explicit, config().gates)
    with pytest.raises(JobFailed, match=r"ndcg_at_k = 0.1 is not above 0.12 \(popularity_ndcg_at_k.*Implicit ALS"):
        quality_gate(measured(None, 0.1), implicit, config(feedback=implicit).gates)
    assert quality_gate(measured(None, 0.13), implicit, config(feedback=implicit).gates).metric == "ndcg_at_k"


def test_quality_gate_without_test_figures_fails_clearly() -> None:
    explicit, implicit = Feedback.EXPLICIT, Feedback.IMPLICIT
    empty = TestMetrics(None, None, Ranking(), Baselines(), 0)
    with pytest.raises(JobFailed, match=r"cannot judge the model: the test split \(0 users evaluated\) "
                                        r"gave no rmse and no bias_rmse"):
        quality_gate(empty, explicit, config().gates)
    with pytest.raises(JobFailed, match=r"gave no ndcg_at_k and no popularity_ndcg_at_k"):
        quality_gate(empty, implicit, config(feedback=implicit).gates)
    no_baseline = TestMetrics(15.0, None, Ranking(ndcg_at_k=0.2),
                              Baselines(popularity=Ranking(ndcg_at_k=float("nan"))), 3)
    with pytest.raises(JobFailed, match=r"gave no bias_rmse,"):
        quality_gate(no_baseline, explicit, config().gates)
    with pytest.raises(JobFailed, match=r"gave no popularity_ndcg_at_k,"):
        quality_gate(no_baseline, implicit, config(feedback=implicit).gates)


def test_model_selection_prefers_lower_rmse_then_simpler_models() -> None:
    cands = [Candidate(50, 0.1, "rmse", 10.0), Candidate(10, 0.2, "rmse", 10.0),
             Candidate(10, 0.1, "rmse", 10.0), Candidate(20, 0.1, "rmse", float("nan"))]
    assert choose(cands) == Candidate(10, 0.2, "rmse", 10.0)
    ndcg = [Candidate(10, 0.1, "ndcg", 0.2), Candidate(20, 0.1, "ndcg", 0.3)]
    assert choose(ndcg).rank == 20


def test_report_draws_every_chart_with_the_figures() -> None:
    metrics = RunMetrics.from_dict({
        "run_id": "r", "feedback": "explicit", "k": 10, "top_n": 5, "spark": {}, "input_format": "r1",
        "rmse": 12.5, "mae": None, "baselines": {"bias_rmse": 15.0}, "evaluated_users": 3,
        "grid": [{"rank": 10, "reg_param": 0.1, "rmse": 13.0}, {"rank": 10, "reg_param": 0.2, "rmse": 12.0}],
        "popularity_weight_curve": [], "best_params": {"rank": 10, "reg_param": 0.2, "popularity_weight": 0.0},
        "selection_metric": "rmse", "timings_s": {"tune": 3.0}, "quarantine": {"malformed_line": 2},
        "counts": {"input_rows": 11, "ratings": 9, "users": 3, "items": 4, "never_play_again": 0, "train": 7,
                   "validation": 1, "test": 1, "quarantined": 2, "recommendations": 15},
        "quality_gate": {"passed": True, "metric": "rmse", "value": 12.5, "baseline": "bias_rmse",
                         "must_be_below": 15.0},
        "catalog_coverage": 0.5})
    page = report.render(metrics, [("0-9", 3), ("10-19", 5)], [("90-100", 7)])
    assert page.count("<svg") == 4
    assert "12.5000" in page and "15.0000" in page
    assert "malformed_line" in page and "passed" in page
