"""Webhook routing: which instance and flow a URL names, and the webhook settings of that instance.

A token names (instance, flow); flow "" is the instance-wide URL. A shared endpoint names an
integration, and the request names the instance (header or body field, per the integration's
`endpoint`). `RoutingCache` keeps tokens, instances and shared endpoints for `CACHE_SECONDS`; an
unknown token is never cached, so a fresh deploy answers at once. `invalidate()` drops the cache.

The lookups are blocking (core SQL, one short read each); `RoutingCache` and `load_instance` run
them in a worker thread. A flow's trigger inputs are rendered on the event loop thread. Each
webhook flow's trigger is asked once how it receives requests (`Trigger.ingress`, kept as
`FlowTarget.trigger`); `FlowTarget.admit` is its `Trigger.admit` with the inputs bound, called
per request by the ingest path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine, select

from app.persistence.crypto import SecretKeyError
from app.persistence.models import (
    ConfigValueRow,
    FlowRow,
    InstanceRow,
    IntegrationRow,
    IntegrationVersionRow,
    WebhookTokenRow,
)
from app.persistence.repositories import reveal_config_value, table_of
from app.services.bodies import BodyOptions
from app.services.environment import config_values
from app.services.hub import Hub
from app.services.threads import in_ingest_thread
from app.services.trigger_settings import rendered_trigger_inputs
from components.api import Admission, IncomingRequest, Ingress, ReceiveSettings, Trigger
from components.registry import Registry
from runtime.graph import flow_from_node_link
from runtime.input_problems import problems_of
from runtime.model import ConfigVariable, EndpointSettings, Flow

__all__ = [
    "CACHE_SECONDS",
    "FlowTarget",
    "InstanceInfo",
    "RoutingCache",
    "body_options",
    "integration_endpoint",
    "load_instance",
    "lookup_instance_by_name",
    "lookup_token",
    "receiver",
]

CACHE_SECONDS = 2.0
"""How long a resolved token or instance is reused (a disabled instance refuses within this)."""

T = TypeVar("T")


Admit = Callable[[IncomingRequest], Admission]


@dataclass(frozen=True, slots=True)
class FlowTarget:
    """One flow as the ingest path sees it: how its trigger receives requests, or why it cannot."""

    flow_id: str
    label: str
    trigger: Ingress | None
    problem: str = ""
    """Set when the flow cannot take webhooks (not a webhook trigger, or its inputs are invalid)."""
    dedup_key: str | None = None
    admit: Admit | None = None
    """The trigger's `admit` with the flow's inputs bound (set whenever `trigger` is)."""


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """An instance and the webhook settings of every flow of its pinned version."""

    instance_id: str
    name: str
    status: str
    enabled: bool
    integration: str
    endpoint: EndpointSettings
    flows: Mapping[str, FlowTarget]
    loaded_at: float = field(default_factory=time.monotonic)
    follows_draft: bool = False
    """A test instance: its trigger settings are the draft's as saved now, so it is not kept."""

    @property
    def accepting(self) -> bool:
        return self.enabled and self.status == "active"


@dataclass(frozen=True, slots=True)
class _Loaded:
    instance_id: str
    name: str
    status: str
    enabled: bool
    integration: str
    document: dict[str, Any]
    flows: list[Flow]
    config: dict[str, Any]
    follows_draft: bool = False


def _load(engine: Engine, instance_id: str) -> _Loaded | None:
    instances, versions = table_of(InstanceRow), table_of(IntegrationVersionRow)
    integrations, flows, values = (
        table_of(IntegrationRow),
        table_of(FlowRow),
        table_of(ConfigValueRow),
    )
    with engine.connect() as conn:
        row = conn.execute(
            select(
                instances.c.name,
                instances.c.status,
                instances.c.enabled,
                versions.c.id,
                versions.c.document,
                integrations.c.name,
                instances.c.follows_draft,
                integrations.c.id,
            )
            .join(versions, versions.c.id == instances.c.version_id)
            .join(integrations, integrations.c.id == versions.c.integration_id)
            .where(instances.c.id == instance_id)
        ).first()
        if row is None:
            return None
        name, status, enabled, version_id, document, integration, follows, owner = row
        if follows:  # a test instance: the newest version (the draft while there is one)
            version_id, document = conn.execute(
                select(versions.c.id, versions.c.document)
                .where(versions.c.integration_id == owner)
                .order_by(versions.c.version.desc())
                .limit(1)
            ).one()
        graphs = conn.execute(
            select(flows.c.graph)
            .where(flows.c.version_id == version_id)
            .order_by(flows.c.position, flows.c.id)
        ).scalars()
        parsed = [flow_from_node_link(g) for g in graphs]
        rows = conn.execute(
            select(values.c.key, values.c.value).where(values.c.instance_id == instance_id)
        )
        config: dict[str, Any] = {row[0]: row[1] for row in rows}
    return _Loaded(
        instance_id,
        name,
        status,
        bool(enabled),
        integration,
        document or {},
        parsed,
        config,
        bool(follows),
    )


