"""publish_run over the three sinks (files in a folder, DynamoDB on moto's server, the real
MariaDB), without the job: the one older-run decision, staging before any flip, a refused or
failed flip that leaves or puts every sink back on the previous run, and the rollback command."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from glue_jobs import contracts as c
from glue_jobs.recommender.config import SinkOptions
from glue_jobs.recommender.metrics import RunMetrics
from glue_jobs.recommender.publish import (
    PublishError,
    PublishSettings,
    RunToPublish,
    aurora,
    dynamo,
    files,
    preflight,
    publish_run,
)
from glue_jobs.recommender.publish import __main__ as publish_cli

pytestmark = [pytest.mark.spark, pytest.mark.mysql]
RUN_A, RUN_B, RUN_C = "20261129T160000Z-aaaa", "20261130T160000Z-bbbb", "20261201T160000Z-cccc"
USERS, TOP_N, ARTISTS = 30, 3, 5


def metrics(run_id: str, n_recs: int) -> RunMetrics:
    ranking = {"precision_at_k": 0.05, "recall_at_k": 0.1, "ndcg_at_k": 0.12, "map_at_k": 0.07}
    return RunMetrics.from_dict({
        "run_id": run_id, "feedback": "explicit", "k": 10, "top_n": TOP_N, "rmse": 17.5, "mae": 13.9, **ranking,
        "catalog_coverage": 0.05, "evaluated_users": USERS, "timings_s": {"fit": 1.5},
        "baselines": {"bias_rmse": 20.1, **{f"popularity_{k}": v / 2 for k, v in ranking.items()}},
        "best_params": {"rank": 10, "reg_param": 0.1, "popularity_weight": 0.0},
        "quality_gate": {"passed": True, "metric": "rmse", "value": 17.5, "baseline": "bias_rmse",
                         "must_be_below": 20.1},
        "counts": {"input_rows": 900, "ratings": 900, "users": USERS, "items": 50, "never_play_again": 0,
                   "train": 700, "validation": 100, "test": 100, "quarantined": 0, "recommendations": n_recs},
    })


def similar_lists(artist_base: int) -> list[dict[str, Any]]:
    """Each of ARTISTS artists' two most similar artists, with names, as the job writes them."""
    return [{c.ARTIST_ID: artist_base + a, c.RANK: r, c.SIMILAR_ARTIST_ID: artist_base + (a + r) % ARTISTS,
             c.SIMILARITY: round(0.9 - r / 10 - a / 100, 4), c.ARTIST_NAME: f"A{a}",
             c.SIMILAR_ARTIST_NAME: f"A{(a + r) % ARTISTS}"} for a in range(ARTISTS) for r in (1, 2)]


def add_similar(spark: Any, root: Path, run: RunToPublish, artist_base: int) -> RunToPublish:
    """The run with similar artists: their CSV beside the recommendations', a DataFrame in Spark."""
    lists = similar_lists(artist_base)
    columns = (*c.SIMILAR_ARTIST_COLUMNS, c.ARTIST_NAME, c.SIMILAR_ARTIST_NAME)
    folder = Path(c.run_path(str(root), run.run_id)) / c.SIMILAR_ARTISTS_CSV_DIR
    folder.mkdir()
    with (folder / c.SIMILAR_ARTISTS_CSV_FILE).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(lists)
    df = spark.createDataFrame([tuple(r[k] for k in columns) for r in lists],
                               "artist_id int, rank int, similar_artist_id int, similarity double, "
                               "artist_name string, similar_artist_name string").repartition(2)
    # The job counts the rows it wrote (metrics.json): the Aurora sink checks its staging table against that.
    counted = run.metrics.with_(counts=dataclasses.replace(run.metrics.counts, similar_artists=len(lists)))
    return dataclasses.replace(run, similar=df, metrics=counted)


