"""S3 / local files: latest.json names the published run; a QuickSight manifest points at its CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from glue_jobs import contracts as c
from glue_jobs.recommender import storage
from glue_jobs.recommender.publish.dynamo import PublishError


def read_latest(root: str, client: Any = None) -> dict[str, Any] | None:
    try:
        return dict(json.loads(storage.read_text(storage.join(root, c.LATEST_FILE), client)))
    except FileNotFoundError:
        return None


def run_is_complete(root: str, run_id: str) -> bool:
    try:
        return storage.read_text(storage.join(c.run_path(root, run_id), c.SUCCESS_MARKER)).strip() == run_id
    except FileNotFoundError:
        return False


def quicksight_manifest(root: str, run_id: str) -> dict[str, Any]:
    prefix = storage.join(c.run_path(root, run_id), c.RECOMMENDATIONS_CSV_DIR) + "/"
    return {"fileLocations": [{"URIPrefixes": [prefix]}],
            "globalUploadSettings": {"format": "CSV", "delimiter": ",", "containsHeader": "true"}}


def point_latest(root: str, run_id: str, *, force: bool = False) -> None:
    """latest.json -> run_id, then the QuickSight manifest. An older run never replaces a newer
    one unless forced (rollback)."""
    if not run_is_complete(root, run_id):
        raise PublishError(f"run {run_id} under {root} has no {c.SUCCESS_MARKER}: it is not complete")
    current = read_latest(root)
    if current and not force and current["run_id"] > run_id:
        raise PublishError(f"run {run_id} is older than the published run {current['run_id']}: not replacing it")
    body = {"run_id": run_id, "path": c.run_path(root, run_id),
            "published_at": datetime.now(UTC).isoformat(),
            "previous_run_id": current["run_id"] if current and current["run_id"] != run_id else
            (current or {}).get("previous_run_id")}
    storage.write_text(storage.join(root, c.QUICKSIGHT_MANIFEST_FILE),
                       json.dumps(quicksight_manifest(root, run_id), indent=2), "application/json")
    storage.write_text(storage.join(root, c.LATEST_FILE), json.dumps(body, indent=2), "application/json")


def read_recommendations_csv(root: str, run_id: str) -> Iterator[dict[str, Any]]:
    """A published run's recommendations back from its CSV (local folder or S3)."""
    directory = storage.join(c.run_path(root, run_id), c.RECOMMENDATIONS_CSV_DIR)
    for path in storage.list_files(directory, suffix=".csv"):
        for row in csv.DictReader(storage.read_lines(path)):
            yield {c.USER_ID: int(row[c.USER_ID]), c.RANK: int(row[c.RANK]),
                   c.ARTIST_ID: int(row[c.ARTIST_ID]), c.SCORE: float(row[c.SCORE])}
