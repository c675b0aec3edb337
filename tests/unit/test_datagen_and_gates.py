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
from glue_jobs.recommender.config import JobConfig
from glue_jobs.recommender.job import JobFailed, check_quarantine, quality_gate
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


def config(**kw: object) -> JobConfig:
    return JobConfig(inputs=("in",), output="out", **kw)  # type: ignore[arg-type]


def test_quarantine_gate_fails_above_the_share_and_names_reasons() -> None:
    check_quarantine({"malformed_line": 5}, 100, config())  # exactly 5% is allowed
    with pytest.raises(JobFailed, match=r"6 of 100 input rows \(6.0%\).*malformed_line=4, pseudo_artist=2"):
        check_quarantine({"malformed_line": 4, "pseudo_artist": 2}, 100, config())
    with pytest.raises(JobFailed, match="holds no rows"):
        check_quarantine({}, 0, config())


def test_quality_gate_compares_with_the_right_baseline() -> None:
    metrics = {"rmse": 15.0, "ndcg_at_k": 0.1,
               "baselines": {"bias_rmse": 16.0, "popularity_ndcg_at_k": 0.12}}
    assert quality_gate(metrics, config())["passed"]
    assert not quality_gate(metrics, config(min_rmse_gain=0.1))["passed"]  # needs < 14.4
    implicit = config(feedback="implicit", metric="ndcg")
    assert not quality_gate(metrics, implicit)["passed"]
    assert quality_gate({**metrics, "ndcg_at_k": 0.13}, implicit)["passed"]


def test_model_selection_prefers_lower_rmse_then_simpler_models() -> None:
    cands = [Candidate(50, 0.1, "rmse", 10.0), Candidate(10, 0.2, "rmse", 10.0),
             Candidate(10, 0.1, "rmse", 10.0), Candidate(20, 0.1, "rmse", float("nan"))]
    assert choose(cands) == Candidate(10, 0.2, "rmse", 10.0)
    ndcg = [Candidate(10, 0.1, "ndcg", 0.2), Candidate(20, 0.1, "ndcg", 0.3)]
    assert choose(ndcg).rank == 20


def test_report_draws_every_chart_with_the_figures() -> None:
    metrics = {"run_id": "r", "k": 10, "top_n": 5, "rmse": 12.5, "baselines": {"bias_rmse": 15.0},
               "grid": [{"rank": 10, "reg_param": 0.1, "rmse": 13.0}, {"rank": 10, "reg_param": 0.2, "rmse": 12.0}],
               "selection_metric": "rmse", "timings_s": {"tune": 3.0}, "quarantine": {"malformed_line": 2},
               "counts": {"ratings": 9}, "quality_gate": {"passed": True}, "catalog_coverage": 0.5}
    page = report.render(metrics, [("0-9", 3), ("10-19", 5)], [("90-100", 7)])
    assert page.count("<svg") == 4
    assert "12.5000" in page and "15.0000" in page
    assert "malformed_line" in page and "passed" in page
