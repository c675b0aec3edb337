"""Aurora MySQL sink (SQLAlchemy Core): versioned migrations, a staging load in batches and a row
count check (staging), then one atomic swap (activating); any failure leaves the previous table
serving. model_runs records each run's status, parameters and metrics for the dashboards."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from glue_jobs import contracts as c
from glue_jobs.recommender.publish import files, spark
from glue_jobs.recommender.publish.dynamo import chunks
from glue_jobs.recommender.publish.errors import PublishError
from glue_jobs.recommender.publish.sink import RunToPublish

metadata = sa.MetaData()


def _ranked_lists_table(name: str, md: sa.MetaData, owner: str, *entry: sa.Column) -> sa.Table:
    """A published list per owner: one row per (owner, rank) with the entry's columns, tagged with
    the run it came from."""
    return sa.Table(
        name, md,
        sa.Column(owner, sa.Integer, primary_key=True, autoincrement=False),
        sa.Column(c.RANK, sa.SmallInteger, primary_key=True, autoincrement=False),
        *entry,
        sa.Column(c.SQL_RUN_ID, sa.String(32), nullable=False),
        extend_existing=True,
    )


def recommendations_table(name: str, md: sa.MetaData = metadata) -> sa.Table:
    return _ranked_lists_table(
        name, md, c.USER_ID,
        sa.Column(c.ARTIST_ID, sa.Integer, nullable=False),
        sa.Column(c.SCORE, sa.Float, nullable=False),  # the ranking score (contracts.SCORE)
        sa.Column(c.PREDICTED_RATING, sa.Float, nullable=True),  # null: implicit feedback, or a run before v3
    )


def similar_artists_table(name: str, md: sa.MetaData = metadata) -> sa.Table:
    return _ranked_lists_table(
        name, md, c.ARTIST_ID,
        sa.Column(c.SIMILAR_ARTIST_ID, sa.Integer, nullable=False),
        sa.Column(c.SIMILARITY, sa.Float, nullable=False),  # cosine of the two artists' factors
    )


@dataclass(frozen=True)
class SwappedTable:
    """A table published by the staging swap: loaded as `staging`, renamed to `live`, the one it
    replaced kept as `previous` (for swap_back)."""

    live: str
    staging: str
    previous: str
    define: Callable[[str, sa.MetaData], sa.Table]

    def staging_table(self) -> sa.Table:
        return self.define(self.staging, sa.MetaData())


RECS = SwappedTable(c.SQL_RECOMMENDATIONS, c.SQL_RECOMMENDATIONS_STAGING, c.SQL_RECOMMENDATIONS_PREVIOUS,
                    recommendations_table)
SIMILAR = SwappedTable(c.SQL_SIMILAR_ARTISTS, c.SQL_SIMILAR_ARTISTS_STAGING, c.SQL_SIMILAR_ARTISTS_PREVIOUS,
                       similar_artists_table)
# Swapped together, in one RENAME: the live tables always hold the same run's lists.
SWAPPED = (RECS, SIMILAR)

RECOMMENDATIONS = recommendations_table(c.SQL_RECOMMENDATIONS)
ARTISTS = sa.Table(
    c.SQL_ARTISTS, metadata,
    sa.Column(c.ARTIST_ID, sa.Integer, primary_key=True, autoincrement=False),
    sa.Column(c.SQL_ARTIST_NAME, sa.String(255), nullable=False),
)
MODEL_RUNS = sa.Table(
    c.SQL_MODEL_RUNS, metadata,
    sa.Column(c.SQL_RUN_ID, sa.String(32), primary_key=True),
    sa.Column(c.SQL_RUN_STATUS, sa.String(16), nullable=False),  # loading | published | failed | superseded
    sa.Column(c.SQL_STARTED_AT, sa.DateTime, nullable=False),
    sa.Column(c.SQL_FINISHED_AT, sa.DateTime),
    sa.Column(c.SQL_ROWS_LOADED, sa.Integer),
    sa.Column(c.SQL_PARAMS, sa.Text),
    sa.Column(c.SQL_METRICS, sa.Text),
    sa.Column(c.SQL_COUNTS, sa.Text),
    sa.Column(c.SQL_TIMINGS, sa.Text),
    sa.Column(c.SQL_ERROR, sa.Text),
)
MIGRATIONS_TABLE = sa.Table(
    c.SQL_MIGRATIONS, metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.DateTime, nullable=False),
)


def _v1(conn: Connection) -> None:
    for table in (RECOMMENDATIONS, ARTISTS, MODEL_RUNS):
        table.create(conn, checkfirst=True)


def _v2(conn: Connection) -> None:
    # Dashboards filter runs by time and status.
    # Plain DDL: an sa.Index would attach itself to MODEL_RUNS and be created by v1 next time.
    names = {ix["name"] for ix in sa.inspect(conn).get_indexes(c.SQL_MODEL_RUNS)}
    if "ix_model_runs_status_started" not in names:
        conn.execute(sa.text(f"CREATE INDEX ix_model_runs_status_started ON {c.SQL_MODEL_RUNS} "
                             f"({c.SQL_RUN_STATUS}, {c.SQL_STARTED_AT})"))


def _v3(conn: Connection) -> None:
    # predicted_rating beside score (now the ranking score), on every copy of the table that a
    # database created by v1/v2 holds: the live one, and the previous and staging ones that a
    # rollback or the next load swaps in. A table that has it already (created by v1 from the
    # current definition) is left alone.
    inspector = sa.inspect(conn)
    kind = sa.Float().compile(dialect=conn.dialect)
    after = f" AFTER {c.SCORE}" if conn.dialect.name == "mysql" else ""
    for table in (c.SQL_RECOMMENDATIONS, c.SQL_RECOMMENDATIONS_PREVIOUS, c.SQL_RECOMMENDATIONS_STAGING):
        if not inspector.has_table(table):
            continue
        if c.PREDICTED_RATING not in {col["name"] for col in inspector.get_columns(table)}:
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {c.PREDICTED_RATING} {kind} NULL{after}"))


def _v4(conn: Connection) -> None:
    # similar_artists, with the staging and previous copies the swap and swap_back rename
    # together with recommendations' (empty until the first run with similar artists is published).
    # Each created only where absent: MySQL commits each CREATE, so an interrupted run resumes.
    for name in (SIMILAR.live, SIMILAR.staging, SIMILAR.previous):
        similar_artists_table(name, sa.MetaData()).create(conn, checkfirst=True)


# One entry per c.SCHEMA_VERSION step (a test holds them equal): the stack reads the contract.
MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [(1, _v1), (2, _v2), (3, _v3), (4, _v4)]


def migrate(engine: Engine) -> list[int]:
    """Applies the migrations not yet recorded; safe to run any number of times."""
    applied: list[int] = []
    with engine.begin() as conn:
        MIGRATIONS_TABLE.create(conn, checkfirst=True)
        done = {row[0] for row in conn.execute(sa.select(MIGRATIONS_TABLE.c.version))}
    for version, step in MIGRATIONS:
        if version in done:
            continue
        with engine.begin() as conn:
            step(conn)
            conn.execute(sa.insert(MIGRATIONS_TABLE).values(version=version, applied_at=_now()))
        applied.append(version)
    return applied


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class AuroraSettings:
    url: str | None = None
    secret_arn: str | None = None
    region: str | None = None
    batch_size: int = 5000
    secrets_endpoint_url: str | None = None

    def engine(self) -> Engine:
        url = self.url or url_from_secret(self.secret_arn or "", self.region, self.secrets_endpoint_url)
        return sa.create_engine(url, pool_pre_ping=True)


def url_from_secret(secret_arn: str, region: str | None = None, endpoint_url: str | None = None) -> sa.URL:
    """An RDS-style secret (username, password, host, port, dbname) as a connection URL; the
    password never appears in logs or errors."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.client("secretsmanager", region_name=region, endpoint_url=endpoint_url)
        secret = json.loads(client.get_secret_value(SecretId=secret_arn)["SecretString"])
    except (ClientError, BotoCoreError) as exc:
        raise PublishError(f"Aurora secret {secret_arn!r} cannot be read: {exc}") from exc
    except (ValueError, KeyError) as exc:
        raise PublishError(f"Aurora secret {secret_arn!r} is not an RDS JSON secret") from exc
    missing = [k for k in ("username", "password", "host") if k not in secret]
    if missing:
        raise PublishError(f"Aurora secret {secret_arn!r} lacks {', '.join(missing)}")
    return sa.URL.create("mysql+pymysql", username=secret["username"], password=secret["password"],
                         host=secret["host"], port=int(secret.get("port", 3306)),
                         database=secret.get("dbname", "recommender"))


