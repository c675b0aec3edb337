"""Aurora sink against the real MariaDB server: migrations, atomic swap, failures mid-load."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from moto import mock_aws

from glue_jobs import contracts as c
from glue_jobs.recommender.publish import aurora
from glue_jobs.recommender.publish.aurora import AuroraSettings
from glue_jobs.recommender.publish.errors import PublishError
from tests.publish.schema_v2 import V2_RECOMMENDATION_COLUMNS, create_v2_database
from tests.publish.schema_v3 import create_v3_database

pytestmark = pytest.mark.mysql
RUN_A, RUN_B, RUN_C = "20261129T160000Z-aaaa", "20261130T160000Z-bbbb", "20261201T160000Z-cccc"
METRICS = {"rmse": 12.0, "best_params": {"rank": 10}, "counts": {"ratings": 100}, "timings_s": {"fit": 1.0}}


def rows(n_users: int, top_n: int = 5, artist_base: int = 100) -> list[dict[str, float | int]]:
    return [{c.USER_ID: u, c.RANK: r, c.ARTIST_ID: artist_base + r, c.SCORE: 95.0 - r, c.PREDICTED_RATING: 80.0 + r}
            for u in range(1, n_users + 1) for r in range(1, top_n + 1)]


def served(engine: sa.Engine) -> tuple[int, set[str]]:
    with engine.connect() as conn:
        n = conn.execute(sa.text(f"SELECT COUNT(*) FROM {c.SQL_RECOMMENDATIONS}")).scalar_one()
        runs = {r[0] for r in conn.execute(sa.text(f"SELECT DISTINCT run_id FROM {c.SQL_RECOMMENDATIONS}"))}
    return n, runs


def statuses(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(f"SELECT run_id, status FROM {c.SQL_MODEL_RUNS}")).all())


def test_migrations_are_versioned_and_idempotent(mysql_url: str) -> None:
    engine = sa.create_engine(mysql_url)
    assert aurora.migrate(engine) == [1, 2, 3, 4]
    assert aurora.migrate(engine) == []
    inspector = sa.inspect(engine)
    tables = set(inspector.get_table_names())
    assert {c.SQL_RECOMMENDATIONS, c.SQL_ARTISTS, c.SQL_MODEL_RUNS, c.SQL_MIGRATIONS} <= tables
    for table in (c.SQL_SIMILAR_ARTISTS, c.SQL_SIMILAR_ARTISTS_STAGING, c.SQL_SIMILAR_ARTISTS_PREVIOUS):
        assert [col["name"] for col in inspector.get_columns(table)] == [*c.SIMILAR_ARTIST_COLUMNS, c.SQL_RUN_ID]
        assert inspector.get_pk_constraint(table)["constrained_columns"] == [c.ARTIST_ID, c.RANK]
    assert "ix_model_runs_status_started" in {ix["name"] for ix in inspector.get_indexes(c.SQL_MODEL_RUNS)}
    assert [col["name"] for col in inspector.get_columns(c.SQL_RECOMMENDATIONS)] == [*c.RECOMMENDATION_COLUMNS,
                                                                                      c.SQL_RUN_ID]


def columns(engine: sa.Engine, table: str) -> list[str]:
    return [col["name"] for col in sa.inspect(engine).get_columns(table)]


def test_a_version_2_database_migrates_in_place_and_then_takes_predicted_ratings(mysql_url: str) -> None:
    """A database the previous version created and published to (a live and a previous table,
    no predicted_rating) gains the column on both, keeps its rows (null ratings), and the next
    publish writes predicted ratings; the table it replaced can still be swapped back."""
    engine = sa.create_engine(mysql_url)
    create_v2_database(engine, live=(RUN_B, 4), previous=(RUN_A, 3))
    assert columns(engine, c.SQL_RECOMMENDATIONS) == list(V2_RECOMMENDATION_COLUMNS)
    assert aurora.migrate(engine) == [3, 4]
    assert aurora.migrate(engine) == []
    for table in (c.SQL_RECOMMENDATIONS, c.SQL_RECOMMENDATIONS_PREVIOUS):
        assert columns(engine, table) == [*c.RECOMMENDATION_COLUMNS, c.SQL_RUN_ID]
    with engine.connect() as conn:
        kept = conn.execute(sa.text(f"SELECT COUNT(*), COUNT({c.PREDICTED_RATING}) FROM {c.SQL_RECOMMENDATIONS}")).one()
    assert tuple(kept) == (20, 0), "the served rows stay, with no predicted rating"

    assert aurora.publish(engine, RUN_C, iter(rows(6)), 30, metrics=METRICS) == 30
    assert served(engine) == (30, {RUN_C})
    with engine.connect() as conn:
        got = conn.execute(sa.text(f"SELECT {c.RANK}, {c.SCORE}, {c.PREDICTED_RATING} FROM {c.SQL_RECOMMENDATIONS} "
                                   f"WHERE {c.USER_ID} = 2 ORDER BY {c.RANK}")).all()
    assert [tuple(r) for r in got] == [(r, 95.0 - r, 80.0 + r) for r in range(1, 6)]
    aurora.swap_back(engine)  # the run it replaced (created by v2) serves again, column and all
    assert served(engine) == (20, {RUN_B})
    assert columns(engine, c.SQL_RECOMMENDATIONS) == [*c.RECOMMENDATION_COLUMNS, c.SQL_RUN_ID]


def test_migration_3_is_idempotent_when_a_table_already_has_the_column(mysql_url: str) -> None:
    """A migration interrupted after altering one table (MySQL commits each ALTER) runs again cleanly."""
    engine = sa.create_engine(mysql_url)
    create_v2_database(engine, live=(RUN_B, 2), previous=(RUN_A, 2))
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {c.SQL_RECOMMENDATIONS} ADD COLUMN {c.PREDICTED_RATING} FLOAT NULL"))
    assert aurora.migrate(engine) == [3, 4]
    assert c.PREDICTED_RATING in columns(engine, c.SQL_RECOMMENDATIONS_PREVIOUS)


def test_the_quicksight_query_reads_both_numbers_after_the_migration(mysql_url: str) -> None:
    """The latest-recommendations data set's SQL (stacks/quicksight.py) runs on a migrated
    version 2 database and returns the columns the data set declares."""
    from stacks import quicksight

    engine = sa.create_engine(mysql_url)
    create_v2_database(engine, live=(RUN_B, 2))
    aurora.migrate(engine)
    aurora.publish(engine, RUN_C, iter(rows(2)), 10, metrics=METRICS)
    with engine.connect() as conn:
        result = conn.execute(sa.text(quicksight.LATEST_SQL))
        names, first = list(result.keys()), result.mappings().first()
    assert c.SCORE in names and c.PREDICTED_RATING in names
    assert first is not None and first[c.PREDICTED_RATING] is not None


def similar(artists: range, per_artist: int = 3, base: int = 500) -> list[dict[str, Any]]:
    return [{c.ARTIST_ID: a, c.RANK: r, c.SIMILAR_ARTIST_ID: base + a * 10 + r, c.SIMILARITY: 0.9 - r / 10}
            for a in artists for r in range(1, per_artist + 1)]


def served_similar(engine: sa.Engine, table: str = c.SQL_SIMILAR_ARTISTS) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        got = conn.execute(sa.text(f"SELECT s.{c.ARTIST_ID}, s.{c.RANK}, s.{c.SIMILAR_ARTIST_ID}, s.{c.SIMILARITY}, "
                                   f"s.{c.SQL_RUN_ID} FROM {table} s ORDER BY s.{c.ARTIST_ID}, s.{c.RANK}")).all()
    return [tuple(r) for r in got]


def expected_similar(run_id: str, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(int(r[c.ARTIST_ID]), int(r[c.RANK]), int(r[c.SIMILAR_ARTIST_ID]), pytest.approx(r[c.SIMILARITY]),
             run_id) for r in rows]


def test_a_version_3_database_migrates_and_then_serves_similar_artists_with_its_run(mysql_url: str) -> None:
    """A database the previous version published to gains the similar-artists tables (empty) and
    keeps serving its recommendations; the next run swaps in both its tables together, and
    swap_back puts both of the older run's back (its similar artists: none)."""
    engine = sa.create_engine(mysql_url)
    create_v3_database(engine, live=(RUN_B, 4), previous=(RUN_A, 3))
    assert aurora.migrate(engine) == [4]
    assert aurora.migrate(engine) == []
    assert served(engine) == (20, {RUN_B}) and served_similar(engine) == []
    lists = similar(range(1, 5))
    assert aurora.publish(engine, RUN_C, iter(rows(6)), 30, metrics=METRICS, similar=lists) == 30
    assert served(engine) == (30, {RUN_C})
    assert served_similar(engine) == expected_similar(RUN_C, lists)
    aurora.swap_back(engine)
    assert served(engine) == (20, {RUN_B}) and served_similar(engine) == []
    assert served_similar(engine, c.SQL_SIMILAR_ARTISTS_STAGING) == expected_similar(RUN_C, lists)


