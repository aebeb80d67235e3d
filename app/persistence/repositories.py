"""Repository functions over the tables, plus the engine's state backend and recorder.

Functions taking a `Session` do not commit: the caller owns the transaction (`session_scope`), so
an API call that saves several things saves all or nothing. Integrations round-trip as
`runtime.model.Integration`; flows as `runtime.model.Flow` with their revision.

Versions: an integration has at most one draft (unpublished) version, always the newest; saving
writes to it, creating it (copied from the newest published version, revisions included) when
there is none. `publish_version` freezes the draft; the next save starts a new draft.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, func, update
from sqlmodel import Session, col, select

from app.persistence import credentials as store
from app.persistence.crypto import SecretBox
from app.persistence.models import (
    ConfigValueRow,
    ConnectionRow,
    CredentialRow,
    FlowRow,
    InstanceRow,
    IntegrationRow,
    IntegrationVersionRow,
    WebhookTokenRow,
)
from runtime.graph import flow_from_node_link, flow_to_node_link
from runtime.model import Flow, Integration

__all__ = [
    "INSTANCE_WIDE",
    "SECRET_MARK",
    "NotFound",
    "PersistenceError",
    "StaleRevision",
    "create_instance",
    "create_webhook_tokens",
    "delete_flow",
    "flow_revisions",
    "flow_written_at",
    "load_config_values",
    "load_connection",
    "load_connections",
    "load_flow",
    "load_integration",
    "publish_version",
    "reveal_config_value",
    "rewrite_flow",
    "save_document",
    "save_flow",
    "save_integration",
    "set_config_values",
    "set_connection",
    "webhook_tokens",
]


class PersistenceError(Exception):
    """Base of the errors a caller is expected to turn into a user-facing answer."""


class NotFound(PersistenceError):
    """The integration, version, flow or instance does not exist (an API answers 404)."""


class StaleRevision(PersistenceError):
    """The flow changed since the caller loaded it (an API answers 409)."""

    def __init__(self, flow_id: str, expected: int, actual: int) -> None:
        self.flow_id, self.expected, self.actual = flow_id, expected, actual
        super().__init__(
            f"Flow '{flow_id}' was changed elsewhere (now revision {actual}; your edit was based "
            f"on revision {expected}). Reload the flow and apply your change again."
        )


def table_of(model: Any) -> Table:
    """The core `Table` of a SQLModel class, for core SQL on hot paths."""
    table: Table = model.__table__
    return table


_to_graph = flow_to_node_link
_from_graph = flow_from_node_link


def _integration_row(session: Session, name: str) -> IntegrationRow:
    row = session.exec(select(IntegrationRow).where(IntegrationRow.name == name)).first()
    if row is None:
        raise NotFound(f"There is no integration named '{name}'. Import it first.")
    return row


def _version_row(session: Session, name: str, version: int | None) -> IntegrationVersionRow:
    """The given version, or the newest (the draft if there is one)."""
    integration = _integration_row(session, name)
    query = select(IntegrationVersionRow).where(
        IntegrationVersionRow.integration_id == integration.id
    )
    if version is not None:
        query = query.where(IntegrationVersionRow.version == version)
    row = session.exec(query.order_by(col(IntegrationVersionRow.version).desc())).first()
    if row is None:
        raise NotFound(f"Integration '{name}' has no version {version}.")
    return row


def _flow_rows(session: Session, version_id: int | None) -> list[FlowRow]:
    query = select(FlowRow).where(FlowRow.version_id == version_id)
    return list(session.exec(query.order_by(col(FlowRow.position), col(FlowRow.id))))


def _draft(session: Session, integration: IntegrationRow) -> IntegrationVersionRow:
    """The integration's draft version, created from its newest version when there is none."""
    newest = session.exec(
        select(IntegrationVersionRow)
        .where(IntegrationVersionRow.integration_id == integration.id)
        .order_by(col(IntegrationVersionRow.version).desc())
    ).first()
    if newest is not None and not newest.published:
        return newest
    now = time.time()
    assert integration.id is not None
    draft = IntegrationVersionRow(
        integration_id=integration.id,
        version=(newest.version + 1) if newest else 1,
        document=dict(newest.document) if newest else {},
        created_at=now,
    )
    session.add(draft)
    session.flush()
    if newest is not None:
        assert draft.id is not None
        for row in _flow_rows(session, newest.id):
            session.add(
                FlowRow(
                    version_id=draft.id,
                    flow_id=row.flow_id,
                    position=row.position,
                    graph=row.graph,
                    revision=row.revision,
                    updated_at=now,
                )
            )
        session.flush()
    return draft


