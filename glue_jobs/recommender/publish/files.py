"""Files sink (S3 or a local folder): latest.json names the published run; a QuickSight
manifest points at its CSV. The run's own files are written by the job, _SUCCESS last."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from glue_jobs import contracts as c
from glue_jobs.recommender import storage
from glue_jobs.recommender.publish.errors import PublishError
from glue_jobs.recommender.publish.sink import RunToPublish


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


def require_complete(root: str, run_id: str) -> None:
    if not run_is_complete(root, run_id):
        raise PublishError(f"run {run_id} under {root} has no {c.SUCCESS_MARKER}: it is not complete")


def quicksight_manifest(root: str, run_id: str) -> dict[str, Any]:
    prefix = storage.join(c.run_path(root, run_id), c.RECOMMENDATIONS_CSV_DIR) + "/"
    return {"fileLocations": [{"URIPrefixes": [prefix]}],
            "globalUploadSettings": {"format": "CSV", "delimiter": ",", "containsHeader": "true"}}


def point_latest(root: str, run_id: str, *, force: bool = False) -> None:
    """latest.json -> run_id (a complete run), after the QuickSight manifest. Never to a run older
    than the one latest.json names, unless forced (rollback, or taking a publish back): publish_run
    refused older runs before staging, but a newer one may have been published since."""
    require_complete(root, run_id)
    current = read_latest(root)
    if current and current["run_id"] > run_id and not force:
        raise PublishError(f"run {run_id} is older than the run {current['run_id']} latest.json names: "
                           "not replacing it")
    body = {"run_id": run_id, "path": c.run_path(root, run_id),
            "published_at": datetime.now(UTC).isoformat(),
            "previous_run_id": current["run_id"] if current and current["run_id"] != run_id else
            (current or {}).get("previous_run_id")}
    storage.write_text(storage.join(root, c.QUICKSIGHT_MANIFEST_FILE),
                       json.dumps(quicksight_manifest(root, run_id), indent=2), "application/json")
    storage.write_text(storage.join(root, c.LATEST_FILE), json.dumps(body, indent=2), "application/json")


def read_recommendations_csv(root: str, run_id: str) -> Iterator[dict[str, Any]]:
    """A published run's recommendations back from its CSV (local folder or S3). A run written
    before predicted_rating existed, or an implicit run (an empty cell), reads it as None."""
    directory = storage.join(c.run_path(root, run_id), c.RECOMMENDATIONS_CSV_DIR)
    for path in storage.list_files(directory, suffix=".csv"):
        for row in csv.DictReader(storage.read_lines(path)):
            rating = row.get(c.PREDICTED_RATING)
            yield {c.USER_ID: int(row[c.USER_ID]), c.RANK: int(row[c.RANK]),
                   c.ARTIST_ID: int(row[c.ARTIST_ID]), c.SCORE: float(row[c.SCORE]),
                   c.PREDICTED_RATING: float(rating) if rating else None}


def read_similar_artists_csv(root: str, run_id: str) -> Iterator[dict[str, Any]]:
    """A published run's similar artists back from its CSV (c.SIMILAR_ARTIST_COLUMNS; names are
    left out); nothing for a run that has none (no folder, or a run before they existed)."""
    directory = storage.join(c.run_path(root, run_id), c.SIMILAR_ARTISTS_CSV_DIR)
    for path in storage.list_files(directory, suffix=".csv"):
        for row in csv.DictReader(storage.read_lines(path)):
            yield {c.ARTIST_ID: int(row[c.ARTIST_ID]), c.RANK: int(row[c.RANK]),
                   c.SIMILAR_ARTIST_ID: int(row[c.SIMILAR_ARTIST_ID]), c.SIMILARITY: float(row[c.SIMILARITY])}


class FilesSink:
    """Nothing to stage (the job wrote the run's files); activating points latest.json at it."""

    name = "files"

    def __init__(self, root: str) -> None:
        self.root = root

    def check(self) -> None:
        """Nothing to check: the job creates the run's folder itself, under the same root."""

    def active_run(self) -> str | None:
        latest = read_latest(self.root)
        return latest["run_id"] if latest else None

    def stage(self, run: RunToPublish) -> dict[str, Any]:
        require_complete(self.root, run.run_id)  # consumers trust only runs with _SUCCESS
        return {}

    def activate(self, run: RunToPublish) -> None:
        point_latest(self.root, run.run_id)

    def abandon(self, run: RunToPublish, reason: str) -> None:
        """The run's files stay: they are complete, only not published."""

    def rollback(self, to: str) -> dict[str, Any]:
        point_latest(self.root, to, force=True)
        return {"latest": to}

    def undo(self, run: RunToPublish, previous: str | None) -> str:
        if self.active_run() != run.run_id:
            return "files already name another run, left alone"
        if previous is None:
            storage.remove(storage.join(self.root, c.LATEST_FILE))
            return "files: latest.json removed again"
        point_latest(self.root, previous, force=True)
        return f"files back on {previous}"

    def close(self) -> None:
        pass