def make_run(spark: Any, root: Path, run_id: str, artist_base: int = 100) -> RunToPublish:
    """A finished run: its CSV and _SUCCESS under the runs root, its recommendations in Spark."""
    recs = [{c.USER_ID: u, c.RANK: r, c.ARTIST_ID: artist_base + r, c.SCORE: 95.5 - r,
             c.PREDICTED_RATING: 80.0 + u % 7 + r} for u in range(1, USERS + 1) for r in range(1, TOP_N + 1)]
    out = Path(c.run_path(str(root), run_id))
    (out / c.RECOMMENDATIONS_CSV_DIR).mkdir(parents=True)
    with (out / c.RECOMMENDATIONS_CSV_DIR / c.RECOMMENDATIONS_CSV_FILE).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=c.RECOMMENDATION_COLUMNS)
        writer.writeheader()
        writer.writerows(recs)
    (out / c.SUCCESS_MARKER).write_text(run_id)
    df = spark.createDataFrame([tuple(r[k] for k in c.RECOMMENDATION_COLUMNS) for r in recs],
                               "user_id int, rank int, artist_id int, score double, predicted_rating double"
                               ).repartition(2)
    popular = [{c.RANK: 1, c.ARTIST_ID: artist_base + 1, c.SCORE: 9.0, c.PREDICTED_RATING: 61.5, "n_ratings": 9}]
    return RunToPublish(run_id, TOP_N, df, popular, [{c.ARTIST_ID: artist_base + 1, "name": "Björk"}],
                        metrics(run_id, len(recs)))


@pytest.fixture
def sinks(tmp_path: Path, table: str, moto_endpoint: str, mysql_url: str) -> Iterator[PublishSettings]:
    yield PublishSettings.from_options(SinkOptions(runs_root=str(tmp_path), dynamodb_table=table,
                                                   dynamodb_endpoint=moto_endpoint, aurora_url=mysql_url))


def serving(settings: PublishSettings) -> dict[str, str | None]:
    """What readers of each sink are served now, read the way they read it."""
    assert settings.dynamo and settings.aurora and settings.runs_root
    pointer = dynamo.read_pointer(settings.dynamo.client(), settings.dynamo.table)
    engine = settings.aurora.engine()
    with engine.connect() as conn:
        runs = {r[0] for r in conn.execute(sa.text(f"SELECT DISTINCT run_id FROM {c.SQL_RECOMMENDATIONS}"))}
    engine.dispose()
    assert len(runs) == 1
    return {"dynamodb": pointer.run_id if pointer else None, "aurora": runs.pop(),
            "files": (files.read_latest(settings.runs_root) or {}).get("run_id")}


def model_runs(settings: PublishSettings) -> dict[str, Any]:
    assert settings.aurora
    engine = settings.aurora.engine()
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT run_id, status, metrics, error FROM {c.SQL_MODEL_RUNS}")).all()
    engine.dispose()
    return {r.run_id: r for r in rows}


def test_settings_are_built_from_the_sink_options() -> None:
    settings = PublishSettings.from_options(SinkOptions(
        runs_root="s3://b", dynamodb_table="t", dynamodb_region="eu-west-1", dynamodb_ttl_days=7,
        dynamodb_max_writes_per_s=50.0, aurora_secret_arn="arn:s", aurora_batch_size=100))
    assert settings.dynamo == dynamo.DynamoSettings("t", None, "eu-west-1", 7, 50.0)
    assert settings.aurora == aurora.AuroraSettings(None, "arn:s", "eu-west-1", 100)
    assert settings.enabled and not PublishSettings.from_options(SinkOptions(output="/tmp/x")).enabled


def test_preflight_checks_every_configured_sink(sinks: PublishSettings, mysql_url: str) -> None:
    preflight(sinks)
    assert sinks.dynamo and sinks.aurora
    with pytest.raises(PublishError, match="DynamoDB table 'missing' does not exist"):
        preflight(PublishSettings(dynamo=dynamo.DynamoSettings("missing", sinks.dynamo.endpoint_url)))
    with pytest.raises(PublishError, match="unreachable"):
        preflight(PublishSettings(aurora=aurora.AuroraSettings(url="mysql+pymysql://root@127.0.0.1:1/x")))


