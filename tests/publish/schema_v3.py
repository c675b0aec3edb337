"""A database as schema version 3 left it (no similar_artists tables): version 2's, upgraded by the
real migration 3, as a deployed database was."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from glue_jobs.recommender.publish import aurora
from tests.publish.schema_v2 import create_v2_database


def create_v3_database(engine: sa.Engine, live: tuple[str, int], previous: tuple[str, int] | None = None) -> None:
    """Version 2's database (see create_v2_database), then migration 3 applied and recorded."""
    create_v2_database(engine, live, previous)
    with engine.begin() as conn:
        aurora._v3(conn)
        conn.execute(sa.insert(aurora.MIGRATIONS_TABLE).values(version=3, applied_at=datetime(2026, 11, 15)))