def _flow_target(hub: Hub, loaded: _Loaded, flow: Flow) -> FlowTarget:
    """Resolve the trigger's inputs (templates read config values) on the event loop thread."""
    label = flow.label
    try:
        cls = hub.registry.trigger(flow.trigger.action)
    except LookupError as exc:
        return FlowTarget(flow.id, label, None, f"its trigger cannot be loaded: {exc}")
    if getattr(cls, "kind", "") != "webhook":
        return FlowTarget(flow.id, label, None, "it is not started by a webhook")
    instance = {"id": loaded.instance_id, "name": loaded.name}
    try:
        ingress, admit = receiver(cls, flow, loaded.config, instance)
    except Exception as exc:  # an invalid trigger is the flow author's to fix, never a crash
        return FlowTarget(flow.id, label, None, f"its webhook trigger settings are invalid: {exc}")
    return FlowTarget(flow.id, label, ingress, dedup_key=flow.settings.dedup_key, admit=admit)


class InvalidTriggerSettings(ValueError):
    """A trigger's rendered settings its model refuses, said in words: never pydantic's text,
    which quotes the values, secrets included."""


def receiver(
    cls: type[Trigger[Any]], flow: Flow, config: Mapping[str, Any], instance: Mapping[str, Any]
) -> tuple[Ingress, Admit]:
    """How `flow`'s trigger (of class `cls`) receives requests, and its `admit` bound to the
    flow's inputs (templates rendered with the instance's `config`); raises when the inputs are
    invalid or the trigger refuses them."""
    data = rendered_trigger_inputs(flow, config, instance)
    model: type[BaseModel] = cls.Inputs
    trigger = cls()
    try:
        inputs = model.model_validate(data)
        return trigger.ingress(inputs), functools.partial(trigger.admit, inputs)
    except ValidationError as exc:
        # The trigger's own model refused the inputs, or the receive fields its `ingress` reads.
        if exc.title == ReceiveSettings.__name__ and model is not ReceiveSettings:
            model, data = ReceiveSettings, {}
        problems = problems_of(model, exc, data)
        raise InvalidTriggerSettings(
            "; ".join(f"input '{p.field}': {p.message}" for p in problems)
        ) from None


def body_options(
    registry: Registry, flow: Flow, config: Mapping[str, Any], instance: Mapping[str, Any]
) -> BodyOptions | None:
    """How `flow` parses request bodies, as ingest resolves it; None (the defaults) when its
    trigger is not a valid webhook trigger (the run then reports the trigger's problem)."""
    try:
        cls = registry.trigger(flow.trigger.action)
        return BodyOptions.of(receiver(cls, flow, config, instance)[0])
    except Exception:
        return None


def _config_values(hub: Hub, loaded: _Loaded) -> dict[str, Any]:
    """Config as flows see it: declared defaults, then stored values with secrets decrypted."""
    variables = [ConfigVariable.model_validate(v) for v in loaded.document.get("config") or []]
    stored = {k: reveal_config_value(hub.box, k, v) for k, v in loaded.config.items()}
    return config_values(variables, stored)[0]


async def load_instance(hub: Hub, instance_id: str) -> InstanceInfo | None:
    """The instance's routing data, read in a worker thread (None when it does not exist)."""
    loaded = await in_ingest_thread(_load, hub.db, instance_id)
    if loaded is None:
        return None
    try:
        loaded = dataclasses.replace(loaded, config=_config_values(hub, loaded))
    except SecretKeyError:  # templates needing a secret then fail: the trigger counts as invalid
        loaded = dataclasses.replace(loaded, config={})
    endpoint = _endpoint(loaded.document)
    return InstanceInfo(
        instance_id=instance_id,
        name=loaded.name,
        status=loaded.status,
        enabled=loaded.enabled,
        integration=loaded.integration,
        endpoint=endpoint,
        flows={f.id: _flow_target(hub, loaded, f) for f in loaded.flows},
        follows_draft=loaded.follows_draft,
    )


def lookup_token(engine: Engine, token: str) -> tuple[str, str] | None:
    """(instance id, flow id) of a webhook token; flow "" is the instance-wide URL."""
    tokens = table_of(WebhookTokenRow)
    with engine.connect() as conn:
        row = conn.execute(
            select(tokens.c.instance_id, tokens.c.flow_id).where(tokens.c.token == token)
        ).first()
    return None if row is None else (row[0], row[1])


def lookup_instance_by_name(engine: Engine, integration: str, name: str) -> str | None:
    """Id of the instance called `name` deployed from any version of `integration`."""
    instances, versions = table_of(InstanceRow), table_of(IntegrationVersionRow)
    integrations = table_of(IntegrationRow)
    with engine.connect() as conn:
        found: str | None = conn.execute(
            select(instances.c.id)
            .join(versions, versions.c.id == instances.c.version_id)
            .join(integrations, integrations.c.id == versions.c.integration_id)
            .where(integrations.c.name == integration, instances.c.name == name)
        ).scalar()
    return found


