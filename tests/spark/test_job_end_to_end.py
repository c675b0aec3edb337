"""The whole job on generated data with structure: outputs, invariants, metrics and failures."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyspark.sql import functions as F

from glue_jobs import contracts as c
from glue_jobs import datagen
from glue_jobs.recommender import model, similar
from glue_jobs.recommender.config import Feedback, JobConfig
from glue_jobs.recommender.ingest import read_artist_names
from glue_jobs.recommender.job import JobFailed, JobResult
from glue_jobs.recommender.main import execute, main

pytestmark = [pytest.mark.spark, pytest.mark.e2e]
N_RATINGS = 30_000


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("sample")
    data = datagen.generate(N_RATINGS, seed=7, bad_share=0.01)
    datagen.write_r1(root / "ratings.tsv", datagen.r1_lines(data, 7))
    datagen.write_artist_names(root / "artists.txt", datagen.artist_names(data.artists, 7))
    known = list(zip(data.users[:20].tolist(), data.artists[:20].tolist()))
    pairs = [*known, (999_999, int(data.artists[0])), (int(data.users[0]), 999_999), (999_998, 999_997)]
    (root / "pairs.tsv").write_text("".join(f"{u}\t{a}\n" for u, a in pairs))
    return {"root": root, "data": data, "pairs": pairs}


def job_config(sample: dict[str, object], out: Path, **kw: object) -> JobConfig:
    root = sample["root"]
    assert isinstance(root, Path)
    base: dict[str, object] = dict(
        inputs=(str(root / "ratings.tsv"),), output=str(out), artists=str(root / "artists.txt"),
        score_pairs=str(root / "pairs.tsv"), ranks=(4, 8), reg_params=(0.05, 0.1), max_iter=6,
        shuffle_partitions=2, popularity_weights=(0.0, 0.1, 0.3))
    base.update(kw)
    return JobConfig.from_fields(**base)


@pytest.fixture(scope="module")
def run(spark, sample, tmp_path_factory: pytest.TempPathFactory) -> JobResult:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("run") / "out"
    return execute(spark, job_config(sample, out))


def read_csv_dir(path: Path, name: str) -> list[dict[str, str]]:
    files = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
    assert files == [name], "one CSV file with a header, for people and QuickSight"
    with (path / name).open() as fh:
        return list(csv.DictReader(fh))


def test_every_output_is_written_and_success_comes_last(run: JobResult) -> None:
    out = Path(run.output)
    for name in (c.RECOMMENDATIONS_DIR, c.RECOMMENDATIONS_CSV_DIR, c.POPULAR_DIR, c.SCORES_DIR,
                 c.QUARANTINE_DIR, c.MODEL_DIR, c.METRICS_FILE, c.REPORT_FILE):
        assert (out / name).exists(), name
    marker = out / c.SUCCESS_MARKER
    assert marker.read_text() == run.run_id
    newest_other = max(p.stat().st_mtime for p in out.rglob("*") if p.is_file() and p != marker)
    assert marker.stat().st_mtime >= newest_other


def test_recommendations_never_repeat_rated_or_255_artists(spark, run: JobResult, sample) -> None:  # type: ignore[no-untyped-def]
    data = sample["data"]
    rated = set(zip(data.users.tolist(), data.artists.tolist()))
    recs = spark.read.parquet(str(Path(run.output) / c.RECOMMENDATIONS_DIR)).collect()
    assert recs, "no recommendations"
    assert not [r for r in recs if (r.user_id, r.artist_id) in rated]
    blocked = {(u, a) for u, a, r in zip(data.users.tolist(), data.artists.tolist(), data.ratings.tolist())
               if r == c.NEVER_PLAY_AGAIN}
    assert blocked, "the sample must hold 255s for this test to mean anything"
    assert not [r for r in recs if (r.user_id, r.artist_id) in blocked]


def test_every_known_user_gets_top_n_with_valid_scores_and_names(spark, run: JobResult, sample) -> None:  # type: ignore[no-untyped-def]
    data = sample["data"]
    df = spark.read.parquet(str(Path(run.output) / c.RECOMMENDATIONS_DIR))
    assert df.columns == [*c.RECOMMENDATION_COLUMNS, c.ARTIST_NAME]
    rows = df.collect()
    per_user = Counter(r.user_id for r in rows)
    assert set(per_user) == set(data.users.tolist())
    assert set(per_user.values()) == {5}
    assert {tuple(sorted(r.rank for r in rows if r.user_id == u)) for u in list(per_user)[:50]} == {(1, 2, 3, 4, 5)}
    ratings = [r.predicted_rating for r in rows]
    assert all(not math.isnan(s) and 0.0 <= s <= 100.0 for s in ratings)
    assert len(set(ratings)) > 10, "ratings must not collapse to one value (the notebook's all-zero users)"
    assert all(r.artist_name for r in rows)
    csv_rows = read_csv_dir(Path(run.output) / c.RECOMMENDATIONS_CSV_DIR, c.RECOMMENDATIONS_CSV_FILE)
    assert list(csv_rows[0]) == [*c.RECOMMENDATION_COLUMNS, c.ARTIST_NAME]
    # The parts written by several tasks are joined in order: the CSV is the parquet, sorted.
    ordered = sorted(rows, key=lambda r: (r.user_id, r.rank))
    assert [(int(r[c.USER_ID]), int(r[c.RANK]), int(r[c.ARTIST_ID]), float(r[c.SCORE]),
             float(r[c.PREDICTED_RATING])) for r in csv_rows] == [
        (r.user_id, r.rank, r.artist_id, r.score, r.predicted_rating) for r in ordered]
    assert not (Path(run.output) / "_parts").exists(), "the part files are cleaned up"


def test_quarantine_counts_every_bad_row_by_reason(run: JobResult, sample) -> None:  # type: ignore[no-untyped-def]
    data = sample["data"]
    expected = Counter(kind for kind, _ in data.bad_lines)
    metrics = json.loads((Path(run.output) / c.METRICS_FILE).read_text())
    assert set(metrics["quarantine"]) == set(c.QUARANTINE_REASONS)
    assert {k: v for k, v in metrics["quarantine"].items() if v} == dict(expected)
    lines = [json.loads(line) for p in (Path(run.output) / c.QUARANTINE_DIR).glob("*.json")
             for line in p.read_text().splitlines()]
    assert len(lines) == len(data.bad_lines)
    assert metrics["counts"]["input_rows"] == N_RATINGS + len(data.bad_lines)
    assert metrics["counts"]["ratings"] + metrics["counts"]["never_play_again"] == N_RATINGS


def test_model_beats_the_baselines_on_structured_data(run: JobResult) -> None:
    m = json.loads((Path(run.output) / c.METRICS_FILE).read_text())
    base = m["baselines"]
    assert m["rmse"] < 0.95 * base["bias_rmse"] < base["global_mean_rmse"]
    assert m["mae"] < base["bias_mae"]
    assert m["ndcg_at_k"] > base["popularity_ndcg_at_k"]
    assert m["quality_gate"]["passed"]
    assert m["best_params"]["rank"] in (4, 8) and m["best_params"]["reg_param"] in (0.05, 0.1)
    assert [(g["rank"], g["reg_param"]) for g in m["grid"]] == [(0, 0.0), (4, 0.05), (4, 0.1), (8, 0.05), (8, 0.1)]
    assert 0 < m["catalog_coverage"] <= 1
    assert {"read_validate", "split", "tune", "fit", "evaluate", "recommend", "write"} <= set(m["timings_s"])
    # --shuffle-partitions reaches the session and ALS's blocks, and the run records it.
    assert m["spark"]["shuffle_partitions"] == 2 and m["spark"]["als_blocks"] == 2
    assert m["k"] == 10 and 0 <= m["precision_at_k"] <= 1 and 0 <= m["map_at_k"] <= 1


def test_score_pairs_cover_every_pair_and_match_a_reloaded_model(spark, run: JobResult, sample) -> None:  # type: ignore[no-untyped-def]
    rows = read_csv_dir(Path(run.output) / c.SCORES_DIR, c.SCORES_CSV_FILE)
    assert list(rows[0]) == list(c.SCORES_COLUMNS)
    got = {(int(r[c.USER_ID]), int(r[c.ARTIST_ID])): (float(r[c.SCORE]), float(r[c.PREDICTED_RATING]))
           for r in rows}
    assert set(got) == set(sample["pairs"])
    assert all(not math.isnan(s) and 0 <= v <= 100 for s, v in got.values())
    reloaded = model.load(spark, str(Path(run.output) / c.MODEL_DIR))
    pairs = spark.createDataFrame(sample["pairs"], "user_id int, artist_id int")
    again = {(r.user_id, r.artist_id): (r.score, r.predicted_rating)
             for r in model.score_pairs(reloaded, pairs).collect()}
    assert set(again) == set(got)
    for pair, (score, rating) in got.items():
        assert again[pair] == pytest.approx((score, rating))
    assert got[(999_998, 999_997)] == pytest.approx((reloaded.params.global_mean,) * 2)


def test_popular_fallback_is_ordered_and_scored(spark, run: JobResult, sample) -> None:  # type: ignore[no-untyped-def]
    """What the fallback promises (popular_list): the artists most liked in the ratings learned
    from, most first, each scored as the model scores a user it does not know: global mean +
    artist bias, clipped to the rating scale. Recomputed here in plain Python from the sample."""
    data, conf = sample["data"], job_config(sample, Path(run.output))
    liked: Counter[int] = Counter()
    rated: Counter[int] = Counter()
    for artist, rating in zip(data.artists.tolist(), data.ratings.tolist()):
        if rating != c.NEVER_PLAY_AGAIN:
            rated[artist] += 1
            liked[artist] += int(rating >= conf.tuning.relevance_threshold)
    # Ties in likes go to the artist rated more often, then to the lower id (as the job breaks them).
    expected = sorted(rated, key=lambda a: (-liked[a], -rated[a], a))[:conf.model.popular_n]
    pop = spark.read.parquet(str(Path(run.output) / c.POPULAR_DIR)).orderBy(c.RANK).collect()
    assert [r.rank for r in pop] == list(range(1, conf.model.popular_n + 1))
    assert [r.artist_id for r in pop] == expected
    assert [r.n_ratings for r in pop] == [rated[a] for a in expected]
    assert all(r.artist_name for r in pop)
    fitted = model.load(spark, str(Path(run.output) / c.MODEL_DIR))
    p = fitted.params
    assert p.feedback == Feedback.EXPLICIT
    bias = {r[c.ARTIST_ID]: r[model.BIAS] for r in fitted.items.select(c.ARTIST_ID, model.BIAS).collect()}
    unknown_user = [min(max(p.global_mean + (bias.get(a) or 0.0), p.rating_min), p.rating_max) for a in expected]
    assert [r.predicted_rating for r in pop] == pytest.approx(unknown_user, abs=1e-4)
    assert len({round(s, 3) for s in unknown_user}) > 10, "artist biases must tell the ratings apart"
    # The score is the popularity the list is ranked by: never higher further down.
    assert [r.score for r in pop] == pytest.approx([liked[a] + rated[a] * 1e-6 for a in expected], abs=1e-6)
    assert [r.score for r in pop] == sorted((r.score for r in pop), reverse=True)


def assert_scores_never_rise(rows: list[Any]) -> None:
    lists: dict[int, list[tuple[int, float]]] = {}
    for r in rows:
        lists.setdefault(r.user_id, []).append((r.rank, r.score))
    for user, entries in lists.items():
        scores = [score for _, score in sorted(entries)]
        assert scores == sorted(scores, reverse=True), f"user {user}: scores rise down the list: {scores}"


def test_scores_follow_the_ranking_and_ratings_are_the_models_clipped_predictions(spark, run: JobResult) -> None:  # type: ignore[no-untyped-def]
    """The issue's demo list read rank 1 score 74.3, rank 3 82.9: the score shown was the
    predicted rating while the list was ranked with the popularity prior. Now `score` is the
    ranking score (non-increasing in rank) and `predicted_rating` the model's clipped rating,
    both recomputed here in NumPy from the saved model's biases and factors."""
    recs = spark.read.parquet(str(Path(run.output) / c.RECOMMENDATIONS_DIR)).collect()
    assert_scores_never_rise(recs)
    fitted = model.load(spark, str(Path(run.output) / c.MODEL_DIR))
    p = fitted.params
    assert p.popularity_weight > 0, "the run must rank with a prior for this test to mean anything"
    users = {r[c.USER_ID]: (r[model.BIAS], r[model.FEATURES]) for r in fitted.users.collect()}
    items = {r[c.ARTIST_ID]: (r[model.BIAS], r[model.FEATURES], r[model.N_RATINGS]) for r in fitted.items.collect()}
    rating_moved = 0
    for r in recs:
        bu, xu = users[r.user_id]
        bi, yi, n = items[r.artist_id]
        raw = p.global_mean + bu + bi + p.residual_scale * float(np.dot(np.array(xu), np.array(yi)))
        assert r.predicted_rating == pytest.approx(min(max(raw, p.rating_min), p.rating_max), abs=1e-3)
        assert r.score == pytest.approx(raw + p.popularity_weight * math.log1p(n), abs=1e-3)
        assert r.score != pytest.approx(r.predicted_rating, abs=1e-3)  # the prior is never zero here (n >= 1)
    by_user: dict[int, list[Any]] = {}
    for r in recs:
        by_user.setdefault(r.user_id, []).append(r)
    for entries in by_user.values():
        ratings = [r.predicted_rating for r in sorted(entries, key=lambda r: r.rank)]
        rating_moved += ratings != sorted(ratings, reverse=True)
    assert rating_moved, "some list must be reordered by the prior (its ratings rise somewhere)"


