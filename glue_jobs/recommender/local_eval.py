"""Validation NDCG@k of a NumPy-fitted model, ranked and scored exactly as the Spark path does.

The ranking is recommend.py's (catalog = artists with factors, in artist-id order; score =
mu + b_i + b_u + scale * x_u . y_i, plus the popularity prior; rated and 255 pairs masked;
ties to the lower artist id) and the metric evaluate.ranking_metrics' (Spark's RankingMetrics:
binary relevance, ideal DCG over min(|relevant|, k), users without recommendations score 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from glue_jobs import contracts as c
from glue_jobs.recommender.config import Feedback
from glue_jobs.recommender.local_als import Factors, Prepared
from glue_jobs.recommender.recommend import Catalog, block_cost, block_rows, lowest_k


@dataclass(frozen=True)
class RankingTask:
    """The users to rank for (those with a relevant validation item), built once per fold."""

    users: np.ndarray  # user index per task row
    relevant: np.ndarray  # sorted keys task_row * n_items + item of the relevant pairs
    n_relevant: np.ndarray  # distinct relevant items per task row
    exclude_rows: np.ndarray  # sorted; with exclude_items, the (task row, item) pairs never to
    # recommend: rated in training, or 255
    exclude_items: np.ndarray
    n_items: int


def ranking_task(relevant_users: np.ndarray, relevant_items: np.ndarray, excluded_users: np.ndarray,
                 excluded_items: np.ndarray, n_items: int) -> RankingTask:
    users, row_of = np.unique(relevant_users, return_inverse=True)
    keys = np.unique(row_of.astype(np.int64) * n_items + relevant_items)
    n_relevant = np.bincount(keys // n_items, minlength=users.size)
    pos = np.minimum(np.searchsorted(users, excluded_users), max(users.size - 1, 0))
    wanted = users[pos] == excluded_users if users.size else np.zeros(excluded_users.size, bool)
    order = np.argsort(pos[wanted], kind="stable")
    return RankingTask(users, keys, n_relevant, pos[wanted][order], excluded_items[wanted][order], n_items)


def liked(values: np.ndarray, threshold: float) -> np.ndarray:
    """Ratings that count as hits (evaluate.relevant_items, explicit feedback)."""
    return (values >= threshold) & (values <= c.RATING_MAX)


def relevant(values: np.ndarray, feedback: Feedback, threshold: float) -> np.ndarray:
    """evaluate.relevant_items: liked ratings (explicit), or every play (implicit: 255 is no play)."""
    return liked(values, threshold) if feedback.has_ratings else values <= c.RATING_MAX


@dataclass(frozen=True)
class _Lists:
    """A task's users ranked against `catalog` (artist indices, ascending = artist-id order), in
    blocks: their exclusions as (task row, catalog column) pairs, masked per block, and the hits
    of each block's top k."""

    task: RankingTask
    catalog: np.ndarray
    ex_rows: np.ndarray
    ex_cols: np.ndarray
    block: int

    @classmethod
    def of(cls, task: RankingTask, catalog: np.ndarray) -> _Lists:
        column = np.full(task.n_items, -1)
        column[catalog] = np.arange(catalog.size)
        ex_cols = column[task.exclude_items]
        return cls(task, catalog, task.exclude_rows[ex_cols >= 0], ex_cols[ex_cols >= 0], block_rows(catalog.size))

    def starts(self) -> range:
        return range(0, self.task.users.size, self.block)

    def rows(self, start: int) -> np.ndarray:
        return np.arange(start, min(start + self.block, self.task.users.size))

    def mask(self, cost: np.ndarray, rows: np.ndarray) -> None:
        """+inf (never chosen) where a block's user rated the artist or marked it 255."""
        lo, hi = np.searchsorted(self.ex_rows, [rows[0], rows[-1] + 1])
        cost[self.ex_rows[lo:hi] - rows[0], self.ex_cols[lo:hi]] = np.inf

    def hits(self, rows: np.ndarray, top: np.ndarray) -> np.ndarray:
        """rows x k: whether each of the block's top k (catalog columns, -1 for none) is relevant."""
        keys = rows[:, None].astype(np.int64) * self.task.n_items + self.catalog[np.maximum(top, 0)]
        return np.isin(keys, self.task.relevant) & (top >= 0)


