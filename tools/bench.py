"""`make bench`: runs the default job on generated data of several sizes and prints a table of
wall time, stage timings, peak memory of the driver (Python + JVM, local mode) and quality.

    python tools/bench.py [--sizes 100000,1000000,4000000] [--notebook-sizes 20000] [--out .bench/results.md]
    python tools/bench.py --quality [--quality-sizes 100000,1000000,4000000] [--quality-shape-size 100000]

Then the quality table (tools/bench_quality.py, written to .bench/quality.md); `--quality` runs
only that.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from glue_jobs import contracts as c  # noqa: E402
from glue_jobs.recommender.metrics import RunMetrics  # noqa: E402
from glue_jobs.recommender.publish import files  # noqa: E402
from tools import bench_quality  # noqa: E402


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants (the job's Python and its JVM)."""
    tree = _children()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, []))
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
    return total / 2**20


def run_job(args: list[str]) -> tuple[float, float, int]:
    peak = 0.0
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "glue_jobs.recommender", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_mb(proc.pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode:
        print(output[-4000:], file=sys.stderr)
    return time.perf_counter() - start, peak, proc.returncode


def sample_file(work: Path, size: int) -> Path:
    """The generated R1 file of this size, shared with the quality table's R1 rows."""
    return bench_quality.shape_file(work, "r1", size)


# The notebook's grid as the issue compares it: ranks 10 and 50 (its 100 and 150 would take an hour
# at 150k ratings) x regParam .01,.05,.1,.15, 5 folds.
NOTEBOOK_RANKS = "10,50"


def notebook_row(size: int, data_file: Path, ours: tuple[int, float, float, RunMetrics]) -> str:
    """Runs the notebook approach in its own JVM and sets it beside the job's run on the same file."""
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_notebook.py"), "--input", str(data_file),
                             "--ranks", NOTEBOOK_RANKS], cwd=ROOT, capture_output=True, text=True)
    line = next((x for x in result.stdout.splitlines() if x.startswith("{")), None)
    if result.returncode or line is None:
        return f"| {size:,} | failed: {result.stderr.strip().splitlines()[-1] if result.stderr else '?'} |"
    nb = json.loads(line)
    m = ours[3]
    job_s = sum(m.timings_s.values())
    print(f"{size:>9} ratings, notebook: {nb['seconds']:.1f} s", flush=True)
    return (f"| {size:,} | {nb['seconds']:.1f} | {job_s:.1f} | {nb['seconds'] / job_s:.1f}x | "
            f"{nb['rmse']:.3f} / {fmt(m.rmse, 3)} | "
            f"{nb['precision_at_k']:.4f} / {fmt(m.test.ranking.precision_at_k)} | "
            f"{nb['ndcg_at_k']:.4f} / {fmt(m.ndcg_at_k)} | {nb['scores_above_100']:,} |")


