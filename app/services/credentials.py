"""The connection store: connections defined once and chosen by any number of instance slots.

A connection (a `credentials` row) has a unique name, a type (`api_key`, `basic`, `bearer`,
`oauth2`, `custom`) and encrypted values. Deploying an instance either chooses one for a slot
(`{"credential": "<name>"}`) or types values in, which become the instance's own connection
named `<instance>.<slot>` (removed with the instance unless another instance chose it since).

- `create_credential`, `update_credential` (a rotation: every instance using it sees the new
  values at once), `delete_credential` (refused, naming each instance and slot, while in use),
  `list_credentials`, `get_credential`. Views never hold values.
- `oauth2` connections hold `OAuthSettings`; `authorization_code` ones start `not_connected`
  until Connect (`app.routes.oauth`), `client_credentials` ones fetch a token when saved.
- `choose_credentials` resolves the chosen connections of a deploy request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.persistence import credentials as store
from app.persistence.crypto import SecretKeyError
from app.persistence.db import session_scope
from app.persistence.models import ConnectionRow, CredentialRow
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.hub import Hub
from app.services.oauth import (
    SETTING_FIELDS,
    OAuthSettings,
    connect_client_credentials,
    forget_tokens,
    settings_problems,
)
from runtime.model import ConnectionSlot
from runtime.text import NOT_UNICODE, lone_surrogate

__all__ = [
    "CHOOSE_KEY",
    "ConnectionView",
    "CredentialRequest",
    "CredentialUse",
    "CredentialView",
    "choose_credentials",
    "create_credential",
    "credential_view",
    "delete_credential",
    "get_credential",
    "list_credentials",
    "remove_own_credentials",
    "slot_views",
    "update_credential",
]

CHOOSE_KEY = "credential"
"""A deploy request's slot given as `{"credential": "<name>"}` chooses a stored connection."""

CredentialType = Literal["api_key", "basic", "bearer", "oauth2", "custom"]
_REQUIRED: dict[str, tuple[str, ...]] = {
    "api_key": ("api_key",),
    "basic": ("username", "password"),
    "bearer": ("token",),
}


