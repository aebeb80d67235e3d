"""Schema versions: fresh databases, upgrades that keep data, failed upgrades change nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, inspect, text

from app.persistence.db import create_db_engine, session_scope
from app.persistence.migrations import (
    MIGRATIONS,
    SCHEMA_VERSION,
    MigrationError,
    migrate,
    schema_version,
)
from app.persistence.repositories import create_instance, load_integration, save_integration
from runtime.model import Integration


def add_note_column(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE integrations ADD COLUMN note VARCHAR(200)"))
    conn.execute(text("UPDATE integrations SET note = 'migrated'"))


def broken(conn: Connection) -> None:
    raise RuntimeError("disk on fire")


@pytest.fixture
def old_engine(data_dir: Path) -> Iterator[Engine]:
    """A database at the current version (the test's "previous" one) holding an integration."""
    engine = create_db_engine(data_dir)
    assert migrate(engine) == SCHEMA_VERSION
    with session_scope(engine) as session:
        save_integration(session, Integration(name="Kept", description="old data"))
    yield engine
    engine.dispose()


def test_fresh_database_is_created_at_the_current_version(engine: Engine) -> None:
    assert schema_version(engine) == SCHEMA_VERSION
    assert migrate(engine) == SCHEMA_VERSION  # idempotent
    tables = set(inspect(engine).get_table_names())
    assert {"integrations", "flows", "executions", "step_records", "inbox"} <= tables


def test_upgrade_keeps_data_and_applies_the_new_migration(old_engine: Engine) -> None:
    assert migrate(old_engine, [*MIGRATIONS, add_note_column]) == SCHEMA_VERSION + 1
    assert schema_version(old_engine) == SCHEMA_VERSION + 1
    with old_engine.connect() as conn:
        assert conn.execute(text("SELECT name, note FROM integrations")).all() == [
            ("Kept", "migrated")
        ]
    with session_scope(old_engine) as session:
        assert load_integration(session, "Kept").description == "old data"


def test_a_failed_upgrade_changes_nothing(old_engine: Engine) -> None:
    after = SCHEMA_VERSION + 1
    with pytest.raises(
        MigrationError, match=f"from schema version {after} to {after + 1} failed: disk on fire"
    ):
        migrate(old_engine, [*MIGRATIONS, add_note_column, broken])
    assert schema_version(old_engine) == SCHEMA_VERSION
    columns = {c["name"] for c in inspect(old_engine).get_columns("integrations")}
    assert "note" not in columns  # the DDL of the first migration was rolled back too


def test_a_database_newer_than_the_code_is_refused(old_engine: Engine) -> None:
    migrate(old_engine, [*MIGRATIONS, add_note_column])
    with pytest.raises(MigrationError, match="newer than this Flowyard"):
        migrate(old_engine)


def test_a_foreign_database_is_refused(data_dir: Path) -> None:
    engine = create_db_engine(data_dir)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE other (id INTEGER)"))
    with pytest.raises(MigrationError, match="not created by Flowyard"):
        migrate(engine)
    engine.dispose()


def test_version_1_gets_the_execution_list_indexes_and_keeps_its_data(
    data_dir: Path, another_database: Callable[[], str | None]
) -> None:
    """The first real migration: a version-1 database (without the two list indexes) is upgraded
    in place to the shape a fresh database has."""
    engine = create_db_engine(data_dir)
    try:
        assert migrate(engine, []) == 1
        with engine.begin() as conn:  # the version-1 shape
            conn.execute(text("DROP INDEX ix_executions_parent_status"))
            conn.execute(text("DROP INDEX ix_executions_parent_started"))
            conn.execute(
                text(
                    "CREATE INDEX ix_executions_parent_execution_id "
                    "ON executions (parent_execution_id)"
                )
            )
        with session_scope(engine) as session:
            save_integration(session, Integration(name="Kept", description="old data"))
        assert migrate(engine, MIGRATIONS[:1]) == 2
        names = {index["name"] for index in inspect(engine).get_indexes("executions")}
        assert {"ix_executions_parent_status", "ix_executions_parent_started"} <= names
        assert "ix_executions_parent_execution_id" not in names
        fresh = create_db_engine(data_dir / "fresh", url=another_database())
        migrate(fresh)
        fresh_names = {index["name"] for index in inspect(fresh).get_indexes("executions")}
        fresh.dispose()
        assert names == fresh_names  # upgraded to the shape a new database has
        with session_scope(engine) as session:
            assert load_integration(session, "Kept").description == "old data"
        if engine.dialect.name != "sqlite":
            return
        plan = "\n".join(
            str(row)
            for row in engine.connect().execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT status, count(*) FROM executions "
                    "WHERE parent_execution_id IS NULL GROUP BY status"
                )
            )
        )
        assert "COVERING INDEX ix_executions_parent_status" in plan
    finally:
        engine.dispose()


