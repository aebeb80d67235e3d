"""Engine and sessions: SQLite in a data directory by default, any SQLAlchemy URL when configured.

`create_db_engine` picks the URL: `FLOWYARD_DATABASE_URL` when set, else
`sqlite:///<data dir>/flowyard.db` (data dir `./.flowyard` unless given). Every SQLite connection
gets incremental auto-vacuum (new databases), WAL journaling, a busy timeout, `synchronous=NORMAL`
and foreign keys on. SQLite transactions are begun explicitly (`BEGIN`) so that DDL is
transactional too: a migration either applies fully or not at all. `open_database` is what a
host calls at start-up: engine plus migrations.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_json
from sqlalchemy import Connection, Engine, event, make_url, text
from sqlmodel import Session, create_engine

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DATABASE_URL_ENV",
    "DB_FILE_NAME",
    "DEFAULT_DATA_DIR",
    "WRITE_OPTION",
    "DatabaseError",
    "advisory_lock",
    "create_db_engine",
    "database_url",
    "dispose_when_idle",
    "json_text",
    "open_database",
    "open_database_checked",
    "session_scope",
    "shared",
    "unavailable",
    "utf8_safe",
]

DEFAULT_DATA_DIR = Path(".flowyard")
DB_FILE_NAME = "flowyard.db"
DATABASE_URL_ENV = "FLOWYARD_DATABASE_URL"
WRITE_OPTION = "flowyard_write"
"""Execution option: begin SQLite transactions with `BEGIN IMMEDIATE` (see `session_scope`)."""
BUSY_TIMEOUT_MS = 5000
"""How long a connection waits for another writer's lock before `database is locked`."""


def database_url(data_dir: Path | None = None) -> str:
    """`FLOWYARD_DATABASE_URL` if set, else the SQLite file in the data directory."""
    configured = os.environ.get(DATABASE_URL_ENV, "").strip()
    if configured:
        return configured
    directory = data_dir if data_dir is not None else DEFAULT_DATA_DIR
    return f"sqlite:///{(directory / DB_FILE_NAME).resolve()}"


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook issue BEGIN itself: pysqlite would otherwise start transactions
    # only before DML, leaving DDL (migrations) in autocommit.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # auto_vacuum can only be chosen before the first table exists (an empty file), and must
        # come before WAL; then `PRAGMA incremental_vacuum` (`app.services.retention`) can give
        # freed pages back to the file system. Not set otherwise: it would take a write lock.
        cursor.execute("PRAGMA page_count")
        if cursor.fetchone()[0] == 0:
            cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable in WAL mode across process crashes
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


class _WritePath:
    """One writer path per process: write transactions queue on a lock before `BEGIN IMMEDIATE`.

    IMMEDIATE takes SQLite's write lock up front (a deferred transaction that reads and then
    writes fails at once with "database is locked" when another writer committed in between).
    Without this lock, writers of one process (the ingest writer, the recorder, claims) contend
    inside SQLite, whose busy handler sleeps 1, 2, 5, 10... ms between tries: measured here, a
    convoy of ~8 ms per transaction. A lock hands over in microseconds; other processes still meet
    the busy timeout. Released once the DBAPI commit or rollback has finished.
    """

    def __init__(self, engine: Engine) -> None:
        self._lock = threading.RLock()
        self._holders: set[int] = set()
        dialect = engine.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback

        def do_commit(dbapi_connection: Any) -> None:
            try:
                commit(dbapi_connection)
            finally:
                self._release(dbapi_connection)

        def do_rollback(dbapi_connection: Any) -> None:
            try:
                rollback(dbapi_connection)
            finally:
                self._release(dbapi_connection)

        dialect.do_commit = do_commit  # type: ignore[method-assign]
        dialect.do_rollback = do_rollback  # type: ignore[method-assign]

    def _release(self, dbapi_connection: Any) -> None:
        # SQLAlchemy passes the pool's proxy here and there: key by the raw DBAPI connection.
        key = id(getattr(dbapi_connection, "dbapi_connection", dbapi_connection))
        if key in self._holders:
            self._holders.discard(key)
            self._lock.release()

    def on_begin(self, connection: Any) -> None:
        if not connection.get_execution_options().get(WRITE_OPTION, False):
            connection.exec_driver_sql("BEGIN")
            return
        if not self._lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
            # What SQLite itself answers after its busy timeout, so callers handle one error.
            raise sqlite3.OperationalError("database is locked")
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        self._holders.add(id(connection.connection.dbapi_connection))


