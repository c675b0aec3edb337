"""The storage helpers the job writes its single-file CSVs with, locally and on S3 (moto)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from glue_jobs.recommender import storage

HEADER = b"user_id,rank,artist_id,score\n"
MIB = 2**20
BUCKET = "runs-bucket"


def csv_body(first_user: int, size: int) -> bytes:
    """A part file as Spark writes it: the header, then rows, about `size` bytes in all."""
    rows = bytearray(HEADER)
    user = first_user
    while len(rows) < size:
        rows += f"{user},1,{user % 977},{user % 100}.5\n".encode()
        user += 1
    return bytes(rows)


# Sizes chosen to hit every branch of the S3 join: big parts copied server-side, small parts and
# seams buffered, an empty part and a header-only part (Spark writes those for empty tasks).
PART_SIZES = (7 * MIB, 1 * MIB, 0, 12 * MIB, -1, 6 * MIB + 123)


def parts() -> list[bytes]:
    out, user = [], 0
    for size in PART_SIZES:
        if size == 0:
            out.append(b"")
        elif size < 0:
            out.append(HEADER)
        else:
            body = csv_body(user, size)
            user += body.count(b"\n")
            out.append(body)
    return out


def expected(bodies: list[bytes]) -> bytes:
    return HEADER + b"".join(b[len(HEADER):] for b in bodies)


def test_local_join_keeps_one_header_and_the_order(tmp_path: Path) -> None:
    bodies = parts()
    sources = []
    for i, body in enumerate(bodies):
        (tmp_path / f"part-{i:05d}.csv").write_bytes(body)
        sources.append(str(tmp_path / f"part-{i:05d}.csv"))
    dest = tmp_path / "out" / "recommendations.csv"
    storage.concat_with_header(sources, str(dest), HEADER)
    data = dest.read_bytes()
    assert data == expected(bodies)
    assert data.count(b"user_id") == 1
    assert [p.name for p in dest.parent.iterdir()] == ["recommendations.csv"]


def test_local_join_refuses_a_part_with_another_header(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(HEADER + b"1,1,1,1\n")
    (tmp_path / "b.csv").write_bytes(b"user_id,artist_id,score\n1,1,1\n")
    dest = tmp_path / "out" / "x.csv"
    with pytest.raises(storage.StorageError, match="b.csv does not start with the header"):
        storage.concat_with_header([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")], str(dest), HEADER)
    assert not dest.exists()


def test_local_join_of_no_parts_is_the_header_alone(tmp_path: Path) -> None:
    dest = tmp_path / "x.csv"
    storage.concat_with_header([], str(dest), HEADER)
    assert dest.read_bytes() == HEADER


class CountingS3:
    """Passes calls to a real (moto) client and counts the bytes this process downloads."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.downloaded = 0
        self.copied_parts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def get_object(self, **kw: Any) -> Any:
        out = self.client.get_object(**kw)
        self.downloaded += out["ContentLength"]
        return out

    def upload_part_copy(self, **kw: Any) -> Any:
        self.copied_parts += 1
        return self.client.upload_part_copy(**kw)


@pytest.fixture
def s3() -> Any:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def put_parts(s3: Any, bodies: list[bytes]) -> list[str]:
    for i, body in enumerate(bodies):
        s3.put_object(Bucket=BUCKET, Key=f"run/_parts/part-{i:05d}.csv", Body=body)
    return storage.list_files(f"s3://{BUCKET}/run/_parts", ".csv", client=s3)


def test_s3_join_is_one_object_built_mostly_server_side(s3: Any) -> None:
    bodies = parts()
    sources = put_parts(s3, bodies)
    assert len(sources) == len(bodies)
    counting = CountingS3(s3)
    storage.concat_with_header(sources, f"s3://{BUCKET}/run/recommendations_csv/recommendations.csv", HEADER,
                               client=counting)
    got = s3.get_object(Bucket=BUCKET, Key="run/recommendations_csv/recommendations.csv")["Body"].read()
    assert got == expected(bodies)
    total = sum(len(b) for b in bodies)
    # Only the seams between parts pass through this process, never the whole file.
    assert counting.copied_parts >= 2
    assert counting.downloaded < total / 2, (counting.downloaded, total)


def test_s3_join_of_small_parts_still_makes_a_valid_upload(s3: Any) -> None:
    bodies = [csv_body(i * 100, 2000) for i in range(4)]
    sources = put_parts(s3, bodies)
    storage.concat_with_header(sources, f"s3://{BUCKET}/out.csv", HEADER, client=s3)
    assert s3.get_object(Bucket=BUCKET, Key="out.csv")["Body"].read() == expected(bodies)


def test_s3_join_refuses_a_bad_part_and_leaves_no_object_or_upload(s3: Any) -> None:
    sources = put_parts(s3, [csv_body(0, 6 * MIB), b"user_id,score\n1,2\n"])
    with pytest.raises(storage.StorageError, match="part-00001.csv does not start with the header"):
        storage.concat_with_header(sources, f"s3://{BUCKET}/out.csv", HEADER, client=s3)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="out.csv")
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_s3_listing_is_one_level_and_remove_tree_clears_a_prefix(s3: Any) -> None:
    for key in ("run/a.csv", "run/b.csv", "run/sub/c.csv", "run/x.json", "other/d.csv"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    assert storage.list_files(f"s3://{BUCKET}/run", ".csv", client=s3) == [
        f"s3://{BUCKET}/run/a.csv", f"s3://{BUCKET}/run/b.csv"]
    storage.remove_tree(f"s3://{BUCKET}/run", client=s3)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert keys == ["other/d.csv"]


def test_s3_missing_key_reads_as_file_not_found_and_lines_stream(s3: Any) -> None:
    with pytest.raises(FileNotFoundError, match=f"s3://{BUCKET}/nope.json"):
        storage.read_text(f"s3://{BUCKET}/nope.json", client=s3)
    s3.put_object(Bucket=BUCKET, Key="r.csv", Body=HEADER + b"1,1,1,1\n2,1,1,1\n")
    lines = list(storage.read_lines(f"s3://{BUCKET}/r.csv", client=s3))
    assert lines == [HEADER.decode(), "1,1,1,1\n", "2,1,1,1\n"]
