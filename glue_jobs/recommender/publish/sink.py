"""What every sink is: the `Sink` protocol publishing drives, and the run it publishes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from glue_jobs.recommender.metrics import RunMetrics


@dataclass(frozen=True)
class RunToPublish:
    """A finished run (its files written, _SUCCESS last), as the sinks take it."""

    run_id: str
    top_n: int
    recommendations: Any  # Spark DataFrame sorted by user, rank: c.RECOMMENDATION_COLUMNS (+ c.ARTIST_NAME)
    popular: list[dict[str, Any]]  # the popularity list: rank, artist_id, score, predicted_rating, n_ratings[, name]
    artists: list[dict[str, Any]]  # {artist_id, name}; empty when the run has no names
    metrics: RunMetrics
    # Spark DataFrame sorted by artist_id, rank: c.SIMILAR_ARTIST_COLUMNS (+ c.ARTIST_NAME,
    # c.SIMILAR_ARTIST_NAME with names); None when the run has none (e.g. the bias-only model)
    similar: Any = None


class Sink(Protocol):
    """One place a run is published to. Staging must not change what readers see; activating
    is the sink's one cheap flip, so that a failure before it leaves the previous run serving."""

    name: str

    def check(self) -> None:
        """Raises PublishError if the sink cannot take a run (before any work is done)."""

    def active_run(self) -> str | None:
        """The run readers are served now; None before the first publish."""

    def stage(self, run: RunToPublish) -> dict[str, Any]:
        """Takes the run's data without readers seeing it; returns what it took (for metrics.json)."""

    def activate(self, run: RunToPublish) -> None:
        """Makes the staged run the one readers see."""

    def abandon(self, run: RunToPublish, reason: str) -> None:
        """The staged run will not be activated (another sink failed): record or clean up."""

    def rollback(self, to: str) -> dict[str, Any]:
        """Serves an earlier, complete run again (an operator's choice); returns what it did."""

    def undo(self, run: RunToPublish, previous: str | None) -> str:
        """Takes back this sink's activation of `run` after a later sink failed: serves `previous`
        again (nothing, if it served nothing), but only while it still serves `run`, so that a
        newer run published in between is never replaced. Says what it did."""

    def close(self) -> None:
        """Releases clients and connections."""
