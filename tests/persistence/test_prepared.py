"""Prepared statements write exactly what `Connection.execute` writes, for the hot paths' shapes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError

from app.persistence.prepared import Prepared

_metadata = MetaData()
_items = Table(
    "items",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(20), nullable=False),
    Column("state", String(20), nullable=False, default="new"),
    Column("flag", Boolean, nullable=False, default=False),
    Column("data", JSON(none_as_null=True)),
    Column("tags", JSON, nullable=False),
    Column("stamp", String(40), default=lambda: str(time.time())),
)


@pytest.fixture
def db() -> Engine:
    engine = create_engine("sqlite://")
    _metadata.create_all(engine)
    return engine


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT id, name, state, flag, data, tags FROM items")))


def _written(engine: Engine, write: Any, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM items"))
        write(conn, rows)
    return _rows(engine)


ROWS = [
    {"id": 1, "name": "a", "data": {"x": [1, 2]}, "tags": ["t"], "stamp": "s"},
    {"id": 2, "name": "b", "data": None, "tags": [], "stamp": "s"},
    {"id": 3, "name": "ç", "data": "text", "tags": {"k": None}, "stamp": "s"},
]


def test_insert_writes_what_execute_writes_with_defaults_and_json(db: Engine) -> None:
    stmt = insert(_items)
    fast = _written(db, Prepared(stmt).executemany, ROWS)
    slow = _written(db, lambda conn, rows: conn.execute(stmt, rows), ROWS)
    assert fast == slow
    # the column defaults filled in, None in a none_as_null JSON column is SQL NULL
    assert fast[0] == (1, "a", "new", 0, '{"x": [1, 2]}', '["t"]')
    assert fast[1][4] is None


def test_upsert_and_literal_binds(db: Engine) -> None:
    base = sqlite.insert(_items)
    upsert = Prepared(base.on_conflict_do_update(index_elements=["id"], set_={"name": "x"}))
    with db.begin() as conn:
        Prepared(insert(_items)).executemany(conn, ROWS)
        upsert.executemany(conn, [{"id": 1, "name": "z", "tags": [], "stamp": "s"}])
        mark = Prepared(
            update(_items)
            .where(_items.c.id == bindparam("row"), _items.c.state == "new")
            .values(state=bindparam("to"), data=None)
        )
        mark.executemany(conn, [{"row": 2, "to": "done"}, {"row": 3, "to": "gone"}])
    assert [r[:3] for r in _rows(db)] == [(1, "x", "new"), (2, "b", "done"), (3, "ç", "gone")]
    assert _rows(db)[2][4] is None


def test_callable_default_is_refused_not_skipped(db: Engine) -> None:
    rows = [{"id": 9, "name": "n", "tags": []}]  # no stamp: its default is a callable
    with db.begin() as conn, pytest.raises(ValueError, match="'stamp' has a default"):
        Prepared(insert(_items)).executemany(conn, rows)
    assert _rows(db) == []


def test_missing_required_value_is_refused(db: Engine) -> None:
    stmt = update(_items).where(_items.c.id == bindparam("row")).values(name=bindparam("to"))
    with db.begin() as conn, pytest.raises(ValueError, match="no value for the statement's 'row'"):
        Prepared(stmt).executemany(conn, [{"to": "x"}])


def test_named_paramstyle_goes_through_execute() -> None:
    engine = create_engine("sqlite://", paramstyle="named")
    _metadata.create_all(engine)
    assert not engine.dialect.positional
    stmt = Prepared(insert(_items))
    with engine.begin() as conn:
        stmt.executemany(conn, ROWS)
    with engine.connect() as conn:
        assert conn.execute(select(_items.c.name)).scalars().all() == ["a", "b", "ç"]


def test_integrity_errors_are_sqlalchemys(db: Engine) -> None:
    with db.begin() as conn:
        Prepared(insert(_items)).executemany(conn, ROWS[:1])
    with db.begin() as conn, pytest.raises(IntegrityError):
        Prepared(insert(_items)).executemany(conn, ROWS[:1])
