"""The job publishing to all three sinks (files, DynamoDB on moto's server, real MariaDB),
then a second run, a refused older run, idempotent re-publishing, throttling and rollback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa

from glue_jobs import contracts as c
from glue_jobs import datagen
from glue_jobs.recommender.config import JobConfig
from glue_jobs.recommender.job import JobFailed
from glue_jobs.recommender.main import execute
from glue_jobs.recommender.publish import PublishError, PublishSettings, RunToPublish, dynamo, publish_run
from glue_jobs.recommender.publish import __main__ as publish_cli
from glue_jobs.recommender.publish.dynamo import DynamoSettings

pytestmark = [pytest.mark.spark, pytest.mark.mysql, pytest.mark.e2e]


@pytest.fixture(scope="module")
def ratings_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pub")
    data = datagen.generate(8_000, seed=3)
    datagen.write_r1(root / "ratings.tsv", datagen.r1_lines(data, 3))
    datagen.write_artist_names(root / "artists.txt", datagen.artist_names(data.artists, 3))
    return root


def config(ratings_file: Path, runs_root: Path, table: str, endpoint: str, mysql_url: str, **kw: Any) -> JobConfig:
    base: dict[str, Any] = dict(
        inputs=(str(ratings_file / "ratings.tsv"),), artists=str(ratings_file / "artists.txt"),
        runs_root=str(runs_root), ranks=(4,), reg_params=(0.1,), max_iter=4, popularity_weights=(0.1,),
        shuffle_partitions=2, dynamodb_table=table, dynamodb_endpoint=endpoint, aurora_url=mysql_url,
        min_rmse_gain=-1.0)  # 8k ratings are too few for ALS to beat the biases; the gate is tested elsewhere
    base.update(kw)
    return JobConfig.from_fields(**base)


def rated_rows(mysql_url: str) -> int:
    engine = sa.create_engine(mysql_url)
    with engine.connect() as conn:
        n = conn.execute(sa.text(f"SELECT COUNT({c.PREDICTED_RATING}) FROM {c.SQL_RECOMMENDATIONS}")).scalar_one()
    engine.dispose()
    return int(n)


def pointer(endpoint: str, table: str) -> str | None:
    active = dynamo.read_pointer(boto3.client("dynamodb", endpoint_url=endpoint), table)
    return active.run_id if active else None


def aurora_runs(mysql_url: str) -> set[str]:
    engine = sa.create_engine(mysql_url)
    with engine.connect() as conn:
        runs = {r[0] for r in conn.execute(sa.text(f"SELECT DISTINCT run_id FROM {c.SQL_RECOMMENDATIONS}"))}
    engine.dispose()
    return runs


def test_publish_rerun_refusal_and_rollback(spark, ratings_file: Path, tmp_path: Path, table: str,  # type: ignore[no-untyped-def]
                                            moto_endpoint: str, mysql_url: str) -> None:
    root = tmp_path / "curated"
    first = execute(spark, config(ratings_file, root, table, moto_endpoint, mysql_url))
    run_a = first.run_id
    users = first.metrics.counts.users

    # files: the run's folder, latest.json and the QuickSight manifest
    assert Path(first.output) == root / c.RUNS_PREFIX / run_a
    assert (Path(first.output) / c.SUCCESS_MARKER).read_text() == run_a
    assert json.loads((root / c.LATEST_FILE).read_text())["run_id"] == run_a
    manifest = json.loads((root / c.QUICKSIGHT_MANIFEST_FILE).read_text())
    prefix = manifest["fileLocations"][0]["URIPrefixes"][0]
    assert prefix.endswith(f"{run_a}/{c.RECOMMENDATIONS_CSV_DIR}/")
    visible = [p.suffix for p in Path(prefix).iterdir() if not p.name.startswith(".")]  # .crc: local FS only
    assert visible == [".csv"], "only CSV under the manifest's prefix (no Hadoop _SUCCESS)"

    # DynamoDB: one item per user, the fallback list, the pointer
    ddb = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    scan = ddb.scan(TableName=table, Select="COUNT")["Count"]
    assert scan == users + 2  # users + fallback item + pointer
    assert pointer(moto_endpoint, table) == run_a
    fallback = ddb.get_item(TableName=table, Key={"user_id": {"N": "0"}, "run_id": {"S": run_a}})["Item"]
    assert fallback[c.DDB_FALLBACK] == {"BOOL": True} and len(fallback[c.DDB_RECOMMENDATIONS]["L"]) == 100
    assert all(c.PREDICTED_RATING in e for e in c.plain_value(fallback[c.DDB_RECOMMENDATIONS]))
    # Each user's item carries both numbers of the run's parquet, in rank order.
    parquet = spark.read.parquet(str(Path(first.output) / c.RECOMMENDATIONS_DIR))
    some_user = parquet.first()[c.USER_ID]
    item = ddb.get_item(TableName=table, Key={"user_id": {"N": str(some_user)}, "run_id": {"S": run_a}})["Item"]
    fields = (c.RANK, c.ARTIST_ID, c.SCORE, c.PREDICTED_RATING)
    entries = [e[f] for e in c.plain_value(item[c.DDB_RECOMMENDATIONS]) for f in fields]
    assert entries == pytest.approx([r[f] for r in parquet.filter(f"{c.USER_ID} = {some_user}").orderBy(c.RANK)
                                     .collect() for f in fields])

    # Aurora: the table holds this run
    engine = sa.create_engine(mysql_url)
    with engine.connect() as conn:
        n = conn.execute(sa.text(f"SELECT COUNT(*) FROM {c.SQL_RECOMMENDATIONS}")).scalar_one()
        status = conn.execute(sa.text(f"SELECT status FROM {c.SQL_MODEL_RUNS} WHERE run_id = :r"),
                              {"r": run_a}).scalar()
    assert n == first.metrics.counts.recommendations and status == "published"
    assert rated_rows(mysql_url) == n, "every row carries its predicted rating"

    # a second run becomes active everywhere
    second = execute(spark, config(ratings_file, root, table, moto_endpoint, mysql_url, seed=7))
    run_b = second.run_id
    assert run_b > run_a
    assert pointer(moto_endpoint, table) == run_b and aurora_runs(mysql_url) == {run_b}
    assert json.loads((root / c.LATEST_FILE).read_text())["run_id"] == run_b

    # re-publishing the active run changes nothing; an older run is refused before any write
    recs = spark.read.parquet(str(Path(second.output) / c.RECOMMENDATIONS_DIR))
    settings = PublishSettings(runs_root=str(root), dynamo=DynamoSettings(table, moto_endpoint))
    publish_run(RunToPublish(run_b, 5, recs, [], [], second.metrics), settings)
    assert pointer(moto_endpoint, table) == run_b
    assert ddb.scan(TableName=table, Select="COUNT")["Count"] == 2 * users + 3
    with pytest.raises(PublishError, match=f"run {run_a} is older than the published run {run_b}"):
        publish_run(RunToPublish(run_a, 5, recs, [], [], first.metrics), settings)
    assert pointer(moto_endpoint, table) == run_b

    # rollback: refused for an incomplete run, then back to run A in all three places
    (root / c.RUNS_PREFIX / "20261129T000000Z-dead").mkdir(parents=True)
    common = ["--runs-root", str(root), "--dynamodb-table", table, "--dynamodb-endpoint", moto_endpoint,
              "--aurora-url", mysql_url]
    assert publish_cli.main(["rollback", "--to", "20261129T000000Z-dead", *common]) == 2
    assert pointer(moto_endpoint, table) == run_b
    assert publish_cli.main(["rollback", "--to", run_a, *common]) == 0
    assert pointer(moto_endpoint, table) == run_a
    assert json.loads((root / c.LATEST_FILE).read_text())["run_id"] == run_a
    assert aurora_runs(mysql_url) == {run_a}
    assert rated_rows(mysql_url) == n, "reloaded from the run's CSV with its predicted ratings"
    engine.dispose()


def test_throttled_writes_are_retried_and_permanent_throttling_keeps_the_old_run(  # type: ignore[no-untyped-def]
        spark, ratings_file: Path, tmp_path: Path, table: str, moto_endpoint: str, mysql_url: str,
        throttling_proxy) -> None:
    root = tmp_path / "curated"
    flaky = throttling_proxy(throttled_calls=6)  # the first six batch writes come back unprocessed
    first = execute(spark, config(ratings_file, root, table, flaky.endpoint, mysql_url))
    assert pointer(moto_endpoint, table) == first.run_id
    assert flaky.batch_calls > 6

    blocked = throttling_proxy(throttled_calls=None)
    with pytest.raises(JobFailed, match="DynamoDB publish of run .* failed: .*still unprocessed") as err:
        execute(spark, config(ratings_file, root, table, blocked.endpoint, mysql_url, seed=9))
    assert "files are complete under" in str(err.value) and "it was not published" in str(err.value)
    assert pointer(moto_endpoint, table) == first.run_id
    assert json.loads((root / c.LATEST_FILE).read_text())["run_id"] == first.run_id
    assert aurora_runs(mysql_url) == {first.run_id}


def test_a_wrong_table_fails_before_training(spark, ratings_file: Path, tmp_path: Path,  # type: ignore[no-untyped-def]
                                             moto_endpoint: str, mysql_url: str) -> None:
    with pytest.raises(JobFailed, match="DynamoDB table 'missing' does not exist.*Nothing was trained"):
        execute(spark, config(ratings_file, tmp_path / "r", "missing", moto_endpoint, mysql_url))
    with pytest.raises(JobFailed, match="unreachable"):
        execute(spark, config(ratings_file, tmp_path / "r", "missing", moto_endpoint,
                              "mysql+pymysql://root@127.0.0.1:1/x", dynamodb_table=None))
    assert not (tmp_path / "r").exists()
