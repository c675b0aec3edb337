"""The explicit model (biases + ALS on scaled residuals) fitted in NumPy on one machine, for tuning.

One Spark ALS fit spends most of its time scheduling tiny per-iteration stages, not computing.
Tuning fits many candidates on data that fits in the driver's memory, so it fits them here and
leaves Spark the final fit at full scale. The objective is exactly Spark MLlib's explicit ALS
(ALS-WR: each user's and item's regParam scaled by its number of ratings), and the biases and the
residual scale are `model.prepare`'s, so the rank and regParam chosen here mean the same there.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from glue_jobs import contracts as c
from glue_jobs.recommender.config import Feedback
from glue_jobs.recommender.model import BIAS_SWEEPS, BLEND_ALPHA

PAD_CELLS = 1 << 20  # ratings (padded) laid out per chunk of the normal equations
FLOAT = np.float32  # the normal equations' precision (see solve_side)
SOLVE_BYTES = 32 << 20  # bound on one batch of gathered factors and Gram matrices


@dataclass(frozen=True)
class Ratings:
    """Ratings by dense index: users 0..n_users-1, items 0..n_items-1 (items in artist-id order)."""

    users: np.ndarray  # int64
    items: np.ndarray  # int64
    values: np.ndarray  # float64
    n_users: int
    n_items: int

    def subset(self, mask: np.ndarray) -> Ratings:
        return Ratings(self.users[mask], self.items[mask], self.values[mask], self.n_users, self.n_items)


@dataclass(frozen=True)
class Prepared:
    """model.prepare's result as arrays: mu, biases (0 where unseen), residuals / scale."""

    global_mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    scale: float
    residuals: Ratings


def _shrunk_mean(index: np.ndarray, values: np.ndarray, counts: np.ndarray, reg: float) -> np.ndarray:
    sums = np.bincount(index, values, minlength=counts.size)
    return np.divide(sums, counts + reg, out=np.zeros(counts.size), where=counts > 0)


def prepare(ratings: Ratings, bias_reg: float) -> Prepared:
    """Same sweeps as model.fit_biases (items, then users, BIAS_SWEEPS times) and the same
    population-deviation scale as model.residual_scale."""
    r = ratings
    mu = float(r.values.mean())
    n_u = np.bincount(r.users, minlength=r.n_users).astype(np.float64)
    n_i = np.bincount(r.items, minlength=r.n_items).astype(np.float64)
    b_u, b_i = np.zeros(r.n_users), np.zeros(r.n_items)
    for _ in range(BIAS_SWEEPS):
        b_i = _shrunk_mean(r.items, r.values - mu - b_u[r.users], n_i, bias_reg)
        b_u = _shrunk_mean(r.users, r.values - mu - b_i[r.items], n_u, bias_reg)
    residual = r.values - mu - b_u[r.users] - b_i[r.items]
    std = float(residual.std())
    scale = std if std > 1e-9 else 1.0
    return Prepared(mu, b_u, b_i, scale, Ratings(r.users, r.items, residual / scale, r.n_users, r.n_items))


@dataclass(frozen=True)
class _Chunk:
    dst: np.ndarray  # the rows solved together, similar rating counts
    src: np.ndarray  # dst x width: the other side's index per rating, n_src (a zero row) as padding
    values: np.ndarray  # dst x width, 0 as padding; FLOAT, as solve_side uses them
    counts: np.ndarray  # ratings per dst row


@dataclass(frozen=True)
class SideLayout:
    """The normal equations of one side laid out once and reused by every candidate and iteration:
    rows grouped by rating count, so each chunk is one dense batched product with little padding."""

    n_dst: int
    n_src: int
    chunks: tuple[_Chunk, ...]


