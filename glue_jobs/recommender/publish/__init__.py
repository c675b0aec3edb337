"""Publishing a finished run to the sinks: files (latest.json), DynamoDB and Aurora MySQL.

Each sink is a `Sink` (sink.py). Whether the run may replace the one being served is decided
once, before any sink is touched. Then every sink stages the run without changing what readers
see (DynamoDB items under the new run id, the Aurora staging table); only then does each one
make its cheap, atomic flip (DynamoDB pointer, Aurora RENAME, latest.json). A failure before
the flips leaves everything serving the previous run; a failed flip rolls back the flips done.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from glue_jobs import contracts as c
from glue_jobs.recommender.publish import aurora, dynamo, files
from glue_jobs.recommender.publish.errors import PublishError
from glue_jobs.recommender.publish.sink import RunToPublish, Sink

if TYPE_CHECKING:
    from glue_jobs.recommender.config import SinkOptions

__all__ = ["PublishError", "PublishSettings", "RunToPublish", "Sink", "preflight", "publish_run", "rollback"]


@dataclass(frozen=True)
class PublishSettings:
    runs_root: str | None = None
    dynamo: dynamo.DynamoSettings | None = None
    aurora: aurora.AuroraSettings | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.runs_root or self.dynamo or self.aurora)

    @classmethod
    def from_options(cls, sinks: SinkOptions) -> PublishSettings:
        """The one place the sinks' settings are built: from the job's, the CLI's or a Lambda's options."""
        return cls(
            runs_root=sinks.runs_root,
            dynamo=dynamo.DynamoSettings(sinks.dynamodb_table, sinks.dynamodb_endpoint, sinks.dynamodb_region,
                                         sinks.dynamodb_ttl_days, sinks.dynamodb_max_writes_per_s)
            if sinks.dynamodb_table else None,
            aurora=aurora.AuroraSettings(sinks.aurora_url, sinks.aurora_secret_arn, sinks.dynamodb_region,
                                         sinks.aurora_batch_size)
            if (sinks.aurora_url or sinks.aurora_secret_arn) else None,
        )


# Every sink, in activation order: the DynamoDB flip first (the one a concurrent publisher can
# refuse, so that a refusal leaves nothing to undo), latest.json last (what consumers follow).
# A new sink is its module plus one line here.
SINKS: tuple[Callable[[PublishSettings], Sink | None], ...] = (
    lambda s: dynamo.DynamoSink(s.dynamo) if s.dynamo else None,
    lambda s: aurora.AuroraSink(s.aurora, s.runs_root) if s.aurora else None,
    lambda s: files.FilesSink(s.runs_root) if s.runs_root else None,
)


@contextlib.contextmanager
def open_sinks(settings: PublishSettings) -> Iterator[list[Sink]]:
    """The configured sinks, in activation order, closed afterwards."""
    sinks: list[Sink] = []
    try:
        for make in SINKS:
            if (sink := make(settings)) is not None:
                sinks.append(sink)
        yield sinks
    finally:
        for sink in sinks:
            sink.close()


def preflight(settings: PublishSettings) -> None:
    """Checks every configured sink before any work: a wrong table, a missing secret or an
    unreachable database fails the run with a clear message and nothing written."""
    with open_sinks(settings) as sinks:
        for sink in sinks:
            sink.check()


def publish_run(run: RunToPublish, settings: PublishSettings) -> dict[str, Any]:
    """Publishes a completed run (its files already written with _SUCCESS) to every sink; returns
    what each took (metrics.json's "published")."""
    with open_sinks(settings) as sinks:
        served = {sink.name: _active_run(sink) for sink in sinks}
        # The one decision: an older run never replaces a newer one (rollback does, on purpose).
        # The sinks' conditional writes only guard against a run that gets in after this.
        newer = [r for r in served.values() if r and r > run.run_id]
        if newer:
            raise PublishError(f"run {run.run_id} is older than the published run {max(newer)}: not replacing it")
        report = _stage_all(sinks, run)
        _activate_all(sinks, run, served)
    return report


def _stage_all(sinks: list[Sink], run: RunToPublish) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for i, sink in enumerate(sinks):
        try:
            report.update(sink.stage(run))
        except Exception as exc:
            _abandon(sinks[:i], run, f"{sink.name} could not stage it: {exc}")
            raise
    return report


def _activate_all(sinks: list[Sink], run: RunToPublish, served: dict[str, str | None]) -> None:
    for i, sink in enumerate(sinks):
        try:
            sink.activate(run)
        except Exception as exc:
            reason = f"{sink.name} did not activate it: {exc}"
            _abandon(sinks[i + 1:], run, reason)
            undone = [_undo(done, run, served[done.name]) for done in reversed(sinks[:i])]
            serving = ", ".join(f"{s.name} {_serving(s)}" for s in sinks)
            raise PublishError(f"run {run.run_id} was not published: {reason}. "
                               + "".join(f"{u}; " for u in undone) + f"now serving: {serving}") from exc


def _abandon(sinks: list[Sink], run: RunToPublish, reason: str) -> None:
    for sink in sinks:
        # Best effort (it records why): the error that stopped publishing is the one to raise.
        with contextlib.suppress(Exception):
            sink.abandon(run, reason)


def _active_run(sink: Sink) -> str | None:
    try:
        return sink.active_run()
    except PublishError:
        raise
    except Exception as exc:
        raise PublishError(f"cannot read which run {sink.name} serves: {exc.__class__.__name__}: {exc}") from exc


def _undo(sink: Sink, run: RunToPublish, previous: str | None) -> str:
    """Takes an activated sink back to the run it served before; says what happened."""
    try:
        return sink.undo(run, previous)
    except Exception as exc:
        return f"taking {sink.name} back to {previous or 'no run'} failed: {exc}"


def _serving(sink: Sink) -> str:
    try:
        return sink.active_run() or "no run"
    except Exception as exc:
        return f"unknown ({exc.__class__.__name__})"


def rollback(run_id: str, settings: PublishSettings) -> dict[str, Any]:
    """Points every configured sink back at an earlier, complete run: DynamoDB's pointer (the
    run's items must still be there), the Aurora table reloaded from the run's own CSV, and
    latest.json."""
    if not settings.runs_root:
        raise PublishError("rollback needs --runs-root: the run's files are the source of truth")
    if not files.run_is_complete(settings.runs_root, run_id):
        raise PublishError(f"run {run_id} is not complete under {settings.runs_root} (no {c.SUCCESS_MARKER}): "
                           "refusing to roll back to it")
    done: dict[str, Any] = {"run_id": run_id}
    with open_sinks(settings) as sinks:
        for sink in sinks:
            sink.check()
        for sink in sinks:
            done.update(sink.rollback(run_id))
    return done
