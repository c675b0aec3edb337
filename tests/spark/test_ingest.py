"""Reading and validating R1 and DMS input on hand-made files: every bad row is counted."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pytest

from glue_jobs import contracts as c
from glue_jobs import datagen
from glue_jobs.recommender.ingest import InputError, ingest, read_artist_names

pytestmark = pytest.mark.spark


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def ratings_of(result) -> dict[tuple[int, int], int]:  # type: ignore[no-untyped-def]
    return {(r.user_id, r.artist_id): r.rating for r in result.ratings.collect()}


def reasons_of(result) -> dict[str, int]:  # type: ignore[no-untyped-def]
    counts: dict[str, int] = {}
    for row in result.quarantine.collect():
        counts[row.reason] = counts.get(row.reason, 0) + 1
    return counts


R1_SAMPLE = "\n".join([
    "1\t10\t90",            # good
    "1\t11\t255",           # good: never play again is kept (it blocks the artist)
    "2\t10\t0",             # good
    "2\t10\t30",            # same pair later in the file: this one wins
    "3\t12",                # malformed: two fields
    "3\t12\t50\tx",         # malformed: four fields
    "",                     # malformed: empty line in the middle
    "a\t12\t50",            # non-integer user
    "3\t12.0\t50",          # non-integer artist
    "3\t-100\t50",          # pseudo-artist Not Applicable
    "3\t-99\t50",           # pseudo-artist Unknown Artist
    "0\t12\t50",            # user id out of range
    "3\t2147483648\t50",    # artist id does not fit an int
    "3\t99999999999999999999\t50",  # does not even fit a long
    "3\t12\t4.5",           # non-integer rating
    "3\t12\t101",           # rating out of range
    "3\t12\t-1",            # rating out of range
    "4\t13\t70\r",          # good: Windows line ending
]) + "\n"


def test_r1_rows_are_kept_or_quarantined_with_a_reason(spark, tmp_path: Path) -> None:
    result = ingest(spark, (write(tmp_path / "r.tsv", R1_SAMPLE),))
    assert result.input_format == "r1"
    assert ratings_of(result) == {(1, 10): 90, (1, 11): 255, (2, 10): 30, (4, 13): 70}
    assert reasons_of(result) == {
        "malformed_line": 3, "non_integer_id": 2, "pseudo_artist": 2, "id_out_of_range": 3,
        "non_integer_rating": 1, "rating_out_of_range": 2, "duplicate_pair": 1,
    }
    dup = [r for r in result.quarantine.collect() if r.reason == "duplicate_pair"]
    assert dup[0].line == "2\t10\t0" and dup[0].source.endswith("r.tsv")


def test_duplicates_across_files_keep_the_one_from_the_last_file(spark, tmp_path: Path) -> None:
    write(tmp_path / "in" / "part-a.tsv", "5\t20\t10\n5\t21\t40\n")
    write(tmp_path / "in" / "part-b.tsv", "5\t20\t80\n")
    with gzip.open(tmp_path / "in" / "part-c.tsv.gz", "wt") as fh:
        fh.write("6\t20\t60\n")
    result = ingest(spark, (str(tmp_path / "in"),))
    assert ratings_of(result) == {(5, 20): 80, (5, 21): 40, (6, 20): 60}
    assert reasons_of(result) == {"duplicate_pair": 1}


def test_several_paths_and_a_missing_path(spark, tmp_path: Path) -> None:
    a = write(tmp_path / "a.tsv", "1\t2\t3\n")
    b = write(tmp_path / "b.tsv", "4\t5\t6\n")
    assert len(ratings_of(ingest(spark, (a, b)))) == 2
    with pytest.raises(InputError, match=r"cannot read input .*nope"):
        ingest(spark, (str(tmp_path / "nope"),))


DMS_HEADER = "Op,commit_ts,user_id,artist_id,rating\n"


def test_dms_changes_are_applied_in_commit_order(spark, tmp_path: Path) -> None:
    d = tmp_path / "dms"
    write(d / "LOAD00000001.csv", DMS_HEADER + "\n".join([
        "I,2026-11-01 00:00:00.000000,1,10,50",
        "I,2026-11-01 00:00:00.000000,1,11,60",
        "I,2026-11-01 00:00:00.000000,2,10,70",
        "I,2026-11-01 00:00:00.000000,3,10,20",
    ]) + "\n")
    # The later file name holds the earlier commit: order must come from the timestamp.
    write(d / "20261102-000002.csv", DMS_HEADER + "\n".join([
        "U,2026-11-02 10:00:00.000000,1,10,55",
        "D,2026-11-02 11:00:00.000000,2,10,",
        "I,2026-11-02 12:00:00.000000,2,10,90",   # re-inserted after the delete
        "X,2026-11-02 12:00:00.000000,9,9,9",     # unknown op
    ]) + "\n")
    write(d / "20261102-000001.csv", DMS_HEADER + "\n".join([
        "U,2026-11-02 09:00:00.000000,1,10,99",   # superseded by the 10:00 update
        "D,2026-11-02 09:30:00.000000,1,11,60",
        "I,2026-11-02 09:45:00.000000,4,12,255",
        "U,2026-11-02 09:50:00.000000,3,-99,20",  # pseudo-artist
    ]) + "\n")
    result = ingest(spark, (str(d),))
    assert result.input_format == "dms"
    assert ratings_of(result) == {(1, 10): 55, (2, 10): 90, (3, 10): 20, (4, 12): 255}
    assert reasons_of(result) == {"unknown_dms_op": 1, "pseudo_artist": 1}
    assert result.dms_changes == {"insert": 6, "update": 2, "delete": 2}
    # The input is read once into a cache; the job keeps what it needs and releases the rest,
    # after which the kept copy still holds the replayed state.
    assert result.cached is not None and result.cached.storageLevel.useMemory
    kept = result.ratings.cache()
    kept.count()
    result.release()
    assert not result.cached.storageLevel.useMemory
    assert {(r.user_id, r.artist_id): r.rating for r in kept.collect()} == {
        (1, 10): 55, (2, 10): 90, (3, 10): 20, (4, 12): 255}


def test_generated_dms_bad_rows_are_quarantined_with_their_labelled_reasons(spark, tmp_path: Path) -> None:
    data = datagen.generate(3_000, seed=6, bad_share=0.02)
    written = datagen.write_dms(tmp_path / "dms", data, seed=6)
    result = ingest(spark, (str(tmp_path / "dms"),))
    assert result.input_format == "dms"
    assert reasons_of(result) == dict(Counter(kind for kind, _ in written.bad_lines))
    quarantined = sorted(r.line for r in result.quarantine.collect())
    assert quarantined == sorted(line for _, line in written.bad_lines)
    rows = written.rows
    assert result.dms_changes == {"insert": rows["load"] + rows["insert"], "update": rows["update"],
                                  "delete": rows["delete"]}
    assert result.ratings.count() == data.users.size - rows["delete"]


def test_dms_without_the_expected_columns_is_refused(spark, tmp_path: Path) -> None:
    path = write(tmp_path / "LOAD00000001.csv", "Op,user_id,artist_id,rating\nI,1,2,3\n")
    with pytest.raises(InputError, match=r"lacks column.*commit_ts"):
        ingest(spark, (path,), "dms")


def test_artist_names_are_decoded_from_windows_1252(spark, tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_bytes("-100\tNot Applicable\n7\tMotörhead\n8\tBeyoncé\nbad\tline\n".encode("cp1252"))
    names = {r.artist_id: r.artist_name for r in read_artist_names(spark, str(path)).collect()}
    assert names == {-100: "Not Applicable", 7: "Motörhead", 8: "Beyoncé"}
    assert c.PSEUDO_ARTISTS[-100] == names[-100]
