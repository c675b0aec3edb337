"""Reads ratings (R1 text or AWS DMS CSV), validates every row and quarantines the bad ones.

Every line read ends up either in the clean ratings or in the quarantine with a reason: nothing
is dropped silently. All parsing uses Spark's built-in functions (no Python UDFs), so it scales
with the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.utils import AnalysisException

from glue_jobs import contracts as c

INT_PATTERN = r"^-?[0-9]+$"
SOURCE = c.QUARANTINE_SOURCE
LINE = c.QUARANTINE_LINE
POSITION = "_position"
REASON = c.QUARANTINE_REASON


class InputError(ValueError):
    """The input cannot be trained on; the message says why."""


@dataclass(frozen=True)
class Ingested:
    """Clean ratings (user_id, artist_id, rating; 255 kept), the quarantine and counts."""

    ratings: DataFrame
    quarantine: DataFrame
    input_format: str
    dms_changes: dict[str, int] | None = None
    cached: DataFrame | None = None  # what ratings and quarantine are read from, held in memory

    def release(self) -> None:
        """Frees the cached classification once the caller has cached what it keeps."""
        if self.cached is not None:
            self.cached.unpersist()


def read_lines(spark: SparkSession, paths: tuple[str, ...]) -> DataFrame:
    """One row per input line with the file it came from and its position in that file."""
    try:
        lines = spark.read.text(list(paths))
    except AnalysisException as exc:
        raise InputError(f"cannot read input {', '.join(paths)}: {str(exc).splitlines()[0]}") from exc
    # monotonically_increasing_id grows with the line's offset inside each file, which is
    # what "last occurrence wins" needs; the file name breaks ties across files.
    return lines.select(
        F.col("value").alias(LINE),
        F.input_file_name().alias(SOURCE),
        F.monotonically_increasing_id().alias(POSITION),
    )


def detect_format(lines: DataFrame) -> str:
    first = lines.filter(F.length(_strip(F.col(LINE))) > 0).select(LINE).first()
    if first is None:
        return "r1"
    header = [f.strip() for f in first[0].split(",")]
    return "dms" if c.USER_ID in header and c.ARTIST_ID in header else "r1"


def _strip(text: Column) -> Column:
    """Trims all whitespace (F.trim only trims spaces; Windows files end lines with \\r)."""
    return F.regexp_replace(text, r"^\s+|\s+$", "")


def _int_field(text: Column) -> Column:
    """The field as a long when it is an integer that fits one, else null."""
    return F.when(text.rlike(INT_PATTERN), text.cast("long"))


def _classify(user: Column, artist: Column, rating: Column, *, field_count_ok: Column,
              rating_needed: Column | None = None) -> Column:
    """The first quarantine reason that applies to a parsed row, or null for a good row."""
    user_l, artist_l, rating_l = _int_field(user), _int_field(artist), _int_field(rating)
    ids_are_ints = user.rlike(INT_PATTERN) & artist.rlike(INT_PATTERN)
    in_range = (user_l.between(1, c.MAX_ID) & artist_l.between(1, c.MAX_ID))
    valid_rating = rating_l.between(c.RATING_MIN, c.RATING_MAX) | (rating_l == c.NEVER_PLAY_AGAIN)
    needs = F.lit(True) if rating_needed is None else rating_needed
    return (
        F.when(~field_count_ok, c.MALFORMED_LINE)
        .when(~ids_are_ints, c.NON_INTEGER_ID)
        .when(artist_l.isin(list(c.PSEUDO_ARTISTS)), c.PSEUDO_ARTIST)
        .when(~F.coalesce(in_range, F.lit(False)), c.ID_OUT_OF_RANGE)
        .when(needs & ~rating.rlike(INT_PATTERN), c.NON_INTEGER_RATING)
        .when(needs & ~F.coalesce(valid_rating, F.lit(False)), c.RATING_OUT_OF_RANGE)
    )


def parse_r1(lines: DataFrame) -> Ingested:
    """R1 layout: user_id<TAB>artist_id<TAB>rating. Duplicate pairs: the last occurrence wins
    (by file name, then position in the file); the earlier ones are quarantined."""
    parts = F.split(F.col(LINE), c.R1_SEPARATOR, -1)
    fields = lines.select(
        "*",
        (F.size(parts) == 3).alias("_ok"),
        _strip(parts.getItem(0)).alias("_u"),
        _strip(parts.getItem(1)).alias("_a"),
        _strip(parts.getItem(2)).alias("_r"),
    )
    fields = fields.withColumn(REASON, _classify(F.col("_u"), F.col("_a"), F.col("_r"),
                                                 field_count_ok=F.col("_ok")))
    typed = fields.select(
        F.col("_u").cast("int").alias(c.USER_ID),
        F.col("_a").cast("int").alias(c.ARTIST_ID),
        F.col("_r").cast("int").alias(c.RATING),
        REASON, SOURCE, LINE, POSITION,
    )
    # One pass: rank good rows within their (user, artist) pair, mark the earlier ones as
    # duplicates, and cache the result so ratings and quarantine both read it.
    latest_first = Window.partitionBy(c.USER_ID, c.ARTIST_ID, REASON).orderBy(
        F.col(SOURCE).desc(), F.col(POSITION).desc())
    reason = F.when(F.col(REASON).isNull() & (F.row_number().over(latest_first) > 1),
                    F.lit(c.DUPLICATE_PAIR)).otherwise(F.col(REASON))
    classified = typed.select(c.USER_ID, c.ARTIST_ID, c.RATING, reason.alias(REASON), SOURCE,
                              F.when(reason.isNotNull(), F.col(LINE)).alias(LINE)).cache()
    ratings = classified.filter(F.col(REASON).isNull()).select(c.USER_ID, c.ARTIST_ID, c.RATING)
    quarantine = classified.filter(F.col(REASON).isNotNull()).select(REASON, SOURCE, LINE)
    return Ingested(ratings, quarantine, "r1", cached=classified)


def parse_dms(lines: DataFrame) -> Ingested:
    """AWS DMS CSV (header row, Op column, commit timestamp): replays inserts, updates and
    deletes in commit order, so the result is the ratings table's current state."""
    header_rows = (lines.filter(F.col(LINE).contains(c.USER_ID) & F.col(LINE).contains(c.ARTIST_ID))
                   .select(_strip(F.col(LINE)).alias("h")).distinct().collect())
    if not header_rows:
        raise InputError("DMS input has no header row naming user_id and artist_id: "
                         "set AddColumnName=true on the DMS S3 target")
    if len(header_rows) > 1:
        raise InputError("DMS input files have different header rows: "
                         + " | ".join(sorted(r.h for r in header_rows)))
    header_text = header_rows[0].h
    header = [h.strip() for h in header_text.split(",")]
    needed = [c.DMS_OP_COLUMN, c.DMS_TIMESTAMP_COLUMN, c.USER_ID, c.ARTIST_ID, c.RATING]
    missing = [name for name in needed if name not in header]
    if missing:
        raise InputError(f"DMS header {header_text!r} lacks column(s) {', '.join(missing)}; "
                         "the job expects the DMS target settings documented in the README")
    idx = {name: header.index(name) for name in needed}
    body = lines.filter(_strip(F.col(LINE)) != header_text)
    parts = F.split(F.col(LINE), ",", -1)

    def field(name: str) -> Column:
        return _strip(F.regexp_replace(parts.getItem(idx[name]), '"', ""))

    op = field(c.DMS_OP_COLUMN)
    fields = body.select(
        "*", (F.size(parts) == len(header)).alias("_ok"),
        op.alias("_op"), field(c.DMS_TIMESTAMP_COLUMN).alias("_ts"),
        field(c.USER_ID).alias("_u"), field(c.ARTIST_ID).alias("_a"), field(c.RATING).alias("_r"),
    )
    reason = _classify(F.col("_u"), F.col("_a"), F.col("_r"), field_count_ok=F.col("_ok"),
                       rating_needed=F.col("_op") != "D")
    fields = fields.withColumn(
        REASON,
        F.when(F.col("_ok") & ~F.col("_op").isin(*c.DMS_OPS), F.lit(c.UNKNOWN_DMS_OP)).otherwise(reason))
    typed = fields.select(
        F.col("_op").alias("op"), F.col("_ts").alias("ts"),
        F.col("_u").cast("int").alias(c.USER_ID), F.col("_a").cast("int").alias(c.ARTIST_ID),
        F.col("_r").cast("int").alias(c.RATING), REASON, SOURCE,
        F.when(F.col(REASON).isNotNull(), F.col(LINE)).alias(LINE), POSITION,
    ).cache()  # read once: the change counts, the replay and the quarantine all start here
    good = typed.filter(F.col(REASON).isNull())
    newest_first = Window.partitionBy(c.USER_ID, c.ARTIST_ID).orderBy(
        F.col("ts").desc(), F.col(SOURCE).desc(), F.col(POSITION).desc())
    latest = good.withColumn("_n", F.row_number().over(newest_first)).filter(F.col("_n") == 1)
    ratings = latest.filter(F.col("op") != "D").select(c.USER_ID, c.ARTIST_ID, c.RATING)
    ops = {r.op: r["count"] for r in good.groupBy("op").count().collect()}
    changes = {"insert": int(ops.get("I", 0)), "update": int(ops.get("U", 0)),
               "delete": int(ops.get("D", 0))}
    quarantine = typed.filter(F.col(REASON).isNotNull()).select(REASON, SOURCE, LINE)
    return Ingested(ratings, quarantine, "dms", changes, cached=typed)