def side_layout(dst: np.ndarray, src: np.ndarray, values: np.ndarray, n_dst: int, n_src: int) -> SideLayout:
    order = np.argsort(dst, kind="stable")
    src_sorted, val_sorted = src[order], values[order]
    counts = np.bincount(dst, minlength=n_dst)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    active = np.flatnonzero(counts)
    active = active[np.argsort(counts[active], kind="stable")]
    sorted_counts = counts[active]
    chunks, i = [], 0
    while i < active.size:
        cap = max(int(sorted_counts[i] * 1.25), int(sorted_counts[i]) + 4)  # padding stays under ~25%
        j = min(int(np.searchsorted(sorted_counts, cap, "right")), i + max(1, PAD_CELLS // cap))
        rows, width = active[i:j], int(sorted_counts[j - 1])
        pos = starts[rows][:, None] + np.arange(width)[None, :]
        real = np.arange(width)[None, :] < counts[rows][:, None]
        pos = np.where(real, pos, 0)
        chunks.append(_Chunk(rows, np.where(real, src_sorted[pos], n_src).astype(np.int32),
                             np.where(real, val_sorted[pos], 0.0).astype(FLOAT), counts[rows].astype(np.float64)))
        i = j
    return SideLayout(n_dst, n_src, tuple(chunks))


@dataclass(frozen=True)
class Layout:
    users: SideLayout  # solves user factors from item factors
    items: SideLayout

    @classmethod
    def of(cls, residuals: Ratings) -> Layout:
        r = residuals
        return cls(side_layout(r.users, r.items, r.values, r.n_users, r.n_items),
                   side_layout(r.items, r.users, r.values, r.n_items, r.n_users))


def solve_side(side: SideLayout, src_factors: np.ndarray, reg_param: float) -> np.ndarray:
    """Each row's least squares against the other side's factors, with Spark's weighted lambda:
    (Y_u^T Y_u + regParam * n_u * I) x_u = Y_u^T r_u. Spark ml.recommendation.ALS.computeFactors
    adds each rating to a NormalEquation, counting `numExplicits`, then calls
    `solver.solve(ls, numExplicits * regParam)` ("Weight lambda by the number of explicit
    ratings based on the ALS-WR paper"); its CholeskySolver adds that lambda to the diagonal.
    Rows without ratings keep zero factors (Spark has none for them).

    Gathered, multiplied and solved in float32 (FLOAT), the precision Spark stores factors in:
    a third faster than float64 at rank 50, validation RMSE equal to 8 digits (1M generated
    ratings, 10 iterations: 6.4 s against 10.1 s, RMSE 13.839802519 against 13.839802503)."""
    rank = src_factors.shape[1]
    out = np.zeros((side.n_dst, rank))
    eye = np.eye(rank, dtype=FLOAT)
    for rows, gathered, lam, values in _batches(side, src_factors, reg_param):
        width = gathered.shape[1]
        if width < rank:
            # Fewer ratings than factors: the same solution from the smaller system
            # x = Y^T (Y Y^T + lam I)^-1 r (padding rows are zero, so they solve to zero).
            kernel = np.matmul(gathered, gathered.transpose(0, 2, 1)) + lam * np.eye(width, dtype=FLOAT)
            out[rows] = np.einsum("nwk,nw->nk", gathered, _solve(kernel, values))
        else:
            gram = np.matmul(gathered.transpose(0, 2, 1), gathered) + lam * eye
            out[rows] = _solve(gram, np.einsum("nw,nwk->nk", values, gathered))
    return out


def _batches(side: SideLayout, src_factors: np.ndarray,
             reg_param: float) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Each chunk of `side` in batches of at most SOLVE_BYTES of gathered factors: the rows, their
    source factors (rows x width x rank, FLOAT; padding gathers a zero row), their lambda
    (regParam x rating count, rows x 1 x 1) and their values (rows x width, 0 as padding)."""
    rank = src_factors.shape[1]
    padded = np.vstack([src_factors, np.zeros((1, rank))]).astype(FLOAT)
    for chunk in side.chunks:
        width = chunk.src.shape[1]
        step = max(1, SOLVE_BYTES // (4 * rank * max(width, rank)))
        for s in range(0, chunk.dst.size, step):
            yield (chunk.dst[s:s + step], padded[chunk.src[s:s + step]],
                   (reg_param * chunk.counts[s:s + step])[:, None, None].astype(FLOAT), chunk.values[s:s + step])


def solve_side_implicit(side: SideLayout, src_factors: np.ndarray, reg_param: float, alpha: float) -> np.ndarray:
    """Each row's implicit-feedback least squares (Hu, Koren and Volinsky), as Spark MLlib solves it
    with implicitPrefs: ml.recommendation.ALS.computeFactors merges YtY (`computeYtY`: the sum of
    y y^T over every source factor there is) into each row's NormalEquation, then for each rating
    r (here the preference, model.PREFERENCE) takes c1 = alpha * |r|, counts numExplicits when
    r > 0 and calls `ls.add(y, 1 + c1, c1)`; so
    (YtY + sum c1 y y^T + regParam * numExplicits * I) x_u = sum (1 + c1) y.
    Source rows without ratings must be zero (Spark has no factor for them, so they add nothing
    to YtY). Preferences are 1..2, all positive: numExplicits is the row's rating count.

    YtY is dense, so there is no smaller system for rows with fewer ratings than factors: every
    row solves rank x rank, gathered and batched in FLOAT as solve_side does. Solving Spark's final
    user factors again from its final item factors gives them back to 1.8e-6 (largest |x| 1.96;
    8k generated plays, rank 6): the same equations. On 1M generated plays (50k users, 28k artists,
    10 iterations, one BLAS thread, busy machine) a fit took 12.2 s at rank 10 and 39.6 s at rank 20,
    where the explicit fit took 13.4 s and 17.0 s: the rank x rank solves of the sparse rows."""
    rank = src_factors.shape[1]
    yty = (src_factors.T @ src_factors).astype(FLOAT)  # float64 sum, as Spark's YtY is double
    out = np.zeros((side.n_dst, rank))
    eye = np.eye(rank, dtype=FLOAT)
    for rows, gathered, lam, values in _batches(side, src_factors, reg_param):
        c1 = FLOAT(alpha) * values  # padding: 0
        gram = np.matmul(gathered.transpose(0, 2, 1), gathered * c1[:, :, None]) + (yty + lam * eye)
        out[rows] = _solve(gram, np.einsum("nw,nwk->nk", 1 + c1, gathered))
    return out


def _solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(gram, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:  # regParam 0 and too few ratings: the least-norm solution
        return np.einsum("nij,nj->ni", np.linalg.pinv(gram), rhs)


@dataclass(frozen=True)
class Factors:
    users: np.ndarray  # n_users x rank, zeros for users without ratings
    items: np.ndarray


def initial_factors(n: int, rank: int, seed: int) -> np.ndarray:
    """Like Spark's: each vector drawn from a normal distribution and scaled to unit length."""
    vectors = np.random.default_rng(seed).standard_normal((n, rank))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def fit(layout: Layout, *, rank: int, reg_param: float, iterations: int, seed: int,
        start: Factors | None = None) -> Factors:
    """Explicit ALS in Spark's order: each iteration solves the items from the users, then the
    users from the items. `start` continues an earlier fit instead of a random start."""
    if rank == 0:  # the bias-only model
        return Factors(np.zeros((layout.users.n_dst, 0)), np.zeros((layout.items.n_dst, 0)))
    users = start.users if start is not None else initial_factors(layout.users.n_dst, rank, seed)
    items = start.items if start is not None else np.zeros((layout.items.n_dst, rank))
    for _ in range(iterations):
        items = solve_side(layout.items, users, reg_param)
        users = solve_side(layout.users, items, reg_param)
    return Factors(users, items)


def fit_implicit(layout: Layout, *, rank: int, reg_param: float, alpha: float, iterations: int, seed: int) -> Factors:
    """Implicit ALS (solve_side_implicit) in `fit`'s order and from its random start, with the
    users that have no ratings here (test-only users of the index) zeroed: Spark has no factor
    for them, and a nonzero one would enter the first YtY. `layout` holds the preferences."""
    rated = np.zeros(layout.users.n_dst, dtype=bool)
    for chunk in layout.users.chunks:
        rated[chunk.dst] = True
    users = initial_factors(layout.users.n_dst, rank, seed) * rated[:, None]
    items = np.zeros((layout.items.n_dst, rank))
    for _ in range(iterations):
        items = solve_side_implicit(layout.items, users, reg_param, alpha)
        users = solve_side_implicit(layout.users, items, reg_param, alpha)
    return Factors(users, items)


def fit_companion(ratings: Ratings, *, rank: int, reg_param: float, iterations: int, seed: int) -> Factors:
    """model.fit_companion in NumPy: implicit ALS on which pairs were rated, every one preference 1
    with confidence 1 + BLEND_ALPHA, whatever its rating."""
    rated = Ratings(ratings.users, ratings.items, np.ones(ratings.values.size), ratings.n_users, ratings.n_items)
    return fit_implicit(Layout.of(rated), rank=rank, reg_param=reg_param, alpha=BLEND_ALPHA, iterations=iterations,
                        seed=seed)


def implicit_prepared(ratings: Ratings) -> Prepared:
    """What implicit ALS learns from, in `Prepared`'s shape: no mean, no biases, scale 1, and the
    preference 1 + rating / 100 (model.PREFERENCE, see model.prepare) in place of the residuals."""
    zeros = np.zeros(ratings.n_users), np.zeros(ratings.n_items)
    preference = 1.0 + ratings.values / c.RATING_MAX
    return Prepared(0.0, *zeros, 1.0, Ratings(ratings.users, ratings.items, preference, ratings.n_users,
                                              ratings.n_items))


def prepare_for(ratings: Ratings, feedback: Feedback, bias_reg: float) -> Prepared:
    """What ALS learns from: biases and scaled residuals (explicit), the preferences (implicit)."""
    return prepare(ratings, bias_reg) if feedback.has_ratings else implicit_prepared(ratings)


def fit_for(layout: Layout, feedback: Feedback, *, rank: int, reg_param: float, alpha: float, iterations: int,
            seed: int) -> Factors:
    """`fit` (explicit) or `fit_implicit` on a layout of prepare_for's values."""
    if feedback.has_ratings:
        return fit(layout, rank=rank, reg_param=reg_param, iterations=iterations, seed=seed)
    return fit_implicit(layout, rank=rank, reg_param=reg_param, alpha=alpha, iterations=iterations, seed=seed)


def predict(prepared: Prepared, factors: Factors, users: np.ndarray, items: np.ndarray,
            rating_scale: tuple[float, float]) -> np.ndarray:
    """Ratings as evaluate.prediction_errors scores them: mu + biases + scale * x_u . y_i, clipped.
    Index -1 is a user or item the training data never saw: no bias, no factors."""
    known_u, known_i = users >= 0, items >= 0
    u, i = np.where(known_u, users, 0), np.where(known_i, items, 0)
    dot = np.einsum("nk,nk->n", factors.users[u], factors.items[i]) * (known_u & known_i)
    raw = (prepared.global_mean + prepared.user_bias[u] * known_u + prepared.item_bias[i] * known_i
           + prepared.scale * dot)
    return np.clip(raw, *rating_scale)


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """OpenBLAS's own threads busy-wait for cores that the tuning's threads and Spark's JVM also
    want: on 2 cores they made a 9-candidate grid 6x slower (30 s against 4.9 s). Pins OpenBLAS
    (found among the process's loaded libraries, Linux) to one thread meanwhile; else a no-op."""
    calls = []
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line})
    except OSError:
        paths = []
    for path in paths:
        lib = ctypes.CDLL(path)
        for suffix in ("64_", ""):
            get = getattr(lib, f"openblas_get_num_threads{suffix}", None)
            put = getattr(lib, f"openblas_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                calls.append((put, int(get())))
                put(1)
                break
    try:
        yield
    finally:
        for put, threads in calls:
            put(threads)
