"""Small non-Spark file writes (JSON, HTML, markers) to a local path or s3:// alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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


def read_text(path: str, client: Any = None) -> str:
    if is_s3(path):
        import boto3

        bucket, key = _split_s3(path)
        body = (client or boto3.client("s3")).get_object(Bucket=bucket, Key=key)["Body"]
        return str(body.read().decode("utf-8"))
    return Path(path).read_text(encoding="utf-8")


def remove(path: str, client: Any = None) -> None:
    if is_s3(path):
        import boto3

        bucket, key = _split_s3(path)
        (client or boto3.client("s3")).delete_object(Bucket=bucket, Key=key)
        return
    Path(path).unlink(missing_ok=True)


def list_files(directory: str, suffix: str = "", client: Any = None) -> list[str]:
    if is_s3(directory):
        import boto3

        bucket, prefix = _split_s3(directory.rstrip("/") + "/")
        s3 = client or boto3.client("s3")
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(suffix)]
        scheme = directory.split("://", 1)[0]
        return sorted(f"{scheme}://{bucket}/{k}" for k in keys)
    return sorted(str(p) for p in Path(directory).glob(f"*{suffix}") if p.is_file())