def integration_endpoint(engine: Engine, integration: str) -> EndpointSettings | None:
    """The endpoint settings of the newest version of `integration` (None: no such integration)."""
    versions, integrations = table_of(IntegrationVersionRow), table_of(IntegrationRow)
    with engine.connect() as conn:
        document = conn.execute(
            select(versions.c.document)
            .join(integrations, integrations.c.id == versions.c.integration_id)
            .where(integrations.c.name == integration)
            .order_by(versions.c.version.desc())
            .limit(1)
        ).scalar()
    if document is None:
        return None
    return _endpoint(document)


def _endpoint(document: Mapping[str, Any]) -> EndpointSettings:
    try:
        return EndpointSettings.model_validate(document.get("endpoint") or {})
    except Exception:  # a stored document was validated on save; never fail a request on it
        return EndpointSettings()


# --- the cache ----------------------------------------------------------------------------------


class RoutingCache:
    """Resolved tokens, instances and shared endpoints of one app, each reused for `CACHE_SECONDS`.

    An unknown token is never cached (a fresh deploy answers at once); an integration without an
    endpoint is, like one with. Loads are single-flight: requests that miss the same entry while
    it loads share that one load (when an entry expires under load, dozens of requests would
    otherwise each parse the instance's flows). A load that an `invalidate` overtook still
    answers its callers but is not kept.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._tokens: dict[str, tuple[tuple[str, str], float]] = {}
        self._instances: dict[str, InstanceInfo] = {}
        self._endpoints: dict[str, tuple[EndpointSettings | None, float]] = {}
        self._loads: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self._generation = 0

    def invalidate(self, instance_id: str | None = None) -> None:
        """Forget cached routing (of one instance, or all)."""
        self._generation += 1
        self._loads.clear()  # loads already running answer their callers; later ones reload
        if instance_id is None:
            self._tokens.clear()
            self._instances.clear()
            self._endpoints.clear()
            return
        self._instances.pop(instance_id, None)
        for token in [t for t, ((i, _), _) in self._tokens.items() if i == instance_id]:
            del self._tokens[token]

    async def _load(self, key: tuple[str, str], load: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """`load()`'s result, shared with every caller asking for `key` meanwhile; and whether
        the result may be kept (no `invalidate` since the load started)."""
        running = self._loads.get(key)
        if running is None:
            generation = self._generation

            async def flight() -> tuple[T, bool]:
                try:
                    return await load(), self._generation == generation
                finally:
                    if self._loads.get(key) is running:
                        del self._loads[key]

            running = self._loads[key] = asyncio.ensure_future(flight())
        result: tuple[T, bool] = await asyncio.shield(running)
        return result

    async def token(self, token: str) -> tuple[str, str] | None:
        """(instance id, flow id) of a webhook token; None when there is no such token."""
        cached = self._tokens.get(token)
        if cached is not None and time.monotonic() - cached[1] < CACHE_SECONDS:
            return cached[0]
        target, keep = await self._load(
            ("token", token), lambda: in_ingest_thread(lookup_token, self.hub.db, token)
        )
        if target is None:
            self._tokens.pop(token, None)
        elif keep:
            self._tokens[token] = (target, time.monotonic())
        return target

    async def instance(self, instance_id: str) -> InstanceInfo | None:
        """The instance's routing data; None when it does not exist."""
        info = self._instances.get(instance_id)
        if info is not None and time.monotonic() - info.loaded_at < CACHE_SECONDS:
            return info
        info, keep = await self._load(
            ("instance", instance_id), lambda: load_instance(self.hub, instance_id)
        )
        if info is None:
            self._instances.pop(instance_id, None)
        elif keep and not info.follows_draft:
            self._instances[instance_id] = info
        return info

    async def endpoint(self, integration: str) -> EndpointSettings | None:
        """The shared endpoint settings of `integration` (None: no such integration)."""
        cached = self._endpoints.get(integration)
        if cached is not None and time.monotonic() - cached[1] < CACHE_SECONDS:
            return cached[0]
        endpoint, keep = await self._load(
            ("endpoint", integration),
            lambda: in_ingest_thread(integration_endpoint, self.hub.db, integration),
        )
        if keep:
            self._endpoints[integration] = (endpoint, time.monotonic())
        return endpoint

    async def instance_by_name(self, integration: str, name: str) -> InstanceInfo | None:
        """The instance called `name` of `integration` (the name lookup itself is not cached)."""
        instance_id = await in_ingest_thread(
            lookup_instance_by_name, self.hub.db, integration, name
        )
        return None if instance_id is None else await self.instance(instance_id)
