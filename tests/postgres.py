"""A real PostgreSQL server for the tests, started in a temporary directory and stopped at the end.

`FLOWYARD_TEST_DB=postgresql pytest ...` runs the database-backed suites on PostgreSQL: every test
gets a schema of its own in one server (`FLOWYARD_DATABASE_URL` points at it, so servers started as
subprocesses use it too). The server and the schemas come from `bench/postgres.py` (the scaling
benchmark starts the same kind of server); `FLOWYARD_TEST_PG_URL` uses a server that is already
running instead.
"""

from __future__ import annotations

import os

from bench.postgres import PG_URL_ENV, pg_binary, postgres_server, run_as_postgres, schema_url

__all__ = [
    "PG_URL_ENV",
    "TEST_DB_ENV",
    "pg_binary",
    "postgres_server",
    "run_as_postgres",
    "schema_url",
    "testing_postgres",
]

TEST_DB_ENV = "FLOWYARD_TEST_DB"


def testing_postgres() -> bool:
    return os.environ.get(TEST_DB_ENV, "").lower() in ("postgres", "postgresql")