def test_report_shows_the_charts(run: JobResult) -> None:
    page = (Path(run.output) / c.REPORT_FILE).read_text()
    assert page.count("<svg") == 4
    assert run.run_id in page
    assert "Predicted ratings of the recommendations" in page  # explicit feedback: the ratings, not the scores


def test_similar_artists_are_written_named_counted_and_equal_the_spark_paths(spark, run: JobResult, sample) -> None:  # type: ignore[no-untyped-def]
    """This run fits on the driver, so its lists come from the driver path: the files hold them with
    both names, metrics.json counts them, and the Spark path computes the same lists from the saved
    model (the same float32 factors)."""
    out, conf = Path(run.output), job_config(sample, Path(run.output))
    assert run.metrics.spark["model"] == "numpy"
    df = spark.read.parquet(str(out / c.SIMILAR_ARTISTS_DIR))
    assert df.columns == [*c.SIMILAR_ARTIST_COLUMNS, c.ARTIST_NAME, c.SIMILAR_ARTIST_NAME]
    rows = df.orderBy(c.ARTIST_ID, c.RANK).collect()
    counts = json.loads((out / c.METRICS_FILE).read_text())["counts"]
    assert counts["similar_artists"] == len(rows) > 0
    assert counts["similar_lists"] == len({r.artist_id for r in rows})
    assert {len([r for r in rows if r.artist_id == a]) for a in {r.artist_id for r in rows}} == {conf.model.similar_n}
    names = {r[c.ARTIST_ID]: r[c.ARTIST_NAME] for r in read_artist_names(spark, conf.input.artists or "").collect()}
    assert all(r.artist_name == names[r.artist_id] and r.similar_artist_name == names[r.similar_artist_id]
               for r in rows)
    fitted = model.load(spark, str(out / c.MODEL_DIR))
    few = {r[c.ARTIST_ID] for r in fitted.items.filter(F.col(model.N_RATINGS) < conf.model.min_artist_ratings)
           .collect()}
    assert few, "the sample must hold artists below --min-artist-ratings for this test to mean anything"
    assert not few & ({r.artist_id for r in rows} | {r.similar_artist_id for r in rows})
    again = similar.similar_artists(spark, fitted, None, conf.model.similar_n, conf.model.min_artist_ratings)
    assert again is not None
    assert [tuple(r) for r in again.collect()] == [tuple(r)[:4] for r in rows]
    csv_rows = read_csv_dir(out / c.SIMILAR_ARTISTS_CSV_DIR, c.SIMILAR_ARTISTS_CSV_FILE)
    assert list(csv_rows[0]) == [*c.SIMILAR_ARTIST_COLUMNS, c.ARTIST_NAME, c.SIMILAR_ARTIST_NAME]
    assert [(int(r[c.ARTIST_ID]), int(r[c.RANK]), int(r[c.SIMILAR_ARTIST_ID]), float(r[c.SIMILARITY]))
            for r in csv_rows] == [tuple(r)[:4] for r in rows]
    assert f"Similar artists: {counts['similar_lists']:,} artists got a list" in (out / c.REPORT_FILE).read_text()


