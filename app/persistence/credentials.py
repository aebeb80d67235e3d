"""The connection store: credentials defined once, chosen by instance slots, and their OAuth state.

Functions taking a `Session` do not commit (the caller owns the transaction). The few that guard
an OAuth refresh take an `Engine` and commit on their own, because a refresh lease must be visible
to other processes before the token endpoint is called:

- `claim_refresh` is a compare-and-set on (`version`, `refreshing_until`): exactly one process
  (of any number sharing the database, SQLite or PostgreSQL) wins the lease for a given version;
  the others wait for the version to change (`read_credential`) and use the tokens it stored.
- `store_refreshed` writes the new tokens only under the lease it holds (same version), bumps the
  version and releases the lease; `release_refresh` gives the lease back without a change, and
  `mark_needs_reconnect` records a refused refresh.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from app.persistence.crypto import SecretBox
from app.persistence.db import session_scope
from app.persistence.models import (
    ConnectionRow,
    CredentialRow,
    InstanceRow,
    OAuthStateRow,
)

__all__ = [
    "NEEDS_RECONNECT",
    "NOT_CONNECTED",
    "OK",
    "StoredCredential",
    "claim_refresh",
    "create_credential",
    "credential_by_name",
    "link_slot",
    "mark_needs_reconnect",
    "pop_oauth_state",
    "put_oauth_state",
    "read_credential",
    "release_refresh",
    "store_refreshed",
    "unique_name",
    "usages",
    "write_values",
]

OK = "ok"
NOT_CONNECTED = "not_connected"
NEEDS_RECONNECT = "needs_reconnect"

REFRESH_LEASE_SECONDS = 30.0
"""How long a refresh may take before another process may try (the token call's timeout is
shorter)."""


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """One credential as read, values decrypted."""

    id: str
    name: str
    type: str
    values: dict[str, Any]
    status: str
    problem: str | None
    version: int
    refreshing_until: float | None


def _stored(box: SecretBox, row: CredentialRow) -> StoredCredential:
    values: dict[str, Any] = box.decrypt(row.encrypted, what=f"Connection '{row.name}'")
    return StoredCredential(
        row.id,
        row.name,
        row.type,
        values,
        row.status,
        row.problem,
        row.version,
        row.refreshing_until,
    )


def unique_name(session: Session, wanted: str) -> str:
    """`wanted`, or `wanted-2`, `wanted-3`... when a credential has that name already."""
    name, n = wanted[:190], 1
    while session.exec(select(CredentialRow.id).where(CredentialRow.name == name)).first():
        n += 1
        name = f"{wanted[:190]}-{n}"
    return name


def create_credential(
    session: Session,
    box: SecretBox,
    name: str,
    type_: str,
    values: dict[str, Any],
    *,
    status: str = OK,
    created_for: str | None = None,
) -> str:
    """A new credential; return its id. The caller checks the name is free (unique constraint)."""
    now = time.time()
    row = CredentialRow(
        id=uuid.uuid4().hex,
        name=name,
        type=type_,
        encrypted=box.encrypt(values),
        status=status,
        created_for=created_for,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row.id


def credential_by_name(session: Session, name: str) -> CredentialRow | None:
    return session.exec(select(CredentialRow).where(CredentialRow.name == name)).first()


def write_values(
    session: Session, box: SecretBox, row: CredentialRow, values: dict[str, Any], status: str
) -> None:
    """Replace a credential's values (a rotation, new tokens): the version grows, the lease and
    any problem go."""
    row.encrypted = box.encrypt(values)
    row.status, row.problem = status, None
    row.version += 1
    row.refreshing_until = None
    row.updated_at = time.time()
    session.add(row)
    session.flush()


def link_slot(
    session: Session, instance_id: str, slot: str, type_: str, credential_id: str
) -> None:
    """Point an instance's connection slot at a credential."""
    row = session.exec(
        select(ConnectionRow).where(
            ConnectionRow.instance_id == instance_id, ConnectionRow.slot == slot
        )
    ).first()
    if row is None:
        row = ConnectionRow(instance_id=instance_id, slot=slot, type=type_, updated_at=0.0)
    row.type, row.credential_id, row.encrypted, row.updated_at = (
        type_,
        credential_id,
        b"",
        time.time(),
    )
    session.add(row)
    session.flush()


