"""Time and Glue DPU-hours for a bigger data set (default: the full Yahoo! R1), estimated from a
measured run's metrics.json and the FLOP count of ALS, so the arithmetic can be re-run on any
new measurement.

    python tools/estimate_r1.py .bench/run-4000000/metrics.json [--workers 5,10,20,40]

ALS costs about 2*nnz*k^2 (building the normal equations, both sides) plus (users+items)*k^3/3
(the Cholesky solves) floating-point operations per iteration. Tuning runs in NumPy on the
driver, on at most --tune-sample-ratings ratings (whole users): its time is the measured tuning
scaled by its FLOPs, on the driver alone, whatever the number of workers. The other stages run
on the executors: the measured run gives the rate of each per core (Spark's overheads
included), and the target's work at that rate, spread over the executors' cores at a stated
parallel efficiency, gives their time. The final fit grows with its FLOPs, top-N scoring with
users x artists, the other stages with the number of ratings. A run that measured its top-N's
block scoring apart (`task_s.recommend_scoring`: the seconds its tasks spent scoring) has only
that part scaled by users x artists, and the rest of the stage (each user's seen list, Python
rows, the output sorted by user) by users: at R1 a user meets 5x more artists than at 4M. Similar artists cost about
artists^2 x rank multiply-adds (5e11 at full R1, rank 50), priced at the top-N's measured rate per
multiply-add: both are blocks of one matrix product against the broadcast artist factors.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from glue_jobs.recommender.config import ModelOptions, TuningOptions
from glue_jobs.recommender.config import local_cores as master_cores
from glue_jobs.recommender.metrics import RunMetrics

R1 = {"ratings": 115_579_440, "users": 1_948_882, "items": 98_211}  # Yahoo! Music R1
GLUE_WORKERS = {"G.1X": (4, 1), "G.2X": (8, 2), "G.4X": (16, 4), "G.8X": (32, 8)}  # vCPU, DPU per worker
PRICE_PER_DPU_HOUR = 0.44
START_UP_S = 60.0  # Glue 5 start-up, before the script runs


def als_flops(nnz: float, users: float, items: float, rank: int) -> float:
    """FLOPs of one ALS iteration (both sides)."""
    return 2 * nnz * rank**2 + (users + items) * rank**3 / 3


def tuning_flops(nnz_train: float, users: float, items: float, ranks: list[int], n_regs: int,
                 max_iter: int) -> float:
    return sum(als_flops(nnz_train, users, items, r) for r in ranks) * n_regs * max_iter


@dataclass(frozen=True)
class Work:
    """The work of a run in units whose cost per unit the measured run tells."""

    tune_flops: float
    fit_flops: float
    topn_cells: float  # users x items scored for the top-N of every user
    eval_cells: float  # test users (at most --eval-users) x items, scored for the ranking metrics
    ratings: float
    users: float
    rank: int  # the final model's
    similar_madds: float  # items^2 x rank multiply-adds for every artist's similar artists


def tuned_share(ratings: float, train_share: float, valid_share: float, bound: int) -> float:
    """The share of the users (whole users, so of the ratings too) that tuning sees."""
    both = ratings * (train_share + valid_share)
    return 1.0 if not bound or both <= bound else bound / both


def work_of(ratings: float, users: float, items: float, train_share: float, valid_share: float,
            ranks: list[int], n_regs: int, best_rank: int, max_iter: int, test_users_share: float,
            sample_bound: int = 0, eval_bound: int = 0) -> Work:
    share = tuned_share(ratings, train_share, valid_share, sample_bound)
    return Work(
        tune_flops=tuning_flops(ratings * train_share * share, users * share, items, ranks, n_regs, max_iter),
        fit_flops=als_flops(ratings * (train_share + valid_share), users, items, best_rank) * max_iter,
        topn_cells=users * items,
        eval_cells=min(users * test_users_share, eval_bound or users) * items,
        ratings=ratings, users=users, rank=best_rank, similar_madds=items**2 * best_rank)


def grid_of(m: RunMetrics) -> tuple[list[int], int]:
    """The measured run's ALS grid: its ranks and how many regParams each was fitted with (the
    bias-only candidate, rank 0, fits no factors)."""
    als = [g for g in m.grid if g["rank"] > 0]
    return sorted({g["rank"] for g in als}), len({g["reg_param"] for g in als})


def work_like(m: RunMetrics, ratings: float, users: float, items: float, max_iter: int,
              sample_bound: int = 0, eval_bound: int = 0) -> Work:
    """The work of a run with the measured run's settings and split, on data of the given size."""
    n = m.counts
    ranks, n_regs = grid_of(m)
    return work_of(ratings, users, items, n.train / n.ratings, n.validation / n.ratings,
                   ranks, n_regs, m.best_params.rank, max_iter, m.test.evaluated_users / n.users, sample_bound,
                   eval_bound)


