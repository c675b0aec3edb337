"""The bench's quality table (issue 13): on generated R1 data at two sizes and on data in the
shape of listening logs and of a 1..5 star catalogue, the job's chosen model beside the bias
baseline, the popularity list and plain Spark ALS as the usual notebook runs it, every figure on
the same held-out test pairs (the job's split).

    python tools/bench.py --quality [--quality-sizes 100000,1000000] [--quality-shape-size 100000]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from glue_jobs import contracts as c  # noqa: E402
from glue_jobs import datagen  # noqa: E402
from glue_jobs.recommender.metrics import RunMetrics  # noqa: E402

# One point of the notebook's grid (rank 10,50,100,150 x regParam .01,.05,.1,.15) instead of its
# 5-fold search: 16 x 5 fits per row would cost more than the rest of the bench together.
NOTEBOOK_RANK, NOTEBOOK_REG = 10, 0.1
K = 10
SHAPE_NAMES = {"r1": "R1", "listening": "listening", "stars": "stars (x20)"}

RunJob = Callable[[list[str]], tuple[float, float, int]]  # bench.run_job: wall s, peak MB, exit code


def shape_file(work: Path, shape: str, size: int) -> Path:
    """The generated file of a shape and size (seed 42), written once under work/data."""
    path = work / "data" / (f"ratings-{size}.tsv" if shape == "r1" else f"{shape}-{size}.tsv")
    if not path.exists():
        data = datagen.generate(size, seed=42, shape=shape)
        datagen.write_r1(path, datagen.r1_lines(data, 42))
    return path


def job_options(shape: str) -> list[str]:
    """The job's options as a user would run it: defaults, and on listening data `--feedback auto`."""
    return ["--feedback", "auto"] if shape == "listening" else []


def run_notebook(data_file: Path, feedback: str) -> dict[str, Any] | str:
    """tools/bench_notebook.py with one fixed grid point on the job's split: its JSON, or why it failed."""
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_notebook.py"), "--input", str(data_file),
                             "--no-cv", "--ranks", str(NOTEBOOK_RANK), "--reg-params", str(NOTEBOOK_REG),
                             "--feedback", feedback, "--k", str(K)], cwd=ROOT, capture_output=True, text=True)
    line = next((x for x in result.stdout.splitlines() if x.startswith("{")), None)
    if result.returncode or line is None:
        return f"failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else '?'}"
    parsed: dict[str, Any] = json.loads(line)
    return parsed


@dataclass(frozen=True)
class QualityRun:
    """One data set's runs: the job's metrics.json (None if it wrote none) and the notebook's figures."""

    shape: str
    size: int
    job_wall_s: float
    job_exit: int
    metrics: RunMetrics | None
    notebook: dict[str, Any] | str  # bench_notebook's JSON, or why it failed


Done = dict[int, tuple[float, Path]]  # R1 size -> wall s and --output of a default run made by this bench


def measure(work: Path, shape: str, size: int, run_job: RunJob, done: Done | None = None) -> QualityRun:
    """Runs the job (or takes this bench's default run of the same R1 file), then the notebook."""
    data_file = shape_file(work, shape, size)
    if shape == "r1" and done and size in done:
        (wall, out), code = done[size], 0
    else:
        out = work / f"quality-{shape}-{size}"
        shutil.rmtree(out, ignore_errors=True)
        wall, _, code = run_job(["--input", str(data_file), "--output", str(out), *job_options(shape)])
    metrics_file = out / c.METRICS_FILE  # absent when the job stopped: a gate refused the run, or it failed
    metrics = RunMetrics.from_json(metrics_file.read_text()) if metrics_file.exists() else None
    notebook = run_notebook(data_file, metrics.feedback if metrics else "explicit")  # resolved: never "auto"
    print(f"quality, {shape} {size:,}: job {wall:.1f} s (exit {code}), notebook "
          f"{notebook['seconds'] if isinstance(notebook, dict) else notebook}", flush=True)
    return QualityRun(shape, size, wall, code, metrics, notebook)


def fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def error_cell(value: float | None, shape: str) -> str:
    """RMSE or MAE; on the stars shape also on the 1..5 scale (/ STAR_SCALE), as MovieLens is quoted."""
    if value is None or shape != "stars":
        return fmt(value, 3)
    return f"{value:.3f} ({value / datagen.STAR_SCALE:.3f} stars)"


def ratio(value: float | None, reference: float | None, gain: bool = False) -> str:
    """value / reference ("1.52x"), or with gain=True the error reduction against it ("-23.4%")."""
    if value is None or not reference:
        return ""
    return f"{value / reference - 1:+.1%}" if gain else f"{value / reference:.2f}x"


