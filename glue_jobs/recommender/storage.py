"""Non-Spark file work on a local path or s3:// alike: small writes (JSON, HTML, markers),
streamed reads, and joining Spark's part files into one file without a single-task write."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

S3_MIN_PART = 5 * 2**20  # S3's smallest multipart part (every part but the last)
S3_MAX_COPY = 5 * 2**30  # S3's largest part copied server-side
COPY_CHUNK = 16 * 2**20


class StorageError(RuntimeError):
    """A storage step found files it cannot safely use."""


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def is_s3(path: str) -> bool:
    return path.startswith(("s3://", "s3a://"))


def _split_s3(path: str) -> tuple[str, str]:
    rest = path.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key


def write_text(path: str, text: str, content_type: str = "text/plain", client: Any = None) -> None:
    if is_s3(path):
        import boto3  # only needed where s3:// paths are used (Glue, EMR)

        bucket, key = _split_s3(path)
        (client or boto3.client("s3")).put_object(
            Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType=content_type)
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)  # readers never see a half-written file


def _get_object(s3: Any, bucket: str, key: str) -> Any:
    """get_object, with a missing key raised as FileNotFoundError as for a local path."""
    from botocore.exceptions import ClientError

    try:
        return s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            raise FileNotFoundError(f"s3://{bucket}/{key}") from exc
        raise


def read_text(path: str, client: Any = None) -> str:
    if is_s3(path):
        import boto3

        bucket, key = _split_s3(path)
        body = _get_object(client or boto3.client("s3"), bucket, key)["Body"]
        return str(body.read().decode("utf-8"))
    return Path(path).read_text(encoding="utf-8")


def remove(path: str, client: Any = None) -> None:
    if is_s3(path):
        import boto3

        bucket, key = _split_s3(path)
        (client or boto3.client("s3")).delete_object(Bucket=bucket, Key=key)
        return
    Path(path).unlink(missing_ok=True)


def list_files(directory: str, suffix: str = "", client: Any = None, recursive: bool = False) -> list[str]:
    """Files directly in a directory (or everything under it), sorted by name."""
    if is_s3(directory):
        import boto3

        bucket, prefix = _split_s3(directory.rstrip("/") + "/")
        s3 = client or boto3.client("s3")
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(suffix)
                     and (recursive or "/" not in o["Key"][len(prefix):])]
        scheme = directory.split("://", 1)[0]
        return sorted(f"{scheme}://{bucket}/{k}" for k in keys)
    pattern = f"**/*{suffix}" if recursive else f"*{suffix}"
    return sorted(str(p) for p in Path(directory).glob(pattern) if p.is_file())


def list_dirs(directory: str, client: Any = None) -> list[str]:
    """The names of the folders directly in a directory (on S3, the common prefixes one level
    down: nothing below them is listed), sorted; [] when it does not exist."""
    if is_s3(directory):
        import boto3

        bucket, prefix = _split_s3(directory.rstrip("/") + "/")
        s3 = client or boto3.client("s3")
        names: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            names += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return sorted(names)
    root = Path(directory)
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def read_lines(path: str, client: Any = None) -> Iterator[str]:
    """A text file's lines, streamed (a big CSV never sits in memory whole)."""
    if is_s3(path):
        import boto3

        bucket, key = _split_s3(path)
        body = _get_object(client or boto3.client("s3"), bucket, key)["Body"]
        for line in body.iter_lines(chunk_size=1 << 20, keepends=True):
            yield line.decode("utf-8")
        return
    with open(path, encoding="utf-8", newline="") as fh:
        yield from fh


def remove_tree(directory: str, client: Any = None) -> None:
    """Deletes a directory (an S3 prefix) and everything under it; absent is fine."""
    if is_s3(directory):
        import boto3

        s3 = client or boto3.client("s3")
        bucket, _ = _split_s3(directory)
        keys = [_split_s3(p)[1] for p in list_files(directory, client=s3, recursive=True)]
        for i in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]],
                                                     "Quiet": True})
        return
    shutil.rmtree(directory, ignore_errors=True)


def concat_with_header(sources: list[str], dest: str, header: bytes, client: Any = None,
                       min_part: int = S3_MIN_PART) -> None:
    """Writes one file: `header`, then each source's bytes after its own copy of that header.

    Spark writes a CSV as one part file per task, each with the header; this joins them in the
    given order so the output is a single file while the writing itself stayed parallel. Local
    files are streamed; on S3 the result is a multipart upload whose parts are server-side copies
    of the sources, so only the seams (under `min_part` bytes each) pass through this process.
    A source that does not start with the header is refused rather than joined into a bad file.
    """
    if is_s3(dest):
        _concat_s3(sources, dest, header, client, min_part)
        return
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with tmp.open("wb") as out:
        out.write(header)
        for src in sources:
            with open(src, "rb") as fh:
                _check_header(src, fh.read(len(header)), header)
                shutil.copyfileobj(fh, out, COPY_CHUNK)
    tmp.replace(target)


def _check_header(src: str, first: bytes, header: bytes) -> None:
    if first not in (header, b""):
        raise StorageError(f"{src} does not start with the header {header!r} (found {first[:80]!r}); "
                           "refusing to join it")


def _concat_s3(sources: list[str], dest: str, header: bytes, client: Any, min_part: int) -> None:
    import boto3

    s3 = client or boto3.client("s3")
    bucket, key = _split_s3(dest)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="text/csv")["UploadId"]
    parts: list[dict[str, Any]] = []
    buffer = bytearray(header)

    def flush() -> None:
        done = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=len(parts) + 1,
                              Body=bytes(buffer))
        parts.append({"ETag": done["ETag"], "PartNumber": len(parts) + 1})
        buffer.clear()

    try:
        for src in sources:
            src_bucket, src_key = _split_s3(src)
            size = s3.head_object(Bucket=src_bucket, Key=src_key)["ContentLength"]
            if size == 0:
                continue
            first = s3.get_object(Bucket=src_bucket, Key=src_key,
                                  Range=f"bytes=0-{len(header) - 1}")["Body"].read()
            _check_header(src, first, header)
            pos = len(header)
            while pos < size:
                if not buffer and size - pos >= min_part:
                    end = min(size, pos + S3_MAX_COPY)
                    done = s3.upload_part_copy(
                        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=len(parts) + 1,
                        CopySource={"Bucket": src_bucket, "Key": src_key}, CopySourceRange=f"bytes={pos}-{end - 1}")
                    parts.append({"ETag": done["CopyPartResult"]["ETag"], "PartNumber": len(parts) + 1})
                    pos = end
                    continue
                # A seam: fill the buffer up to a valid part size from this source, then send it.
                end = min(size, pos + min_part - len(buffer))
                buffer += s3.get_object(Bucket=src_bucket, Key=src_key, Range=f"bytes={pos}-{end - 1}")["Body"].read()
                pos = end
                if len(buffer) >= min_part:
                    flush()
        if buffer or not parts:
            flush()
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    except BaseException:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