def test_a_run_is_published_to_every_sink(spark: Any, tmp_path: Path, sinks: PublishSettings) -> None:
    run = make_run(spark, tmp_path, RUN_A)
    assert publish_run(run, sinks) == {"dynamodb_items": USERS, "dynamodb_similar_items": 0,
                                       "aurora_rows": USERS * TOP_N, "aurora_similar_rows": 0}
    assert serving(sinks) == {"dynamodb": RUN_A, "aurora": RUN_A, "files": RUN_A}
    recorded = model_runs(sinks)[RUN_A]
    # The JSON paths QuickSight's SQL reads: today's keys, baselines flat.
    summary = json.loads(recorded.metrics)
    assert recorded.status == "published" and summary["rmse"] == 17.5 and summary["k"] == 10
    assert summary["baselines"]["popularity_ndcg_at_k"] == 0.06 and summary["baselines"]["bias_rmse"] == 20.1
    # Both numbers of every recommendation, in the DynamoDB items (written from Spark partitions)
    # and Aurora's table (loaded from them), as the run had them.
    assert sinks.dynamo and sinks.aurora
    ddb = sinks.dynamo.client()
    for user, run_id in ((4, RUN_A), (c.DDB_CONTROL_USER_ID, RUN_A)):
        item = ddb.get_item(TableName=sinks.dynamo.table, Key={"user_id": {"N": str(user)}, "run_id": {"S": run_id}})
        entries = c.plain_value(item["Item"][c.DDB_RECOMMENDATIONS])
        expected = ([(r, 95.5 - r, 80.0 + 4 % 7 + r) for r in range(1, TOP_N + 1)] if user else [(1, 9.0, 61.5)])
        assert [(e[c.RANK], e[c.SCORE], e[c.PREDICTED_RATING]) for e in entries] == expected
    engine = sinks.aurora.engine()
    with engine.connect() as conn:
        loaded = conn.execute(sa.text(f"SELECT {c.USER_ID}, {c.RANK}, {c.SCORE}, {c.PREDICTED_RATING} "
                                      f"FROM {c.SQL_RECOMMENDATIONS}")).all()
    engine.dispose()
    assert sorted(tuple(r) for r in loaded) == sorted((r[c.USER_ID], r[c.RANK], r[c.SCORE], r[c.PREDICTED_RATING])
                                                      for r in run.recommendations.collect())


def served_similar(settings: PublishSettings, artist_id: int) -> dict[str, Any]:
    """One artist's similar artists as each sink serves them: DynamoDB's item of the active run
    (None: no item), and Aurora's live table."""
    assert settings.dynamo and settings.aurora
    ddb = settings.dynamo.client()
    pointer = dynamo.read_pointer(ddb, settings.dynamo.table)
    assert pointer
    item = ddb.get_item(TableName=settings.dynamo.table, Key={
        c.DDB_PARTITION_KEY: {"N": str(c.ddb_artist_key(artist_id))}, c.DDB_SORT_KEY: {"S": pointer.run_id}})
    engine = settings.aurora.engine()
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT s.{c.RANK}, s.{c.SIMILAR_ARTIST_ID}, s.{c.SIMILARITY}, s.{c.SQL_RUN_ID} "
                                    f"FROM {c.SQL_SIMILAR_ARTISTS} s WHERE s.{c.ARTIST_ID} = :a "
                                    f"ORDER BY s.{c.RANK}"), {"a": artist_id}).all()
    engine.dispose()
    return {"dynamodb": c.plain_value(item["Item"][c.DDB_SIMILAR]) if "Item" in item else None,
            "name": item.get("Item", {}).get(c.ARTIST_NAME, {}).get("S"), "aurora": [tuple(r) for r in rows]}


def expected_similar(artist_base: int, artist: int, run_id: str) -> dict[str, Any]:
    mine = [r for r in similar_lists(artist_base) if r[c.ARTIST_ID] == artist_base + artist]
    return {"dynamodb": [{c.RANK: r[c.RANK], c.ARTIST_ID: r[c.SIMILAR_ARTIST_ID], c.SIMILARITY: r[c.SIMILARITY],
                          c.ARTIST_NAME: r[c.SIMILAR_ARTIST_NAME]} for r in mine],
            "name": f"A{artist}",
            "aurora": [(r[c.RANK], r[c.SIMILAR_ARTIST_ID], pytest.approx(r[c.SIMILARITY]), run_id) for r in mine]}