def check_connection(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        where = engine.url.render_as_string(hide_password=True)
        raise PublishError(f"Aurora/MySQL database {where} is unreachable: {exc.__class__.__name__}: {cause}") from exc


def record_run(engine: Engine, run_id: str, status: str, **fields: Any) -> None:
    values = {k: (json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v) for k, v in fields.items()}
    values[c.SQL_RUN_STATUS] = status
    run = MODEL_RUNS.c[c.SQL_RUN_ID]
    with engine.begin() as conn:
        if conn.execute(sa.select(run).where(run == run_id)).first():
            conn.execute(sa.update(MODEL_RUNS).where(run == run_id).values(values))
        else:
            conn.execute(sa.insert(MODEL_RUNS).values({c.SQL_RUN_ID: run_id, c.SQL_STARTED_AT: _now(), **values}))


def _metric_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    # The JSON paths QuickSight's SQL reads (stacks/quicksight.py): keep these keys.
    keys = ("rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "k", "catalog_coverage",
            "baselines")
    return {k: metrics.get(k) for k in keys}


def run_fields(metrics: dict[str, Any]) -> dict[str, Any]:
    """A run's model_runs columns from its metrics.json layout (RunMetrics.as_dict())."""
    return {c.SQL_PARAMS: metrics.get("best_params", {}), c.SQL_METRICS: _metric_summary(metrics),
            c.SQL_COUNTS: metrics.get("counts", {}), c.SQL_TIMINGS: metrics.get("timings_s", {})}


def _rename(conn: Connection, dialect: str, renames: list[tuple[str, str]]) -> None:
    if dialect == "mysql":
        # One statement, atomic across every table: readers see the old tables or the new ones,
        # never neither, never one run's recommendations beside another's similar artists.
        conn.execute(sa.text("RENAME TABLE " + ", ".join(f"{a} TO {b}" for a, b in renames)))
    else:  # SQLite (demo): DDL is transactional, so the renames commit together
        for a, b in renames:
            conn.execute(sa.text(f"ALTER TABLE {a} RENAME TO {b}"))


def _swap(conn: Connection, dialect: str) -> None:
    for t in SWAPPED:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {t.previous}"))
    _rename(conn, dialect, [pair for t in SWAPPED for pair in ((t.live, t.previous), (t.staging, t.live))])


def swap_back(engine: Engine) -> None:
    """The previous tables serve again, in one RENAME (the taken-back run becomes the staging
    tables, which the next run's load clears)."""
    with engine.begin() as conn:
        for t in SWAPPED:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {t.staging}"))
        _rename(conn, engine.dialect.name,
                [pair for t in SWAPPED for pair in ((t.live, t.staging), (t.previous, t.live))])


def insert_staging(engine: Engine, run_id: str, rows: Iterable[dict[str, Any]], *, batch_size: int = 5000,
                   after_batch: Callable[[int], None] | None = None, table: SwappedTable = RECS) -> int:
    """Appends rows to a staging table in batches; safe to call from several processes at once
    (Spark partitions), since the swap only happens after the total is checked."""
    staging = table.staging_table()
    loaded = 0
    with engine.connect() as conn:
        for i, batch in enumerate(chunks(rows, batch_size)):
            # executemany: PyMySQL rewrites it into multi-row INSERTs.
            conn.execute(sa.insert(staging), [{**r, c.SQL_RUN_ID: run_id} for r in batch])
            conn.commit()
            loaded += len(batch)
            if after_batch:
                after_batch(i)
    return loaded


def insert_partition(settings: AuroraSettings, run_id: str, rows: Iterable[dict[str, Any]],
                     table: SwappedTable = RECS) -> None:
    """One Spark partition's rows into a staging table, over the task's own connection."""
    engine = settings.engine()
    try:
        insert_staging(engine, run_id, rows, batch_size=settings.batch_size, table=table)
    finally:
        engine.dispose()


Loader = Callable[[Engine], int]  # fills the staging table, returns the rows it inserted


def rows_loader(run_id: str, rows: Iterable[dict[str, Any]], batch_size: int = 5000,
                after_batch: Callable[[int], None] | None = None, table: SwappedTable = RECS) -> Loader:
    """Loads rows from this process (rollback, demo, tests)."""
    return lambda engine: insert_staging(engine, run_id, rows, batch_size=batch_size, after_batch=after_batch,
                                         table=table)


def _check_staging(conn: Connection, run_id: str, expected: int, table: SwappedTable = RECS) -> None:
    staging = table.staging_table()
    count, ours = conn.execute(sa.select(
        sa.func.count(), sa.func.sum(sa.case((staging.c[c.SQL_RUN_ID] == run_id, 1), else_=0)))).one()
    if count != expected or (ours or 0) != expected:
        raise PublishError(f"{table.staging} table holds {count} rows, expected {expected} of run {run_id}: "
                           "not swapping")


def load_staging(engine: Engine, run_id: str, expected: int | None, loader: Loader,
                 table: SwappedTable = RECS) -> int:
    """A fresh staging table, filled by `loader`, its count checked against `expected` (None:
    the count the loader reports); readers do not see it yet.
    Loading recommendations also empties the similar-artists staging table: a run without
    similar artists then swaps in an empty table, never an older run's lists."""
    with engine.begin() as conn:
        for fresh in (SWAPPED if table is RECS else (table,)):
            fresh.staging_table().drop(conn, checkfirst=True)
            fresh.staging_table().create(conn)
    loaded = loader(engine)
    with engine.begin() as conn:
        _check_staging(conn, run_id, loaded if expected is None else expected, table)
    return loaded


def swap_in(engine: Engine, run_id: str, expected: int, similar_expected: int = 0) -> None:
    """The staged tables replace the live ones, checked again first: a concurrent publisher may
    have reloaded the staging tables since they were staged."""
    with engine.begin() as conn:
        _check_staging(conn, run_id, expected)
        _check_staging(conn, run_id, similar_expected, SIMILAR)
        _swap(conn, engine.dialect.name)


def upsert_artists(engine: Engine, names: Iterable[dict[str, Any]], batch_size: int = 5000) -> None:
    artist = ARTISTS.c[c.ARTIST_ID]
    with engine.begin() as conn:
        for batch in chunks(names, batch_size):
            conn.execute(sa.delete(ARTISTS).where(artist.in_([r[c.ARTIST_ID] for r in batch])))
            conn.execute(sa.insert(ARTISTS), [{c.ARTIST_ID: r[c.ARTIST_ID], c.SQL_ARTIST_NAME: r["name"][:255]}
                                              for r in batch])


def live_run_id(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(c.SQL_RECOMMENDATIONS):
            return None
        return conn.execute(sa.select(RECOMMENDATIONS.c[c.SQL_RUN_ID]).limit(1)).scalar()


def _failed(engine: Engine, run_id: str, exc: BaseException | str) -> None:
    error = exc if isinstance(exc, str) else f"{exc.__class__.__name__}: {exc}"
    record_run(engine, run_id, "failed", **{c.SQL_FINISHED_AT: _now(), c.SQL_ERROR: error[:4000]})


@dataclass(frozen=True)
class Staged:
    rows: int  # recommendations
    similar_rows: int  # similar artists; 0 when the run has none


def _similar_loader(run_id: str, similar: Iterable[dict[str, Any]] | Loader,
                    batch_size: int, expected: int | None = None) -> tuple[int | None, Loader]:
    """The rows the similar-artists staging table must hold (a loader's: `expected`, the run's
    own count, or when None as many as the loader reports) and its loader."""
    if callable(similar):
        return expected, similar
    rows = list(similar)
    return len(rows), rows_loader(run_id, iter(rows), batch_size, table=SIMILAR)


def stage_run(engine: Engine, run_id: str, rows: Iterable[dict[str, Any]] | Loader, expected: int, *,
              metrics: dict[str, Any] | None, artists: Iterable[dict[str, Any]] = (), batch_size: int = 5000,
              after_batch: Callable[[int], None] | None = None,
              similar: Iterable[dict[str, Any]] | Loader = (), similar_expected: int | None = None) -> Staged:
    """Migrates, records the run as loading (with its metrics.json figures, when given: a
    rollback keeps the ones recorded), loads and checks the staging tables (recommendations,
    then similar artists: c.SIMILAR_ARTIST_COLUMNS rows), adds the artists' names. On failure
    records the run as failed and raises PublishError."""
    migrate(engine)
    record_run(engine, run_id, "loading", **(run_fields(metrics) if metrics is not None else {}))
    try:
        loader = rows if callable(rows) else rows_loader(run_id, rows, batch_size, after_batch)
        loaded = load_staging(engine, run_id, expected, loader)
        similar_loaded = load_staging(engine, run_id, *_similar_loader(run_id, similar, batch_size, similar_expected),
                                      SIMILAR)
        upsert_artists(engine, artists, batch_size)
    except Exception as exc:
        _failed(engine, run_id, exc)
        if isinstance(exc, PublishError):
            raise
        raise PublishError(f"Aurora load of run {run_id} failed ({exc.__class__.__name__}); "
                           "the previous recommendations table is still serving") from exc
    record_run(engine, run_id, "loading", **{c.SQL_ROWS_LOADED: loaded})
    return Staged(loaded, similar_loaded)


def activate_run(engine: Engine, run_id: str, expected: int, *, rollback: bool = False,
                 similar_expected: int = 0) -> None:
    """Swaps the staged run in (its recommendations and similar artists together); records it as
    published and the run it replaced as superseded. Only a rollback may replace a newer run."""
    previous = live_run_id(engine)
    if previous and previous > run_id and not rollback:  # published since publish_run's check: never replace it
        _failed(engine, run_id, f"run {previous} was published meanwhile")
        raise PublishError(f"run {run_id} is older than the run {previous} Aurora serves: not replacing it")
    try:
        swap_in(engine, run_id, expected, similar_expected)
    except Exception as exc:
        _failed(engine, run_id, exc)
        raise PublishError(f"Aurora swap of run {run_id} failed ({exc}); "
                           "the previous recommendations table is still serving") from exc
    record_run(engine, run_id, "published", **{c.SQL_FINISHED_AT: _now()})
    if previous and previous != run_id:
        record_run(engine, previous, "superseded")


def publish(engine: Engine, run_id: str, rows: Iterable[dict[str, Any]] | Loader, expected: int, *,
            metrics: dict[str, Any] | None, artists: Iterable[dict[str, Any]] = (), batch_size: int = 5000,
            after_batch: Callable[[int], None] | None = None, rollback: bool = False,
            similar: Iterable[dict[str, Any]] = ()) -> int:
    """Stages and activates in one go (rollback from a run's CSV, demo, tests); returns the
    recommendations loaded."""
    staged = stage_run(engine, run_id, rows, expected, metrics=metrics, artists=artists, batch_size=batch_size,
                       after_batch=after_batch, similar=similar)
    activate_run(engine, run_id, expected, rollback=rollback, similar_expected=staged.similar_rows)
    return staged.rows


class AuroraSink:
    """Stages the run in the staging tables (loaded by the Spark partitions); activating swaps
    them in. Rolling back reloads a run from its CSV files under the runs root."""

    name = "aurora"

    def __init__(self, settings: AuroraSettings, runs_root: str | None) -> None:
        self.settings, self.runs_root = settings, runs_root
        self.engine = settings.engine()

    def check(self) -> None:
        check_connection(self.engine)

    def active_run(self) -> str | None:
        return live_run_id(self.engine)

    def stage(self, run: RunToPublish) -> dict[str, Any]:
        def load(_engine: Engine) -> int:
            return spark.write_partitions(run.recommendations, partial(insert_partition, self.settings, run.run_id),
                                          f"Aurora load of run {run.run_id} failed", c.RECOMMENDATION_COLUMNS)

        def load_similar(_engine: Engine) -> int:
            return spark.write_partitions(run.similar, partial(insert_partition, self.settings, run.run_id,
                                                               table=SIMILAR),
                                          f"Aurora load of run {run.run_id}'s similar artists failed",
                                          c.SIMILAR_ARTIST_COLUMNS)

        staged = stage_run(self.engine, run.run_id, load, run.metrics.counts.recommendations,
                           metrics=run.metrics.as_dict(), artists=run.artists, batch_size=self.settings.batch_size,
                           similar=() if run.similar is None else load_similar,
                           similar_expected=run.metrics.counts.similar_artists)  # the job's count, not the loader's
        return {"aurora_rows": staged.rows, "aurora_similar_rows": staged.similar_rows}

    def activate(self, run: RunToPublish) -> None:
        # Staging checked the similar-artists table against the same count: the swap checks it again.
        activate_run(self.engine, run.run_id, run.metrics.counts.recommendations,
                     similar_expected=run.metrics.counts.similar_artists if run.similar is not None else 0)

    def abandon(self, run: RunToPublish, reason: str) -> None:
        if live_run_id(self.engine) == run.run_id:  # re-published while serving: it still serves
            record_run(self.engine, run.run_id, "published")
        else:
            _failed(self.engine, run.run_id, f"staged, not activated: {reason}")

    def undo(self, run: RunToPublish, previous: str | None) -> str:
        if live_run_id(self.engine) != run.run_id:
            return "aurora already serves another run, left alone"
        swap_back(self.engine)  # the table it replaced is still there, as the previous one
        _failed(self.engine, run.run_id, "activated, then taken back: a later sink failed")
        if previous:
            record_run(self.engine, previous, "published")
        return f"aurora rolled back to {previous}" if previous else "aurora back on its empty table"

    def rollback(self, to: str) -> dict[str, Any]:
        if not self.runs_root:
            raise PublishError("rolling Aurora back needs --runs-root: the run's CSV is the source of truth")
        rows = list(files.read_recommendations_csv(self.runs_root, to))
        similar = list(files.read_similar_artists_csv(self.runs_root, to))
        return {"aurora_rows": publish(self.engine, to, iter(rows), len(rows), metrics=None,
                                       batch_size=self.settings.batch_size, rollback=True, similar=similar),
                "aurora_similar_rows": len(similar)}

    def close(self) -> None:
        self.engine.dispose()
