"""A demo app's SQLite file: records, webhook subscriptions and the delivery queue.

One connection in autocommit mode, used from the app's event loop only. The queries are tiny
(a demo app holds tens of rows), so they run inline rather than in a thread.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Attempt", "Delivery", "Store", "Subscription", "open_sqlite"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    external_id TEXT,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (kind, external_id)
);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    next_attempt_at REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    delivery_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    at REAL NOT NULL,
    status_code INTEGER,
    error TEXT NOT NULL,
    retry_in REAL,
    PRIMARY KEY (delivery_id, number)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
"""


def open_sqlite(path: Path, schema: str) -> sqlite3.Connection:
    """A demo app's SQLite file in autocommit and WAL mode, with its tables created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(schema)
    return db


def new_id(prefix: str) -> str:
    """A random id with the app's prefix for its kind, e.g. `006` + 12 hex digits."""
    return prefix + secrets.token_hex(6)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A registered webhook: events of `topic` are POSTed to `url`, signed with `secret`."""

    id: str
    topic: str
    url: str
    secret: str
    description: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at sending a delivery."""

    number: int
    at: float
    status_code: int | None
    error: str
    retry_in: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "at": self.at,
            "status_code": self.status_code,
            "error": self.error,
            "retry_in": self.retry_in,
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one subscription: `pending`, `delivered` or `failed`."""

    id: str
    subscription_id: str
    event: str
    body: str
    status: str
    next_attempt_at: float
    created_at: float


class Store:
    """The SQLite file of one demo app."""

    def __init__(self, path: Path) -> None:
        self._db = open_sqlite(path, _SCHEMA)

    def close(self) -> None:
        self._db.close()

    # --- records --------------------------------------------------------------------------

    @staticmethod
    def _record(row: tuple[Any, ...]) -> dict[str, Any]:
        record_id, data, created_at, updated_at = row
        return {
            "id": record_id,
            **json.loads(data),
            "created_at": created_at,
            "updated_at": updated_at,
        }

    def records(self, kind: str, external_id: str | None = None) -> list[dict[str, Any]]:
        """Records of one kind, oldest first; only the one linked to `external_id` if given."""
        query = "SELECT id, data, created_at, updated_at FROM records WHERE kind = ?"
        args: list[Any] = [kind]
        if external_id is not None:
            query += " AND external_id = ?"
            args.append(external_id)
        rows = self._db.execute(query + " ORDER BY created_at, id", args).fetchall()
        return [self._record(row) for row in rows]

    def record(self, kind: str, record_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT id, data, created_at, updated_at FROM records WHERE kind = ? AND id = ?",
            (kind, record_id),
        ).fetchone()
        return None if row is None else self._record(row)

    def external_id_taken(self, kind: str, external_id: str, other_than: str = "") -> str | None:
        """The id of another record of `kind` already linked to `external_id`, if any."""
        row = self._db.execute(
            "SELECT id FROM records WHERE kind = ? AND external_id = ? AND id != ?",
            (kind, external_id, other_than),
        ).fetchone()
        return None if row is None else str(row[0])

    def insert_record(self, kind: str, prefix: str, data: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        record_id = new_id(prefix)
        self._db.execute(
            "INSERT INTO records (id, kind, external_id, data, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (record_id, kind, data.get("external_id"), json.dumps(data), now, now),
        )
        return {"id": record_id, **data, "created_at": now, "updated_at": now}

    def update_record(self, kind: str, record_id: str, data: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        self._db.execute(
            "UPDATE records SET data = ?, external_id = ?, updated_at = ? "
            "WHERE kind = ? AND id = ?",
            (json.dumps(data), data.get("external_id"), now, kind, record_id),
        )
        found = self.record(kind, record_id)
        assert found is not None
        return found

    def delete_record(self, kind: str, record_id: str) -> bool:
        cursor = self._db.execute(
            "DELETE FROM records WHERE kind = ? AND id = ?", (kind, record_id)
        )
        return cursor.rowcount > 0

    # --- subscriptions ----------------------------------------------------------------------

    def subscriptions(self) -> list[Subscription]:
        rows = self._db.execute(
            "SELECT id, topic, url, secret, description, created_at FROM subscriptions "
            "ORDER BY created_at, id"
        ).fetchall()
        return [Subscription(*row) for row in rows]

    def add_subscription(
        self, prefix: str, topic: str, url: str, secret: str, description: str
    ) -> Subscription:
        sub = Subscription(new_id(prefix), topic, url, secret, description, time.time())
        self._db.execute(
            "INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?, ?)",
            (sub.id, sub.topic, sub.url, sub.secret, sub.description, sub.created_at),
        )
        return sub

    def delete_subscription(self, sub_id: str) -> bool:
        """Remove a subscription; its undelivered events are dropped with it."""
        cursor = self._db.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,))
        self._db.execute(
            "UPDATE deliveries SET status = 'cancelled' "
            "WHERE subscription_id = ? AND status = 'pending'",
            (sub_id,),
        )
        return cursor.rowcount > 0

    def subscription(self, sub_id: str) -> Subscription | None:
        row = self._db.execute(
            "SELECT id, topic, url, secret, description, created_at FROM subscriptions "
            "WHERE id = ?",
            (sub_id,),
        ).fetchone()
        return None if row is None else Subscription(*row)

    # --- deliveries -------------------------------------------------------------------------

    def enqueue(self, delivery_id: str, sub_id: str, event: str, body: str) -> None:
        now = time.time()
        self._db.execute(
            "INSERT INTO deliveries VALUES (?, ?, ?, ?, 'pending', ?, ?)",
            (delivery_id, sub_id, event, body, now, now),
        )

    def due(self, now: float, limit: int = 20) -> list[Delivery]:
        rows = self._db.execute(
            "SELECT id, subscription_id, event, body, status, next_attempt_at, created_at "
            "FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at, created_at LIMIT ?",
            (now, limit),
        ).fetchall()
        return [Delivery(*row) for row in rows]

    def next_due(self) -> float | None:
        row = self._db.execute(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'"
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def record_attempt(
        self, delivery: Delivery, attempt: Attempt, status: str, next_attempt_at: float
    ) -> None:
        self._db.execute(
            "INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?)",
            (
                delivery.id,
                attempt.number,
                attempt.at,
                attempt.status_code,
                attempt.error,
                attempt.retry_in,
            ),
        )
        self._db.execute(
            "UPDATE deliveries SET status = ?, next_attempt_at = ? WHERE id = ? "
            "AND status = 'pending'",
            (status, next_attempt_at, delivery.id),
        )

    def attempts(self, delivery_id: str) -> list[Attempt]:
        rows = self._db.execute(
            "SELECT number, at, status_code, error, retry_in FROM attempts "
            "WHERE delivery_id = ? ORDER BY number",
            (delivery_id,),
        ).fetchall()
        return [Attempt(*row) for row in rows]

    def deliveries(self, limit: int = 100) -> list[Delivery]:
        """The newest deliveries first."""
        rows = self._db.execute(
            "SELECT id, subscription_id, event, body, status, next_attempt_at, created_at "
            "FROM deliveries ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [Delivery(*row) for row in rows]