def ndcg_at_k(task: RankingTask, prepared: Prepared, factors: Factors, item_counts: np.ndarray,
              k: int, priors: list[float], workers: int = 1) -> list[float]:
    """Mean NDCG@k over the task's users for each popularity weight in `priors` (the ranking's
    bonus per log(1 + ratings of the artist)); artists without training ratings are not ranked.
    Blocks of users are ranked on `workers` threads (NumPy's top-k selection releases the GIL)."""
    return ndcg_grid(task, prepared, factors, item_counts, k, priors, workers=workers)[0]


def ndcg_grid(task: RankingTask, prepared: Prepared, factors: Factors, item_counts: np.ndarray, k: int,
              priors: list[float], *, workers: int = 1, companion: Factors | None = None,
              blends: Sequence[float] = (0.0,)) -> list[list[float]]:
    """ndcg_at_k for every blend weight in `blends` (rows) and popularity weight in `priors`
    (columns): the ranking adds blend x scale x the `companion` model's score (recommend.Catalog.blend)."""
    if task.users.size == 0:
        return [[float("nan")] * len(priors) for _ in blends]
    catalog = np.flatnonzero(item_counts > 0)  # ascending index = artist-id order
    lists = _Lists.of(task, catalog)
    # the ranking without the prior, which the loop below subtracts per weight
    unit = Catalog(catalog, prepared.scale * factors.items[catalog], prepared.global_mean + prepared.item_bias[catalog])
    log_counts = np.log1p(item_counts[catalog].astype(np.float64))
    companion_items = None if companion is None else prepared.scale * companion.items[catalog].T
    discount = 1.0 / np.log2(np.arange(k) + 2.0)
    ideal = np.cumsum(discount)[np.minimum(task.n_relevant, k) - 1]

    def block_totals(start: int) -> np.ndarray:
        rows = lists.rows(start)
        users = task.users[rows]
        # ranked by cost = -(score + blend + prior), built in one buffer: this loop is the curve's cost
        neg_scores = block_cost(unit, factors.users[users])
        neg_companion = None if companion is None else -(companion.users[users] @ companion_items)
        cost = np.empty_like(neg_scores)
        totals = np.zeros((len(blends), len(priors)))
        for b, blend in enumerate(blends):
            base = neg_scores
            if blend:
                assert neg_companion is not None, "a blend weight needs the companion model"
                base = neg_scores + blend * neg_companion
            for p, weight in enumerate(priors):
                np.subtract(base, weight * log_counts[None, :], out=cost)
                lists.mask(cost, rows)
                hits = lists.hits(rows, lowest_k(cost, k))
                totals[b, p] = float(((hits @ discount) / ideal[rows]).sum())
        return totals

    starts = lists.starts()
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            per_block = list(pool.map(block_totals, starts))
    else:
        per_block = [block_totals(start) for start in starts]
    return (np.sum(per_block, axis=0) / task.users.size).tolist()


def ranking_metrics(task: RankingTask, catalog: np.ndarray, scores: Callable[[np.ndarray], np.ndarray],
                    k: int) -> dict[str, float]:
    """precision, recall, NDCG and MAP at k over the task's users, as Spark's RankingMetrics
    computes them (evaluate.ranking_metrics): precision = hits / k, recall = hits / |relevant|,
    MAP = sum of the precision at each hit / min(|relevant|, k). `scores(user indices)` gives
    each user's score for every artist of `catalog` (indices, ascending = artist-id order); the
    best k unmasked ones, ties to the lower artist id, are the user's list."""
    names = ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k")
    if task.users.size == 0:
        return dict.fromkeys(names, float("nan"))
    lists = _Lists.of(task, catalog)
    positions = np.arange(1, k + 1, dtype=np.float64)
    discount = 1.0 / np.log2(positions + 1)
    n_relevant = task.n_relevant.astype(np.float64)
    ideal = np.cumsum(discount)[np.minimum(task.n_relevant, k) - 1]
    totals = np.zeros(len(names))
    for start in lists.starts():
        rows = lists.rows(start)
        cost = -np.array(scores(task.users[rows]), dtype=np.float64)
        lists.mask(cost, rows)
        hits = lists.hits(rows, lowest_k(cost, k))
        count = hits.sum(axis=1)
        totals += [(count / k).sum(), (count / n_relevant[rows]).sum(), ((hits @ discount) / ideal[rows]).sum(),
                   (((np.cumsum(hits, axis=1) / positions) * hits).sum(axis=1)
                    / np.minimum(n_relevant[rows], k)).sum()]
    return {name: float(total / task.users.size) for name, total in zip(names, totals)}