def save_integration(session: Session, integration: Integration) -> int:
    """Store `integration` as the draft of the integration of that name; return its version.

    Whole-document saves (import) replace the draft's flows without revision checks; each flow
    whose graph changed gets the next revision, so editors holding the old one see a conflict.
    """
    now = time.time()
    row = session.exec(
        select(IntegrationRow).where(IntegrationRow.name == integration.name)
    ).first()
    if row is None:
        row = IntegrationRow(name=integration.name, created_at=now, updated_at=now)
        session.add(row)
        session.flush()
    row.updated_at = now
    draft = _draft(session, row)
    draft.document = integration.model_dump(
        mode="json", by_alias=True, exclude={"flows", "version"}
    )
    existing = {r.flow_id: r for r in _flow_rows(session, draft.id)}
    assert draft.id is not None
    for position, flow in enumerate(integration.flows):
        graph = _to_graph(flow)
        stored = existing.pop(flow.id, None)
        if stored is None:
            session.add(
                FlowRow(
                    version_id=draft.id,
                    flow_id=flow.id,
                    position=position,
                    graph=graph,
                    updated_at=now,
                )
            )
            continue
        stored.position = position
        if stored.graph != graph:
            stored.graph, stored.revision, stored.updated_at = graph, stored.revision + 1, now
    for gone in existing.values():
        session.delete(gone)
    session.flush()
    return draft.version


def load_integration(session: Session, name: str, version: int | None = None) -> Integration:
    """The integration as stored in `version` (default: the newest, which is the draft if any)."""
    row = _version_row(session, name, version)
    flows = [_from_graph(f.graph) for f in _flow_rows(session, row.id)]
    return Integration.model_validate({**row.document, "version": row.version, "flows": flows})


def publish_version(
    session: Session, name: str, version: int | None = None, note: str | None = None
) -> int:
    """Freeze `version` (default: the draft) so instances can pin it; return its number.

    `note` is kept with a version this call publishes; an already published one keeps its own.
    """
    row = _version_row(session, name, version)
    if not row.published:
        row.published, row.published_at, row.note = True, time.time(), note
        session.flush()
    return row.version


def load_flow(
    session: Session, name: str, flow_id: str, version: int | None = None
) -> tuple[Flow, int]:
    """(flow, revision) of one flow of `version` (default: the newest)."""
    row = _version_row(session, name, version)
    stored = session.exec(
        select(FlowRow).where(FlowRow.version_id == row.id, FlowRow.flow_id == flow_id)
    ).first()
    if stored is None:
        raise NotFound(f"Integration '{name}' version {row.version} has no flow '{flow_id}'.")
    return _from_graph(stored.graph), stored.revision


def save_flow(session: Session, name: str, flow: Flow, expected_revision: int) -> int:
    """Save one flow into the integration's draft if it is still at `expected_revision`.

    Returns the new revision. A new flow is saved with `expected_revision=0` and gets revision 1.
    Raises `StaleRevision` when the stored revision differs: nothing is written. The check and the
    write are one conditional UPDATE, so two concurrent saves cannot both succeed.
    """
    draft = _draft(session, _integration_row(session, name))
    assert draft.id is not None
    now = time.time()
    graph = _to_graph(flow)
    stored = session.exec(
        select(FlowRow).where(FlowRow.version_id == draft.id, FlowRow.flow_id == flow.id)
    ).first()
    if stored is None:
        if expected_revision != 0:
            raise StaleRevision(flow.id, expected_revision, 0)
        last = session.exec(
            select(func.max(FlowRow.position)).where(FlowRow.version_id == draft.id)
        ).one()
        session.add(
            FlowRow(
                version_id=draft.id,
                flow_id=flow.id,
                position=(last + 1) if last is not None else 0,
                graph=graph,
                updated_at=now,
            )
        )
        session.flush()
        return 1
    result = session.connection().execute(
        update(table_of(FlowRow))
        .where(
            table_of(FlowRow).c.id == stored.id,
            table_of(FlowRow).c.revision == expected_revision,
        )
        .values(graph=graph, revision=expected_revision + 1, updated_at=now)
    )
    if result.rowcount != 1:
        session.refresh(stored)
        raise StaleRevision(flow.id, expected_revision, stored.revision)
    session.expire(stored)
    return expected_revision + 1


