"""Everything a run writes under its output directory, `_SUCCESS` last.

The old marker is removed before anything else is written, so nobody trusts a half-replaced
directory; metrics.json and report.html follow the data, and `_SUCCESS` closes the run.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from glue_jobs import contracts as c
from glue_jobs.recommender import model, report, storage
from glue_jobs.recommender.metrics import RATING_BUCKETS, RunMetrics
from glue_jobs.recommender.stages import Recommendations, SimilarArtists


def write_data(out: str, recs: Recommendations, quarantine: DataFrame, fitted: model.RecommenderModel,
               similar: SimilarArtists) -> None:
    """The run's data files and model; the marker of an earlier run in `out` goes first."""
    storage.remove(storage.join(out, c.SUCCESS_MARKER))
    recs.recs.write.mode("overwrite").parquet(storage.join(out, c.RECOMMENDATIONS_DIR))
    write_single_csv(recs.recs, out, c.RECOMMENDATIONS_CSV_DIR, c.RECOMMENDATIONS_CSV_FILE)
    # popular_n rows: one small file is the right shape, not a bottleneck.
    recs.popular.coalesce(1).write.mode("overwrite").parquet(storage.join(out, c.POPULAR_DIR))
    quarantine.write.mode("overwrite").json(storage.join(out, c.QUARANTINE_DIR))
    if recs.scores is not None:
        write_single_csv(recs.scores, out, c.SCORES_DIR, c.SCORES_CSV_FILE)
    if similar.lists is not None and similar.count:
        similar.lists.write.mode("overwrite").parquet(storage.join(out, c.SIMILAR_ARTISTS_DIR))
        write_single_csv(similar.lists, out, c.SIMILAR_ARTISTS_CSV_DIR, c.SIMILAR_ARTISTS_CSV_FILE)
    else:  # none this run (the bias-only model): an earlier run's lists in `out` must not pass for this one's
        for directory in (c.SIMILAR_ARTISTS_DIR, c.SIMILAR_ARTISTS_CSV_DIR):
            storage.remove_tree(storage.join(out, directory))
    model.save(fitted, storage.join(out, c.MODEL_DIR))


def finish(out: str, metrics: RunMetrics, recs: DataFrame, scale: tuple[float, float]) -> None:
    """metrics.json, the report, then `_SUCCESS`: from here on the run's files are complete."""
    write_metrics(out, metrics)
    title, hist = score_histogram(recs, scale)
    profile = metrics.input_profile  # counted when the input was read: no pass over the ratings again
    assert profile is not None, "a run's metrics carry its input profile (job.summarise)"
    ratings = list(zip(RATING_BUCKETS, profile.histogram, strict=True))
    storage.write_text(storage.join(out, c.REPORT_FILE),
                       report.render(metrics, ratings, hist, score_title=title), "text/html")
    storage.write_text(storage.join(out, c.SUCCESS_MARKER), metrics.run_id)


def write_metrics(out: str, metrics: RunMetrics) -> None:
    storage.write_text(storage.join(out, c.METRICS_FILE), metrics.to_json(), "application/json")


def write_single_csv(df: DataFrame, out: str, directory: str, file_name: str) -> None:
    """One CSV file with a header under out/directory (the contract for people and QuickSight),
    written in parallel: every task writes its part, then the parts are joined in partition
    order (a server-side copy on S3) instead of funnelling all rows through one task."""
    parts = storage.join(out, "_parts", directory)
    df.write.mode("overwrite").option("header", True).csv(parts)
    target = storage.join(out, directory)
    storage.remove_tree(target)
    header = (",".join(df.columns) + "\n").encode("utf-8")
    storage.concat_with_header(storage.list_files(parts, ".csv"), storage.join(target, file_name), header)
    storage.remove_tree(storage.join(out, "_parts"))


def score_histogram(recs: DataFrame, scale: tuple[float, float]) -> tuple[str, list[tuple[str, int]]]:
    """The chart's title and bars: the predicted ratings over the rating scale when the run has
    them (explicit feedback), else the ranking scores over their own range (implicit)."""
    rated, low, high = recs.agg(F.count(c.PREDICTED_RATING), F.min(c.SCORE), F.max(c.SCORE)).first() or (0, 0, 0)
    if rated:
        title, column, (lo, hi) = "Predicted ratings of the recommendations", c.PREDICTED_RATING, scale
    else:
        title, column, lo, hi = "Ranking scores of the recommendations", c.SCORE, low or 0.0, high or 0.0
    width = (hi - lo) / 10 or 1.0
    bins = F.greatest(F.least(F.floor((F.col(column) - lo) / width), F.lit(9)), F.lit(0))
    rows = recs.groupBy(bins.alias("b")).count().orderBy("b").collect()
    return title, [(f"{lo + r.b * width:.4g}-{lo + (r.b + 1) * width:.4g}", int(r["count"])) for r in rows]
