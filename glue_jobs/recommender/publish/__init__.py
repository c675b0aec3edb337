"""Publishing a finished run to the sinks: files (latest.json), DynamoDB and Aurora MySQL.

Order: every sink first takes the run's data without changing what readers see (DynamoDB
items under the new run id, the Aurora staging table); only then do the cheap, atomic flips
happen (DynamoDB pointer, Aurora RENAME, latest.json). A failure before the flips leaves
everything serving the previous run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from glue_jobs import contracts as c
from glue_jobs.recommender.publish import aurora, dynamo, files
from glue_jobs.recommender.publish.dynamo import PublishError

__all__ = ["PublishError", "PublishSettings", "preflight", "publish_run"]


@dataclass(frozen=True)
class PublishSettings:
    runs_root: str | None = None
    dynamo: dynamo.DynamoSettings | None = None
    aurora: aurora.AuroraSettings | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.runs_root or self.dynamo or self.aurora)


def preflight(settings: PublishSettings) -> None:
    """Checks every configured sink before any work: a wrong table, a missing secret or an
    unreachable database fails the run with a clear message and nothing written."""
    if settings.dynamo:
        dynamo.check_table(settings.dynamo.client(), settings.dynamo.table)
    if settings.aurora:
        engine = settings.aurora.engine()
        aurora.check_connection(engine)
        engine.dispose()


def task_error(exc: Exception) -> str:
    """The Python error a Spark task raised, out of the JVM's wrapping of it."""
    lines = [line.strip() for line in str(exc).splitlines()]
    raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)
              and not line.startswith(("py4j", "org.apache"))]
    return raised[-1] if raised else lines[0]


def write_dynamo_items(spark_recs: Any, popular_rows: list[dict[str, Any]], run_id: str,
                       settings: dynamo.DynamoSettings, generated_at: datetime) -> int:
    """User items from Spark partitions (each with its own client), then the run's fallback
    item, written last so its presence marks the run's items as complete."""
    from pyspark.sql import functions as F

    cols = [c.RANK, c.ARTIST_ID, c.SCORE] + ([c.ARTIST_NAME] if c.ARTIST_NAME in spark_recs.columns else [])
    per_user = spark_recs.groupBy(c.USER_ID).agg(F.collect_list(F.struct(*cols)).alias("recs"))
    n_parts = max(1, per_user.rdd.getNumPartitions())
    share = settings.max_writes_per_s / n_parts if settings.max_writes_per_s else 0.0

    def write_partition(rows: Any) -> None:
        client = settings.client()
        items = (dynamo.user_item(row[c.USER_ID], run_id, [r.asDict() for r in row["recs"]], generated_at,
                                  settings.ttl_days) for row in rows)
        dynamo.write_batches(client, settings.table, items, max_attempts=settings.max_attempts,
                             base_delay_s=settings.base_delay_s, writes_per_s=share)

    try:
        per_user.foreachPartition(write_partition)
    except Exception as exc:  # a task's PublishError arrives wrapped by Py4J
        raise PublishError(f"DynamoDB publish of run {run_id} failed: {task_error(exc)}") from exc
    client = settings.client()
    dynamo.write_batches(client, settings.table,
                         [dynamo.fallback_item(run_id, popular_rows, generated_at, settings.ttl_days)],
                         max_attempts=settings.max_attempts, base_delay_s=settings.base_delay_s)
    return per_user.count()


def spark_loader(spark_recs: Any, run_id: str, settings: aurora.AuroraSettings) -> aurora.Loader:
    """Each Spark partition inserts its rows into the staging table over its own connection,
    so the load scales with the cluster instead of streaming through the driver."""

    def load(_engine: Any) -> int:
        def insert_partition(rows: Any) -> None:
            engine = settings.engine()
            try:
                aurora.insert_staging(engine, run_id, (r.asDict() for r in rows), batch_size=settings.batch_size)
            finally:
                engine.dispose()

        rows = spark_recs.select(c.USER_ID, c.RANK, c.ARTIST_ID, c.SCORE)
        try:
            rows.foreachPartition(insert_partition)
        except Exception as exc:  # a task's error arrives wrapped by Py4J
            raise PublishError(f"Aurora load of run {run_id} failed: {task_error(exc)}") from exc
        return int(rows.count())

    return load


