"""An instance's runtime environment: its pinned flows, config values, connections and URLs.

`load_environment` reads everything a run of the instance needs in one read transaction;
`EnvironmentCache` keeps it per instance until `invalidate` (a deploy, an enable/disable, a config
change, an upgrade or a delete); a published version never changes, so the cache cannot go stale.
A test instance (`follows_draft`) runs the draft and is read afresh for every run. A connection
that cannot be decrypted does not hide the flows: the environment carries the `problem`, and runs
fail naming it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr
from sqlmodel import Session, col, select

from app.persistence.crypto import SecretKeyError
from app.persistence.models import (
    ConnectionRow,
    CredentialRow,
    InstanceRow,
    IntegrationRow,
    IntegrationVersionRow,
    WebhookTokenRow,
)
from app.persistence.repositories import load_config_values, load_integration
from app.services.errors import NotFound
from app.services.hub import Hub
from app.services.oauth import tokens_for
from components.api import Connection
from components.registry import Registry
from runtime.context import RunContext
from runtime.model import ConfigVariable, Flow, Integration
from runtime.state import StateBackend

__all__ = ["EnvironmentCache", "InstanceEnvironment", "load_environment"]


@dataclass(frozen=True, slots=True)
class InstanceEnvironment:
    """What every run of one instance shares. `secrets` are the values to mask in records."""

    instance_id: str
    name: str
    status: str
    enabled: bool
    created_at: float
    integration: Integration
    flows: Mapping[str, Flow]
    config: Mapping[str, Any]
    connections: Mapping[str, Connection]
    webhook_urls: Mapping[str, str]
    secrets: tuple[str, ...] = ()
    problem: str | None = None
    """Why runs of this instance cannot start (e.g. its connections cannot be decrypted)."""
    tokens: Mapping[str, str] = field(default_factory=dict)
    """Webhook token of each flow, by flow id."""
    follows_draft: bool = False
    """A test instance: never cached, so each saved edit of the draft is live at once."""

    @property
    def instance(self) -> dict[str, Any]:
        """What `{{ instance }}` reads."""
        return {"id": self.instance_id, "name": self.name}

    def run_context(
        self, registry: Registry, http: httpx.AsyncClient, state: StateBackend, execution_id: str
    ) -> RunContext:
        """The engine's context for one run of this instance, in the server or an engine process."""
        return RunContext(
            registry=registry,
            http=http,
            execution_id=execution_id,
            config=self.config,
            connections=self.connections,
            instance=self.instance,
            instance_id=self.instance_id,
            secrets=self.secrets,
            state=state,
            webhook_urls=self.webhook_urls,
            flows=self.flows,
        )


def config_values(
    variables: Sequence[ConfigVariable], stored: Mapping[str, Any]
) -> tuple[dict[str, Any], set[str]]:
    """Config as flows see it (declared defaults, then stored values) and its secret values."""
    values: dict[str, Any] = {}
    secret: set[str] = set()
    for variable in variables:
        if variable.key in stored:
            values[variable.key] = stored[variable.key]
        elif variable.default is not None:
            values[variable.key] = variable.default
        if variable.type == "secret" and isinstance(values.get(variable.key), str):
            secret.add(values[variable.key])
    for key, value in stored.items():  # a value whose variable was removed stays readable
        values.setdefault(key, value)
    return values, secret


def load_environment(hub: Hub, instance_id: str) -> InstanceEnvironment:
    """Read an instance's environment (blocking: call it in a thread). `NotFound` if it is gone."""
    with Session(hub.db) as session:
        instance = session.get(InstanceRow, instance_id)
        if instance is None:
            raise NotFound(f"There is no instance with id '{instance_id}'.")
        version = session.get(IntegrationVersionRow, instance.version_id)
        assert version is not None  # foreign key
        owner = session.get(IntegrationRow, version.integration_id)
        assert owner is not None
        # A test instance runs the newest version (the draft while there is one) as it is now.
        pinned = None if instance.follows_draft else version.version
        integration = load_integration(session, owner.name, pinned)
        problem = None
        try:
            stored = load_config_values(session, hub.box, instance_id)
        except SecretKeyError as exc:
            stored, problem = {}, str(exc)
        connection_rows = list(
            session.exec(
                select(ConnectionRow.slot, CredentialRow)
                .join(CredentialRow, col(CredentialRow.id) == ConnectionRow.credential_id)
                .where(ConnectionRow.instance_id == instance_id)
            )
        )
        tokens = {
            row.flow_id: row.token
            for row in session.exec(
                select(WebhookTokenRow).where(WebhookTokenRow.instance_id == instance_id)
            )
        }
    config, secrets = config_values(integration.config, stored)
    connections: dict[str, Connection] = {}
    for slot, row in connection_rows:
        try:
            values = hub.box.decrypt(row.encrypted, what=f"Connection '{slot}'")
        except SecretKeyError as exc:
            problem = str(exc)
            connections = {}
            break
        fields = {name: SecretStr(str(value)) for name, value in dict(values).items()}
        source = None
        if row.type == "oauth2" and values.get("token_url"):
            source = tokens_for(hub, row.id, row.name, values)
        connections[slot] = Connection(key=slot, type=row.type, values=fields, tokens=source)
        secrets.update(v.get_secret_value() for v in fields.values())
    return InstanceEnvironment(
        instance_id=instance_id,
        name=instance.name,
        status=instance.status,
        enabled=instance.enabled,
        created_at=instance.created_at,
        integration=integration,
        flows={flow.id: flow for flow in integration.flows},
        config=config,
        connections=connections,
        webhook_urls={flow: hub.webhook_url(t) for flow, t in tokens.items() if flow},
        secrets=tuple(sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)),
        problem=problem,
        tokens=tokens,
        follows_draft=instance.follows_draft,
    )


class EnvironmentCache:
    """Environments by instance id, loaded once; `invalidate` drops one (it changed).

    `get_blocking` may be called from worker threads: a load racing an `invalidate` is not kept.
    """

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._cache: dict[str, InstanceEnvironment] = {}
        self._generation: dict[str, int] = {}
        self._epoch = 0
        """Bumped when every instance is forgotten, so loads already under way are not kept."""
        self._lock = threading.Lock()

    def get_blocking(self, instance_id: str) -> InstanceEnvironment:
        with self._lock:
            cached = self._cache.get(instance_id)
            generation = (self._epoch, self._generation.get(instance_id, 0))
        if cached is not None:
            return cached
        env = load_environment(self._hub, instance_id)
        with self._lock:
            now = (self._epoch, self._generation.get(instance_id, 0))
            if now == generation and not env.follows_draft:
                self._cache[instance_id] = env
        return env

    def cached(self, instance_id: str) -> InstanceEnvironment | None:
        return self._cache.get(instance_id)

    async def get(self, instance_id: str) -> InstanceEnvironment:
        cached = self.cached(instance_id)
        if cached is not None:
            return cached
        return await asyncio.to_thread(self.get_blocking, instance_id)

    def invalidate(self, instance_id: str | None) -> None:
        """Forget one instance's environment (None: every instance's)."""
        with self._lock:
            if instance_id is None:
                self._cache.clear()
                self._epoch += 1
            else:
                self._cache.pop(instance_id, None)
                self._generation[instance_id] = self._generation.get(instance_id, 0) + 1
