"""The database tables (SQLModel). Times are Unix seconds (floats), as the engine reports them.

Integration documents and flow graphs are JSON: a version row holds the integration without its
flows (name, description, config variables, connection slots, layout); each flow is a row holding
its graph as networkx node-link JSON (`runtime.graph.flow_to_node_link`) and a `revision` used for
optimistic concurrency. Published versions are frozen; edits go to the one draft version.
Instances pin a published version, except test instances (`follows_draft`).

Only portable column types are used (JSON, LargeBinary, Float, String, Boolean), so the same
models serve PostgreSQL. Connection values are stored encrypted (`app.persistence.crypto`);
nothing secret is stored in clear. The schema is created and upgraded by
`app.persistence.migrations`, never by `create_all` from a caller.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

__all__ = [
    "INSTANCE_SCOPE",
    "ConfigValueRow",
    "ConnectionRow",
    "CredentialRow",
    "ExecutionRow",
    "FlowRow",
    "InboxRow",
    "InstanceRow",
    "InstanceStateRow",
    "IntegrationRow",
    "IntegrationVersionRow",
    "OAuthStateRow",
    "StepRecordRow",
    "TestPayloadRow",
    "WebhookTokenRow",
]

INSTANCE_SCOPE = ""
"""`InstanceStateRow.flow_id` of instance-wide keys. Not NULL: NULLs never collide in a unique
constraint (SQLite and PostgreSQL alike), which would allow duplicate instance-wide keys."""


def _json(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(JSON(none_as_null=True), nullable=nullable))


def _json_required() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class IntegrationRow(SQLModel, table=True):
    __tablename__ = "integrations"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    created_at: float
    updated_at: float


class IntegrationVersionRow(SQLModel, table=True):
    """One version of an integration: the draft (`published` false; at most one) or a release."""

    __tablename__ = "integration_versions"
    __table_args__ = (UniqueConstraint("integration_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    integration_id: int = Field(foreign_key="integrations.id", ondelete="CASCADE", index=True)
    version: int
    published: bool = False
    document: dict[str, Any] = _json_required()
    created_at: float
    published_at: float | None = None
    note: str | None = Field(default=None, max_length=500)
    """What the publisher wrote about this version (schema version 3)."""


class FlowRow(SQLModel, table=True):
    __tablename__ = "flows"
    __table_args__ = (UniqueConstraint("version_id", "flow_id"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="integration_versions.id", ondelete="CASCADE")
    flow_id: str = Field(max_length=64)
    position: int = 0
    """Order of the flow in the integration file."""
    graph: dict[str, Any] = _json_required()
    revision: int = 1
    updated_at: float


class InstanceRow(SQLModel, table=True):
    """An integration version deployed with config values and connections."""

    __tablename__ = "instances"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200, unique=True)
    version_id: int = Field(foreign_key="integration_versions.id", index=True)
    status: str = Field(default="deploying", max_length=32)
    enabled: bool = True
    follows_draft: bool = False
    """A test instance: runs the integration's newest version (the draft), not `version_id`'s."""
    created_at: float
    updated_at: float


class ConfigValueRow(SQLModel, table=True):
    __tablename__ = "config_values"
    __table_args__ = (UniqueConstraint("instance_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    instance_id: str = Field(foreign_key="instances.id", ondelete="CASCADE", max_length=64)
    key: str = Field(max_length=64)
    value: Any = _json()


class CredentialRow(SQLModel, table=True):
    """A connection in the workspace's store, chosen by any number of instance slots.

    `encrypted` is Fernet-encrypted JSON of its fields (for `oauth2`: the client settings and the
    tokens). `version` grows on every change; `refreshing_until` is the lease of the one process
    refreshing its OAuth tokens (`app.persistence.credentials.claim_refresh`). `status` is `ok`,
    `not_connected` (OAuth consent not given yet) or `needs_reconnect` (a refresh was refused).
    """

    __tablename__ = "credentials"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200, unique=True)
    type: str = Field(max_length=32)
    encrypted: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(default="ok", max_length=32)
    problem: str | None = Field(default=None, max_length=2000)
    version: int = 1
    refreshing_until: float | None = None
    created_for: str | None = Field(default=None, max_length=64)
    """The instance whose deploy created it from typed-in values (removed with it when unused)."""
    created_at: float
    updated_at: float


class ConnectionRow(SQLModel, table=True):
    """One connection slot of one instance: the stored credential it uses.

    `encrypted` is what held the values before the store (schema 3); it is empty now.
    """

    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("instance_id", "slot"),)

    id: int | None = Field(default=None, primary_key=True)
    instance_id: str = Field(foreign_key="instances.id", ondelete="CASCADE", max_length=64)
    slot: str = Field(max_length=64)
    type: str = Field(max_length=32)
    encrypted: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))
    credential_id: str | None = Field(
        default=None, foreign_key="credentials.id", ondelete="RESTRICT", max_length=64, index=True
    )
    updated_at: float


class OAuthStateRow(SQLModel, table=True):
    """An OAuth consent under way: its `state` and PKCE verifier (encrypted) until the callback."""

    __tablename__ = "oauth_states"

    state: str = Field(primary_key=True, max_length=128)
    credential_id: str = Field(foreign_key="credentials.id", ondelete="CASCADE", max_length=64)
    encrypted: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: float


class TestPayloadRow(SQLModel, table=True):
    """A named sample request saved on a flow's trigger. Kept per integration, across versions."""

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name
    __tablename__ = "test_payloads"
    __table_args__ = (UniqueConstraint("integration_id", "flow_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    integration_id: int = Field(foreign_key="integrations.id", ondelete="CASCADE")
    flow_id: str = Field(max_length=64)
    name: str = Field(max_length=200)
    body: Any = _json()
    headers: dict[str, Any] = _json_required()
    query: dict[str, Any] = _json_required()
    updated_at: float


class InboxRow(SQLModel, table=True):
    """A received webhook request, committed before it is acknowledged.

    `delivery_id` is unique per (instance, flow): a redelivery fails the insert and is answered
    with the first request's execution. NULL delivery ids never collide. `dedup_key` is not
    unique; ingest looks it up per (instance, flow) before inserting, through its index.
    """

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("instance_id", "flow_id", "delivery_id"),
        Index("ix_inbox_status_received", "status", "received_at", "id"),
        Index("ix_inbox_instance_flow_dedup", "instance_id", "flow_id", "dedup_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(max_length=128)
    instance_id: str = Field(foreign_key="instances.id", ondelete="CASCADE", max_length=64)
    flow_id: str = Field(max_length=64)
    execution_id: str = Field(max_length=100, unique=True)
    method: str = Field(default="POST", max_length=10)
    headers: dict[str, Any] = _json_required()
    query: dict[str, Any] = _json_required()
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    delivery_id: str | None = Field(default=None, max_length=200)
    received_at: float
    status: str = Field(default="queued", max_length=32)
    """queued -> running -> done | failed | dead; `recovered` marks a row a crash left running."""
    lease_until: float | None = None
    """Set by the worker that claimed the row; an expired lease may be claimed again."""
    source: str = Field(default="webhook", max_length=32)
    """webhook | replay | retry | manual | schedule | error (an error flow's run) | test."""
    attempt: int = 1
    not_before: float | None = None
    """An automatic retry waits until then."""
    recovered: bool = False
    dedup_key: str | None = Field(default=None, max_length=200)
    replay_of: str | None = Field(default=None, max_length=100)


class WebhookTokenRow(SQLModel, table=True):
    """An unguessable webhook URL token: one per flow of an instance; flow "" is instance-wide."""

    __tablename__ = "webhook_tokens"
    __table_args__ = (UniqueConstraint("instance_id", "flow_id"),)

    token: str = Field(primary_key=True, max_length=128)
    instance_id: str = Field(foreign_key="instances.id", ondelete="CASCADE", max_length=64)
    flow_id: str = Field(max_length=64)
    created_at: float


class ExecutionRow(SQLModel, table=True):
    __tablename__ = "executions"
    __table_args__ = (
        Index("ix_executions_status_started", "status", "started_at"),
        Index("ix_executions_flow_started", "flow_id", "started_at"),
        Index("ix_executions_instance_started", "instance_id", "started_at"),
        Index("ix_executions_started", "started_at"),
        # the executions list: counts by status, and its newest page (schema version 2)
        Index("ix_executions_parent_status", "parent_execution_id", "status"),
        Index("ix_executions_parent_started", "parent_execution_id", "started_at"),
    )

    id: str = Field(primary_key=True, max_length=100)
    flow_id: str = Field(max_length=64)
    instance_id: str | None = Field(
        default=None, foreign_key="instances.id", ondelete="SET NULL", max_length=64
    )
    """Kept (as NULL) when the instance is deleted, so its tear-down runs stay visible."""
    parent_execution_id: str | None = Field(
        default=None, foreign_key="executions.id", ondelete="CASCADE", max_length=100
    )  # indexed by ix_executions_parent_status and ix_executions_parent_started (its prefix)
    status: str = Field(default="queued", max_length=32)
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_ms: float | None = None
    steps_run: int = 0
    recovered: bool = False
    error: dict[str, Any] | None = _json()
    output: Any = _json()


class StepRecordRow(SQLModel, table=True):
    """One finished step run (per loop iteration); `input` had secrets redacted by the engine."""

    __tablename__ = "step_records"

    id: int | None = Field(default=None, primary_key=True)
    execution_id: str = Field(
        foreign_key="executions.id", ondelete="CASCADE", max_length=100, index=True
    )
    step_id: str = Field(max_length=64)
    step_name: str = ""
    action: str = Field(max_length=200)
    iteration_path: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(max_length=32)
    attempt: int = 1
    port: str | None = Field(default=None, max_length=64)
    started_at: float
    duration_ms: float
    input: Any = _json()
    output: Any = _json()
    error: dict[str, Any] | None = _json()
    logs: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    exchanges: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    """HTTP exchanges the step made (`runtime.recorded`), secrets masked."""
    pinned: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    """The step did not run: its output was pinned (test runs)."""


class InstanceStateRow(SQLModel, table=True):
    """One state key of an instance; `flow_id` is `INSTANCE_SCOPE` ("") for instance-wide keys."""

    __tablename__ = "instance_state"
    __table_args__ = (UniqueConstraint("instance_id", "flow_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    instance_id: str = Field(foreign_key="instances.id", ondelete="CASCADE", max_length=64)
    flow_id: str = Field(default=INSTANCE_SCOPE, max_length=64)
    key: str = Field(max_length=200)
    value: Any = _json()
    updated_at: float