def test_same_seed_gives_the_same_recommendations(spark, sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outs = []
    for name in ("a", "b"):
        conf = job_config(sample, tmp_path / name, ranks=(4,), reg_params=(0.1,), popularity_weights=(0.1,),
                          score_pairs=None, artists=None)
        execute(spark, conf)
        outs.append(spark.read.parquet(str(tmp_path / name / c.RECOMMENDATIONS_DIR))
                    .orderBy("user_id", "rank").collect())
    assert outs[0] == outs[1]


def test_k_fold_tuning_averages_every_fold(spark, sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    conf = job_config(sample, tmp_path / "kfold", folds=2, ranks=(4,), reg_params=(0.05, 0.2),
                      popularity_weights=(0.1,), score_pairs=None)
    m = execute(spark, conf).metrics
    assert [(g["rank"], g["reg_param"]) for g in m.grid] == [(0, 0.0), (4, 0.05), (4, 0.2)]
    assert all(10 < g["rmse"] < 30 for g in m.grid)
    best = min(m.grid, key=lambda g: g["rmse"])
    assert m.best_params.reg_param == best["reg_param"]


def test_too_much_bad_input_fails_and_publishes_nothing(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.tsv"
    bad.write_text("".join(f"1\t{a}\t3\n" for a in range(2, 7)) + "x\ty\tz\n" * 2)
    with pytest.raises(JobFailed, match=r"2 of 7 input rows \(28.6%\).*non_integer_id=2"):
        execute(spark, JobConfig.from_fields(inputs=(str(bad),), output=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


def test_empty_or_unlearnable_input_fails_clearly(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(JobFailed, match="holds no rows"):
        execute(spark, JobConfig.from_fields(inputs=(str(empty),), output=str(tmp_path / "o1")))
    only_255 = tmp_path / "never.tsv"
    only_255.write_text("1\t2\t255\n3\t4\t255\n")
    with pytest.raises(JobFailed, match="no ratings to learn from"):
        execute(spark, JobConfig.from_fields(inputs=(str(only_255),), output=str(tmp_path / "o2")))
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_failed_quality_gate_leaves_the_previous_results(spark, sample, run: JobResult, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "published"
    (out / c.RECOMMENDATIONS_DIR).mkdir(parents=True)
    (out / c.RECOMMENDATIONS_DIR / "previous.parquet").write_text("previous run")
    (out / c.SUCCESS_MARKER).write_text("previous-run-id")
    conf = job_config(sample, out, ranks=(4,), reg_params=(0.1,), min_rmse_gain=0.9, score_pairs=None)
    with pytest.raises(JobFailed, match="quality gate failed: rmse"):
        execute(spark, conf)
    assert (out / c.SUCCESS_MARKER).read_text() == "previous-run-id"
    assert [p.name for p in (out / c.RECOMMENDATIONS_DIR).iterdir()] == ["previous.parquet"]


def test_implicit_feedback_runs_and_is_judged_by_ranking(spark, sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # R1 ratings are not play counts: implicit ALS only matches popularity on them, so the
    # gate is relaxed here; what is checked is that the implicit path is judged by ranking.
    conf = job_config(sample, tmp_path / "imp", feedback=Feedback.IMPLICIT, ranks=(8,),
                      reg_params=(0.1,), score_pairs=None, min_ndcg_gain=-0.5, alpha=1.0)
    result = execute(spark, conf)
    m = result.metrics
    assert m.rmse is None and m.baselines.bias_rmse is None
    assert m.quality_gate.metric == "ndcg_at_k" and m.quality_gate.passed
    assert m.ndcg_at_k is not None and m.baselines.popularity.ndcg_at_k is not None
    assert m.ndcg_at_k > 0.5 * m.baselines.popularity.ndcg_at_k > 0
    recs = spark.read.parquet(str(tmp_path / "imp" / c.RECOMMENDATIONS_DIR))
    assert recs.filter(F.col(c.PREDICTED_RATING).isNotNull()).count() == 0, "implicit feedback predicts no rating"
    assert_scores_never_rise(recs.collect())
    assert "Ranking scores of the recommendations" in (tmp_path / "imp" / c.REPORT_FILE).read_text()


def test_command_line_reports_bad_options_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--input", "x", "--output", "y", "--top-n", "0"]) == 2
    assert "--top-n must be at least 1" in capsys.readouterr().err
