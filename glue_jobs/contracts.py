"""The project's data contracts: column names, output names, limits and run ids, defined once.

The job, the Lambdas and the stacks import these names instead of spelling them again, so the
three cannot drift apart. Nothing here imports Spark or boto3: it must load anywhere.
"""

from __future__ import annotations

import re
import secrets
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
QUARANTINE_REASONS = (
    "malformed_line",
    "non_integer_id",
    "pseudo_artist",
    "id_out_of_range",
    "non_integer_rating",
    "rating_out_of_range",
    "unknown_dms_op",
    "duplicate_pair",
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
SCORE = "score"
RECOMMENDATION_COLUMNS = (USER_ID, RANK, ARTIST_ID, SCORE)
SCORES_COLUMNS = (USER_ID, ARTIST_ID, SCORE)

# --- Run ids -------------------------------------------------------------------------------
RUN_ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{4}$")


def new_run_id(now: datetime | None = None) -> str:
    """A sortable UTC timestamp plus a short random suffix, e.g. 20261129T160000Z-3f2a."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def is_run_id(value: str) -> bool:
    return bool(RUN_ID_PATTERN.match(value))


# --- Published runs on S3 (or a local folder) -------------------------------------------
RUNS_PREFIX = "runs"
LATEST_FILE = "latest.json"  # {"run_id": ..., "path": ..., "published_at": ...}
QUICKSIGHT_MANIFEST_FILE = "quicksight-manifest.json"


def run_path(root: str, run_id: str) -> str:
    return f"{root.rstrip('/')}/{RUNS_PREFIX}/{run_id}"


# --- DynamoDB: one item per user per run, a pointer item names the active run ---------------
DDB_PARTITION_KEY = USER_ID  # number
DDB_SORT_KEY = "run_id"  # string
DDB_RECOMMENDATIONS = "recommendations"  # list of {artist_id, score, rank[, artist_name]}
DDB_GENERATED_AT = "generated_at"
DDB_TTL_ATTRIBUTE = "expires_at"
DDB_CONTROL_USER_ID = 0  # not a real user (R1 ids start at 1): holds the pointer and fallbacks
DDB_POINTER_SORT_KEY = "ACTIVE"  # (0, "ACTIVE"): the active-run pointer
DDB_ACTIVE_RUN = "active_run_id"
DDB_PREVIOUS_RUN = "previous_run_id"
DDB_TOP_N = "top_n"
DDB_FALLBACK = "fallback"  # (0, <run_id>) holds the run's popularity list, marked fallback
DDB_BATCH_SIZE = 25  # BatchWriteItem's limit
DDB_TABLE_KEYS = {  # create_table arguments for the keys above (tests, demo, benchmarks)
    "KeySchema": [{"AttributeName": DDB_PARTITION_KEY, "KeyType": "HASH"},
                  {"AttributeName": DDB_SORT_KEY, "KeyType": "RANGE"}],
    "AttributeDefinitions": [{"AttributeName": DDB_PARTITION_KEY, "AttributeType": "N"},
                             {"AttributeName": DDB_SORT_KEY, "AttributeType": "S"}],
}



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
SQL_ARTISTS = "artists"
SQL_MODEL_RUNS = "model_runs"
SQL_MIGRATIONS = "schema_migrations"