def test_migration_4_resumes_after_creating_some_of_its_tables(mysql_url: str) -> None:
    """MySQL commits each CREATE: a migration stopped after the first table runs again cleanly."""
    engine = sa.create_engine(mysql_url)
    create_v3_database(engine, live=(RUN_B, 1))
    with engine.begin() as conn:
        aurora.similar_artists_table(c.SQL_SIMILAR_ARTISTS, sa.MetaData()).create(conn)
    assert aurora.migrate(engine) == [4]
    assert {c.SQL_SIMILAR_ARTISTS_STAGING, c.SQL_SIMILAR_ARTISTS_PREVIOUS} <= set(sa.inspect(engine).get_table_names())


def test_a_run_without_similar_artists_swaps_in_an_empty_table(mysql_url: str) -> None:
    """Never one run's recommendations beside an older run's similar artists: a run that has none
    (the bias-only model) empties the live table, and the one it replaced is kept as previous."""
    engine = sa.create_engine(mysql_url)
    lists = similar(range(1, 3))
    aurora.publish(engine, RUN_A, iter(rows(4)), 20, metrics=METRICS, similar=lists)
    assert served_similar(engine) == expected_similar(RUN_A, lists)
    aurora.publish(engine, RUN_B, iter(rows(4)), 20, metrics=METRICS)
    assert served(engine) == (20, {RUN_B}) and served_similar(engine) == []
    assert served_similar(engine, c.SQL_SIMILAR_ARTISTS_PREVIOUS) == expected_similar(RUN_A, lists)


