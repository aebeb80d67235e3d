"""Test-wide fixtures: with `FLOWYARD_TEST_DB=postgresql`, each test's database is a fresh schema
of one PostgreSQL server (see `tests/postgres.py`); otherwise nothing here applies.

Tests marked `sqlite_only` check SQLite's own mechanics and are deselected on PostgreSQL; tests
marked `postgres_only` need several processes on one database and run only there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from app.persistence.db import DATABASE_URL_ENV
from tests.postgres import postgres_server, schema_url, testing_postgres


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    other = "sqlite_only" if testing_postgres() else "postgres_only"
    kept = [item for item in items if item.get_closest_marker(other) is None]
    deselected = [item for item in items if item.get_closest_marker(other) is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.fixture(scope="session")
def postgres_base_url() -> Iterator[str | None]:
    if not testing_postgres():
        yield None
        return
    with postgres_server() as url:
        yield url


@pytest.fixture(autouse=True)
def _test_database(
    postgres_base_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    if postgres_base_url is None:
        monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
        yield
        return
    with schema_url(postgres_base_url) as url:
        monkeypatch.setenv(DATABASE_URL_ENV, url)
        yield


@pytest.fixture
def another_database(postgres_base_url: str | None) -> Iterator[Callable[[], str | None]]:
    """Makes the URL of one more empty database (a new schema on PostgreSQL; on SQLite None:
    the data directory decides)."""
    with ExitStack() as stack:

        def make() -> str | None:
            if postgres_base_url is None:
                return None
            return stack.enter_context(schema_url(postgres_base_url))

        yield make