def test_similar_artists_are_published_taken_back_and_rolled_back_with_their_run(
        spark: Any, tmp_path: Path, sinks: PublishSettings, table: str, moto_endpoint: str, mysql_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Staged with the run's recommendations (one DynamoDB item per artist, the Aurora staging
    table), served from the same flip, taken back with it when a later flip fails, and rolled
    back with it: DynamoDB by the pointer, Aurora from the run's CSV. A run without similar
    artists serves none, never an older run's."""
    run_a = add_similar(spark, tmp_path, make_run(spark, tmp_path, RUN_A), 100)
    assert publish_run(run_a, sinks) == {"dynamodb_items": USERS, "dynamodb_similar_items": ARTISTS,
                                         "aurora_rows": USERS * TOP_N, "aurora_similar_rows": ARTISTS * 2}
    assert served_similar(sinks, 102) == expected_similar(100, 2, RUN_A)

    def denied(root: str, run_id: str) -> None:
        raise PermissionError("AccessDenied")

    with monkeypatch.context() as patched:
        patched.setattr(files, "point_latest", denied)
        with pytest.raises(PublishError, match=f"aurora rolled back to {RUN_A}; dynamodb rolled back to {RUN_A}"):
            publish_run(add_similar(spark, tmp_path, make_run(spark, tmp_path, RUN_B, 500), 500), sinks)
    assert served_similar(sinks, 102) == expected_similar(100, 2, RUN_A)

    publish_run(make_run(spark, tmp_path, RUN_C, 900), sinks)  # no similar artists
    assert serving(sinks) == {"dynamodb": RUN_C, "aurora": RUN_C, "files": RUN_C}
    assert served_similar(sinks, 102) == {"dynamodb": None, "name": None, "aurora": []}

    common = ["--runs-root", str(tmp_path), "--dynamodb-table", table, "--dynamodb-endpoint", moto_endpoint,
              "--aurora-url", mysql_url]
    with redirect_stdout(io.StringIO()):
        assert publish_cli.main(["rollback", "--to", RUN_A, *common]) == 0
    assert serving(sinks) == {"dynamodb": RUN_A, "aurora": RUN_A, "files": RUN_A}
    assert served_similar(sinks, 102) == expected_similar(100, 2, RUN_A)


def test_a_run_older_than_any_sinks_run_is_refused_before_anything_is_staged(
        spark: Any, tmp_path: Path, sinks: PublishSettings) -> None:
    assert sinks.aurora and sinks.dynamo
    publish_run(make_run(spark, tmp_path, RUN_A), sinks)
    engine = sinks.aurora.engine()  # only Aurora serves a newer run (C): that alone refuses B
    aurora.publish(engine, RUN_C, iter([{c.USER_ID: 1, c.RANK: 1, c.ARTIST_ID: 5, c.SCORE: 1.0}]), 1, metrics=None)
    engine.dispose()
    with pytest.raises(PublishError, match=f"run {RUN_B} is older than the published run {RUN_C}: not replacing it"):
        publish_run(make_run(spark, tmp_path, RUN_B), sinks)
    assert not dynamo.run_is_loaded(sinks.dynamo.client(), sinks.dynamo.table, RUN_B)  # nothing staged
    assert RUN_B not in model_runs(sinks)
    assert serving(sinks) == {"dynamodb": RUN_A, "aurora": RUN_C, "files": RUN_A}


