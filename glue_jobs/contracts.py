"""The project's data contracts: column names, output names, limits and run ids, defined once.

The job, the Lambdas and the stacks import these names instead of spelling them again, so the
three cannot drift apart. Nothing here imports Spark or boto3: it must load anywhere.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# --- Input: the Yahoo! Music R1 layout -------------------------------------------------------
USER_ID = "user_id"
ARTIST_ID = "artist_id"
RATING = "rating"
ARTIST_NAME = "artist_name"
R1_COLUMNS = (USER_ID, ARTIST_ID, RATING)
R1_SEPARATOR = "\t"

RATING_MIN = 0
RATING_MAX = 100
NEVER_PLAY_AGAIN = 255  # R1's special value: not a rating, but never recommend that artist
PSEUDO_ARTISTS = {-100: "Not Applicable", -99: "Unknown Artist"}
MAX_ID = 2**31 - 1  # ALS needs ids that fit a Java int
ARTIST_NAMES_ENCODING = "cp1252"

# --- Input: AWS DMS S3 target output for the ratings table ----------------------------------
# The ingestion stack configures DMS to produce exactly this (see README "DMS input").
DMS_OP_COLUMN = "Op"
DMS_TIMESTAMP_COLUMN = "commit_ts"
DMS_OPS = ("I", "U", "D")
DMS_TARGET_SETTINGS = {
    "DataFormat": "csv",
    "AddColumnName": True,  # header row, so the job reads columns by name
    "IncludeOpForFullLoad": True,  # full-load rows carry Op=I like CDC inserts
    "TimestampColumnName": DMS_TIMESTAMP_COLUMN,  # commit time of each change
    "CsvDelimiter": ",",
    "CsvRowDelimiter": "\\n",
    "CdcInsertsOnly": False,
    "CdcInsertsAndUpdates": False,  # deletes are needed to reach the table's current state
    "CompressionType": "NONE",
}

# --- Quarantine ----------------------------------------------------------------------------
MALFORMED_LINE = "malformed_line"
NON_INTEGER_ID = "non_integer_id"
PSEUDO_ARTIST = "pseudo_artist"
ID_OUT_OF_RANGE = "id_out_of_range"
NON_INTEGER_RATING = "non_integer_rating"
RATING_OUT_OF_RANGE = "rating_out_of_range"
UNKNOWN_DMS_OP = "unknown_dms_op"
DUPLICATE_PAIR = "duplicate_pair"
QUARANTINE_REASONS = (  # in the order the job checks them; metrics.json counts every one
    MALFORMED_LINE,
    NON_INTEGER_ID,
    PSEUDO_ARTIST,
    ID_OUT_OF_RANGE,
    NON_INTEGER_RATING,
    RATING_OUT_OF_RANGE,
    UNKNOWN_DMS_OP,
    DUPLICATE_PAIR,
)
QUARANTINE_REASON = "reason"
QUARANTINE_SOURCE = "source"
QUARANTINE_LINE = "line"

# --- Outputs (names other tools rely on: keep them stable) -----------------------------------
RECOMMENDATIONS_DIR = "recommendations"
RECOMMENDATIONS_CSV_DIR = "recommendations_csv"
RECOMMENDATIONS_CSV_FILE = "recommendations.csv"  # the one file in RECOMMENDATIONS_CSV_DIR
POPULAR_DIR = "popular"
SCORES_DIR = "scores"
SCORES_CSV_FILE = "scores.csv"  # the one file in SCORES_DIR
QUARANTINE_DIR = "quarantine"
MODEL_DIR = "model"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
SUCCESS_MARKER = "_SUCCESS"
RANK = "rank"
# Two numbers per recommended artist. SCORE is the ranking score a list is ordered by (the
# predicted rating, or implicit preference, plus the popularity prior; the fallback list's
# popularity): higher is better, never higher further down a list, comparable within one run and
# one user's list, not a rating. PREDICTED_RATING is the model's rating on the input's scale
# (0..100 for R1), clipped to it; null for implicit feedback (no rating scale to predict on).
SCORE = "score"
PREDICTED_RATING = "predicted_rating"
RECOMMENDATION_COLUMNS = (USER_ID, RANK, ARTIST_ID, SCORE, PREDICTED_RATING)
LIST_ENTRY_COLUMNS = (RANK, ARTIST_ID, SCORE, PREDICTED_RATING)  # one entry of a user's list (DynamoDB, API)
SCORES_COLUMNS = (USER_ID, ARTIST_ID, SCORE, PREDICTED_RATING)

# Similar artists ("fans also like"): per artist, the most similar artists by cosine similarity of
# the final model's artist factors, best first. Artists with fewer than --min-artist-ratings
# learnable ratings neither get a list nor appear in one. SIMILARITY is the cosine, in -1..1.
SIMILAR_ARTIST_ID = "similar_artist_id"
SIMILARITY = "similarity"
SIMILARITY_DIGITS = 6  # similarities are ranked as published (rounded), so equal values are in artist-id order
SIMILAR_ARTIST_NAME = "similar_artist_name"  # with --artists, beside ARTIST_NAME
SIMILAR_ARTISTS_DIR = "similar_artists"
SIMILAR_ARTISTS_CSV_DIR = "similar_artists_csv"
SIMILAR_ARTISTS_CSV_FILE = "similar_artists.csv"  # the one file in SIMILAR_ARTISTS_CSV_DIR
SIMILAR_ARTIST_COLUMNS = (ARTIST_ID, RANK, SIMILAR_ARTIST_ID, SIMILARITY)
SIMILAR_ENTRY_COLUMNS = (RANK, ARTIST_ID, SIMILARITY)  # one entry of an artist's list (DynamoDB, API)

# --- Run ids -------------------------------------------------------------------------------
RUN_ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{4}$")


def new_run_id(now: datetime | None = None) -> str:
    """A sortable UTC timestamp plus a short random suffix, e.g. 20261129T160000Z-3f2a."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def is_run_id(value: str) -> bool:
    return bool(RUN_ID_PATTERN.match(value))


