"""Shared fixtures: environment isolation, PostgreSQL schemas, warehouses, Prefect harness."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The project's logging configuration (masking on every handler), as the CLI and prefect.yaml
# use it; set before anything imports Prefect.
os.environ.setdefault(
    "PREFECT_LOGGING_SETTINGS_PATH", str(Path(__file__).resolve().parents[1] / "flows/logging.yml")
)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the caller's REMINDERS_* settings and any reminders.toml out of every test."""
    for name in list(os.environ):
        if name.startswith("REMINDERS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REMINDERS_CONFIG", str(tmp_path / "absent.toml"))


def _pg_reachable() -> bool:
    url = sa.engine.make_url(PG_URL)
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_url() -> str:
    if not _pg_reachable():
        pytest.fail(
            f"PostgreSQL is not reachable at {sa.engine.make_url(PG_URL).render_as_string()}; "
            "start it (see README, 'Tests') or set TEST_PG_URL"
        )
    return PG_URL


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL schema, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"create schema {schema}")
    yield schema
    with engine.begin() as conn:
        conn.exec_driver_sql(f"drop schema if exists {schema} cascade")
    engine.dispose()


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict:
    """Warehouse overrides for a DuckDB file in tmp_path or a unique PostgreSQL schema."""
    if request.param == "duckdb":
        return {"url": f"duckdb:///{tmp_path / 'warehouse.duckdb'}"}
    return {
        "url": request.getfixturevalue("pg_url"),
        "db_schema": request.getfixturevalue("pg_schema"),
    }


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for the whole session (it takes seconds to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
