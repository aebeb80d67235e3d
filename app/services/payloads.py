"""Test payloads: named sample requests (body, headers, query) saved on a flow's trigger.

Convention (as in the other services): `async` functions taking the `Hub`; database work runs in a
worker thread (`asyncio.to_thread`, one transaction per call). Payloads belong to an integration
and a flow id, across versions; the flow must exist in the integration's newest version when a
payload is created or moved. Names are unique per (integration, flow): a clash is a Conflict.
Payloads are addressed by id within their integration (an id of another integration is NotFound).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.persistence import repositories as repo
from app.persistence.db import session_scope
from app.persistence.models import IntegrationRow, TestPayloadRow
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.hub import Hub

__all__ = [
    "PayloadInput",
    "PayloadUpdate",
    "SuitePayload",
    "TestPayload",
    "create_payload",
    "delete_payload",
    "duplicate_payload",
    "get_payload",
    "list_payloads",
    "list_suite_payloads",
    "update_payload",
]

_NAME_MAX = 200


class PayloadInput(BaseModel):
    """A new test payload. `headers` map names to text; `query` values are text or lists."""

    model_config = ConfigDict(extra="forbid")

    flow_id: str
    name: str
    body: Any = None
    headers: dict[str, Any] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)


class PayloadUpdate(BaseModel):
    """Changes to a test payload: only the fields given are changed (`body: null` clears it)."""

    model_config = ConfigDict(extra="forbid")

    flow_id: str | None = None
    name: str | None = None
    body: Any = None
    headers: dict[str, Any] | None = None
    query: dict[str, Any] | None = None


class TestPayload(BaseModel):
    __test__ = False  # not a pytest test class, despite the name

    id: int
    integration: str
    flow_id: str
    name: str
    body: Any = None
    headers: dict[str, str]
    query: dict[str, Any]
    updated_at: float


def _view(row: TestPayloadRow, integration: str) -> TestPayload:
    assert row.id is not None
    return TestPayload(
        id=row.id,
        integration=integration,
        flow_id=row.flow_id,
        name=row.name,
        body=row.body,
        headers=row.headers,
        query=row.query,
        updated_at=row.updated_at,
    )


def _integration(session: Session, name: str) -> IntegrationRow:
    row = session.exec(select(IntegrationRow).where(IntegrationRow.name == name)).first()
    if row is None:
        raise NotFound(f"There is no integration named '{name}'.")
    return row


def _check(
    session: Session,
    integration: str,
    flow_id: str | None,
    name: str | None,
    fields: dict[str, Any],
) -> dict[str, str]:
    """Problems with the given values, by field; `fields` holds headers and query if given."""
    problems: dict[str, str] = {}
    if flow_id is not None:
        flows = [f.id for f in repo.load_integration(session, integration).flows]
        if flow_id not in flows:
            problems["flow_id"] = (
                f"integration '{integration}' has no flow '{flow_id}' "
                f"(its flows: {', '.join(flows) or 'none'})"
            )
    if name is not None and not name.strip():
        problems["name"] = "give the payload a name"
    elif name is not None and len(name.strip()) > _NAME_MAX:
        problems["name"] = f"at most {_NAME_MAX} characters"
    headers = fields.get("headers")
    if headers is not None and not all(isinstance(v, str) for v in headers.values()):
        problems["headers"] = "header values must be text"
    query = fields.get("query")
    if query is not None and not all(
        isinstance(v, str) or (isinstance(v, list) and all(isinstance(i, str) for i in v))
        for v in query.values()
    ):
        problems["query"] = "query values must be text or lists of text"
    return problems


def _raise(problems: dict[str, str]) -> None:
    if problems:
        raise InvalidInput("The test payload was not saved.", details=problems)


def _write(hub: Hub, integration: str, work: Callable[[Session], TestPayloadRow]) -> TestPayload:
    """Run `work` in a write transaction; a name already used on the flow becomes Conflict."""
    with session_scope(hub.db) as session:
        row = work(session)
        flow_id, name = row.flow_id, row.name  # a failed flush expires the row
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(
                f"Flow '{flow_id}' of integration '{integration}' already has a test payload "
                f"named '{name}'.",
                details={"name": "already in use"},
                hint="Choose another name.",
            ) from None
        return _view(row, integration)


# --- operations ---------------------------------------------------------------------------------


async def create_payload(hub: Hub, integration: str, payload: PayloadInput) -> TestPayload:
    """Save a new test payload on a flow's trigger."""
    return await asyncio.to_thread(_create, hub, integration, payload)


def _create(hub: Hub, integration: str, payload: PayloadInput) -> TestPayload:
    name = payload.name.strip()

    def work(session: Session) -> TestPayloadRow:
        owner = _integration(session, integration)
        _raise(_check(session, integration, payload.flow_id, name, payload.model_dump()))
        assert owner.id is not None
        row = TestPayloadRow(
            integration_id=owner.id,
            flow_id=payload.flow_id,
            name=name,
            body=payload.body,
            headers={k.lower(): v for k, v in payload.headers.items()},
            query=payload.query,
            updated_at=time.time(),
        )
        session.add(row)
        return row

    return _write(hub, integration, work)