def run_id_time(run_id: str) -> datetime | None:
    """When a run started, read from its id (None: not a run id)."""
    return datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) if is_run_id(run_id) else None


# --- Published runs on S3 (or a local folder) -------------------------------------------
RUNS_PREFIX = "runs"
LATEST_FILE = "latest.json"  # {"run_id": ..., "path": ..., "published_at": ...}
QUICKSIGHT_MANIFEST_FILE = "quicksight-manifest.json"


def run_path(root: str, run_id: str) -> str:
    return f"{root.rstrip('/')}/{RUNS_PREFIX}/{run_id}"


# --- DynamoDB: one item per user per run, a pointer item names the active run ---------------
DDB_PARTITION_KEY = USER_ID  # number
DDB_SORT_KEY = "run_id"  # string
DDB_RECOMMENDATIONS = "recommendations"  # list of {artist_id, score, rank[, predicted_rating][, artist_name]}
DDB_GENERATED_AT = "generated_at"
DDB_TTL_ATTRIBUTE = "expires_at"
DDB_CONTROL_USER_ID = 0  # not a real user (R1 ids start at 1): holds the pointer and fallbacks
DDB_POINTER_SORT_KEY = "ACTIVE"  # (0, "ACTIVE"): the active-run pointer
DDB_ACTIVE_RUN = "active_run_id"
DDB_PREVIOUS_RUN = "previous_run_id"
DDB_TOP_N = "top_n"
DDB_UPDATED_AT = "updated_at"  # ISO 8601 UTC time of the last flip
DDB_FALLBACK = "fallback"  # (0, <run_id>) holds the run's popularity list, marked fallback
# An artist's similar-artists list for a run: item (-artist_id, <run_id>) in the same table, so the
# one pointer flip publishes and rolls back users' and artists' lists together. User ids are
# positive and the control user is 0, so negative partition keys never meet a user's.
DDB_SIMILAR = "similar_artists"  # list of {rank, artist_id, similarity[, artist_name]}
# (the item also holds ARTIST_NAME, the artist's own name, when the run has names)