def chosen_model(m: RunMetrics) -> str:
    bp = m.best_params
    model = "bias only (rank 0)" if bp.rank == 0 else f"rank {bp.rank}, reg {bp.reg_param:g}"
    bias_reg = "" if bp.bias_reg is None else f", bias reg {bp.bias_reg:g}"
    blend = f", blend {bp.blend_weight:g}" if bp.blend_weight else ""
    return f"job: {model}{bias_reg}, popularity weight {bp.popularity_weight:g}{blend}"


HEADER = ["| data | feedback (job) | model | RMSE | MAE | RMSE vs bias | P@10 | NDCG@10 | P@10 vs popularity | "
          "NDCG@10 vs popularity | s |",
          "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]


def quality_rows(run: QualityRun) -> list[str]:
    """The table's four rows for one data set: the job's model, bias, popularity, notebook ALS."""
    data = f"{SHAPE_NAMES[run.shape]}, {run.size:,}"
    m = run.metrics
    if m is None:
        return [f"| {data} | | job stopped (exit {run.job_exit}: a gate refused the run, or it failed), "
                f"no metrics.json | | | | | | | | "
                f"{run.job_wall_s:.1f} |"]
    t, b = m.test, m.baselines
    pop_p, pop_n = b.popularity.precision_at_k, b.popularity.ndcg_at_k
    feedback = m.feedback + (f", exit {run.job_exit}" if run.job_exit else "")

    def row(name: str, rmse: float | None, mae: float | None, p: float | None, n: float | None, s: str) -> str:
        return (f"| {data if name.startswith('job') else ''} | {feedback if name.startswith('job') else ''} | "
                f"{name} | {error_cell(rmse, run.shape)} | {error_cell(mae, run.shape)} | "
                f"{ratio(rmse, b.bias_rmse, gain=True)} | {fmt(p)} | {fmt(n)} | {ratio(p, pop_p)} | "
                f"{ratio(n, pop_n)} | {s} |")

    rows = [row(chosen_model(m), t.rmse, t.mae, t.ranking.precision_at_k, t.ranking.ndcg_at_k,
                f"{run.job_wall_s:.1f}"),
            row("bias baseline", b.bias_rmse, b.bias_mae, None, None, ""),
            row("popularity", None, None, pop_p, pop_n, "")]
    nb = run.notebook
    if isinstance(nb, str):
        return [*rows, f"| | | notebook ALS {nb} | | | | | | | | |"]
    name = f"notebook ALS (rank {nb['rank']}, reg {nb['reg_param']:g})"
    if nb["test_rows"] != m.counts.test:  # not the job's test split: the comparison would be void
        name += f", NOT the job's split ({nb['test_rows']:,} test rows, job {m.counts.test:,})"
    elif nb["test_rows_scored"] < nb["test_rows"]:
        name += f", errors on {nb['test_rows_scored'] / nb['test_rows']:.1%} of the pairs (cold start dropped)"
    return [*rows, row(name, nb["rmse"], nb["mae"], nb["precision_at_k"], nb["ndcg_at_k"], f"{nb['seconds']:.1f}")]


def quality_table(runs: list[QualityRun]) -> list[str]:
    lines = [f"Quality on the job's held-out test pairs (`python tools/bench.py --quality`): each data set "
             "generated by `python -m glue_jobs.datagen --shape ...` (seed 42), the job run as a user "
             "would (default options; on listening data `--feedback auto`), its "
             "metrics.json giving the chosen model, the bias baseline and the popularity list; the notebook "
             "ALS (`tools/bench_notebook.py --no-cv`: plain ALS, nonnegative, coldStart drop, "
             f"recommendForAllUsers, seen artists not excluded) fitted once at rank {NOTEBOOK_RANK}, "
             f"regParam {NOTEBOOK_REG} (one point of its grid, not its 5-fold search, to keep the bench "
             "affordable) on the job's train + validation and scored on the job's test split. RMSE vs bias: "
             "the change in RMSE against the bias baseline (negative is better). Stars are written x20, so "
             "RMSE / 20 is on the 1..5 scale (MovieLens 100k: bias 0.947, SVD++ 0.919).", "", *HEADER]
    for run in runs:
        lines += quality_rows(run)
    return lines


def main_quality(work: Path, out: Path, r1_sizes: list[int], shape_size: int, run_job: RunJob,
                 done: Done | None = None) -> int:
    """Runs every row, writes the table to `out` and prints it; 1 when a job wrote no metrics."""
    start = time.perf_counter()
    plan = [("r1", size) for size in r1_sizes] + [(shape, shape_size) for shape in ("listening", "stars")]
    runs = [measure(work, shape, size, run_job, done) for shape, size in plan]
    table = "\n".join(quality_table(runs))
    took = f"\n\nThe table took {time.perf_counter() - start:.0f} s to measure.\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + took)
    print()
    print(table + took)
    print(f"written to {out}")
    return 1 if any(run.metrics is None for run in runs) else 0