def rewrite_flow(
    session: Session, name: str, flow: Flow, revision: int, written_at: float
) -> float | None:
    """Overwrite one flow of the draft keeping its `revision`, if it is still exactly as last
    written (at `revision`, updated at `written_at`): one edit continued, not a new revision.

    Returns the new update time; None when anything else wrote the flow since (nothing is
    written then). The check and the write are one conditional UPDATE, as in `save_flow`.
    """
    draft = _draft(session, _integration_row(session, name))
    now = time.time()
    rows = table_of(FlowRow)
    result = session.connection().execute(
        update(rows)
        .where(
            rows.c.version_id == draft.id,
            rows.c.flow_id == flow.id,
            rows.c.revision == revision,
            rows.c.updated_at == written_at,
        )
        .values(graph=_to_graph(flow), updated_at=now)
    )
    return now if result.rowcount == 1 else None


def flow_written_at(session: Session, name: str, flow_id: str) -> float | None:
    """When one flow of the draft was last written (None: the draft has no such flow)."""
    draft = _draft(session, _integration_row(session, name))
    return session.exec(
        select(FlowRow.updated_at).where(FlowRow.version_id == draft.id, FlowRow.flow_id == flow_id)
    ).first()


def flow_revisions(session: Session, name: str, version: int | None = None) -> dict[str, int]:
    """flow id -> revision of every flow of `version` (default: the newest), in file order."""
    row = _version_row(session, name, version)
    return {f.flow_id: f.revision for f in _flow_rows(session, row.id)}


def save_document(session: Session, name: str, changes: dict[str, Any]) -> int:
    """Replace top-level fields of the draft's document (e.g. `config`, `layout`); return its
    version. `changes` are JSON values the caller validated; flows and revisions are untouched.
    """
    integration = _integration_row(session, name)
    draft = _draft(session, integration)
    draft.document = {**draft.document, **changes}  # a new dict: the JSON column sees the change
    integration.updated_at = time.time()
    session.flush()
    return draft.version


def delete_flow(session: Session, name: str, flow_id: str) -> None:
    """Remove one flow, and its layout, from the integration's draft."""
    draft = _draft(session, _integration_row(session, name))
    stored = session.exec(
        select(FlowRow).where(FlowRow.version_id == draft.id, FlowRow.flow_id == flow_id)
    ).first()
    if stored is None:
        raise NotFound(f"Integration '{name}' has no flow '{flow_id}'.")
    session.delete(stored)
    layout = dict(draft.document.get("layout") or {})
    if layout.pop(flow_id, None) is not None:
        draft.document = {**draft.document, "layout": layout}
    session.flush()


# --- instances, config values and connections ---------------------------------------------------


def create_instance(session: Session, name: str, integration: str, version: int) -> str:
    """A new instance (status `deploying`, enabled) pinned to `version`; return its id."""
    row = _version_row(session, integration, version)
    assert row.id is not None
    now = time.time()
    instance = InstanceRow(
        id=uuid.uuid4().hex, name=name, version_id=row.id, created_at=now, updated_at=now
    )
    session.add(instance)
    session.flush()
    return instance.id


def _instance(session: Session, instance_id: str) -> InstanceRow:
    row = session.get(InstanceRow, instance_id)
    if row is None:
        raise NotFound(f"There is no instance with id '{instance_id}'.")
    return row


SECRET_MARK = "$secret"
"""A stored config value `{"$secret": "<Fernet token>"}` is an encrypted secret-typed value."""


