"""Shared fixtures: one local Spark session for the whole run (JVM start-up is the slow part)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

# Fake credentials for moto, set before Spark starts so its Python workers inherit them.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # keep Spark's traffic on loopback


MYSQL_ADMIN_URL = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh database on the real MariaDB server for each test, dropped afterwards."""
    import secrets

    import sqlalchemy as sa

    admin = sa.create_engine(MYSQL_ADMIN_URL)
    name = f"recsys_test_{secrets.token_hex(4)}"
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"MariaDB is not answering at {MYSQL_ADMIN_URL}: {exc}")
    yield f"{MYSQL_ADMIN_URL.rstrip('/')}/{name}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)  # type: ignore[attr-defined]
    session = (SparkSession.builder.master("local[2]").appName("tests")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.default.parallelism", "2")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.memory", "2g")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    session.sparkContext.setCheckpointDir(tempfile.mkdtemp(prefix="test-ckpt-"))
    yield session
    session.stop()

# Powertools in tests: no X-Ray daemon here, and metrics need a namespace.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MusicRecommenderTests")
