"""What the test database holds, as bytes: for checks that a secret is never stored in clear.

On SQLite these are the database files themselves (free pages and the WAL included), so a value
that was written and deleted still shows. A PostgreSQL server's files are not ours to read (they
belong to the `postgres` user, or to a server elsewhere): there it is every value of every row
of every table in the test's schema, each in the form it is stored in (text as UTF-8, bytea as
its bytes, JSON as its text), so a secret in any column shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData

from app.persistence.db import DB_FILE_NAME

__all__ = ["stored_bytes"]


def stored_bytes(engine: Engine, data_dir: Path) -> bytes:
    """Every byte `engine`'s database stores (see the module docstring); on SQLite the engine is
    disposed first, which checkpoints the WAL into the file."""
    if engine.dialect.name == "sqlite":
        engine.dispose()
        return b"".join(p.read_bytes() for p in sorted(data_dir.glob(f"{DB_FILE_NAME}*")))
    tables = MetaData()
    chunks: list[bytes] = []
    with engine.connect() as conn:
        tables.reflect(conn)
        for table in tables.sorted_tables:
            for row in conn.execute(table.select()):
                chunks.extend(_as_bytes(value) for value in row)
    return b"\n".join(chunks)


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, ensure_ascii=False, default=str).encode()