def json_text(value: Any) -> str:
    """How JSON columns are written: any value (pydantic models and dataclasses as objects),
    anything else JSON cannot hold as its string form, never an error. pydantic-core's encoder
    (see docs/performance.md). Strict JSON that every database accepts: NaN and infinities become
    null (as JSON.stringify does), and text UTF-8 cannot hold (a lone UTF-16 surrogate, which an
    expression or a component can produce) is stored with U+FFFD in its place."""
    try:
        return to_json(value, fallback=str, inf_nan_mode="null").decode()
    except PydanticSerializationError:  # rare: take the slow road through plain values
        plain = json.loads(json.dumps(value, default=_plain))
        return to_json(utf8_safe(plain), fallback=str, inf_nan_mode="null").decode()


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def utf8_safe(value: Any) -> Any:
    """`value` (a JSON value) with every lone surrogate in its strings and keys made U+FFFD;
    a surrogate pair becomes the character it encodes."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {utf8_safe(k): utf8_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [utf8_safe(v) for v in value]
    return value


def create_db_engine(data_dir: Path | None = None, *, url: str | None = None) -> Engine:
    """An engine for `url` (default: `database_url(data_dir)`); creates the data directory."""
    url = url or database_url(data_dir)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, json_serializer=json_text
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _WritePath(engine).on_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=json_text)


def open_database(data_dir: Path | None = None, *, url: str | None = None) -> Engine:
    """The engine, with the schema created or migrated to the current version."""
    from app.persistence.migrations import migrate

    engine = create_db_engine(data_dir, url=url)
    migrate(engine)
    return engine


class DatabaseError(RuntimeError):
    """The configured database cannot be used; the message names the problem in one line."""


def open_database_checked(data_dir: Path | None = None) -> Engine:
    """`open_database`, with every way it can fail at start-up said in one line
    (`DatabaseError`): a malformed URL, an unknown driver, a server that cannot be reached, a
    schema newer than this code."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    from sqlalchemy.exc import OperationalError as SqlOperationalError

    from app.persistence.migrations import MigrationError

    url = database_url(data_dir)
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise DatabaseError(
            f"{DATABASE_URL_ENV} is not a database URL: expected e.g. "
            "postgresql+psycopg://user:password@host:5432/flowyard"
        ) from None
    try:
        return open_database(data_dir)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise DatabaseError(f"cannot use the database URL {shown}: {exc}") from None
    except SqlOperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[-1] if exc.orig else str(exc)
        raise DatabaseError(f"cannot reach the database at {shown}: {reason}") from None
    except MigrationError as exc:
        raise DatabaseError(f"cannot use the database at {shown}: {exc}") from None


def dispose_when_idle(engine: Engine, timeout: float = 10.0) -> int:
    """`engine.dispose()` once every connection in use is back in the pool, or after `timeout`
    seconds; returns how many were still in use then.

    A task cancelled while it awaits `asyncio.to_thread` leaves its thread finishing the
    transaction. A connection it gives back after `dispose()` goes into the discarded pool,
    which nothing closes (on PostgreSQL the driver then warns that an open connection was
    garbage-collected; the server may log the backend's end). Call this at shutdown instead.
    """
    pool: Any = engine.pool
    deadline = time.monotonic() + timeout
    in_use: int = pool.checkedout() if hasattr(pool, "checkedout") else 0
    while in_use and time.monotonic() < deadline:
        time.sleep(0.005)
        in_use = pool.checkedout()
    engine.dispose()
    return in_use


@contextmanager
def session_scope(engine: Engine, *, write: bool = True) -> Iterator[Session]:
    """A session in one transaction: committed when the block ends, rolled back if it raises.

    `write=True` (the default) takes SQLite's write lock when the transaction begins, so a
    transaction that reads and then writes waits for other writers instead of failing; pass
    `write=False` for read-only work, which then never waits for writers (WAL).
    """
    bind = engine.execution_options(**{WRITE_OPTION: True}) if write else engine
    with Session(bind, expire_on_commit=False) as session, session.begin():
        yield session


def shared(engine: Engine) -> bool:
    """Whether several Flowyard processes may work on this database at once: PostgreSQL, yes;
    a SQLite file belongs to one server (`app.persistence.lock`)."""
    return engine.dialect.name != "sqlite"


ADVISORY_KEYS = {"migrate": 0x466C_0001, "claim": 0x466C_0002}
"""PostgreSQL advisory lock keys (one namespace per cluster; "Fl" in the high bytes)."""


def advisory_lock(conn: Connection, name: str) -> None:
    """On PostgreSQL, hold the named advisory lock until `conn`'s transaction ends, so processes
    on any host take turns at it; SQLite's write lock already serialises writers."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_KEYS[name]})


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be used (locked, unreachable, restarting, out
    of resources) rather than refusing the data: the same work may succeed when tried again."""
    from sqlalchemy.exc import DBAPIError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | PoolTimeout | sqlite3.OperationalError | OSError)
