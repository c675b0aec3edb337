"""The similar-artists kernel (cosine over artist factors, in blocks) on hand-made factors."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from glue_jobs.recommender import similar
from glue_jobs.recommender.similar import ArtistVectors, SimilarRow, artist_vectors, similar_rows


def lists(vectors: ArtistVectors, n: int, block: int | None = None) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for artist, rank, other, _ in similar_rows(vectors.artist_ids, vectors, n, block):
        assert rank == len(out.setdefault(artist, [])) + 1
        out[artist].append(other)
    return out


# Given in no particular id order: the kernel sorts by id.
HAND = {40: (-1.0, 0.0), 10: (1.0, 0.0), 30: (0.0, 1.0), 20: (0.9, 0.1)}


def hand_vectors(extra: dict[int, tuple[tuple[float, float], int]] | None = None) -> ArtistVectors:
    """HAND with 10 ratings each, plus `extra` artists: id -> (vector, ratings); at least 5 ratings to count."""
    rows = {a: (v, 10) for a, v in HAND.items()} | (extra or {})
    ids = np.array(list(rows), dtype=np.int64)
    return artist_vectors(ids, np.array([v for v, _ in rows.values()]), np.array([n for _, n in rows.values()]), 5)


def test_the_closest_direction_comes_first_and_an_artist_is_never_its_own_neighbour() -> None:
    got = lists(hand_vectors(), n=3)
    # 10 points along x: 20 almost so (cos 0.994), 30 at a right angle (0), 40 opposite (-1).
    assert got[10] == [20, 30, 40]
    assert got[40] == [30, 20, 10]  # 30: 0; 20: -0.994; 10: -1
    assert all(artist not in others for artist, others in got.items())
    rows = {(a, o): s for a, _, o, s in similar_rows(np.array([10]), hand_vectors(), 3)}
    assert rows == pytest.approx({(10, 20): 0.9 / np.hypot(0.9, 0.1), (10, 30): 0.0, (10, 40): -1.0}, abs=1e-6)


def test_ties_go_to_the_lower_artist_id() -> None:
    # 30 = (0, 1) is at a right angle to both 10 and 40: equal similarity 0, after 20 (0.110).
    assert lists(hand_vectors(), n=3)[30] == [20, 10, 40]
    same = artist_vectors(np.array([7, 3, 5, 1]), np.array([[1.0, 1.0]] * 3 + [[2.0, 2.0]]), np.full(4, 9), 5)
    assert lists(same, n=2) == {1: [3, 5], 3: [1, 5], 5: [1, 3], 7: [1, 3]}


def test_artists_with_too_few_ratings_neither_get_a_list_nor_appear_in_one() -> None:
    # 50 points exactly like 10 (it would be 10's first neighbour) but has 4 ratings, below 5.
    few = hand_vectors({50: ((1.0, 0.0), 4)})
    got = lists(few, n=3)
    assert 50 not in got and all(50 not in others for others in got.values())
    assert got[10] == [20, 30, 40]
    # At the bound it counts, both ways.
    enough = lists(hand_vectors({50: ((1.0, 0.0), 5)}), n=3)
    assert enough[10][0] == 50 and enough[50] == [10, 20, 30]


def test_zero_vectors_have_no_direction_and_are_left_out() -> None:
    got = lists(hand_vectors({60: ((0.0, 0.0), 100)}), n=4)
    assert 60 not in got and all(60 not in others for others in got.values())
    assert all(len(others) == 3 for others in got.values()), "four eligible artists: three neighbours each"


def test_lists_are_as_long_as_there_are_other_artists() -> None:
    assert {len(v) for v in lists(hand_vectors(), n=10).values()} == {3}
    alone = artist_vectors(np.array([1]), np.array([[1.0, 2.0]]), np.array([10]), 5)
    assert lists(alone, n=3) == {}
    assert lists(artist_vectors(np.zeros(0, dtype=np.int64), np.zeros((0, 2)), np.zeros(0), 5), n=3) == {}


def brute_force(vectors: ArtistVectors, n: int) -> list[SimilarRow]:
    """Every pair's cosine in one full matrix, each row sorted by (-similarity, artist id)."""
    ids, unit = vectors.artist_ids, vectors.unit
    sims = np.round(unit @ unit.T, similar.DIGITS)
    out = []
    for i, artist in enumerate(ids.tolist()):
        others = sorted((j for j in range(ids.size) if j != i), key=lambda j: (-sims[i, j], ids[j]))[:n]
        out += [(artist, rank, int(ids[j]), float(sims[i, j])) for rank, j in enumerate(others, start=1)]
    return out


def test_blocks_give_what_the_full_matrix_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    ids = rng.choice(10_000, size=57, replace=False)
    factors = rng.normal(size=(57, 6))
    factors[3] = 0.0  # no direction
    counts = rng.integers(1, 12, size=57)  # some below the bound of 5
    vectors = artist_vectors(ids, factors, counts, 5)
    assert 20 < vectors.size < 56
    blocks: list[int] = []
    kernel = similar.similar_block

    def counting(query_ids: np.ndarray, vecs: ArtistVectors, n: int) -> Iterator[SimilarRow]:
        blocks.append(query_ids.size)
        return kernel(query_ids, vecs, n)

    monkeypatch.setattr(similar, "similar_block", counting)
    expected = brute_force(vectors, 7)
    assert list(similar_rows(vectors.artist_ids, vectors, 7, block=5)) == expected
    assert len(blocks) == -(-vectors.size // 5) and max(blocks) == 5, "several blocks of at most 5 artists"
    assert list(similar_rows(vectors.artist_ids, vectors, 7)) == expected  # the default: one block here
    assert len(expected) == vectors.size * 7


def test_near_ties_across_the_cut_off_go_to_the_lower_id_as_shown() -> None:
    """Directions on a coarse integer grid plus noise far below the shown digits: many artists tie
    once rounded, some just above and some just below the k-th raw value. The shown order must
    still be (similarity as shown, then artist id), like the brute force, in any block size."""
    rng = np.random.default_rng(11)
    n = 80
    factors = rng.integers(-2, 3, size=(n, 3)).astype(np.float64) + rng.normal(scale=1e-7, size=(n, 3))
    vectors = artist_vectors(np.arange(1, n + 1), factors, np.full(n, 10), 5)
    expected = brute_force(vectors, 9)
    for block in (1, 3, 5, 80):
        assert list(similar_rows(vectors.artist_ids, vectors, 9, block=block)) == expected, block
