"""The job's own JVM compiles with C1 only for small local input (main.local_session): how big the
input is, from the paths the job will read."""

from __future__ import annotations

from pathlib import Path

from glue_jobs.recommender.main import local_input_bytes


def test_local_input_bytes_counts_files_directories_and_globs(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_bytes(b"x" * 100)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "part-0.tsv").write_bytes(b"x" * 30)
    (tmp_path / "dir" / "nested").mkdir()
    (tmp_path / "dir" / "nested" / "part-1.tsv.gz").write_bytes(b"x" * 7)
    assert local_input_bytes([str(tmp_path / "a.tsv")]) == 100
    assert local_input_bytes([str(tmp_path / "dir")]) == 37
    assert local_input_bytes([str(tmp_path / "*.tsv"), f"file://{tmp_path / 'dir'}"]) == 137
    assert local_input_bytes([str(tmp_path / "missing.tsv")]) == 0


def test_remote_input_is_never_a_short_run() -> None:
    assert local_input_bytes(["s3://bucket/ratings/", "/tmp/x.tsv"]) is None