def ddb_artist_key(artist_id: int) -> int:
    """The partition key of an artist's similar-artists items."""
    return -artist_id


DDB_BATCH_SIZE = 25  # BatchWriteItem's limit
DDB_TABLE_KEYS = {  # create_table arguments for the keys above (tests, demo, benchmarks)
    "KeySchema": [{"AttributeName": DDB_PARTITION_KEY, "KeyType": "HASH"},
                  {"AttributeName": DDB_SORT_KEY, "KeyType": "RANGE"}],
    "AttributeDefinitions": [{"AttributeName": DDB_PARTITION_KEY, "AttributeType": "N"},
                             {"AttributeName": DDB_SORT_KEY, "AttributeType": "S"}],
}


@dataclass(frozen=True)
class ActivePointer:
    """The pointer item (DDB_CONTROL_USER_ID, DDB_POINTER_SORT_KEY), read in one place."""

    run_id: str
    top_n: int | None = None
    previous_run_id: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any] | None) -> ActivePointer | None:
        """The pointer from a GetItem `Item` (typed values); None when there is none yet."""
        if not item or DDB_ACTIVE_RUN not in item:
            return None
        return cls(run_id=item[DDB_ACTIVE_RUN]["S"],
                   top_n=int(item[DDB_TOP_N]["N"]) if DDB_TOP_N in item else None,
                   previous_run_id=item.get(DDB_PREVIOUS_RUN, {}).get("S"),
                   updated_at=item.get(DDB_UPDATED_AT, {}).get("S"))

    def as_status(self) -> dict[str, Any]:
        """The pointer as people and the API's /status read it, keyed by the item's names."""
        return {DDB_ACTIVE_RUN: self.run_id, DDB_PREVIOUS_RUN: self.previous_run_id, DDB_TOP_N: self.top_n,
                DDB_UPDATED_AT: self.updated_at}


def plain_value(value: dict[str, Any]) -> Any:
    """A DynamoDB typed value ({"N": "1"}, {"L": [...]}, {"M": {...}}) as plain Python: the
    reading side of the item layout above, shared by the job's tools and the API."""
    ((kind, raw),) = value.items()
    if kind == "N":
        return int(raw) if raw.lstrip("-").isdigit() else float(raw)
    if kind == "L":
        return [plain_value(v) for v in raw]
    if kind == "M":
        return {k: plain_value(v) for k, v in raw.items()}
    return raw


# --- Aurora MySQL ------------------------------------------------------------------------
SQL_RECOMMENDATIONS = "recommendations"
SQL_RECOMMENDATIONS_STAGING = "recommendations_staging"
SQL_RECOMMENDATIONS_PREVIOUS = "recommendations_previous"
SQL_SIMILAR_ARTISTS = "similar_artists"  # SIMILAR_ARTIST_COLUMNS + run_id, swapped with recommendations
SQL_SIMILAR_ARTISTS_STAGING = "similar_artists_staging"
SQL_SIMILAR_ARTISTS_PREVIOUS = "similar_artists_previous"
SQL_ARTISTS = "artists"
SQL_MODEL_RUNS = "model_runs"
SQL_MIGRATIONS = "schema_migrations"
SCHEMA_VERSION = 4  # migrations the Aurora sink applies; the stack names it in its outputs
# Columns other readers (QuickSight's SQL, operators) name, beside the shared ones above.
SQL_RUN_ID = "run_id"
SQL_ARTIST_NAME = "name"  # artists.name
SQL_RUN_STATUS = "status"  # model_runs: loading | published | failed | superseded
SQL_STARTED_AT = "started_at"
SQL_FINISHED_AT = "finished_at"
SQL_ROWS_LOADED = "rows_loaded"
SQL_PARAMS = "params"  # JSON: best_params
SQL_METRICS = "metrics"  # JSON: the run's test metrics and baselines
SQL_COUNTS = "counts"  # JSON: metrics.json counts
SQL_TIMINGS = "timings"  # JSON: metrics.json timings_s
SQL_ERROR = "error"
