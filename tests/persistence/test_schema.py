"""The package surface, portable DDL, and the inbox's redelivery guard."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlmodel import SQLModel

import app.persistence
from app.persistence.db import session_scope
from app.persistence.models import InboxRow
from app.persistence.repositories import (
    create_instance,
    publish_version,
    save_integration,
    table_of,
)
from runtime.model import Integration

TABLES = {
    "config_values",
    "connections",
    "credentials",
    "oauth_states",
    "executions",
    "flows",
    "inbox",
    "instance_state",
    "webhook_tokens",
    "instances",
    "integration_versions",
    "integrations",
    "step_records",
    "test_payloads",
}


def test_persistence_exports_are_pinned() -> None:
    assert set(app.persistence.__all__) == {
        "SCHEMA_VERSION",
        "MigrationError",
        "NotFound",
        "PersistenceError",
        "SecretBox",
        "SecretKeyError",
        "SqlRecorder",
        "SqlStateBackend",
        "StaleRevision",
        "create_db_engine",
        "create_instance",
        "database_url",
        "load_connection",
        "load_flow",
        "load_integration",
        "load_secret_key",
        "migrate",
        "open_database",
        "publish_version",
        "save_flow",
        "save_integration",
        "session_scope",
        "set_config_values",
        "set_connection",
    }
    assert len(app.persistence.__all__) == len(set(app.persistence.__all__))
    for name in app.persistence.__all__:
        assert hasattr(app.persistence, name), name


def test_every_table_compiles_for_postgresql() -> None:
    assert set(SQLModel.metadata.tables) == TABLES
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    for table in SQLModel.metadata.sorted_tables:
        assert "CREATE TABLE" in str(CreateTable(table).compile(dialect=dialect))
        for index in table.indexes:
            str(CreateIndex(index).compile(dialect=dialect))


def test_inbox_refuses_a_second_request_with_the_same_delivery_id(engine: Engine) -> None:
    with session_scope(engine) as session:
        save_integration(session, Integration(name="Hooks"))
        instance = create_instance(session, "hooks", "Hooks", publish_version(session, "Hooks"))
    inbox = table_of(InboxRow)

    def receive(execution_id: str, delivery_id: str | None) -> None:
        with engine.begin() as conn:  # one core insert per request, as the ingest path does
            conn.execute(
                insert(inbox).values(
                    token="t",
                    instance_id=instance,
                    flow_id="main",
                    execution_id=execution_id,
                    method="POST",
                    headers={"content-type": "application/json"},
                    query={},
                    body=b'{"a": 1}',
                    delivery_id=delivery_id,
                    received_at=time.time(),
                    status="queued",
                )
            )

    receive("e1", "msg_1")
    receive("e2", None)
    receive("e3", None)  # requests without a delivery id never collide
    with pytest.raises(IntegrityError):
        receive("e4", "msg_1")
    with engine.connect() as conn:
        rows = conn.execute(inbox.select().order_by(inbox.c.id)).all()
    assert [r.execution_id for r in rows] == ["e1", "e2", "e3"]
    assert rows[0].body == b'{"a": 1}'
    assert rows[0].headers == {"content-type": "application/json"}


def test_inbox_dedup_lookup_is_indexed() -> None:
    from app.persistence.models import InboxRow

    indexes = {tuple(c.name for c in index.columns) for index in InboxRow.__table__.indexes}  # type: ignore[attr-defined]
    assert ("instance_id", "flow_id", "dedup_key") in indexes