class CredentialRequest(BaseModel):
    """A connection to store: its name, type and values (never shown again)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Unique name, e.g. 'crm-production'.")
    type: CredentialType
    values: dict[str, Any] = Field(
        description="api_key: {api_key}; basic: {username, password}; bearer: {token}; "
        "oauth2: {grant, client_id, client_secret, authorize_url, token_url, scope}; "
        "custom: any object."
    )


class CredentialUse(BaseModel):
    instance_id: str
    instance: str
    slot: str


class CredentialView(BaseModel):
    """A stored connection as shown: never its values."""

    id: str
    name: str
    type: str
    status: str = Field(description="ok, not_connected (OAuth consent due) or needs_reconnect.")
    problem: str | None = None
    grant: str | None = Field(None, description="oauth2: authorization_code or client_credentials.")
    connect_url: str | None = Field(None, description="Opens the provider's consent page.")
    used_by: list[CredentialUse]
    updated_at: float


def credential_view(session: Session, hub: Hub, row: CredentialRow) -> CredentialView:
    """The view of a stored connection row (inside the caller's session)."""
    grant = None
    if row.type == "oauth2":
        try:
            values = hub.box.decrypt(row.encrypted, what=f"Connection '{row.name}'")
        except SecretKeyError:  # listed all the same; runs say why it cannot be used
            values = {}
        grant = values.get("grant") if values.get("token_url") else None
    return CredentialView(
        id=row.id,
        name=row.name,
        type=row.type,
        status=row.status,
        problem=row.problem,
        grant=grant,
        connect_url=f"/oauth/connect/{row.id}" if grant == "authorization_code" else None,
        used_by=[
            CredentialUse(instance_id=i, instance=n, slot=s)
            for i, n, s in store.usages(session, row.id)
        ],
        updated_at=row.updated_at,
    )


class ConnectionView(BaseModel):
    """A connection slot as shown: never its values."""

    slot: str
    type: str
    credential_id: str | None = None
    credential: str | None = Field(None, description="The stored connection it uses.")
    status: str = Field("ok", description="ok, not_connected or needs_reconnect.")
    problem: str | None = None
    connect_url: str | None = Field(None, description="Opens the provider's consent page.")


def slot_views(session: Session, hub: Hub, instance_id: str) -> list[ConnectionView]:
    """The instance's connection slots with the stored connection each uses and its status."""
    rows = session.exec(
        select(ConnectionRow, CredentialRow)
        .join(CredentialRow, col(CredentialRow.id) == ConnectionRow.credential_id, isouter=True)
        .where(ConnectionRow.instance_id == instance_id)
        .order_by(col(ConnectionRow.slot))
    )
    views = []
    for slot, cred in rows:
        if cred is None:
            views.append(ConnectionView(slot=slot.slot, type=slot.type))
            continue
        shown = credential_view(session, hub, cred)
        views.append(
            ConnectionView(
                slot=slot.slot,
                type=slot.type,
                credential_id=cred.id,
                credential=cred.name,
                status=cred.status,
                problem=cred.problem,
                connect_url=shown.connect_url,
            )
        )
    return views


def _storable(text: str) -> bool:
    """Text a query can carry on both databases (PostgreSQL refuses NUL characters)."""
    return 0 < len(text) <= 200 and "\x00" not in text and not lone_surrogate(text)


def _find(session: Session, credential: str) -> CredentialRow | None:
    """A stored connection by id or name; None for text no connection can be named."""
    if not _storable(credential):
        return None
    return session.get(CredentialRow, credential) or store.credential_by_name(session, credential)


def _row(session: Session, credential_id: str) -> CredentialRow:
    row = _find(session, credential_id)
    if row is None:
        raise NotFound(f"There is no connection '{credential_id}' in the store.")
    return row


async def list_credentials(hub: Hub) -> list[CredentialView]:
    """Every stored connection by name, with where it is used."""
    return await asyncio.to_thread(_list, hub)


def _list(hub: Hub) -> list[CredentialView]:
    with session_scope(hub.db, write=False) as session:
        rows = session.exec(select(CredentialRow).order_by(col(CredentialRow.name)))
        return [credential_view(session, hub, row) for row in rows]


async def get_credential(hub: Hub, credential: str) -> CredentialView:
    """One stored connection, by id or name."""
    return await asyncio.to_thread(_get, hub, credential)


def _get(hub: Hub, credential: str) -> CredentialView:
    with session_scope(hub.db, write=False) as session:
        return credential_view(session, hub, _row(session, credential))


async def _checked_values(type_: str, values: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """(values to store, status), or InvalidInput by `values.<field>`."""
    problems: dict[str, str] = {}
    for name, value in values.items():
        if found := lone_surrogate({name: value}):
            problems[f"values.{name}"] = f"holds {found[1]}, {NOT_UNICODE}"
    for name in _REQUIRED.get(type_, ()):
        value = values.get(name)
        if not isinstance(value, str) or not value.strip():
            problems[f"values.{name}"] = "must be non-empty text"
    if type_ == "oauth2" and "access_token" not in values:
        problems.update({f"values.{k}": m for k, m in settings_problems(dict(values)).items()})
    if problems:
        raise InvalidInput(
            f"The connection was not saved: {len(problems)} problem"
            f"{'s' * (len(problems) > 1)} with its values.",
            details=problems,
            hint="Fix each field listed; nothing was stored.",
        )
    if type_ != "oauth2" or "access_token" in values:
        return dict(values), store.OK
    settings = OAuthSettings.model_validate(values)
    if settings.grant == "client_credentials":
        return await connect_client_credentials(settings), store.OK
    return settings.model_dump(), store.NOT_CONNECTED


async def create_credential(hub: Hub, request: CredentialRequest) -> CredentialView:
    """Store a new connection. An authorization-code OAuth connection starts `not_connected`
    (Connect gives it tokens); a client-credentials one gets its first token now."""
    name = request.name.strip()
    if not _storable(name):
        raise InvalidInput(
            "The connection was not saved: give it a name of 1 to 200 characters.",
            details={"name": "1 to 200 characters of text"},
        )
    values, status = await _checked_values(request.type, request.values)
    return await asyncio.to_thread(_create, hub, name, request.type, values, status)


def _create(hub: Hub, name: str, type_: str, values: dict[str, Any], status: str) -> CredentialView:
    try:
        with session_scope(hub.db) as session:
            if store.credential_by_name(session, name) is not None:
                raise IntegrityError("name", None, ValueError(name))
            credential_id = store.create_credential(
                session, hub.box, name, type_, values, status=status
            )
    except IntegrityError:
        raise Conflict(
            f"A connection named '{name}' already exists.",
            details={"name": "already in use"},
            hint="Choose another name, or change that connection instead.",
        ) from None
    return _get(hub, credential_id)


async def update_credential(hub: Hub, credential: str, values: dict[str, Any]) -> CredentialView:
    """Rotate a connection's values; every instance using it uses the new ones from now on.

    For `oauth2`, the settings given replace the old ones and its tokens are kept while the
    client and endpoints stay the same (a new client secret); otherwise it must be connected
    again.
    """
    view = await get_credential(hub, credential)
    old = await asyncio.to_thread(_values, hub, view.id)
    status = store.OK
    if view.type == "oauth2" and "access_token" not in values:
        merged = {**{k: old[k] for k in SETTING_FIELDS if k in old}, **values}
        checked, status = await _checked_values("oauth2", merged)
        same_client = all(old.get(k) == checked.get(k) for k in ("client_id", "token_url"))
        tokens = {k: v for k, v in old.items() if k not in SETTING_FIELDS}
        if same_client and tokens.get("access_token") and status == store.NOT_CONNECTED:
            checked, status = {**checked, **tokens}, view.status
        new_values = checked
    else:
        new_values, status = await _checked_values(view.type, values)
    await asyncio.to_thread(_rotate, hub, view.id, new_values, status)
    forget_tokens(hub, view.id)
    for use in view.used_by:
        await hub.instance_changed(use.instance_id)
    return await get_credential(hub, view.id)


def _values(hub: Hub, credential_id: str) -> dict[str, Any]:
    with session_scope(hub.db, write=False) as session:
        row = _row(session, credential_id)
        values: dict[str, Any] = hub.box.decrypt(row.encrypted, what=f"Connection '{row.name}'")
        return values


def _rotate(hub: Hub, credential_id: str, values: dict[str, Any], status: str) -> None:
    with session_scope(hub.db) as session:
        store.write_values(session, hub.box, _row(session, credential_id), values, status)


async def delete_credential(hub: Hub, credential: str) -> None:
    """Remove a connection from the store; Conflict naming every instance and slot using it."""
    await asyncio.to_thread(_delete, hub, credential)


def _delete(hub: Hub, credential: str) -> None:
    with session_scope(hub.db) as session:
        row = _row(session, credential)
        used = store.usages(session, row.id)
        if used:
            where = ", ".join(f"instance '{n}' (slot {s})" for _, n, s in used)
            raise Conflict(
                f"Connection '{row.name}' is in use by {where}; it was not deleted.",
                details={"used_by": [{"instance": n, "slot": s} for _, n, s in used]},
                hint="Choose another connection for those slots, or delete those instances first.",
            )
        session.delete(row)


def choose_credentials(
    hub: Hub, slots: Sequence[ConnectionSlot], given: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, str]]:
    """(slot -> credential id, problems by `connections.<slot>`) for the slots of a deploy
    request given as `{"credential": "<name or id>"}` (blocking: call it in a thread)."""
    declared = {s.key: s for s in slots}
    chosen: dict[str, str] = {}
    problems: dict[str, str] = {}
    with session_scope(hub.db, write=False) as session:
        for key, value in given.items():
            if not (isinstance(value, dict) and value.keys() == {CHOOSE_KEY}):
                continue
            where = f"connections.{key}"
            wanted = value[CHOOSE_KEY]
            row = _find(session, wanted) if isinstance(wanted, str) else None
            if key not in declared:
                continue  # check_connections names the unknown slot
            if row is None:
                problems[where] = f"there is no connection '{wanted}' in the store"
            elif row.type != declared[key].type:
                problems[where] = (
                    f"connection '{row.name}' is of type {row.type}; this slot takes "
                    f"{declared[key].type}"
                )
            else:
                chosen[key] = row.id
    return chosen, problems


def remove_own_credentials(session: Session, instance_id: str) -> None:
    """After an instance is removed: the connections its deploy created go, unless another
    instance uses them now."""
    rows = session.exec(select(CredentialRow).where(CredentialRow.created_for == instance_id))
    for row in rows:
        in_use = session.exec(
            select(ConnectionRow.id).where(ConnectionRow.credential_id == row.id)
        ).first()
        if in_use is None:
            session.delete(row)