def set_config_values(
    session: Session,
    instance_id: str,
    values: dict[str, Any],
    *,
    box: SecretBox | None = None,
    secret_keys: Iterable[str] = (),
) -> None:
    """Replace the instance's config values (validated by the caller against the variables).

    Values under `secret_keys` are stored encrypted with `box` (`load_config_values` decrypts).
    """
    _instance(session, instance_id)
    hidden = set(secret_keys)
    if hidden and box is None:
        raise ValueError("secret config values need a SecretBox")
    if hidden and box is not None:
        values = {
            k: {SECRET_MARK: box.encrypt(v).decode("ascii")} if k in hidden else v
            for k, v in values.items()
        }
    for row in session.exec(
        select(ConfigValueRow).where(ConfigValueRow.instance_id == instance_id)
    ):
        session.delete(row)
    session.flush()
    session.add_all(
        ConfigValueRow(instance_id=instance_id, key=k, value=v) for k, v in values.items()
    )
    session.flush()


def set_connection(
    session: Session,
    box: SecretBox,
    instance_id: str,
    slot: str,
    type_: str,
    values: dict[str, Any],
) -> str:
    """Store typed-in credentials for one slot, encrypted, as the instance's own connection in
    the store (named `<instance>.<slot>`, replaced in place when it has one); return its id."""
    instance = _instance(session, instance_id)
    row = session.exec(
        select(ConnectionRow).where(
            ConnectionRow.instance_id == instance_id, ConnectionRow.slot == slot
        )
    ).first()
    own = session.get(CredentialRow, row.credential_id) if row and row.credential_id else None
    if own is not None and own.created_for == instance_id and own.type == type_:
        store.write_values(session, box, own, values, store.OK)
        credential_id = own.id
    else:
        name = store.unique_name(session, f"{instance.name}.{slot}")
        credential_id = store.create_credential(
            session, box, name, type_, values, created_for=instance_id
        )
    store.link_slot(session, instance_id, slot, type_, credential_id)
    return credential_id


def load_connection(
    session: Session, box: SecretBox, instance_id: str, slot: str
) -> tuple[str, dict[str, Any]]:
    """(type, values) of one connection; `SecretKeyError` if the key changed since it was saved."""
    found = load_connections(session, box, instance_id)
    if slot not in found:
        raise NotFound(f"Instance '{instance_id}' has no connection '{slot}'.")
    return found[slot]


def load_config_values(session: Session, box: SecretBox, instance_id: str) -> dict[str, Any]:
    """The instance's config values, secret-typed ones decrypted (`SecretKeyError` if the key
    changed since they were stored)."""
    rows = session.exec(select(ConfigValueRow).where(ConfigValueRow.instance_id == instance_id))
    return {row.key: reveal_config_value(box, row.key, row.value) for row in rows}


def reveal_config_value(box: SecretBox, key: str, value: Any) -> Any:
    """A stored config value as flows see it: a sealed secret-typed value is decrypted."""
    if isinstance(value, dict) and value.keys() == {SECRET_MARK}:
        return box.decrypt(value[SECRET_MARK].encode("ascii"), what=f"Config '{key}'")
    return value


def load_connections(
    session: Session, box: SecretBox, instance_id: str
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every connection of the instance: slot -> (type, values of its credential), decrypted."""
    rows = session.exec(
        select(ConnectionRow.slot, CredentialRow)
        .join(CredentialRow, col(CredentialRow.id) == ConnectionRow.credential_id)
        .where(ConnectionRow.instance_id == instance_id)
    )
    return {
        slot: (cred.type, box.decrypt(cred.encrypted, what=f"Connection '{slot}'"))
        for slot, cred in rows
    }


INSTANCE_WIDE = ""
"""`WebhookTokenRow.flow_id` of the instance-wide token (routed by the pre-process flow)."""


def create_webhook_tokens(
    session: Session, instance_id: str, flow_ids: Iterable[str]
) -> dict[str, str]:
    """A new unguessable token per flow plus the instance-wide one (key `INSTANCE_WIDE`)."""
    now = time.time()
    tokens = {flow_id: secrets.token_urlsafe(24) for flow_id in (INSTANCE_WIDE, *flow_ids)}
    session.add_all(
        WebhookTokenRow(token=token, instance_id=instance_id, flow_id=flow_id, created_at=now)
        for flow_id, token in tokens.items()
    )
    session.flush()
    return tokens


def webhook_tokens(session: Session, instance_id: str) -> dict[str, str]:
    """flow id -> token of the instance (`INSTANCE_WIDE` for the instance-wide one)."""
    rows = session.exec(select(WebhookTokenRow).where(WebhookTokenRow.instance_id == instance_id))
    return {row.flow_id: row.token for row in rows}
