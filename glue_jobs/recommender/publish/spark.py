"""The Spark side of publishing: a sink's writer run on every partition (on the executors, each
with its own client or connection, so a write scales with the cluster instead of streaming
through the driver), and a failed task's own error brought back out of the JVM's wrapping."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from glue_jobs import contracts as c
from glue_jobs.recommender.publish.errors import PublishError

PartitionWriter = Callable[[Iterator[dict[str, Any]]], None]  # takes one partition's rows as dicts


def task_error(exc: Exception) -> str:
    """The Python error a Spark task raised, out of the JVM's wrapping of it."""
    lines = [line.strip() for line in str(exc).splitlines()]
    raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)
              and not line.startswith(("py4j", "org.apache"))]
    return raised[-1] if raised else lines[0]


def per_user_lists(recs: Any) -> Any:
    """One row per user: c.USER_ID and "recs", the user's c.LIST_ENTRY_COLUMNS[, artist_name]."""
    from pyspark.sql import functions as F

    cols = [*c.LIST_ENTRY_COLUMNS] + ([c.ARTIST_NAME] if c.ARTIST_NAME in recs.columns else [])
    return recs.groupBy(c.USER_ID).agg(F.collect_list(F.struct(*cols)).alias("recs"))


def per_artist_lists(similar: Any) -> Any:
    """One row per artist: c.ARTIST_ID[, c.ARTIST_NAME, its own] and "similar", its list's
    c.SIMILAR_ENTRY_COLUMNS[, artist_name], where an entry's artist_id and artist_name are the
    similar artist's (as the API answers them)."""
    from pyspark.sql import functions as F

    fields = [F.col(c.RANK), F.col(c.SIMILAR_ARTIST_ID).alias(c.ARTIST_ID), F.col(c.SIMILARITY)]
    named = c.SIMILAR_ARTIST_NAME in similar.columns
    if named:
        fields.append(F.col(c.SIMILAR_ARTIST_NAME).alias(c.ARTIST_NAME))
    own_name = [F.first(c.ARTIST_NAME).alias(c.ARTIST_NAME)] if named and c.ARTIST_NAME in similar.columns else []
    return similar.groupBy(c.ARTIST_ID).agg(F.collect_list(F.struct(*fields)).alias("similar"), *own_name)


def partitions(df: Any) -> int:
    return max(1, df.rdd.getNumPartitions())


def write_partitions(df: Any, writer: PartitionWriter, failure: str, columns: Sequence[str] = ()) -> int:
    """Runs `writer` over each partition's rows (of `columns`, or all) and returns the row count.
    A task's error (a PublishError, say) arrives wrapped by Py4J: it is raised as a PublishError
    that starts with `failure` and names it."""
    rows = df.select(*columns) if columns else df
    # Counted as the rows are written: a second job to count them would recompute `df` (for
    # DynamoDB, a shuffle of every recommendation). An action's accumulator updates count once
    # per successful task, so a retried task is not counted twice.
    written = rows.sparkSession.sparkContext.accumulator(0)

    def write(part: Any) -> None:
        def counted() -> Any:
            for r in part:
                written.add(1)
                yield r.asDict(recursive=True)
        writer(counted())

    try:
        rows.foreachPartition(write)
    except Exception as exc:
        raise PublishError(f"{failure}: {task_error(exc)}") from exc
    return int(written.value)
