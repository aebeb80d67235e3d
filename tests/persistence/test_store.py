"""Database set-up, integrations and flows: round trips, versions, optimistic concurrency."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from app.persistence.db import (
    DATABASE_URL_ENV,
    DB_FILE_NAME,
    dispose_when_idle,
    open_database,
    session_scope,
)
from app.persistence.repositories import (
    NotFound,
    StaleRevision,
    load_flow,
    load_integration,
    publish_version,
    save_flow,
    save_integration,
)
from runtime.files import load_integration as read_file
from runtime.model import Flow, Integration

FIXTURES = Path(__file__).parent.parent / "fixtures"
EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "warehouse-import.yaml"


@pytest.fixture
def echo() -> Integration:
    return read_file(FIXTURES / "echo.yaml")


def renamed(flow: Flow, name: str) -> Flow:
    return flow.model_copy(update={"name": name})


@pytest.mark.sqlite_only
def test_sqlite_runs_in_wal_mode_with_busy_timeout_and_foreign_keys(
    engine: Engine, data_dir: Path
) -> None:
    assert (data_dir / DB_FILE_NAME).is_file()
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


@pytest.mark.parametrize("path", [FIXTURES / "echo.yaml", EXAMPLE])
def test_integration_round_trips_equal(engine: Engine, path: Path) -> None:
    integration = read_file(path)
    with session_scope(engine) as session:
        assert save_integration(session, integration) == 1
    with session_scope(engine) as session:
        assert load_integration(session, integration.name) == integration


def test_flow_graph_is_stored_as_node_link_json(engine: Engine, echo: Integration) -> None:
    with session_scope(engine) as session:
        save_integration(session, echo)
    with engine.connect() as conn:
        graph = conn.execute(text("SELECT graph FROM flows WHERE flow_id = 'echo'")).scalar_one()
    document = json.loads(graph) if isinstance(graph, str) else graph  # PostgreSQL decodes JSON
    assert {"nodes", "edges"} <= set(document)


def test_publish_freezes_a_version_and_the_next_save_starts_a_draft(
    engine: Engine, echo: Integration
) -> None:
    with session_scope(engine) as session:
        save_integration(session, echo)
        assert publish_version(session, "Echo") == 1
    changed = echo.model_copy(update={"description": "v2", "flows": [renamed(echo.flows[0], "x")]})
    with session_scope(engine) as session:
        assert save_integration(session, changed) == 2
        assert save_integration(session, changed) == 2  # the draft is reused
    with session_scope(engine) as session:
        assert load_integration(session, "Echo", 1) == echo
        assert load_integration(session, "Echo").description == "v2"
        assert load_integration(session, "Echo").version == 2
        assert load_integration(session, "Echo").flows[0].name == "x"


def test_save_flow_bumps_revision_and_refuses_a_stale_save(
    engine: Engine, echo: Integration
) -> None:
    with session_scope(engine) as session:
        save_integration(session, echo)
        flow, revision = load_flow(session, "Echo", "echo")
    assert revision == 1
    with session_scope(engine) as session:
        assert save_flow(session, "Echo", renamed(flow, "first"), expected_revision=1) == 2
    with pytest.raises(StaleRevision) as caught, session_scope(engine) as session:
        save_flow(session, "Echo", renamed(flow, "second"), expected_revision=1)
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert "Reload the flow" in str(caught.value)
    with session_scope(engine) as session:
        stored, revision = load_flow(session, "Echo", "echo")
    assert (stored.name, revision) == ("first", 2)


def test_save_flow_adds_a_new_flow_at_revision_zero_only(engine: Engine, echo: Integration) -> None:
    new = echo.flows[0].model_copy(update={"id": "second"})
    with session_scope(engine) as session:
        save_integration(session, echo)
        with pytest.raises(StaleRevision):
            save_flow(session, "Echo", new, expected_revision=3)
        assert save_flow(session, "Echo", new, expected_revision=0) == 1
    with session_scope(engine) as session:
        assert [f.id for f in load_integration(session, "Echo").flows] == ["echo", "second"]


def test_editing_a_published_version_edits_a_new_draft_with_the_same_revision(
    engine: Engine, echo: Integration
) -> None:
    with session_scope(engine) as session:
        save_integration(session, echo)
        publish_version(session, "Echo")
        flow, revision = load_flow(session, "Echo", "echo")
        assert save_flow(session, "Echo", renamed(flow, "edited"), revision) == revision + 1
    with session_scope(engine) as session:
        assert load_flow(session, "Echo", "echo", version=1)[0].name == flow.name
        assert load_flow(session, "Echo", "echo", version=2)[0].name == "edited"


def test_import_bumps_revision_of_changed_flows_only(engine: Engine, echo: Integration) -> None:
    with session_scope(engine) as session:
        save_integration(session, echo)
        save_integration(session, echo)
        assert load_flow(session, "Echo", "echo")[1] == 1
        save_integration(session, echo.model_copy(update={"flows": [renamed(echo.flows[0], "n")]}))
        assert load_flow(session, "Echo", "echo")[1] == 2


def test_unknown_names_raise_not_found(engine: Engine) -> None:
    with session_scope(engine) as session, pytest.raises(NotFound, match="Import it first"):
        load_integration(session, "Nope")


def test_concurrent_saves_of_one_revision_let_exactly_one_win(
    engine: Engine, echo: Integration
) -> None:
    with session_scope(engine) as session:
        save_integration(session, echo)
    flow = echo.flows[0]
    barrier = threading.Barrier(6)

    def edit(n: int) -> str:
        barrier.wait()
        try:
            with session_scope(engine) as session:
                _, revision = load_flow(session, "Echo", "echo")
                save_flow(session, "Echo", renamed(flow, f"edit {n}"), revision)
        except StaleRevision:
            return "stale"
        return "saved"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(edit, range(6)))
    saved = outcomes.count("saved")
    if engine.dialect.name == "sqlite":
        # Read-then-write transactions queue for the write lock, so none fails with "locked";
        # each sees the revision the previous one wrote.
        assert outcomes == ["saved"] * 6
    else:  # PostgreSQL runs them at once: the first to write wins, the rest are told so
        assert saved >= 1
        assert set(outcomes) <= {"saved", "stale"}
    with session_scope(engine, write=False) as session:
        assert load_flow(session, "Echo", "echo")[1] == 1 + saved  # no edit was lost


def test_stale_revision_across_sessions_is_refused_under_concurrency(
    engine: Engine, echo: Integration
) -> None:
    with session_scope(engine) as session:
        save_integration(session, echo)
    flow = echo.flows[0]
    barrier = threading.Barrier(6)

    def edit(n: int) -> str:
        barrier.wait()
        try:
            with session_scope(engine) as session:
                save_flow(session, "Echo", renamed(flow, f"edit {n}"), expected_revision=1)
        except StaleRevision:
            return "stale"
        return "saved"

    with ThreadPoolExecutor(6) as pool:
        outcomes = sorted(pool.map(edit, range(6)))
    assert outcomes == ["saved"] + ["stale"] * 5


def test_database_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "elsewhere" / "custom.db"
    monkeypatch.setenv(DATABASE_URL_ENV, f"sqlite:///{target}")
    engine = open_database(tmp_path / "unused")
    engine.dispose()
    assert target.is_file()
    assert not (tmp_path / "unused").exists()


def _is_closed(dbapi_connection: Any) -> bool:
    try:
        dbapi_connection.execute("SELECT 1")
    except Exception:
        return True
    return False


def test_dispose_when_idle_waits_for_a_connection_in_use_and_closes_it(engine: Engine) -> None:
    # A thread still in its transaction (its cancelled task gone) gives the connection back
    # after the host disposes: plain `dispose()` leaves it open in a discarded pool.
    holding, release = threading.Event(), threading.Event()
    used: list[Any] = []

    def work() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            used.append(conn.connection.dbapi_connection)
            holding.set()
            release.wait(10)

    worker = threading.Thread(target=work)
    worker.start()
    assert holding.wait(10)
    threading.Timer(0.05, release.set).start()
    assert dispose_when_idle(engine) == 0
    worker.join(10)
    assert _is_closed(used[0])


def test_dispose_when_idle_gives_up_after_its_timeout(engine: Engine) -> None:
    conn = engine.connect()
    try:
        assert dispose_when_idle(engine, timeout=0.01) == 1  # still in use: disposed anyway
    finally:
        conn.invalidate()  # closes it: given back now, it would stay open in the old pool
        conn.close()


def test_the_server_lock_is_held_once_and_freed_on_release(tmp_path: Path) -> None:
    from app.persistence.lock import DataDirInUse, check_free, server_lock

    check_free(tmp_path)  # nobody holds it
    with (
        server_lock(tmp_path),
        pytest.raises(DataDirInUse, match="Another Flowyard server is using"),
    ):
        check_free(tmp_path)  # a second holder, even in this process, is refused
    check_free(tmp_path)  # released with the block
