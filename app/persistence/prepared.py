"""Hot-path statements compiled once and sent to the driver as plain rows.

`Connection.execute(statement, rows)` rebuilds every row's parameters through SQLAlchemy's
compiled-statement machinery (`construct_params`, bind processors, execution defaults): measured
here, that was ~13% of the server's CPU while it ingested and ran webhooks, more than SQLite itself.
`Prepared` compiles its statement once per (dialect, columns), remembers each parameter's position,
default and bind processor, and executes with `Connection.exec_driver_sql`, which keeps
SQLAlchemy's transaction, events and exception wrapping but skips the per-row work.

Positional drivers (SQLite's `qmark`) take this path. Others (PostgreSQL's named styles, where bind
names can be escaped) keep `Connection.execute`, so only the SQL both paths send is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.schema import ScalarElementColumnDefault

__all__ = ["Prepared", "upsert"]


_Slot = tuple[str | None, Any, Callable[[Any], Any] | None]
"""One positional parameter: the row key it reads (None: a constant, already processed), the
constant, and the bind processor of keyed values."""


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    slots: tuple[_Slot, ...]

    def params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            [
                constant if key is None else row[key] if process is None else process(row[key])
                for key, constant, process in self.slots
            ]
        )


class Prepared:
    """An INSERT or UPDATE executed for many rows of the same keys, without per-row compilation.

    Every row of one call must have the keys of the first. A parameter the rows do not give takes
    the statement's literal value or the column's scalar default, as `Connection.execute` would;
    a statement needing anything else (a callable or SQL default, a missing required value) is
    refused when first compiled, so the fast path never writes what `execute` would not. Values
    go through the same bind processors as with `execute` (JSON columns: `json_text`, including
    None, which becomes SQL NULL or JSON `null` as the column's type says, like with `execute`).
    """

    def __init__(self, statement: UpdateBase) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan | None] = {}

    def executemany(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Execute the statement once per row (one `executemany`) in `conn`'s transaction."""
        if not rows:
            return
        cache_key = (conn.dialect.name, tuple(rows[0]))
        try:
            plan = self._plans[cache_key]
        except KeyError:
            plan = self._plans[cache_key] = self._plan(conn.dialect, cache_key[1])
        if plan is None:
            conn.execute(self.statement, list(rows))
        else:
            conn.exec_driver_sql(plan.sql, [plan.params(row) for row in rows])

    def _plan(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
        compiled = self.statement.compile(dialect=dialect, column_keys=keys)
        if not dialect.positional or compiled.positiontup is None:
            return None
        defaults = _column_defaults(compiled)
        slots: list[_Slot] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if name in keys:
                slots.append((name, None, process))
                continue
            if name in defaults:
                constant = defaults[name]
            elif not bind.required:
                constant = bind.effective_value
            else:
                raise ValueError(f"The rows give no value for the statement's '{name}'.")
            slots.append((None, constant if process is None else process(constant), None))
        return _Plan(compiled.string, tuple(slots))


def _column_defaults(compiled: SQLCompiler) -> dict[str, Any]:
    """Scalar defaults (and on-update values) of the columns the statement fills in itself."""
    found: dict[str, Any] = {}
    prefetch = [(c, c.default) for c in compiled.insert_prefetch]
    prefetch += [(c, c.onupdate) for c in compiled.update_prefetch]
    for column, default in prefetch:
        if not isinstance(default, ScalarElementColumnDefault):
            raise ValueError(f"Column '{column.key}' has a default a prepared row cannot take.")
        found[column.key] = default.arg
    return found


_UPSERTS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Prepared] = {}
"""Upserts by (dialect, table, keys, updated columns): statement objects are costly to build
(column proxies), so each is built once; `Prepared` keeps a plan per set of columns."""


def upsert(
    conn: Connection,
    table: Table,
    values: dict[str, Any] | list[dict[str, Any]],
    keys: list[str],
    update: list[str],
) -> None:
    """INSERT, or UPDATE the `update` columns of the row with the same `keys` (portable upsert).

    A list of rows (all with the same columns) is written with one `executemany`.
    """
    rows = values if isinstance(values, list) else [values]
    if not rows:
        return
    dialect = conn.dialect.name
    cache_key = (dialect, table.name, tuple(keys), tuple(update))
    stmt = _UPSERTS.get(cache_key)
    if stmt is None:
        base = (postgresql if dialect == "postgresql" else sqlite).insert(table)
        stmt = _UPSERTS[cache_key] = Prepared(
            base.on_conflict_do_update(
                index_elements=keys, set_={name: base.excluded[name] for name in update}
            )
        )
    stmt.executemany(conn, rows)