def ingest(spark: SparkSession, paths: tuple[str, ...], input_format: str = "auto") -> Ingested:
    lines = read_lines(spark, paths)
    fmt = detect_format(lines) if input_format == "auto" else input_format
    return parse_dms(lines) if fmt == "dms" else parse_r1(lines)


def read_artist_names(spark: SparkSession, path: str) -> DataFrame:
    """artist_id<TAB>name in Windows-1252 (as R1's names file); rows without an integer id
    are skipped, since names only decorate the outputs."""
    try:
        raw = spark.read.csv(path, sep="\t", encoding="windows-1252", quote="\u0000",
                             schema=f"{c.ARTIST_ID} string, {c.ARTIST_NAME} string")
    except AnalysisException as exc:
        raise InputError(f"cannot read artist names {path}: {str(exc).splitlines()[0]}") from exc
    return (raw.filter(F.trim(c.ARTIST_ID).rlike(INT_PATTERN))
            .select(F.trim(c.ARTIST_ID).cast("int").alias(c.ARTIST_ID), F.trim(c.ARTIST_NAME).alias(c.ARTIST_NAME))
            .dropDuplicates([c.ARTIST_ID]))


def read_pairs(spark: SparkSession, path: str) -> DataFrame:
    """Pairs to score: user_id<TAB>artist_id. Every line must be a pair of integer ids, since
    the output promises a score for every pair given."""
    try:
        lines = spark.read.text(path)
    except Exception as exc:
        raise InputError(f"cannot read --score-pairs {path}: {exc}") from exc
    parts = F.split(F.regexp_replace("value", r"^\s+|\s+$", ""), "\t", -1)
    parsed = lines.filter(F.length(F.regexp_replace("value", r"\s", "")) > 0).select(
        "value", F.size(parts).alias("n"), parts.getItem(0).alias("u"), parts.getItem(1).alias("a"))
    bad = parsed.filter((F.col("n") != 2) | ~F.col("u").rlike(INT_PATTERN) | ~F.col("a").rlike(INT_PATTERN))
    n_bad = bad.count()
    if n_bad:
        example = bad.limit(1).collect()[0]["value"]
        raise InputError(f"--score-pairs {path}: {n_bad} line(s) are not user_id<TAB>artist_id "
                         f"integer pairs, e.g. {example!r}")
    return parsed.select(F.col("u").cast("int").alias(c.USER_ID), F.col("a").cast("int").alias(c.ARTIST_ID))