def fmt(v: object, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def job_table(rows: list[tuple[int, float, float, RunMetrics]]) -> list[str]:
    lines = ["| ratings | wall s | slope vs previous size | peak MB (driver: Python + JVM) | stage timings s | "
             "RMSE | bias RMSE | global-mean RMSE | RMSE gain vs bias | MAE | bias MAE | NDCG@10 | "
             "popularity NDCG@10 | precision@10 | popularity precision@10 | best rank, reg, pop. weight | "
             "model fitted in |",
             "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    previous: tuple[int, float] | None = None
    for size, wall, peak, m in rows:
        # log-log slope of wall time against data size: 1.0 is linear, above 1 super-linear.
        slope = (f"{math.log(wall / previous[1]) / math.log(size / previous[0]):.2f}"
                 if previous else "")
        previous = (size, wall)
        b, t, bp = m.baselines, m.test, m.best_params
        gain = 1 - t.rmse / b.bias_rmse if t.rmse and b.bias_rmse else None
        stages = ", ".join(f"{k} {v:.1f}" for k, v in m.timings_s.items())
        lines.append(
            f"| {size:,} | {wall:.1f} | {slope} | {peak:.0f} | {stages} | {fmt(t.rmse, 3)} | "
            f"{fmt(b.bias_rmse, 3)} | {fmt(b.global_mean_rmse, 3)} | "
            f"{fmt(gain, 3) if gain is None else f'{gain:.1%}'} | {fmt(t.mae, 3)} | {fmt(b.bias_mae, 3)} | "
            f"{fmt(t.ranking.ndcg_at_k)} | {fmt(b.popularity.ndcg_at_k)} | "
            f"{fmt(t.ranking.precision_at_k)} | {fmt(b.popularity.precision_at_k)} | "
            f"{bp.rank}, {bp.reg_param}, {bp.popularity_weight:g} | {(m.spark or {}).get('model', 'spark')} |")
    return lines


def reuse_table(work: Path, size: int) -> list[str]:
    """An event-triggered run: the published run tuned on 95% of a file, then the whole file
    arrives (+5%); `--tuning auto` reuses the published parameters. Set beside a full run on
    the whole file."""
    whole = sample_file(work, size)
    head = work / "data" / f"ratings-{size}-first95.tsv"
    lines = whole.read_text().splitlines(keepends=True)
    head.write_text("".join(lines[: int(len(lines) * 0.95)]))
    root = work / f"reuse-{size}"
    shutil.rmtree(root, ignore_errors=True)
    published = ["--runs-root", str(root / "published")]
    runs = [("first run (95% of the file), full tuning", head, [*published, "--tuning", "full"]),
            ("+5% new ratings, --tuning auto", whole, published),
            ("+5% new ratings, --tuning full", whole, ["--output", str(root / "full"), "--tuning", "full"])]
    out = ["| run | wall s | tune s | tuning | rank, reg | RMSE | NDCG@10 |", "|---|---:|---:|---|---|---:|---:|"]
    measured = []
    for name, data, args in runs:
        wall, _, code = run_job(["--input", str(data), *args])
        if code:
            return [f"reuse comparison failed at: {name} (exit {code})"]
        m = RunMetrics.from_json(latest_metrics(args))
        measured.append((wall, m))
        out.append(f"| {name} | {wall:.1f} | {m.timings_s.get('tune', 0):.1f} | {m.tuning.mode} | "
                   f"{m.best_params.rank}, {m.best_params.reg_param} | {fmt(m.rmse, 3)} | {fmt(m.ndcg_at_k)} |")
        print(f"reuse, {name}: {wall:.1f} s", flush=True)
    (reused_wall, reused), (full_wall, full) = measured[1], measured[2]
    if reused.rmse and full.rmse:
        out += ["", f"Reused run: {reused_wall / full_wall:.0%} of the full run's wall time, RMSE "
                f"{reused.rmse / full.rmse - 1:+.2%} against it."]
    return out


def latest_metrics(args: list[str]) -> str:
    """metrics.json of the run just made: under --output, or the one published under --runs-root."""
    if "--output" in args:
        return (Path(args[args.index("--output") + 1]) / c.METRICS_FILE).read_text()
    latest = files.read_latest(args[args.index("--runs-root") + 1])
    assert latest, "the run succeeded, so latest.json names it"
    return (Path(latest["path"]) / c.METRICS_FILE).read_text()


def r1_estimate(metrics: Path) -> list[str]:
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "estimate_r1.py"), str(metrics)],
                            cwd=ROOT, capture_output=True, text=True)
    return ["```", (result.stdout or result.stderr).strip(), "```"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000,4000000")
    parser.add_argument("--out", type=Path, default=ROOT / ".bench" / "results.md")
    parser.add_argument("--work", type=Path, default=ROOT / ".bench")
    parser.add_argument("--notebook-sizes", default="150000",
                        help="sizes to also run the usual notebook on, side by side ('' to skip)")
    parser.add_argument("--reuse-size", type=int, default=150000,
                        help="size of the full-vs-reused comparison (0 to skip)")
    parser.add_argument("--quality", action="store_true", help="only the quality table (.bench/quality.md)")
    parser.add_argument("--quality-sizes", default="100000,1000000,4000000",
                        help="sizes of the generated R1 rows of the quality table ('' for none)")
    parser.add_argument("--quality-shape-size", type=int, default=100000,
                        help="size of the listening and stars rows of the quality table")
    parser.add_argument("--quality-out", type=Path, default=ROOT / ".bench" / "quality.md")
    opts = parser.parse_args()
    quality_sizes = [int(s) for s in opts.quality_sizes.split(",") if s]
    if opts.quality:
        return bench_quality.main_quality(opts.work, opts.quality_out, quality_sizes, opts.quality_shape_size,
                                          run_job)
    rows = []
    notebook_sizes = [int(s) for s in opts.notebook_sizes.split(",") if s]
    for size in sorted({*[int(s) for s in opts.sizes.split(",")], *notebook_sizes}):
        data_file = sample_file(opts.work, size)
        out = opts.work / f"run-{size}"
        wall, peak, code = run_job(["--input", str(data_file), "--output", str(out)])
        if code:
            print(f"job failed on {size} ratings (exit {code})", file=sys.stderr)
            return 1
        m = RunMetrics.from_json((out / c.METRICS_FILE).read_text())
        rows.append((size, wall, peak, m))
        print(f"{size:>9} ratings: {wall:6.1f} s, peak {peak:6.0f} MB", flush=True)
    side_by_side = [notebook_row(size, sample_file(opts.work, size), next(r for r in rows if r[0] == size))
                    for size in notebook_sizes]
    lines = job_table(rows)
    if side_by_side:
        lines += ["", "The usual notebook vs this job, same file and test split (`tools/bench_notebook.py`: plain ALS, "
                  f"nonnegative, coldStart drop, 5-fold CrossValidator over rank {NOTEBOOK_RANKS} x regParam "
                  ".01,.05,.1,.15, recommendForAllUsers):", "",
                  "| ratings | notebook s | job s (whole run) | time ratio | RMSE notebook / job | "
                  "precision@10 notebook / job | NDCG@10 notebook / job | notebook scores > 100 |",
                  "|---:|---:|---:|---:|---|---|---|---:|", *side_by_side]
    if opts.reuse_size:
        lines += ["", f"Full vs reused tuning on {opts.reuse_size:,} ratings (`--tuning auto`, the new-data "
                  "trigger's default):", "", *reuse_table(opts.work, opts.reuse_size)]
    largest = max(rows)[0]
    lines += ["", f"Full R1 on Glue, estimated from the {largest:,}-rating run "
              f"(`python tools/estimate_r1.py .bench/run-{largest}/metrics.json`):", "",
              *r1_estimate(opts.work / f"run-{largest}" / c.METRICS_FILE)]
    table = "\n".join(lines)
    header = (f"Default job (`python -m glue_jobs.recommender --input FILE --output DIR`, tuning "
              f"included) on generated data, {os.cpu_count()} cores, local[2]. Command: `make bench`.\n\n")
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(header + table + "\n")
    print()
    print(table)
    print(f"\nwritten to {opts.out}")
    # The R1 rows reuse this bench's default runs of the same files where there are some.
    done = {size: (wall, opts.work / f"run-{size}") for size, wall, _, _ in rows}
    return bench_quality.main_quality(opts.work, opts.quality_out, quality_sizes, opts.quality_shape_size,
                                      run_job, done)


if __name__ == "__main__":
    sys.exit(main())