def measured_work(m: RunMetrics, max_iter: int, sample_bound: int = 0) -> Work:
    n = m.counts
    return work_like(m, n.ratings, n.users, n.items, max_iter, sample_bound)  # evaluated as measured


def driver_tune_seconds(m: RunMetrics, measured: Work, target: Work) -> float:
    """Tuning's wall time on the driver, with as many threads as the measured run had."""
    return m.timings_s.get("tune", 0.0) * target.tune_flops / measured.tune_flops


def local_cores(m: RunMetrics) -> int:
    """Cores the measured run had (its local master, as metrics.json records it)."""
    return master_cores((m.spark or {}).get("master", "local[2]")) or 2


def core_seconds(m: RunMetrics, measured: Work, target: Work) -> dict[str, float]:
    """Each executor stage's measured core-seconds scaled by how much more of its own work the
    target has (tuning runs on the driver: driver_tune_seconds)."""
    t = m.timings_s
    cores = local_cores(m)
    linear = target.ratings / measured.ratings
    ratio = {
        # the bias-only model (rank 0) fits no factors: its fit is sums over the ratings
        "fit": target.fit_flops / measured.fit_flops if measured.fit_flops else linear,
        "evaluate": target.eval_cells / measured.eval_cells,
    }
    out = {stage: seconds * cores * ratio.get(stage, linear) for stage, seconds in t.items()
           if stage not in ("publish", "tune", "similar", "recommend")}
    if "recommend" in t:
        scoring, rest = recommend_parts(m)
        out["recommend"] = (scoring * target.topn_cells / measured.topn_cells
                            + rest * target.users / measured.users)
    return out


def recommend_parts(m: RunMetrics) -> tuple[float, float]:
    """The measured top-N stage's core-seconds: (block scoring, the rest). All of it counts as
    scoring when the run did not measure the scoring apart (older runs): the pessimistic reading."""
    total = m.timings_s["recommend"] * local_cores(m)
    scoring = min(m.task_s.get("recommend_scoring", total), total)
    return scoring, total - scoring


