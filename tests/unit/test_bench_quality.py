"""The bench's quality table (tools/bench_quality.py): which runs it makes, and that each figure
lands in its row and column (the runs themselves are the bench's; here they are faked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from glue_jobs import contracts as c
from glue_jobs.recommender.metrics import RunMetrics
from tests.sample_metrics import metrics_json
from tools import bench_notebook, bench_quality

NOTEBOOK = {"seconds": 12.3, "rmse": 18.9, "mae": 15.1, "test_rows_scored": 1892, "test_rows": 1892,
            "precision_at_k": 0.002, "ndcg_at_k": 0.004, "rank": 10, "reg_param": 0.1}


def run(shape: str = "r1", notebook: dict[str, Any] | str | None = None, **changes: object) -> bench_quality.QualityRun:
    metrics = RunMetrics.from_json(json.dumps(metrics_json(**changes)))
    return bench_quality.QualityRun(shape, 100_000, 41.5, 0, metrics, NOTEBOOK if notebook is None else notebook)


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_each_model_gets_its_own_figures_and_its_ratios_to_bias_and_popularity() -> None:
    best = {"rank": 10, "reg_param": 0.1, "popularity_weight": 30.0}  # a run from before bias_reg was tuned
    job, bias, popularity, notebook = (cells(line) for line in bench_quality.quality_rows(run(best_params=best)))
    assert len(bench_quality.HEADER[0].split("|")) - 2 == len(job)  # as many cells as the header
    # data, feedback, model, RMSE, MAE, RMSE vs bias, P@10, NDCG@10, P@10 vs pop., NDCG vs pop., s
    assert job == ["R1, 100,000", "explicit", "job: rank 10, reg 0.1, popularity weight 30", "17.560", "13.900",
                   "-12.6%", "0.0450", "0.1170", "1.55x", "1.54x", "41.5"]
    assert bias[2:8] == ["bias baseline", "20.100", "16.200", "+0.0%", "n/a", "n/a"]
    assert popularity[2:10] == ["popularity", "n/a", "n/a", "", "0.0290", "0.0760", "1.00x", "1.00x"]
    assert notebook[2:] == ["notebook ALS (rank 10, reg 0.1)", "18.900", "15.100", "-6.0%", "0.0020", "0.0040",
                            "0.07x", "0.05x", "12.3"]


def test_a_notebook_off_the_jobs_split_or_missing_pairs_is_called_out() -> None:
    off = bench_quality.quality_rows(run(notebook={**NOTEBOOK, "test_rows": 2000}))[-1]
    assert "NOT the job's split (2,000 test rows, job 1,892)" in off
    partial = bench_quality.quality_rows(run(notebook={**NOTEBOOK, "test_rows_scored": 1703}))[-1]
    assert "errors on 90.0% of the pairs" in partial
    failed = bench_quality.quality_rows(run(notebook="failed: java.lang.OutOfMemoryError"))
    assert len(failed) == 4 and "OutOfMemoryError" in failed[-1]


def test_stars_errors_are_also_given_on_the_five_star_scale_and_the_bias_only_model_is_named() -> None:
    job = cells(bench_quality.quality_rows(run("stars", best_params={
        "rank": 0, "reg_param": 0.0, "popularity_weight": 0.0, "bias_reg": 30.0}))[0])
    assert job[0] == "stars (x20), 100,000"
    assert job[2] == "job: bias only (rank 0), bias reg 30, popularity weight 0"
    blended = cells(bench_quality.quality_rows(run("stars"))[0])  # the sample run's blend weight 4
    assert blended[2] == "job: rank 10, reg 0.1, bias reg 30, popularity weight 30, blend 4"
    assert job[3] == "17.560 (0.878 stars)"


def test_a_job_that_stopped_without_metrics_says_so() -> None:
    """A gate's refusal stops the job before metrics.json is written (nothing is written then)."""
    missing = bench_quality.quality_rows(bench_quality.QualityRun("listening", 50_000, 3.0, 2, None, "failed: ?"))
    assert len(missing) == 1
    assert "job stopped (exit 2: a gate refused the run, or it failed), no metrics.json" in missing[0]


def test_listening_runs_with_feedback_auto_only_where_the_job_takes_it() -> None:
    from glue_jobs.recommender.config import Feedback, parse_args

    assert bench_quality.job_options("listening") == ["--feedback", "auto"]
    job = parse_args(["--input", "x.tsv", "--output", "out", *bench_quality.job_options("listening")])
    assert job.model.feedback is Feedback.AUTO  # what the bench passes, the job takes
    assert bench_quality.job_options("stars") == bench_quality.job_options("r1") == []


def test_measure_runs_the_job_then_the_notebook_with_the_feedback_the_job_ran(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs: list[list[str]] = []
    notebooks: list[tuple[Path, str]] = []

    def run_job(args: list[str]) -> tuple[float, float, int]:
        jobs.append(args)
        out = Path(args[args.index("--output") + 1])
        out.mkdir(parents=True)
        (out / c.METRICS_FILE).write_text(json.dumps(metrics_json(feedback="implicit")))
        return 7.0, 100.0, 0

    def run_notebook(data_file: Path, feedback: str) -> dict[str, Any]:
        notebooks.append((data_file, feedback))
        return NOTEBOOK

    monkeypatch.setattr(bench_quality, "run_notebook", run_notebook)
    measured = bench_quality.measure(tmp_path, "listening", 2_000, run_job)
    data_file = Path(jobs[0][jobs[0].index("--input") + 1])
    assert data_file == tmp_path / "data" / "listening-2000.tsv"
    assert len(data_file.read_text().splitlines()) == 2_000 + 10  # the generated file, bad rows included
    assert notebooks == [(data_file, "implicit")]
    assert measured.metrics is not None and measured.metrics.feedback == "implicit" and measured.job_wall_s == 7.0
    # An R1 size this bench already ran by default is not run again.
    done_out = tmp_path / "run-2000"
    done_out.mkdir()
    (done_out / c.METRICS_FILE).write_text(json.dumps(metrics_json()))
    reused = bench_quality.measure(tmp_path, "r1", 2_000, run_job, {2_000: (55.0, done_out)})
    assert len(jobs) == 1 and reused.job_wall_s == 55.0 and reused.metrics is not None


def test_the_notebook_refuses_a_single_fit_over_several_grid_points() -> None:
    with pytest.raises(SystemExit):
        bench_notebook.parse_args(["--input", "f", "--no-cv", "--ranks", "10,50"])
    opts = bench_notebook.parse_args(["--input", "f", "--no-cv", "--ranks", "10", "--reg-params", "0.1"])
    assert (opts.rank_list, opts.reg_list, opts.no_cv) == ([10], [0.1], True)
