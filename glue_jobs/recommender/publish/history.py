"""The last runs side by side (`python -m glue_jobs.recommender.publish history`): from the runs
root's complete runs (runs/*/ with _SUCCESS, latest.json marking the active one) or from Aurora's
model_runs table (its status marking it), read as plain JSON so any run's files print."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from glue_jobs import contracts as c
from glue_jobs.recommender import storage
from glue_jobs.recommender.publish import files
from glue_jobs.recommender.publish.aurora import MODEL_RUNS

ACTIVE = "active"
PUBLISHED_STATUS = "published"  # model_runs status of the run being served


@dataclass(frozen=True)
class RunSummary:
    """One line of the history: what a run learned from, chose, scored and took."""

    run_id: str
    started: datetime | None
    ratings: int | None
    users: int | None
    rank: int | None
    reg_param: float | None
    rmse: float | None
    bias_rmse: float | None
    ndcg: float | None
    popularity_ndcg: float | None
    k: int | None
    duration_s: float | None  # the sum of the stage timings
    status: str  # ACTIVE, "" (complete, not served) or model_runs' status (failed, loading)

    @classmethod
    def from_parts(cls, run_id: str, params: dict[str, Any], metrics: dict[str, Any], counts: dict[str, Any],
                   timings: dict[str, float], status: str, started: datetime | None = None) -> RunSummary:
        """From metrics.json's parts, as metrics.json and model_runs both hold them."""
        base = metrics.get("baselines") or {}
        return cls(run_id, c.run_id_time(run_id) or started, counts.get("ratings"), counts.get("users"),
                   params.get("rank"), params.get("reg_param"), metrics.get("rmse"), base.get("bias_rmse"),
                   metrics.get("ndcg_at_k"), base.get("popularity_ndcg_at_k"), metrics.get("k"),
                   round(sum(timings.values()), 1) if timings else None, status)


def from_runs_root(root: str, last: int) -> list[RunSummary]:
    """The newest `last` complete runs under root, newest first; unreadable metrics.json are skipped
    like incomplete runs (neither is a run consumers may use)."""
    latest = files.read_latest(root)
    active = latest["run_id"] if latest else None
    out: list[RunSummary] = []
    for run_id in sorted((d for d in storage.list_dirs(storage.join(root, c.RUNS_PREFIX)) if c.is_run_id(d)),
                         reverse=True):
        if len(out) == last:
            break
        if not files.run_is_complete(root, run_id):
            continue
        try:
            d = json.loads(storage.read_text(storage.join(c.run_path(root, run_id), c.METRICS_FILE)))
        except (FileNotFoundError, ValueError):
            continue
        out.append(RunSummary.from_parts(run_id, d.get("best_params") or {}, d, d.get("counts") or {},
                                         d.get("timings_s") or {}, ACTIVE if run_id == active else ""))
    return out


def from_model_runs(engine: Engine, last: int) -> list[RunSummary]:
    """The newest `last` runs recorded in model_runs, newest first, whatever their status."""
    t = MODEL_RUNS.c
    query = sa.select(t[c.SQL_RUN_ID], t[c.SQL_RUN_STATUS], t[c.SQL_STARTED_AT], t[c.SQL_PARAMS], t[c.SQL_METRICS],
                      t[c.SQL_COUNTS], t[c.SQL_TIMINGS]).order_by(t[c.SQL_RUN_ID].desc()).limit(last)
    with engine.connect() as conn:
        rows = conn.execute(query).all()

    def parsed(text: str | None) -> dict[str, Any]:
        return dict(json.loads(text)) if text else {}

    return [RunSummary.from_parts(run_id, parsed(params), parsed(metrics), parsed(counts), parsed(timings),
                                  ACTIVE if status == PUBLISHED_STATUS else
                                  "" if status == "superseded" else str(status), started)
            for run_id, status, started, params, metrics, counts, timings in rows]


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _pair(a: float | None, b: float | None, spec: str) -> str:
    return f"{_num(a, spec)} / {_num(b, spec)}"


def table(runs: list[RunSummary]) -> str:
    """Fixed-width columns, one run a line, the active run marked."""
    ks = {r.k for r in runs if r.k is not None}
    ndcg = f"NDCG@{ks.pop()}" if len(ks) == 1 else "NDCG@k"
    head = ("", "run id", "started (UTC)", "ratings", "users", "rank", "regParam", "RMSE / bias",
            f"{ndcg} / popularity", "duration")
    lines = [(r.status, r.run_id, f"{r.started:%Y-%m-%d %H:%M}" if r.started else "-", _num(r.ratings, ","),
              _num(r.users, ","), _num(r.rank, "d"), _num(r.reg_param, "g"), _pair(r.rmse, r.bias_rmse, ".2f"),
              _pair(r.ndcg, r.popularity_ndcg, ".4f"), f"{_num(r.duration_s, '.1f')} s") for r in runs]
    widths = [max(len(row[i]) for row in (head, *lines)) for i in range(len(head))]
    left = {0, 1, 2}
    return "\n".join("  ".join(cell.ljust(w) if i in left else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
                     for row in (head, *lines))