def test_a_similar_staging_table_changed_after_staging_is_not_swapped_in(mysql_url: str) -> None:
    """The swap checks the similar-artists staging table again (a concurrent publisher may have
    reloaded it): short of what was staged, nothing is swapped and the run is recorded as failed."""
    engine = sa.create_engine(mysql_url)
    aurora.publish(engine, RUN_A, iter(rows(4)), 20, metrics=METRICS, similar=similar(range(1, 3)))
    staged = aurora.stage_run(engine, RUN_B, iter(rows(5)), 25, metrics=METRICS, similar=similar(range(1, 4)))
    assert (staged.rows, staged.similar_rows) == (25, 9)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {c.SQL_SIMILAR_ARTISTS_STAGING} WHERE {c.ARTIST_ID} = 3"))
    with pytest.raises(PublishError, match=f"similar_artists_staging table holds 6 rows, expected 9 of run {RUN_B}"):
        aurora.activate_run(engine, RUN_B, 25, similar_expected=staged.similar_rows)
    assert served(engine) == (20, {RUN_A}) and len(served_similar(engine)) == 6
    assert statuses(engine)[RUN_B] == "failed"


def test_rollback_reloads_the_runs_similar_artists_from_its_csv(mysql_url: str, tmp_path: Path) -> None:
    """The run's CSV files are the source of truth: rolling back serves its recommendations and
    its similar artists again (names in the CSV are left to the artists table); a run written
    before similar artists existed rolls back to an empty table."""
    lists = similar(range(1, 4))
    for run_id, with_similar in ((RUN_A, True), (RUN_B, False)):
        out = Path(c.run_path(str(tmp_path), run_id))
        write_csv(out / c.RECOMMENDATIONS_CSV_DIR / c.RECOMMENDATIONS_CSV_FILE, c.RECOMMENDATION_COLUMNS, rows(3))
        if with_similar:
            named = [{**r, c.ARTIST_NAME: "A", c.SIMILAR_ARTIST_NAME: "B"} for r in lists]
            write_csv(out / c.SIMILAR_ARTISTS_CSV_DIR / c.SIMILAR_ARTISTS_CSV_FILE,
                      (*c.SIMILAR_ARTIST_COLUMNS, c.ARTIST_NAME, c.SIMILAR_ARTIST_NAME), named)
    sink = aurora.AuroraSink(AuroraSettings(url=mysql_url), str(tmp_path))
    try:
        aurora.publish(sink.engine, RUN_C, iter(rows(2)), 10, metrics=METRICS, similar=similar(range(7, 9)))
        assert sink.rollback(RUN_A) == {"aurora_rows": 15, "aurora_similar_rows": 9}
        assert served(sink.engine) == (15, {RUN_A})
        assert served_similar(sink.engine) == expected_similar(RUN_A, lists)
        assert sink.rollback(RUN_B) == {"aurora_rows": 15, "aurora_similar_rows": 0}
        assert served(sink.engine) == (15, {RUN_B}) and served_similar(sink.engine) == []
    finally:
        sink.close()


