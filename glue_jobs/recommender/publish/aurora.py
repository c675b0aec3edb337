"""Aurora MySQL sink (SQLAlchemy Core): versioned migrations, a staging load in batches, a row
count check and one atomic swap; any failure leaves the previous table serving."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from glue_jobs import contracts as c
from glue_jobs.recommender.publish.dynamo import PublishError, chunks

metadata = sa.MetaData()


def recommendations_table(name: str, md: sa.MetaData = metadata) -> sa.Table:
    return sa.Table(
        name, md,
        sa.Column(c.USER_ID, sa.Integer, primary_key=True, autoincrement=False),
        sa.Column(c.RANK, sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column(c.ARTIST_ID, sa.Integer, nullable=False),
        sa.Column(c.SCORE, sa.Float, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        extend_existing=True,
    )


RECOMMENDATIONS = recommendations_table(c.SQL_RECOMMENDATIONS)
ARTISTS = sa.Table(
    c.SQL_ARTISTS, metadata,
    sa.Column(c.ARTIST_ID, sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(255), nullable=False),
)
MODEL_RUNS = sa.Table(
    c.SQL_MODEL_RUNS, metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # loading | published | failed | superseded
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("rows_loaded", sa.Integer),
    sa.Column("params", sa.Text),
    sa.Column("metrics", sa.Text),
    sa.Column("counts", sa.Text),
    sa.Column("timings", sa.Text),
    sa.Column("error", sa.Text),
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
        conn.execute(sa.text(f"CREATE INDEX ix_model_runs_status_started ON {c.SQL_MODEL_RUNS} (status, started_at)"))


MIGRATIONS: list[tuple[int, Callable[[Connection], None]]] = [(1, _v1), (2, _v2)]


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
    with engine.begin() as conn:
        exists = conn.execute(sa.select(MODEL_RUNS.c.run_id).where(MODEL_RUNS.c.run_id == run_id)).first()
        if exists:
            conn.execute(sa.update(MODEL_RUNS).where(MODEL_RUNS.c.run_id == run_id).values(status=status, **values))
        else:
            conn.execute(sa.insert(MODEL_RUNS).values(run_id=run_id, status=status, started_at=_now(), **values))


def _swap(conn: Connection, dialect: str) -> None:
    live, staging, previous = c.SQL_RECOMMENDATIONS, c.SQL_RECOMMENDATIONS_STAGING, c.SQL_RECOMMENDATIONS_PREVIOUS
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {previous}"))
    if dialect == "mysql":
        # One statement, atomic: readers see the old table or the new one, never neither.
        conn.execute(sa.text(f"RENAME TABLE {live} TO {previous}, {staging} TO {live}"))
    else:  # SQLite (demo): DDL is transactional, so the two renames commit together
        conn.execute(sa.text(f"ALTER TABLE {live} RENAME TO {previous}"))
        conn.execute(sa.text(f"ALTER TABLE {staging} RENAME TO {live}"))


def staging_table() -> sa.Table:
    return recommendations_table(c.SQL_RECOMMENDATIONS_STAGING, sa.MetaData())


def insert_staging(engine: Engine, run_id: str, rows: Iterable[dict[str, Any]], *, batch_size: int = 5000,
                   after_batch: Callable[[int], None] | None = None) -> int:
    """Appends rows to the staging table in batches; safe to call from several processes at once
    (Spark partitions), since the swap only happens after the total is checked."""
    staging = staging_table()
    loaded = 0
    with engine.connect() as conn:
        for i, batch in enumerate(chunks(rows, batch_size)):
            # executemany: PyMySQL rewrites it into multi-row INSERTs.
            conn.execute(sa.insert(staging), [{**r, "run_id": run_id} for r in batch])
            conn.commit()
            loaded += len(batch)
            if after_batch:
                after_batch(i)
    return loaded


Loader = Callable[[Engine], int]  # fills the staging table, returns the rows it inserted


def load_recommendations(engine: Engine, expected: int, loader: Loader) -> int:
    """A fresh staging table, filled by `loader`, its count checked, then swapped in."""
    staging = staging_table()
    with engine.begin() as conn:
        staging.drop(conn, checkfirst=True)
        staging.create(conn)
    loaded = loader(engine)
    with engine.begin() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(staging)).scalar_one()
        if count != expected:
            raise PublishError(f"staging table holds {count} rows, expected {expected}: not swapping")
        _swap(conn, engine.dialect.name)
    return loaded


def rows_loader(run_id: str, rows: Iterable[dict[str, Any]], batch_size: int = 5000,
                after_batch: Callable[[int], None] | None = None) -> Loader:
    """Loads rows from this process (rollback, demo, tests)."""
    return lambda engine: insert_staging(engine, run_id, rows, batch_size=batch_size, after_batch=after_batch)


def upsert_artists(engine: Engine, names: Iterable[dict[str, Any]], batch_size: int = 5000) -> None:
    with engine.begin() as conn:
        for batch in chunks(names, batch_size):
            ids = [r[c.ARTIST_ID] for r in batch]
            conn.execute(sa.delete(ARTISTS).where(ARTISTS.c.artist_id.in_(ids)))
            conn.execute(sa.insert(ARTISTS), [{c.ARTIST_ID: r[c.ARTIST_ID], "name": r["name"][:255]} for r in batch])


def live_run_id(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(c.SQL_RECOMMENDATIONS):
            return None
        return conn.execute(sa.select(RECOMMENDATIONS.c.run_id).limit(1)).scalar()


def publish(engine: Engine, run_id: str, rows: Iterable[dict[str, Any]] | Loader, expected: int, *,
            metrics: dict[str, Any], artists: Iterable[dict[str, Any]] = (), batch_size: int = 5000,
            after_batch: Callable[[int], None] | None = None) -> int:
    """Migrates, records the run, loads and swaps; on failure records it as failed and re-raises."""
    migrate(engine)
    record_run(engine, run_id, "loading", params=metrics.get("best_params", {}), metrics=_metric_summary(metrics),
               counts=metrics.get("counts", {}), timings=metrics.get("timings_s", {}))
    try:
        previous = live_run_id(engine)
        loader = rows if callable(rows) else rows_loader(run_id, rows, batch_size, after_batch)
        loaded = load_recommendations(engine, expected, loader)
        upsert_artists(engine, artists, batch_size)
    except Exception as exc:
        record_run(engine, run_id, "failed", finished_at=_now(), error=f"{exc.__class__.__name__}: {exc}"[:4000])
        if isinstance(exc, PublishError):
            raise
        raise PublishError(f"Aurora load of run {run_id} failed ({exc.__class__.__name__}); "
                           "the previous recommendations table is still serving") from exc
    record_run(engine, run_id, "published", finished_at=_now(), rows_loaded=loaded)
    if previous and previous != run_id:
        record_run(engine, previous, "superseded")
    return loaded


def _metric_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "k", "catalog_coverage",
            "baselines")
    return {k: metrics.get(k) for k in keys}