def test_version_2_step_records_get_exchanges_and_pinned_and_keep_their_rows(
    data_dir: Path,
) -> None:
    engine = create_db_engine(data_dir)
    try:
        assert migrate(engine, MIGRATIONS[:1]) == 2
        with engine.begin() as conn:  # the version-2 shape, with one execution and its step
            conn.execute(text("ALTER TABLE step_records DROP COLUMN exchanges"))
            conn.execute(text("ALTER TABLE step_records DROP COLUMN pinned"))
            conn.execute(
                text(
                    "INSERT INTO executions (id, flow_id, status, started_at, instance_id, "
                    "recovered, steps_run) VALUES ('e1', 'main', 'succeeded', 1.0, NULL, false, 1)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO step_records (execution_id, step_id, step_name, action, "
                    "iteration_path, status, attempt, started_at, duration_ms, logs) VALUES "
                    "('e1', 'call', '', 'http.request', '[]', 'succeeded', 1, 1.0, 2.0, '[]')"
                )
            )
        assert migrate(engine) == SCHEMA_VERSION
        with engine.connect() as conn:
            row = conn.execute(text("SELECT step_id, exchanges, pinned FROM step_records")).one()
        exchanges = json.loads(row.exchanges) if isinstance(row.exchanges, str) else row.exchanges
        assert (row.step_id, exchanges, bool(row.pinned)) == ("call", [], False)
    finally:
        engine.dispose()


def test_version_2_publishes_the_drafts_instances_ran_and_adds_notes_and_test_instances(
    data_dir: Path,
) -> None:
    """Instances could pin the draft before schema version 5 (and ran a stale copy of it): the
    upgrade publishes each such draft, so the instance runs exactly that and the next edit is a
    new draft. A draft no instance uses stays a draft."""
    engine = create_db_engine(data_dir)
    try:
        assert migrate(engine, MIGRATIONS[:1]) == 2
        with session_scope(engine) as session:
            save_integration(session, Integration(name="Pinned"))
            save_integration(session, Integration(name="Unused"))
            create_instance(session, "live", "Pinned", 1)
        with engine.begin() as conn:  # the version-2 shape
            conn.execute(text("ALTER TABLE integration_versions DROP COLUMN note"))
            conn.execute(text("ALTER TABLE instances DROP COLUMN follows_draft"))
        assert migrate(engine) == SCHEMA_VERSION
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT i.name, v.published, v.published_at IS NOT NULL, v.note "
                    "FROM integration_versions v JOIN integrations i ON i.id = v.integration_id "
                    "ORDER BY i.name"
                )
            ).all()
            flags = conn.execute(text("SELECT name, follows_draft FROM instances")).all()
        assert [tuple(r) for r in rows] == [("Pinned", 1, 1, None), ("Unused", 0, 0, None)]
        assert [tuple(r) for r in flags] == [("live", 0)]
        with session_scope(engine) as session:  # the next save starts a new draft
            assert save_integration(session, Integration(name="Pinned", description="v2")) == 2
    finally:
        engine.dispose()