def write_csv(path: Path, columns: tuple[str, ...], data: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(data)


def test_the_quicksight_similar_artists_query_names_both_artists(mysql_url: str) -> None:
    """The similar-artists data set's SQL (stacks/quicksight.py) runs on the published tables and
    returns the columns the data set declares, with both artists' names (null where unnamed)."""
    from stacks import quicksight

    engine = sa.create_engine(mysql_url)
    lists = [{c.ARTIST_ID: 1, c.RANK: 1, c.SIMILAR_ARTIST_ID: 2, c.SIMILARITY: 0.5},
             {c.ARTIST_ID: 1, c.RANK: 2, c.SIMILAR_ARTIST_ID: 3, c.SIMILARITY: 0.25}]
    aurora.publish(engine, RUN_A, iter(rows(1)), 5, metrics=METRICS, similar=lists,
                   artists=[{c.ARTIST_ID: 1, "name": "Björk"}, {c.ARTIST_ID: 2, "name": "Sigur Rós"}])
    with engine.connect() as conn:
        result = conn.execute(sa.text(quicksight.SIMILAR_SQL))
        names, got = list(result.keys()), [dict(r) for r in result.mappings()]
    assert names == [name for name, _ in quicksight.SIMILAR_COLUMNS]
    assert sorted((r[c.RANK], r[c.ARTIST_NAME], r[c.SIMILAR_ARTIST_NAME]) for r in got) == [
        (1, "Björk", "Sigur Rós"), (2, "Björk", None)]


def test_one_migration_per_schema_version() -> None:
    """The stack names c.SCHEMA_VERSION without importing the sink: the two must agree."""
    assert [version for version, _ in aurora.MIGRATIONS] == list(range(1, c.SCHEMA_VERSION + 1))


def test_publish_swaps_in_the_new_run_and_keeps_the_previous(mysql_url: str) -> None:
    engine = sa.create_engine(mysql_url)
    assert aurora.publish(engine, RUN_A, iter(rows(300)), 1500, metrics=METRICS, batch_size=400,
                          artists=[{c.ARTIST_ID: 101, "name": "Beyoncé"}]) == 1500
    assert served(engine) == (1500, {RUN_A})
    assert aurora.publish(engine, RUN_B, iter(rows(200)), 1000, metrics=METRICS, batch_size=400) == 1000
    assert served(engine) == (1000, {RUN_B})
    with engine.connect() as conn:
        previous = conn.execute(sa.text(f"SELECT COUNT(*) FROM {c.SQL_RECOMMENDATIONS_PREVIOUS}")).scalar_one()
        name = conn.execute(sa.text(f"SELECT name FROM {c.SQL_ARTISTS} WHERE artist_id = 101")).scalar_one()
        run = conn.execute(sa.text(f"SELECT metrics, rows_loaded FROM {c.SQL_MODEL_RUNS} WHERE run_id = :r"),
                           {"r": RUN_B}).one()
    assert previous == 1500 and name == "Beyoncé"
    assert json.loads(run.metrics)["rmse"] == 12.0 and run.rows_loaded == 1000
    assert statuses(engine) == {RUN_A: "superseded", RUN_B: "published"}


def test_a_load_interrupted_midway_leaves_the_previous_table_serving(mysql_url: str) -> None:
    engine = sa.create_engine(mysql_url)
    aurora.publish(engine, RUN_A, iter(rows(300)), 1500, metrics=METRICS, batch_size=400)

    def fail_after_two(batch_index: int) -> None:
        if batch_index == 1:
            raise ConnectionError("network dropped after 2 batches")

    with pytest.raises(PublishError, match="previous recommendations table is still serving"):
        aurora.publish(engine, RUN_B, iter(rows(300, artist_base=500)), 1500, metrics=METRICS, batch_size=400,
                       after_batch=fail_after_two)
    assert served(engine) == (1500, {RUN_A})
    assert statuses(engine)[RUN_B] == "failed"
    with engine.connect() as conn:
        error = conn.execute(sa.text(f"SELECT error FROM {c.SQL_MODEL_RUNS} WHERE run_id = :r"), {"r": RUN_B}).scalar()
    assert "network dropped" in error


def test_a_short_load_is_not_swapped_in(mysql_url: str) -> None:
    engine = sa.create_engine(mysql_url)
    aurora.publish(engine, RUN_A, iter(rows(10)), 50, metrics=METRICS)
    with pytest.raises(PublishError, match="staging table holds 40 rows, expected 50"):
        aurora.publish(engine, RUN_B, iter(rows(8)), 50, metrics=METRICS)
    assert served(engine) == (50, {RUN_A})


def test_publishing_the_same_run_twice_gives_the_same_table(mysql_url: str) -> None:
    engine = sa.create_engine(mysql_url)
    aurora.publish(engine, RUN_A, iter(rows(20)), 100, metrics=METRICS)
    aurora.publish(engine, RUN_A, iter(rows(20)), 100, metrics=METRICS)
    assert served(engine) == (100, {RUN_A})
    assert statuses(engine) == {RUN_A: "published"}


def test_a_rollback_reload_keeps_the_runs_recorded_figures(mysql_url: str) -> None:
    engine = sa.create_engine(mysql_url)
    aurora.publish(engine, RUN_A, iter(rows(10)), 50, metrics=METRICS)
    aurora.publish(engine, RUN_B, iter(rows(10)), 50, metrics=METRICS)
    aurora.publish(engine, RUN_A, iter(rows(10)), 50, metrics=None, rollback=True)  # what a rollback does
    assert served(engine) == (50, {RUN_A})
    assert statuses(engine) == {RUN_A: "published", RUN_B: "superseded"}
    with engine.connect() as conn:
        run = conn.execute(sa.text(f"SELECT params, metrics FROM {c.SQL_MODEL_RUNS} WHERE run_id = :r"),
                           {"r": RUN_A}).one()
    assert json.loads(run.params) == {"rank": 10} and json.loads(run.metrics)["rmse"] == 12.0
    with pytest.raises(PublishError, match=f"run {RUN_A} is older than the run {RUN_C} Aurora serves"):
        aurora.publish(engine, RUN_C, iter(rows(10)), 50, metrics=METRICS)  # newer, then A again unforced
        aurora.publish(engine, RUN_A, iter(rows(10)), 50, metrics=METRICS)
    assert served(engine) == (50, {RUN_C})


def test_unreachable_database_is_named_without_the_password() -> None:
    engine = AuroraSettings(url="mysql+pymysql://app:s3cret-pw@127.0.0.1:1/recs").engine()
    expected = r"database mysql\+pymysql://app:\*\*\*@127.0.0.1:1/recs is unreachable"
    with pytest.raises(PublishError, match=expected) as err:
        aurora.check_connection(engine)
    assert "s3cret-pw" not in str(err.value)


@mock_aws
def test_credentials_come_from_secrets_manager(mysql_url: str) -> None:
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    database = mysql_url.rsplit("/", 1)[1]
    arn = sm.create_secret(Name="aurora", SecretString=json.dumps(
        {"username": "root", "password": "", "host": "127.0.0.1", "port": 3306, "dbname": database}))["ARN"]
    engine = AuroraSettings(secret_arn=arn, region="us-east-1").engine()
    aurora.check_connection(engine)
    assert engine.url.database == database
    with pytest.raises(PublishError, match="Aurora secret 'arn:aws:secretsmanager:us-east-1:123456789012:secret:nope' "
                                           "cannot be read"):
        AuroraSettings(secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:nope",
                       region="us-east-1").engine()
    bad = sm.create_secret(Name="bad", SecretString=json.dumps({"username": "x"}))["ARN"]
    with pytest.raises(PublishError, match="lacks password, host"):
        AuroraSettings(secret_arn=bad, region="us-east-1").engine()