def similar_core_seconds(m: RunMetrics, measured: Work, target: Work) -> float:
    """The target's similar artists at the measured top-N's scoring core-seconds per multiply-add (a
    top-N cell costs rank + 1 of them: the catalog's extra bias column). A similar stage the measured
    run recorded is replaced by this, not scaled: the top-N's rate is measured over far more work."""
    topn_madds = measured.topn_cells * (measured.rank + 1)
    return recommend_parts(m)[0] * target.similar_madds / topn_madds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics", type=Path, help="metrics.json of a measured run (the bigger, the better)")
    parser.add_argument("--workers", default="5,10,20,40", help="Glue worker counts to price")
    parser.add_argument("--worker-type", default="G.2X", choices=sorted(GLUE_WORKERS))
    parser.add_argument("--efficiency", type=float, default=0.5,
                        help="share of the executors' cores doing useful work (default 0.5, pessimistic)")
    parser.add_argument("--max-iter", type=int, default=ModelOptions.max_iter, help="the run's --max-iter")
    parser.add_argument("--ratings", type=float, default=R1["ratings"])
    parser.add_argument("--users", type=float, default=R1["users"])
    parser.add_argument("--items", type=float, default=R1["items"])
    parser.add_argument("--tune-sample-ratings", type=int, default=TuningOptions.sample_ratings,
                        help="the runs' --tune-sample-ratings (the measured run's and the target's)")
    parser.add_argument("--eval-users", type=int, default=TuningOptions.eval_users,
                        help="the target run's --eval-users")
    opts = parser.parse_args()
    m = RunMetrics.from_json(opts.metrics.read_text())
    if m.tuning.reused or not m.grid:
        print(f"error: {opts.metrics} is a run that reused {m.tuning.reused_from}'s tuning: it measured no "
              "tuning to scale. Give the metrics.json of a run that tuned (--tuning full).", file=sys.stderr)
        return 2
    if (m.spark or {}).get("model") == "numpy":
        print(f"error: {opts.metrics} is a run whose model was fitted and evaluated on the driver (at most "
              "--tune-sample-ratings ratings); R1 fits on Spark. Give the metrics.json of a larger run.",
              file=sys.stderr)
        return 2
    n, bound = m.counts, opts.tune_sample_ratings
    measured = measured_work(m, opts.max_iter, bound)
    target = work_like(m, opts.ratings, opts.users, opts.items, opts.max_iter, bound, opts.eval_users)
    cores = local_cores(m)
    tune_s = driver_tune_seconds(m, measured, target)
    per_stage = core_seconds(m, measured, target)
    per_stage["similar"] = similar_core_seconds(m, measured, target)
    total = sum(per_stage.values())
    share = tuned_share(opts.ratings, n.train / n.ratings, n.validation / n.ratings, bound)

    print(f"measured: {n.ratings:,} ratings, {n.users:,} users, {n.items:,} items on {cores} cores; "
          f"tuning {measured.tune_flops:.3g} FLOP in {m.timings_s['tune']:.1f} s on the driver")
    print(f"target:   {opts.ratings:,.0f} ratings, {opts.users:,.0f} users, {opts.items:,.0f} items; "
          f"tuning on {share:.1%} of the users ({target.tune_flops / measured.tune_flops:.2f}x the measured "
          f"tuning's FLOPs): {tune_s:.0f} s on the driver; top-N {target.topn_cells:.3g} user-artist scores "
          f"({target.topn_cells / measured.topn_cells:.1f}x), ranking metrics over "
          f"{target.eval_cells / opts.items:,.0f} test users")
    scoring, rest = recommend_parts(m)
    print(f"top-N measured: {scoring:.1f} core-s scoring blocks (scaled by users x artists, "
          f"{target.topn_cells / measured.topn_cells:.1f}x) + {rest:.1f} core-s the rest of the stage (scaled by "
          f"users, {target.users / measured.users:.1f}x)"
          + ("" if "recommend_scoring" in m.task_s else "; the run did not measure its scoring apart"))
    print(f"similar artists: {target.similar_madds:.3g} multiply-adds ({opts.items:,.0f}^2 artists x rank "
          f"{target.rank}) at the top-N's measured rate: {per_stage['similar'] / 3600:.2f} core-hours, "
          f"{per_stage['similar'] / total:.1%} of the executors' work")
    print("executor core-hours by stage at the measured rates: "
          + ", ".join(f"{s} {v / 3600:.2f}" for s, v in sorted(per_stage.items(), key=lambda kv: -kv[1]))
          + f"; total {total / 3600:.2f}")
    vcpu, dpu = GLUE_WORKERS[opts.worker_type]
    print()
    print(f"| {opts.worker_type} workers | executor cores | minutes (start-up included) | DPU-hours | cost at "
          f"${PRICE_PER_DPU_HOUR}/DPU-hour | minutes when the tuning is reused (--tuning auto) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for workers in (int(w) for w in opts.workers.split(",")):
        executor_cores = (workers - 1) * vcpu  # one worker runs the driver
        seconds = START_UP_S + tune_s + total / (executor_cores * opts.efficiency)
        dpu_hours = workers * dpu * seconds / 3600
        print(f"| {workers} | {executor_cores} | {seconds / 60:.1f} | {dpu_hours:.2f} | "
              f"${dpu_hours * PRICE_PER_DPU_HOUR:.2f} | {(seconds - tune_s) / 60:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
