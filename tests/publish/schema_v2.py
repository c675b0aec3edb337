"""A database as schema version 2 left it (before predicted_rating), written out here on purpose:
the sink's own definitions have moved on, and a migration must upgrade what was really deployed."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from glue_jobs import contracts as c
from glue_jobs.recommender.publish import aurora

V2_RECOMMENDATION_COLUMNS = (c.USER_ID, c.RANK, c.ARTIST_ID, c.SCORE, c.SQL_RUN_ID)


def v2_recommendations_table(name: str, md: sa.MetaData) -> sa.Table:
    return sa.Table(
        name, md,
        sa.Column(c.USER_ID, sa.Integer, primary_key=True, autoincrement=False),
        sa.Column(c.RANK, sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column(c.ARTIST_ID, sa.Integer, nullable=False),
        sa.Column(c.SCORE, sa.Float, nullable=False),
        sa.Column(c.SQL_RUN_ID, sa.String(32), nullable=False),
    )


def create_v2_database(engine: sa.Engine, live: tuple[str, int], previous: tuple[str, int] | None = None) -> None:
    """Tables, index and migration records of version 2, with `live` = (run_id, users) serving
    and, when given, `previous` in recommendations_previous (each user 5 rows, score 90 - rank)."""
    md = sa.MetaData()
    tables = [(c.SQL_RECOMMENDATIONS, live)] + ([(c.SQL_RECOMMENDATIONS_PREVIOUS, previous)] if previous else [])
    with engine.begin() as conn:
        for table in (aurora.ARTISTS, aurora.MODEL_RUNS, aurora.MIGRATIONS_TABLE):
            table.create(conn)
        aurora._v2(conn)
        for name, (run_id, users) in tables:
            table = v2_recommendations_table(name, md)
            table.create(conn)
            conn.execute(sa.insert(table), [{c.USER_ID: u, c.RANK: r, c.ARTIST_ID: 100 + r, c.SCORE: 90.0 - r,
                                             c.SQL_RUN_ID: run_id} for u in range(1, users + 1) for r in range(1, 6)])
        conn.execute(sa.insert(aurora.MIGRATIONS_TABLE),
                     [{"version": v, "applied_at": datetime(2026, 11, 1)} for v in (1, 2)])