async def list_payloads(
    hub: Hub, integration: str, flow_id: str | None = None
) -> list[TestPayload]:
    """The integration's test payloads (of one flow if given), by flow and name."""
    return await asyncio.to_thread(_list, hub, integration, flow_id)


def _list(hub: Hub, integration: str, flow_id: str | None) -> list[TestPayload]:
    with session_scope(hub.db, write=False) as session:
        owner = _integration(session, integration)
        query = select(TestPayloadRow).where(TestPayloadRow.integration_id == owner.id)
        if flow_id is not None:
            query = query.where(TestPayloadRow.flow_id == flow_id)
        rows = session.exec(query.order_by(col(TestPayloadRow.flow_id), col(TestPayloadRow.name)))
        return [_view(row, integration) for row in rows]


class SuitePayload(BaseModel):
    """A test payload from the integration file's suite (a flow's `tests:`): read-only here, it
    changes with the file (import) or the flow."""

    integration: str
    flow_id: str
    name: str
    method: str
    body: Any = None
    headers: dict[str, str]
    query: dict[str, Any]
    pinned: list[str] = Field(description="Steps whose output the test pins.")
    source: str = "suite"


async def list_suite_payloads(
    hub: Hub, integration: str, flow_id: str | None = None
) -> list[SuitePayload]:
    """The payloads of the draft's suites (of one flow if given), in file order."""
    return await asyncio.to_thread(_list_suite, hub, integration, flow_id)


def _list_suite(hub: Hub, integration: str, flow_id: str | None) -> list[SuitePayload]:
    with session_scope(hub.db, write=False) as session:
        _integration(session, integration)
        flows = repo.load_integration(session, integration).flows
    return [
        SuitePayload(
            integration=integration,
            flow_id=flow.id,
            name=test.name,
            method=test.request.method.upper(),
            body=test.request.body,
            headers={k.lower(): str(v) for k, v in test.request.headers.items()},
            query=dict(test.request.query),
            pinned=list(test.pinned),
        )
        for flow in flows
        if flow_id is None or flow.id == flow_id
        for test in flow.tests
    ]


def _row(session: Session, integration: str, payload_id: int) -> TestPayloadRow:
    owner = _integration(session, integration)
    row = session.get(TestPayloadRow, payload_id)
    if row is None or row.integration_id != owner.id:
        raise NotFound(f"Integration '{integration}' has no test payload {payload_id}.")
    return row


async def get_payload(hub: Hub, integration: str, payload_id: int) -> TestPayload:
    return await asyncio.to_thread(_get, hub, integration, payload_id)


def _get(hub: Hub, integration: str, payload_id: int) -> TestPayload:
    with session_scope(hub.db, write=False) as session:
        return _view(_row(session, integration, payload_id), integration)


async def update_payload(
    hub: Hub, integration: str, payload_id: int, changes: PayloadUpdate
) -> TestPayload:
    """Change the fields given in `changes` (see `PayloadUpdate`)."""
    return await asyncio.to_thread(_update, hub, integration, payload_id, changes)


def _update(hub: Hub, integration: str, payload_id: int, changes: PayloadUpdate) -> TestPayload:
    given = changes.model_fields_set
    name = changes.name.strip() if changes.name is not None else None

    def work(session: Session) -> TestPayloadRow:
        row = _row(session, integration, payload_id)
        fields: dict[str, Any] = {
            k: getattr(changes, k) for k in ("headers", "query") if k in given
        }
        _raise(_check(session, integration, changes.flow_id, name, fields))
        if changes.flow_id is not None:
            row.flow_id = changes.flow_id
        if name is not None:
            row.name = name
        if "body" in given:
            row.body = changes.body
        if changes.headers is not None:
            row.headers = {k.lower(): v for k, v in changes.headers.items()}
        if changes.query is not None:
            row.query = changes.query
        row.updated_at = time.time()
        return row

    return _write(hub, integration, work)


async def duplicate_payload(
    hub: Hub, integration: str, payload_id: int, new_name: str
) -> TestPayload:
    """A copy of a test payload under `new_name`, on the same flow."""
    return await asyncio.to_thread(_duplicate, hub, integration, payload_id, new_name)


def _duplicate(hub: Hub, integration: str, payload_id: int, new_name: str) -> TestPayload:
    name = new_name.strip()

    def work(session: Session) -> TestPayloadRow:
        source = _row(session, integration, payload_id)
        _raise(_check(session, integration, None, name, {}))
        copy = TestPayloadRow(
            integration_id=source.integration_id,
            flow_id=source.flow_id,
            name=name,
            body=source.body,
            headers=dict(source.headers),
            query=dict(source.query),
            updated_at=time.time(),
        )
        session.add(copy)
        return copy

    return _write(hub, integration, work)


async def delete_payload(hub: Hub, integration: str, payload_id: int) -> None:
    await asyncio.to_thread(_delete, hub, integration, payload_id)


def _delete(hub: Hub, integration: str, payload_id: int) -> None:
    with session_scope(hub.db) as session:
        session.delete(_row(session, integration, payload_id))
