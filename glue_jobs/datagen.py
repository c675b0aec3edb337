"""Generates Yahoo! Music R1-layout ratings with realistic structure, so nothing needs a download.

The structure is what makes the data worth testing on: heavy-tailed user activity, Zipf-like
artist popularity, a low-rank latent taste that drives both which artists a user rates and how,
user and artist biases, R1's lumpy rating scale, some 255 ("never play again") values and a
small, labelled share of bad rows of every kind the job quarantines.

    python -m glue_jobs.datagen --ratings 1000000 --output data/ratings.tsv \
        [--artists-output data/artists.tsv] [--format r1|dms] [--shape r1|listening|stars] \
        [--seed 42] [--bad-share 0.005]

Shapes (all written in the R1 layout, integers 0..100, so the job reads each as it is):
  r1         Yahoo! Music R1 ratings (the default; same bytes for a seed as before shapes existed).
  listening  listening logs prepared as real ones are: play counts log-scaled to 0..100 per user
             (each user's fewest plays 0, most 100); a steeper long tail of artists, many users
             with few artists, each user's counts on their own heavy-tailed scale; no 255s.
  stars      a 1..5 star catalogue like MovieLens, written as stars x 20 (20..100): the job's
             scale is 0..100 integers, and x20 keeps every star a distinct integer on it (RMSE / 20
             is in stars; the default relevance threshold 70 counts 4 and 5 stars as liked).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glue_jobs import contracts as c

LATENT_DIM = 8
# The listening shape: taste decides what people play far more than what they rate (the best of 8
# popularity-drawn candidates by 5 x affinity + noise), and how much they play it (3 x affinity in
# the log of the count, noise 0.3): implicit ALS has the played/not-played pattern to learn from,
# while the per-user 0..100 scale leaves little beyond biases for RMSE, as on real listening data.
LISTENING_CANDIDATES = 8
LISTENING_TASTE = 5.0
LISTENING_PLAYS_TASTE = 3.0
LISTENING_NOISE = 0.3
TASTE_DECAY = 1.0  # the listening and stars shapes' (r1 keeps its equal factors: same bytes)
# Every quarantine reason an R1 file can produce (unknown_dms_op needs DMS input).
BAD_ROW_KINDS = tuple(r for r in c.QUARANTINE_REASONS if r != c.UNKNOWN_DMS_OP)
# Every reason a DMS output can produce: there a pair written twice is an update, not a duplicate,
# so the R1 duplicates become change rows with an Op that DMS never writes.
DMS_BAD_ROW_KINDS = tuple(r for r in c.QUARANTINE_REASONS if r != c.DUPLICATE_PAIR)
UNKNOWN_DMS_OPS = ("X", "i")


@dataclass(frozen=True)
class GeneratedRatings:
    """Clean ratings as arrays plus the bad lines injected, labelled by the reason to expect."""

    users: np.ndarray
    artists: np.ndarray
    ratings: np.ndarray
    bad_lines: list[tuple[str, str]]  # (expected quarantine reason, raw line)
    n_artists: int


def catalog_size(n_ratings: int) -> tuple[int, int]:
    """Users and artists for a given size, keeping R1's ~59 ratings per user."""
    n_users = max(20, n_ratings // 59)
    n_artists = int(min(98_211, max(100, 10 * math.sqrt(n_ratings))))
    return n_users, n_artists


def generate(n_ratings: int, *, seed: int = 42, bad_share: float = 0.005, shape: str = "r1") -> GeneratedRatings:
    """`n_ratings` clean ratings in the R1 layout in the given shape (SHAPES), plus bad rows."""
    if shape not in SHAPES:
        raise ValueError(f"unknown data shape {shape!r}: choose one of {', '.join(SHAPES)}")
    rng = np.random.default_rng(seed)
    users, artists, ratings, n_artists = _SHAPES[shape](rng, n_ratings)
    # R1 ids start at 1 and are not dense.
    user_ids = users * 3 + 1
    artist_ids = artists * 7 + 1000

    n_bad = round(bad_share * users.size)
    bad_lines = _bad_lines(rng, n_bad, user_ids, artist_ids, ratings)
    return GeneratedRatings(user_ids, artist_ids, ratings, bad_lines, n_artists)


_Drawn = tuple[np.ndarray, np.ndarray, np.ndarray, int]  # users, artists, ratings (dense indexes), n_artists


def _r1_shape(rng: np.random.Generator, n_ratings: int) -> _Drawn:
    """Yahoo! Music R1: ~59 ratings per user, a lumpy 0..100 scale, some 255s."""
    n_users, n_artists = catalog_size(n_ratings)
    counts = _activity(rng, n_users, n_ratings, n_artists, sigma=1.0)
    popularity = _zipf(rng, n_artists, exponent=0.9, offset=10.0)
    user_taste, artist_taste = _tastes(rng, n_users, n_artists)
    user_bias = rng.normal(0, 12, size=n_users)
    artist_bias = rng.normal(0, 10, size=n_artists)
    users, artists = _draw_pairs(rng, n_ratings, counts, popularity, user_taste, artist_taste)

    affinity = _affinity(user_taste, artist_taste, users, artists)
    raw = 50 + user_bias[users] + artist_bias[artists] + 20 * affinity
    raw += rng.normal(0, 9, size=users.size)
    # R1's scale is lumpy: most ratings sit on multiples of 10, with 0 and 100 common.
    on_grid = rng.random(users.size) < 0.7
    ratings = np.where(on_grid, np.round(raw / 10) * 10, np.round(raw))
    ratings = np.clip(ratings, c.RATING_MIN, c.RATING_MAX).astype(np.int64)
    # "Never play again" for a small share of strongly disliked artists.
    never = (affinity < -1.6) & (rng.random(users.size) < 0.5)
    ratings[never] = c.NEVER_PLAY_AGAIN
    return users, artists, ratings, n_artists


def _listening_shape(rng: np.random.Generator, n_ratings: int) -> _Drawn:
    """Listening logs prepared as issue 13 describes real ones: play counts, log-scaled to 0..100
    per user (the user's fewest plays -> 0, most -> 100). A long tail of artists (steeper Zipf,
    a larger catalogue), many users with few artists, and each user's counts on their own scale:
    a typical count anywhere from 1 to thousands, heavy-tailed around it."""
    n_users = max(20, n_ratings // 20)
    n_artists = int(min(300_000, max(200, 30 * math.sqrt(n_ratings))))
    counts = _activity(rng, n_users, n_ratings, n_artists, sigma=1.4)
    popularity = _zipf(rng, n_artists, exponent=1.2, offset=3.0)
    user_taste, artist_taste = _tastes(rng, n_users, n_artists, TASTE_DECAY)
    users, artists = _draw_pairs(rng, n_ratings, counts, popularity, user_taste, artist_taste,
                                 LISTENING_CANDIDATES, LISTENING_TASTE)

    # An artist's appeal (how long people keep playing it) grows with its popularity.
    log_pop = np.log(popularity)
    appeal = 0.5 * (log_pop - log_pop.mean()) / log_pop.std() + rng.normal(0, 0.5, size=n_artists)
    level = rng.normal(2.5, 1.2, size=n_users)  # log of the user's typical play count
    spread = rng.lognormal(0, 0.3, size=n_users)  # how far apart the user's counts are
    affinity = _affinity(user_taste, artist_taste, users, artists)
    log_plays = level[users] + spread[users] * (appeal[artists] + LISTENING_PLAYS_TASTE * affinity
                                                + rng.normal(0, LISTENING_NOISE, size=users.size))
    plays = np.ceil(np.exp(np.minimum(log_plays, 12.0)))  # at least 1 play, at most ~163k
    return users, artists, log_scaled_per_user(users, plays, n_users), n_artists


def log_scaled_per_user(users: np.ndarray, plays: np.ndarray, n_users: int) -> np.ndarray:
    """Play counts as 0..100 integers, each user on their own log scale: 0 for the user's fewest
    plays, 100 for their most; 100 for a user whose counts are all equal."""
    logs = np.log(plays)
    lo, hi = np.full(n_users, np.inf), np.full(n_users, -np.inf)
    np.minimum.at(lo, users, logs)
    np.maximum.at(hi, users, logs)
    span = (hi - lo)[users]
    scaled = np.where(span > 0, (logs - lo[users]) / np.where(span > 0, span, 1.0), 1.0)
    return np.round(scaled * c.RATING_MAX).astype(np.int64)


STAR_SCALE = 20  # 1..5 stars -> 20..100: integers on the job's 0..100 scale; RMSE / 20 is in stars


def _stars_shape(rng: np.random.Generator, n_ratings: int) -> _Drawn:
    """A 1..5 star catalogue like MovieLens: every user rated at least ~20 items, ~100 ratings
    per user, stars 4 and 3 most common (mean ~3.5), written as stars x STAR_SCALE."""
    n_users = max(20, n_ratings // 100)
    n_items = int(min(60_000, max(100, 5.3 * math.sqrt(n_ratings))))
    counts = 20 + _activity(rng, n_users, max(n_users, n_ratings - 20 * n_users), n_items, sigma=1.0)
    counts = np.minimum(counts, n_items // 2)
    popularity = _zipf(rng, n_items, exponent=0.9, offset=20.0)
    user_taste, item_taste = _tastes(rng, n_users, n_items, TASTE_DECAY)
    user_bias = rng.normal(0, 0.45, size=n_users)
    item_bias = rng.normal(0, 0.45, size=n_items)
    users, items = _draw_pairs(rng, n_ratings, counts, popularity, user_taste, item_taste)

    affinity = _affinity(user_taste, item_taste, users, items)
    raw = 3.45 + user_bias[users] + item_bias[items] + 0.55 * affinity + rng.normal(0, 0.8, size=users.size)
    stars = np.clip(np.round(raw), 1, 5).astype(np.int64)
    return users, items, stars * STAR_SCALE, n_items


def _activity(rng: np.random.Generator, n_users: int, n_ratings: int, n_artists: int, *, sigma: float) -> np.ndarray:
    """Heavy-tailed ratings per user: log-normal counts scaled to the requested total."""
    activity = rng.lognormal(mean=0.0, sigma=sigma, size=n_users)
    counts = np.maximum(1, np.round(activity / activity.sum() * n_ratings * 1.15)).astype(np.int64)
    return np.minimum(counts, n_artists // 2)


def _zipf(rng: np.random.Generator, n_artists: int, *, exponent: float, offset: float) -> np.ndarray:
    """Zipf-like popularity (rank + offset)^-exponent, shuffled over the artists, summing to 1."""
    popularity = 1.0 / np.power(np.arange(n_artists) + offset, exponent)
    popularity = rng.permutation(popularity)
    popularity /= popularity.sum()
    return popularity


def _tastes(rng: np.random.Generator, n_users: int, n_artists: int,
            decay: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Latent factors whose dot products (the affinity) have a standard deviation of about 1.
    With decay > 0 the k-th factor's strength falls as k^-decay, as real taste's singular values
    do: a few broad factors (genre, era) carry most of it, which a low-rank model can learn from
    few ratings per artist."""
    user_taste = rng.normal(0, 1 / math.sqrt(LATENT_DIM), size=(n_users, LATENT_DIM))
    artist_taste = rng.normal(0, 1, size=(n_artists, LATENT_DIM))
    if decay:
        strength = np.power(np.arange(1.0, LATENT_DIM + 1), -decay)
        artist_taste *= strength * math.sqrt(LATENT_DIM / np.sum(strength**2))
    return user_taste, artist_taste


def _draw_pairs(rng: np.random.Generator, n_ratings: int, counts: np.ndarray, popularity: np.ndarray,
                user_taste: np.ndarray, artist_taste: np.ndarray,
                candidates: int = 2, taste_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """n_ratings distinct (user, artist) pairs, about counts[u] per user, in random order. The more
    candidates, the more a user's taste (and the less popularity alone) decides what they rate."""
    n_users, n_artists = counts.size, popularity.size

    def draw(users: np.ndarray) -> np.ndarray:
        # Users rate what they like more often: of popularity-drawn candidates keep the one with
        # the highest noisy affinity. (Every candidate first, then every affinity: r1's draws.)
        cands = np.stack([rng.choice(n_artists, size=users.size, p=popularity) for _ in range(candidates)])
        affs = np.stack([taste_weight * _affinity(user_taste, artist_taste, users, cand) + rng.gumbel(size=users.size)
                         for cand in cands])
        return np.asarray(np.take_along_axis(cands, affs.argmax(axis=0)[None], axis=0)[0])

    users = np.repeat(np.arange(n_users), counts)
    pairs = np.unique(users * n_artists + draw(users))
    for _ in range(20):  # small catalogs collide often: top up until the size is reached
        if pairs.size >= n_ratings:
            break
        extra = rng.choice(n_users, size=int((n_ratings - pairs.size) * 1.5) + 10, p=counts / counts.sum())
        pairs = np.unique(np.concatenate([pairs, extra * n_artists + draw(extra)]))
    rng.shuffle(pairs)
    pairs = pairs[:n_ratings]
    return pairs // n_artists, pairs % n_artists


_SHAPES = {"r1": _r1_shape, "listening": _listening_shape, "stars": _stars_shape}
SHAPES = tuple(_SHAPES)


def _affinity(user_taste: np.ndarray, artist_taste: np.ndarray,
              users: np.ndarray, artists: np.ndarray) -> np.ndarray:
    out = np.empty(users.size)
    step = 1_000_000
    for start in range(0, users.size, step):
        u = user_taste[users[start:start + step]]
        a = artist_taste[artists[start:start + step]]
        out[start:start + step] = np.einsum("ij,ij->i", u, a)
    return out


def _bad_lines(rng: np.random.Generator, n_bad: int, user_ids: np.ndarray,
               artist_ids: np.ndarray, ratings: np.ndarray) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    if user_ids.size == 0:
        return lines
    for i in range(n_bad):
        kind = BAD_ROW_KINDS[i % len(BAD_ROW_KINDS)]
        j = int(rng.integers(user_ids.size))
        u, a, r = int(user_ids[j]), int(artist_ids[j]), int(ratings[j])
        if kind == c.MALFORMED_LINE:
            line = rng.choice([f"{u}\t{a}", f"{u} {a} {r}", f"{u}\t{a}\t{r}\textra", ""])
        elif kind == c.NON_INTEGER_ID:
            line = rng.choice([f"u{u}\t{a}\t{r}", f"{u}\t{a}.5\t{r}", f"\t{a}\t{r}"])
        elif kind == c.PSEUDO_ARTIST:
            line = f"{u}\t{rng.choice(list(c.PSEUDO_ARTISTS))}\t{r}"
        elif kind == c.ID_OUT_OF_RANGE:
            line = rng.choice([f"0\t{a}\t{r}", f"{u}\t{c.MAX_ID + 1}\t{r}", f"-5\t{a}\t{r}"])
        elif kind == c.NON_INTEGER_RATING:
            line = rng.choice([f"{u}\t{a}\t4.5", f"{u}\t{a}\tgood"])
        elif kind == c.RATING_OUT_OF_RANGE:
            line = rng.choice([f"{u}\t{a}\t101", f"{u}\t{a}\t-1", f"{u}\t{a}\t254"])
        else:  # duplicate_pair: the same pair again (the job keeps the last occurrence)
            line = f"{u}\t{a}\t{r}"
        lines.append((kind, str(line)))
    return lines


def r1_lines(data: GeneratedRatings, seed: int = 42) -> list[str]:
    good = [f"{u}\t{a}\t{r}" for u, a, r in
            zip(data.users.tolist(), data.artists.tolist(), data.ratings.tolist())]
    bad = [line for _, line in data.bad_lines]
    rng = np.random.default_rng(seed + 1)
    # Bad rows land at random places; duplicates are placed after their originals' lines
    # would be on average, which is fine: the job's rule does not depend on position order
    # beyond "last one wins".
    positions = np.sort(rng.integers(0, len(good) + 1, size=len(bad)))
    out: list[str] = []
    prev = 0
    for pos, line in zip(positions.tolist(), bad):
        out.extend(good[prev:pos])
        out.append(line)
        prev = pos
    out.extend(good[prev:])
    return out


def write_r1(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="ascii") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="ascii")


@dataclass(frozen=True)
class DmsOutput:
    """What write_dms wrote, so tests know what to expect from the job's DMS ingest."""

    rows: dict[str, int]  # good rows of each kind: load, insert, update, delete
    bad_lines: list[tuple[str, str]]  # (expected quarantine reason, CSV line) among the changes


def write_dms(directory: Path, data: GeneratedRatings, *, seed: int = 42,
              change_share: float = 0.1) -> DmsOutput:
    """Writes a DMS full load of the ratings table, then change files with I/U/D and, among
    the changes, the generated bad rows in DMS form (dms_bad_rows)."""
    rng = np.random.default_rng(seed + 2)
    directory.mkdir(parents=True, exist_ok=True)
    header = [c.DMS_OP_COLUMN, c.DMS_TIMESTAMP_COLUMN, c.USER_ID, c.ARTIST_ID, c.RATING]
    n = data.users.size
    in_load = rng.random(n) < 0.8
    load_ts = "2026-11-01 00:00:00.000000"
    _write_csv(directory / "LOAD00000001.csv", header,
               (["I", load_ts, u, a, r] for u, a, r in zip(data.users[in_load].tolist(),
                                                         data.artists[in_load].tolist(),
                                                         data.ratings[in_load].tolist())))
    later = np.flatnonzero(~in_load)
    changed = np.flatnonzero(in_load)[: int(change_share * n)]
    rng.shuffle(changed)
    half = changed.size // 2
    updates, deletes = changed[:half], changed[half:]
    rows: list[list[object]] = []
    for k, i in enumerate(later.tolist()):
        rows.append(["I", _ts(k), int(data.users[i]), int(data.artists[i]), int(data.ratings[i])])
    for k, i in enumerate(updates.tolist()):
        new_rating = int((data.ratings[i] + 10) % 101) if data.ratings[i] <= 100 else 255
        rows.append(["U", _ts(k), int(data.users[i]), int(data.artists[i]), new_rating])
    for k, i in enumerate(deletes.tolist()):
        rows.append(["D", _ts(k), int(data.users[i]), int(data.artists[i]), int(data.ratings[i])])
    bad = dms_bad_rows(data, rng)
    rows.extend(row for _, row in bad)
    rows.sort(key=lambda row: str(row[1]))
    for part, start in enumerate(range(0, len(rows), max(1, len(rows) // 3 + 1))):
        _write_csv(directory / f"20261102-00000{part}.csv", header,
                   rows[start:start + len(rows) // 3 + 1])
    return DmsOutput({"load": int(in_load.sum()), "insert": later.size, "update": updates.size,
                      "delete": deletes.size}, [(kind, _csv_line(row)) for kind, row in bad])


def dms_bad_rows(data: GeneratedRatings, rng: np.random.Generator) -> list[tuple[str, list[object]]]:
    """data.bad_lines as DMS change rows (Op, commit_ts, then the R1 line's fields), each with the
    reason the job's DMS ingest gives it: the R1 line's own, except that a duplicate pair is no
    error in a DMS replay, so it gets an unknown Op instead (unknown_dms_op)."""
    rows: list[tuple[str, list[object]]] = []
    for k, (kind, line) in enumerate(data.bad_lines):
        if kind == c.DUPLICATE_PAIR:
            kind, op = c.UNKNOWN_DMS_OP, str(rng.choice(UNKNOWN_DMS_OPS))
        else:  # an insert or an update: both need a rating, so a bad rating is always caught
            op = str(rng.choice(("I", "U")))
        rows.append((kind, [op, _ts(k), *line.split(c.R1_SEPARATOR)]))
    return rows


def _ts(k: int) -> str:
    seconds = k % 86_400
    return f"2026-11-02 {seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{k % 10**6:06d}"


def _write_csv(path: Path, header: list[str], rows: Iterable[list[object]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _csv_line(row: list[object]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue()


_SYLLABLES = ("ka", "lo", "mi", "rá", "the", "nor", "vé", "ström", "bel", "ñu", "zo", "dé",
              "ax", "quin", "ly", "fö", "ra", "sun", "ø", "tic")


def artist_names(artist_ids: Iterable[int], seed: int = 42) -> list[tuple[int, str]]:
    rng = np.random.default_rng(seed + 3)
    names = [(k, v) for k, v in sorted(c.PSEUDO_ARTISTS.items())]
    for artist_id in sorted(set(int(a) for a in artist_ids)):
        parts = rng.choice(_SYLLABLES, size=int(rng.integers(2, 5)))
        name = "".join(parts).capitalize()
        if rng.random() < 0.3:
            name = f"The {name}s"
        names.append((artist_id, name))
    return names


def write_artist_names(path: Path, names: Iterable[tuple[int, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{i}\t{n}\n" for i, n in names)
    path.write_bytes(text.encode(c.ARTIST_NAMES_ENCODING))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m glue_jobs.datagen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratings", type=int, default=100_000, help="number of clean ratings")
    parser.add_argument("--output", type=Path, required=True,
                        help="R1 file to write (.gz compresses), or a directory for --format dms")
    parser.add_argument("--artists-output", type=Path, help="also write artist names here")
    parser.add_argument("--format", choices=("r1", "dms"), default="r1")
    parser.add_argument("--shape", choices=SHAPES, default="r1",
                        help="r1: Yahoo! Music R1 ratings (default); listening: play counts log-scaled to "
                             "0..100 per user; stars: 1..5 stars written x20 (20..100)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bad-share", type=float, default=0.005,
                        help="share of extra bad rows to inject (default 0.005)")
    args = parser.parse_args(argv)
    data = generate(args.ratings, seed=args.seed, bad_share=args.bad_share, shape=args.shape)
    if args.format == "r1":
        write_r1(args.output, r1_lines(data, args.seed))
        n_bad = len(data.bad_lines)
    else:
        n_bad = len(write_dms(args.output, data, seed=args.seed).bad_lines)
    if args.artists_output:
        write_artist_names(args.artists_output, artist_names(data.artists, args.seed))
    shape = "" if args.shape == "r1" else f" ({args.shape} shape)"
    print(f"wrote {data.users.size} ratings + {n_bad} bad rows to {args.output}{shape}")


if __name__ == "__main__":
    main()