def usages(session: Session, credential_id: str) -> list[tuple[str, str, str]]:
    """(instance id, instance name, slot) of every slot using the credential, by name."""
    rows = session.exec(
        select(InstanceRow.id, InstanceRow.name, ConnectionRow.slot)
        .join(ConnectionRow, col(ConnectionRow.instance_id) == InstanceRow.id)
        .where(ConnectionRow.credential_id == credential_id)
        .order_by(col(InstanceRow.name), col(ConnectionRow.slot))
    )
    return [(i, n, s) for i, n, s in rows]


# --- OAuth refresh guard (each call its own short transaction) ----------------------------------


def read_credential(engine: Engine, box: SecretBox, credential_id: str) -> StoredCredential | None:
    with session_scope(engine, write=False) as session:
        row = session.get(CredentialRow, credential_id)
        return None if row is None else _stored(box, row)


def claim_refresh(engine: Engine, credential_id: str, version: int) -> bool:
    """Take the refresh lease of the credential at `version`; False when another process holds
    it or the credential changed since (its tokens are newer than the caller's)."""
    now = time.time()
    with session_scope(engine) as session:
        result = session.connection().execute(
            update(CredentialRow)
            .where(
                col(CredentialRow.id) == credential_id,
                col(CredentialRow.version) == version,
                (col(CredentialRow.refreshing_until).is_(None))
                | (col(CredentialRow.refreshing_until) < now),
            )
            .values(refreshing_until=now + REFRESH_LEASE_SECONDS)
        )
        return bool(result.rowcount)


def store_refreshed(
    engine: Engine, box: SecretBox, credential_id: str, version: int, values: dict[str, Any]
) -> bool:
    """Store refreshed values under the lease taken at `version`; False if it was lost."""
    with session_scope(engine) as session:
        row = session.get(CredentialRow, credential_id)
        if row is None or row.version != version:
            return False
        write_values(session, box, row, values, OK)
        return True


def release_refresh(engine: Engine, credential_id: str, version: int) -> None:
    with session_scope(engine) as session:
        session.connection().execute(
            update(CredentialRow)
            .where(col(CredentialRow.id) == credential_id, col(CredentialRow.version) == version)
            .values(refreshing_until=None)
        )


def mark_needs_reconnect(engine: Engine, credential_id: str, version: int, problem: str) -> None:
    """The provider refused the refresh: the credential needs a new consent."""
    with session_scope(engine) as session:
        session.connection().execute(
            update(CredentialRow)
            .where(col(CredentialRow.id) == credential_id, col(CredentialRow.version) == version)
            .values(
                status=NEEDS_RECONNECT,
                problem=problem[:2000],
                refreshing_until=None,
                version=version + 1,
                updated_at=time.time(),
            )
        )


# --- OAuth consents under way -------------------------------------------------------------------

STATE_TTL_SECONDS = 600.0
"""How long a consent may take between Connect and the callback."""


def put_oauth_state(
    session: Session, box: SecretBox, state: str, credential_id: str, data: dict[str, Any]
) -> None:
    now = time.time()
    # Old unfinished consents go: a state is good for one callback within the TTL.
    for old in session.exec(
        select(OAuthStateRow).where(col(OAuthStateRow.created_at) < now - STATE_TTL_SECONDS)
    ):
        session.delete(old)
    session.add(
        OAuthStateRow(
            state=state, credential_id=credential_id, encrypted=box.encrypt(data), created_at=now
        )
    )
    session.flush()


def pop_oauth_state(
    session: Session, box: SecretBox, state: str
) -> tuple[str, dict[str, Any]] | None:
    """(credential id, data) of a consent under way, removed (a state is used once); None when
    unknown or expired."""
    row = session.get(OAuthStateRow, state)
    if row is None:
        return None
    session.delete(row)
    session.flush()
    if row.created_at < time.time() - STATE_TTL_SECONDS:
        return None
    data: dict[str, Any] = box.decrypt(row.encrypted, what="An OAuth consent")
    return row.credential_id, data