def test_a_flip_refused_after_staging_leaves_aurora_and_latest_on_the_previous_run(
        spark: Any, tmp_path: Path, sinks: PublishSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A newer run (C) flips the pointer after B passed the older-run check and staged: DynamoDB
    refuses B's flip, and no sink is left serving B (before, Aurora had already swapped B in)."""
    assert sinks.dynamo
    publish_run(make_run(spark, tmp_path, RUN_A), sinks)
    stage_latest = files.FilesSink.stage

    def concurrent_publisher_gets_in(self: files.FilesSink, run: RunToPublish) -> dict[str, Any]:
        staged = stage_latest(self, run)
        dynamo.flip_pointer(sinks.dynamo.client(), sinks.dynamo.table, RUN_C, TOP_N)  # type: ignore[union-attr]
        return staged

    monkeypatch.setattr(files.FilesSink, "stage", concurrent_publisher_gets_in)
    with pytest.raises(PublishError, match=f"run {RUN_B} was not published: dynamodb did not activate it: "
                                           f"run {RUN_B} is older than the active run {RUN_C}") as err:
        publish_run(make_run(spark, tmp_path, RUN_B, artist_base=500), sinks)
    assert f"now serving: dynamodb {RUN_C}, aurora {RUN_A}, files {RUN_A}" in str(err.value)
    assert serving(sinks) == {"dynamodb": RUN_C, "aurora": RUN_A, "files": RUN_A}
    recorded = model_runs(sinks)
    assert recorded[RUN_A].status == "published" and recorded[RUN_B].status == "failed"
    assert "staged, not activated: dynamodb did not activate it" in recorded[RUN_B].error


def test_a_failed_last_flip_rolls_the_flipped_sinks_back(spark: Any, tmp_path: Path, sinks: PublishSettings,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    publish_run(make_run(spark, tmp_path, RUN_A), sinks)

    def denied(root: str, run_id: str) -> None:
        raise PermissionError(f"AccessDenied writing {root}/{c.LATEST_FILE}")

    monkeypatch.setattr(files, "point_latest", denied)
    with pytest.raises(PublishError, match="files did not activate it: AccessDenied") as err:
        publish_run(make_run(spark, tmp_path, RUN_B, artist_base=500), sinks)
    assert f"aurora rolled back to {RUN_A}; dynamodb rolled back to {RUN_A}" in str(err.value)
    assert serving(sinks) == {"dynamodb": RUN_A, "aurora": RUN_A, "files": RUN_A}
    assert model_runs(sinks)[RUN_A].status == "published"


def test_taking_the_pointer_back_restores_the_pointer_as_it_was(spark: Any, tmp_path: Path,
                                                                 sinks: PublishSettings,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The API checks k against the pointer's top_n: after C (top 7) is taken back, B serves
    with B's top_n and B's previous run again."""
    assert sinks.dynamo
    publish_run(make_run(spark, tmp_path, RUN_A), sinks)
    publish_run(make_run(spark, tmp_path, RUN_B, artist_base=500), sinks)

    def denied(root: str, run_id: str) -> None:
        raise PermissionError("AccessDenied")

    monkeypatch.setattr(files, "point_latest", denied)
    with pytest.raises(PublishError, match=f"dynamodb rolled back to {RUN_B}"):
        publish_run(dataclasses.replace(make_run(spark, tmp_path, RUN_C, artist_base=900), top_n=7), sinks)
    pointer = dynamo.read_pointer(sinks.dynamo.client(), sinks.dynamo.table)
    assert pointer and (pointer.run_id, pointer.top_n, pointer.previous_run_id) == (RUN_B, TOP_N, RUN_A)


def test_taking_a_flip_back_never_replaces_a_run_published_in_between(
        spark: Any, tmp_path: Path, sinks: PublishSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    """B's last flip fails after a newer run C took the DynamoDB pointer: the undo puts Aurora
    back on A, and leaves DynamoDB on C instead of forcing A over it."""
    assert sinks.dynamo
    publish_run(make_run(spark, tmp_path, RUN_A), sinks)

    def newer_run_then_denied(root: str, run_id: str) -> None:
        dynamo.flip_pointer(sinks.dynamo.client(), sinks.dynamo.table, RUN_C, TOP_N)  # type: ignore[union-attr]
        raise PermissionError("AccessDenied")

    monkeypatch.setattr(files, "point_latest", newer_run_then_denied)
    with pytest.raises(PublishError, match="files did not activate it") as err:
        publish_run(make_run(spark, tmp_path, RUN_B, artist_base=500), sinks)
    assert f"aurora rolled back to {RUN_A}; dynamodb already names another run, left alone" in str(err.value)
    assert serving(sinks) == {"dynamodb": RUN_C, "aurora": RUN_A, "files": RUN_A}


def test_a_failed_first_publish_leaves_no_sink_serving_it(spark: Any, tmp_path: Path, sinks: PublishSettings,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert sinks.dynamo and sinks.aurora and sinks.runs_root

    def denied(root: str, run_id: str) -> None:
        raise PermissionError("AccessDenied")

    monkeypatch.setattr(files, "point_latest", denied)
    with pytest.raises(PublishError, match="dynamodb pointer names no run again"):
        publish_run(make_run(spark, tmp_path, RUN_A), sinks)
    assert dynamo.read_pointer(sinks.dynamo.client(), sinks.dynamo.table) is None
    assert aurora.live_run_id(sinks.aurora.engine()) is None and files.read_latest(sinks.runs_root) is None
    assert model_runs(sinks)[RUN_A].status == "failed"


def test_latest_json_is_never_pointed_at_an_older_run(tmp_path: Path) -> None:
    """Files alone have no conditional write: activation re-reads latest.json and refuses."""
    for run_id in (RUN_A, RUN_B):
        (Path(c.run_path(str(tmp_path), run_id)) / c.SUCCESS_MARKER).parent.mkdir(parents=True)
        (Path(c.run_path(str(tmp_path), run_id)) / c.SUCCESS_MARKER).write_text(run_id)
    sink = files.FilesSink(str(tmp_path))
    sink.activate(RunToPublish(RUN_B, TOP_N, None, [], [], metrics(RUN_B, 0)))
    with pytest.raises(PublishError, match=f"run {RUN_A} is older than the run {RUN_B} latest.json names"):
        sink.activate(RunToPublish(RUN_A, TOP_N, None, [], [], metrics(RUN_A, 0)))
    assert sink.active_run() == RUN_B


def test_rollback_and_status_commands(spark: Any, tmp_path: Path, sinks: PublishSettings, table: str,
                                      moto_endpoint: str, mysql_url: str) -> None:
    publish_run(make_run(spark, tmp_path, RUN_A), sinks)
    publish_run(make_run(spark, tmp_path, RUN_B, artist_base=500), sinks)
    common = ["--runs-root", str(tmp_path), "--dynamodb-table", table, "--dynamodb-endpoint", moto_endpoint]
    (tmp_path / c.RUNS_PREFIX / "20261128T000000Z-dead").mkdir()
    assert publish_cli.main(["rollback", "--to", "20261128T000000Z-dead", *common, "--aurora-url", mysql_url]) == 2
    assert publish_cli.main(["rollback", "--to", "yesterday", *common]) == 2
    assert serving(sinks) == {"dynamodb": RUN_B, "aurora": RUN_B, "files": RUN_B}
    out = io.StringIO()
    with redirect_stdout(out):
        assert publish_cli.main(["rollback", "--to", RUN_A, *common, "--aurora-url", mysql_url]) == 0
    assert json.loads(out.getvalue()) == {"run_id": RUN_A, "dynamodb": "pointer flipped",
                                          "aurora_rows": USERS * TOP_N, "aurora_similar_rows": 0, "latest": RUN_A}
    assert serving(sinks) == {"dynamodb": RUN_A, "aurora": RUN_A, "files": RUN_A}
    out = io.StringIO()
    with redirect_stdout(out):
        assert publish_cli.main(["status", *common]) == 0
    status = json.loads(out.getvalue())
    assert status["latest"]["run_id"] == RUN_A and status["latest"]["previous_run_id"] == RUN_B
    assert status["dynamodb"][c.DDB_ACTIVE_RUN] == RUN_A and status["dynamodb"][c.DDB_PREVIOUS_RUN] == RUN_B


def test_aurora_refuses_similar_artists_that_do_not_match_the_jobs_count(
        spark: Any, tmp_path: Path, mysql_url: str) -> None:
    """The staging table is checked against the rows the job counted (metrics.json), not against
    what the loader says it wrote: a lost partition would otherwise swap in a partial table."""
    run = add_similar(spark, tmp_path, make_run(spark, tmp_path, RUN_A), 100)
    wrong = dataclasses.replace(run, metrics=run.metrics.with_(
        counts=dataclasses.replace(run.metrics.counts, similar_artists=run.metrics.counts.similar_artists + 1)))
    only_aurora = PublishSettings(aurora=aurora.AuroraSettings(mysql_url))
    with pytest.raises(PublishError, match=f"similar_artists_staging table holds {ARTISTS * 2} rows, "
                                           f"expected {ARTISTS * 2 + 1} of run {RUN_A}"):
        publish_run(wrong, only_aurora)