def refuse_older(run_id: str, settings: PublishSettings) -> None:
    """An older run never replaces a newer one: checked before any sink is touched."""
    active = []
    if settings.dynamo:
        pointer = dynamo.active_run(settings.dynamo.client(), settings.dynamo.table)
        active.append(pointer[c.DDB_ACTIVE_RUN] if pointer else None)
    if settings.runs_root:
        latest = files.read_latest(settings.runs_root)
        active.append(latest["run_id"] if latest else None)
    newer = [r for r in active if r and r > run_id]
    if newer:
        raise PublishError(f"run {run_id} is older than the published run {max(newer)}: not replacing it")


def rollback(run_id: str, settings: PublishSettings) -> dict[str, Any]:
    """Points every configured sink back at an earlier, complete run: DynamoDB's pointer (the
    run's items must still be there), latest.json, and the Aurora table reloaded from the
    run's own CSV."""
    if not settings.runs_root:
        raise PublishError("rollback needs --runs-root: the run's files are the source of truth")
    if not files.run_is_complete(settings.runs_root, run_id):
        raise PublishError(f"run {run_id} is not complete under {settings.runs_root} (no {c.SUCCESS_MARKER}): "
                           "refusing to roll back to it")
    done: dict[str, Any] = {"run_id": run_id}
    if settings.dynamo:
        client = settings.dynamo.client()
        dynamo.check_table(client, settings.dynamo.table)
        if not dynamo.run_is_loaded(client, settings.dynamo.table, run_id):
            raise PublishError(f"run {run_id} has no complete item set in DynamoDB (expired or never "
                               "published): refusing to point serving at it")
        pointer = dynamo.active_run(client, settings.dynamo.table)
        top_n = (pointer or {}).get(c.DDB_TOP_N) or 5
        dynamo.flip_pointer(client, settings.dynamo.table, run_id, top_n, force=True)
        done["dynamodb"] = "pointer flipped"
    if settings.aurora:
        engine = settings.aurora.engine()
        try:
            rows = list(files.read_recommendations_csv(settings.runs_root, run_id))
            done["aurora_rows"] = aurora.publish(engine, run_id, iter(rows), len(rows), metrics={},
                                                 batch_size=settings.aurora.batch_size)
        finally:
            engine.dispose()
    files.point_latest(settings.runs_root, run_id, force=True)
    done["latest"] = run_id
    return done


def publish_run(spark_recs: Any, popular_rows: list[dict[str, Any]], artists: list[dict[str, Any]],
                run_id: str, top_n: int, metrics: dict[str, Any], settings: PublishSettings) -> dict[str, Any]:
    """Publishes a completed run (its files already written with _SUCCESS) to every sink."""
    report: dict[str, Any] = {}
    generated_at = datetime.now(UTC)
    refuse_older(run_id, settings)
    engine = settings.aurora.engine() if settings.aurora else None
    try:
        if settings.dynamo:
            report["dynamodb_items"] = write_dynamo_items(spark_recs, popular_rows, run_id, settings.dynamo,
                                                          generated_at)
        if engine is not None and settings.aurora:
            loader = spark_loader(spark_recs, run_id, settings.aurora)
            report["aurora_rows"] = aurora.publish(engine, run_id, loader, metrics["counts"]["recommendations"],
                                                   metrics=metrics, artists=artists,
                                                   batch_size=settings.aurora.batch_size)
        if settings.dynamo:
            dynamo.flip_pointer(settings.dynamo.client(), settings.dynamo.table, run_id, top_n)
        if settings.runs_root:
            files.point_latest(settings.runs_root, run_id)
    finally:
        if engine is not None:
            engine.dispose()
    return report
