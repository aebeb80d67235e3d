"""Instances: deploy an integration version with config values and connections; list, get,
enable/disable, delete (tear down).

Convention (as in the other services): `async` functions taking the `Hub`; database work runs in a
worker thread (`asyncio.to_thread`, one short transaction each) so the event loop never waits on
SQLite. Failures raise `app.services.errors` (NotFound 404, Conflict 409, InvalidInput 422).

Deploy (`deploy`):
1. Checks everything before storing anything: the integration and version (default: the newest
   published version; when none is published, the draft, which the instance then follows as it
   is edited until it is published), its flows' validation, the instance name, every config value
   against its variable (typed as the CLI types `--config`; unknown keys; required ones; defaults
   filled in) and every connection (unknown slot, missing required slot, empty or non-text
   values). All problems come back at once: InvalidInput with `details = {field: message}`, where
   a field is `name`, `version`, `config.<key>`, `connections.<slot>` or
   `connections.<slot>.<field>`. A name in use is a Conflict. Then every flow's trigger
   settings, rendered with this config (`trigger_settings`), e.g. a signing secret that does not
   decode: InvalidInput by `flows.<flow id>.trigger.<field>`. Nothing is stored.
2. Stores, in one transaction, the instance (status `deploying`), its config values (secret-typed
   ones encrypted), its connections (encrypted) and one webhook token per flow plus the
   instance-wide one.
3. Runs the deploy hooks and flows (`lifecycle.run_deploy`: each trigger's `on_deploy` hook, then
   every `deploy`-kind flow, in file order, through `hub.runner.run_lifecycle`). The first failure
   stops the sequence: what follows is listed as `skipped`.
4. The instance becomes `active` only when all succeeded, else `deploy_failed`; the outcome of
   each run (execution id, status, error) is kept as the instance's lifecycle record.

What a failed deploy leaves: the instance row (status `deploy_failed`, with the failing run's
execution id and error), its config values, connections and webhook tokens (not routed: ingest
only routes `active` and enabled instances), the state its deploy runs stored (e.g. ids of
webhooks registered in a third-party app before the failure) and its deploy executions. Delete it
(which runs its tear-down flows and hooks, so partial remote registrations get removed) and deploy
again. A server stopped mid-deploy leaves `deploying`; `recover_interrupted` (at start-up) marks
such instances `deploy_failed`.

Delete (`delete_instance`): stops routing first (status `deleting`, committed), runs every
`delete`-kind flow and then every `on_delete` hook (`lifecycle.run_teardown`: all of them, even
after a failure), then removes the instance; config, connections, tokens, state and queued
requests go with it, while executions stay (instance id NULL) so tear-down runs remain visible.
The report lists each run. An instance left `deleting` by a crash can be deleted again. The name
is free again afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.persistence import repositories as repo
from app.persistence.credentials import link_slot
from app.persistence.db import session_scope
from app.persistence.models import (
    ConfigValueRow,
    InstanceRow,
    IntegrationRow,
    IntegrationVersionRow,
)
from app.services.alerts import alerts_in
from app.services.config_values import ConfigErrors, check_connections, resolve_config
from app.services.credentials import (
    ConnectionView,
    choose_credentials,
    remove_own_credentials,
    slot_views,
)
from app.services.environment import InstanceEnvironment, config_values
from app.services.errors import Conflict, InvalidInput
from app.services.hub import Hub
from app.services.integrations import check_integration
from app.services.lifecycle import (
    ACTIVE,
    DELETING,
    DEPLOY_FAILED,
    DEPLOYING,
    MASK,
    LifecycleRun,
    deploy_and_finish,
    deploy_sequence,
    finish_deploy,
    instance_row,
    integration_of,
    interrupted,
    lifecycle_record,
    load_for_runs,
    run_teardown,
    trigger_kind,
)
from app.services.trigger_settings import trigger_problems
from runtime.model import Flow, Integration
from runtime.text import NOT_UNICODE, lone_surrogate

# ACTIVE, DELETING, DEPLOYING, DEPLOY_FAILED and LifecycleRun live in `lifecycle` (the runs and
# their record); they are part of this service's surface too.
__all__ = [
    "ACTIVE",
    "DELETING",
    "DEPLOYING",
    "DEPLOY_FAILED",
    "ConnectionView",
    "DeployRequest",
    "FlowEndpoint",
    "InstanceView",
    "LifecycleRun",
    "PlannedRun",
    "TeardownReport",
    "delete_instance",
    "deploy",
    "deploy_plan",
    "get_instance",
    "list_instances",
    "plan_deploy",
    "recover_interrupted",
    "set_enabled",
]

log = logging.getLogger("flowyard.instances")

_NAME_MAX = 200


class DeployRequest(BaseModel):
    """What deploying takes. Config values may be typed JSON or text (coerced like the CLI)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Unique instance name, e.g. the customer's name.")
    integration: str
    version: int | None = Field(
        None,
        description="A published version. Default: the newest published one; when none is, "
        "the draft is published (as the next version) and deployed.",
    )
    test: bool = Field(
        False,
        description="A test instance: it follows the draft, so each saved edit is live at once. "
        "Leave `version` out.",
    )
    config: dict[str, Any] = Field(default_factory=dict)
    connections: dict[str, Any] = Field(
        default_factory=dict,
        description="slot -> {field: value}, e.g. {api: {api_key: ...}}, or "
        "{credential: <name>} to choose a connection from the store.",
    )


class FlowEndpoint(BaseModel):
    flow_id: str
    name: str
    trigger: str
    kind: str | None = Field(None, description="webhook, schedule, manual, deploy or delete.")
    webhook_url: str


class InstanceView(BaseModel):
    id: str
    name: str
    integration: str
    version: int = Field(description="The version it runs (a test instance: the newest).")
    version_note: str | None = None
    test: bool = Field(False, description="A test instance: it follows the draft.")
    latest_published: int | None = Field(
        None, description="The integration's newest published version (to upgrade to)."
    )
    status: str = Field(description="deploying, active, deploy_failed or deleting.")
    enabled: bool
    created_at: float
    updated_at: float
    instance_url: str = Field(description="The instance-wide webhook URL (pre-process flow).")
    flows: list[FlowEndpoint]
    config: dict[str, Any] = Field(description="Values; secret-typed ones masked.")
    connections: list[ConnectionView]
    lifecycle: list[LifecycleRun] = Field(description="The deploy runs, in the order they ran.")
    failed_execution_id: str | None = None
    error: dict[str, Any] | None = Field(None, description="Why the deploy failed.")
    alerts: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The last failed executions escalated (error flow, alert), newest first.",
    )


class TeardownReport(BaseModel):
    instance_id: str
    name: str
    removed: bool
    ok: bool = Field(description="Every tear-down flow and hook succeeded.")
    runs: list[LifecycleRun]


# --- views --------------------------------------------------------------------------------------


def _view(hub: Hub, session: Session, row: InstanceRow) -> InstanceView:
    name, version = integration_of(session, row.version_id)
    versions = list(
        session.exec(
            select(IntegrationVersionRow)
            .where(IntegrationVersionRow.integration_id == version.integration_id)
            .order_by(col(IntegrationVersionRow.version))
        )
    )
    if row.follows_draft:
        version = versions[-1]
    integration = repo.load_integration(session, name, version.version)
    published = [v.version for v in versions if v.published]
    tokens = repo.webhook_tokens(session, row.id)
    hidden = {v.key for v in integration.config if v.type == "secret"}
    config = {
        key: MASK if key in hidden or _is_sealed(value) else value
        for key, value in _raw_config(session, row.id).items()
    }
    connections = slot_views(session, hub, row.id)
    record = lifecycle_record(session, row.id)
    runs = [LifecycleRun.model_validate(r) for r in record.get("runs", [])]
    failed = next((r for r in runs if r.status not in ("succeeded", "skipped")), None)
    return InstanceView(
        id=row.id,
        name=row.name,
        integration=name,
        version=version.version,
        version_note=version.note,
        test=row.follows_draft,
        latest_published=published[-1] if published else None,
        status=row.status,
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
        instance_url=hub.webhook_url(tokens[repo.INSTANCE_WIDE])
        if repo.INSTANCE_WIDE in tokens
        else "",
        flows=[
            FlowEndpoint(
                flow_id=f.id,
                name=f.label,
                trigger=f.trigger.action,
                kind=trigger_kind(hub, f),
                webhook_url=hub.webhook_url(tokens[f.id]) if f.id in tokens else "",
            )
            for f in integration.flows
        ],
        config=config,
        connections=connections,
        lifecycle=runs,
        failed_execution_id=failed.execution_id if failed else None,
        error=record.get("error"),
        alerts=alerts_in(session, row.id),
    )


def _is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and value.keys() == {repo.SECRET_MARK}


def _raw_config(session: Session, instance_id: str) -> dict[str, Any]:
    rows = session.exec(select(ConfigValueRow).where(ConfigValueRow.instance_id == instance_id))
    return {r.key: r.value for r in rows}


async def get_instance(hub: Hub, instance_id: str) -> InstanceView:
    """One instance: status, each flow's webhook URL, config (secrets masked), connection slots
    (never values) and its deploy runs."""
    return await asyncio.to_thread(_get, hub, instance_id)


def _get(hub: Hub, instance_id: str) -> InstanceView:
    with session_scope(hub.db, write=False) as session:
        return _view(hub, session, instance_row(session, instance_id))


async def list_instances(hub: Hub, integration: str | None = None) -> list[InstanceView]:
    """Every instance by name, optionally only those of one integration."""
    return await asyncio.to_thread(_list, hub, integration)


def _list(hub: Hub, integration: str | None) -> list[InstanceView]:
    with session_scope(hub.db, write=False) as session:
        query = select(InstanceRow).order_by(col(InstanceRow.name))
        if integration is not None:
            query = (
                query.join(
                    IntegrationVersionRow, col(IntegrationVersionRow.id) == InstanceRow.version_id
                )
                .join(
                    IntegrationRow, col(IntegrationRow.id) == IntegrationVersionRow.integration_id
                )
                .where(IntegrationRow.name == integration)
            )
        return [_view(hub, session, row) for row in session.exec(query)]


# --- deploy -------------------------------------------------------------------------------------


@dataclass
class _Plan:
    name: str
    integration: Integration
    version: int
    config: dict[str, Any]
    connections: dict[str, tuple[str, dict[str, str]]]
    chosen: dict[str, str]
    """slot -> id of the stored connection chosen for it."""
    publish: bool = False
    """The version is the draft: publish it as the instance is stored."""
    test: bool = False


async def deploy(hub: Hub, request: DeployRequest) -> InstanceView:
    """Deploy an instance and run its deploy hooks and flows; see the module docstring."""
    _ = hub.runner  # fail before storing anything when no dispatcher runs
    plan = await plan_deploy(hub, request)
    instance_id = await asyncio.to_thread(_store, hub, plan)
    await deploy_and_finish(hub, instance_id)
    await hub.instance_changed(instance_id)
    return await get_instance(hub, instance_id)


def _resolve_version(session: Session, request: DeployRequest) -> tuple[int, bool]:
    """The version to deploy, and whether it is the draft that deploying publishes first."""
    row = session.exec(
        select(IntegrationRow).where(IntegrationRow.name == request.integration)
    ).first()
    if row is None:
        raise InvalidInput(
            f"There is no integration named '{request.integration}'.",
            details={"integration": f"there is no integration named '{request.integration}'"},
            hint="Import the integration first.",
        )
    versions = list(
        session.exec(
            select(IntegrationVersionRow)
            .where(IntegrationVersionRow.integration_id == row.id)
            .order_by(col(IntegrationVersionRow.version).desc())
        )
    )
    if request.test:
        if request.version is not None:
            raise InvalidInput(
                "A test instance follows the draft: it takes no version.",
                details={"version": "leave it out for a test instance"},
            )
        return versions[0].version, False
    if request.version is None:
        published = next((v for v in versions if v.published), None)
        return (published.version, False) if published else (versions[0].version, True)
    chosen = next((v for v in versions if v.version == request.version), None)
    known = ", ".join(str(v.version) for v in reversed(versions) if v.published) or "none"
    if chosen is None:
        raise InvalidInput(
            f"Integration '{request.integration}' has no version {request.version}.",
            details={"version": f"no such version; published versions: {known}"},
        )
    if not chosen.published:
        raise InvalidInput(
            f"Version {request.version} of integration '{request.integration}' is the draft, "
            "which instances do not run: edits to it would reach live traffic unannounced.",
            details={"version": f"the draft is not deployable; published versions: {known}"},
            hint="Publish the draft first (it becomes a version instances can run), or deploy a "
            "test instance, which follows the draft on purpose.",
        )
    return chosen.version, False


def _refuse_text_not_unicode(request: DeployRequest) -> None:
    """Before any query: SQLite cannot even look up text holding a lone surrogate."""
    wrong = {
        field: f"holds {found[1]}, {NOT_UNICODE}"
        for field, value in (("name", request.name), ("integration", request.integration))
        if (found := lone_surrogate(value))
    }
    if wrong:
        raise InvalidInput(
            "The instance was not deployed: the request holds text that is not Unicode.",
            details=wrong,
            hint="Fix each field listed and deploy again; nothing was stored.",
        )


async def plan_deploy(hub: Hub, request: DeployRequest) -> _Plan:
    """Check `request` as `deploy` does, its trigger settings included, and resolve its config
    and connections; nothing is stored. InvalidInput or Conflict name what is wrong."""
    plan = await asyncio.to_thread(_plan, hub, request)
    # On the event loop, where trigger settings are rendered for webhooks too (shared templates).
    if wrong := trigger_problems(hub.registry, plan.integration, plan.config, plan.name):
        raise InvalidInput(
            f"The instance was not deployed: with this config, {len(wrong)} trigger "
            f"setting{'s' * (len(wrong) > 1)} would be invalid.",
            details=wrong,
            hint="Fix the config values (or the flows' trigger settings) and deploy again; "
            "nothing was stored.",
        )
    return plan


def _plan(hub: Hub, request: DeployRequest) -> _Plan:
    _refuse_text_not_unicode(request)
    with session_scope(hub.db, write=False) as session:
        version, publish = _resolve_version(session, request)
        integration = repo.load_integration(session, request.integration, version)
        name = request.name.strip()
        taken = session.exec(select(InstanceRow.id).where(InstanceRow.name == name)).first()
    errors = [i for i in check_integration(integration, hub.registry) if i.severity == "error"]
    if errors:
        raise InvalidInput(
            f"Integration '{integration.name}' version {version} cannot be deployed: its flows "
            f"have {len(errors)} problem{'s' * (len(errors) > 1)}.",
            details={"issues": [i.model_dump() for i in errors]},
            hint="Fix the flows, then deploy again.",
        )
    problems: dict[str, str] = {}
    if not name:
        problems["name"] = "give the instance a name"
    elif len(name) > _NAME_MAX:
        problems["name"] = f"at most {_NAME_MAX} characters"
    config: dict[str, Any] = {}
    try:
        config = resolve_config(integration.config, request.config)
    except ConfigErrors as exc:
        problems.update({f"config.{k}": m for k, m in exc.by_key().items()})
    connections, wrong = check_connections(integration.connections, request.connections)
    problems.update(wrong)
    chosen, wrong = choose_credentials(hub, integration.connections, request.connections)
    problems.update(wrong)
    connections = {k: v for k, v in connections.items() if k not in chosen}
    if problems:
        count = f"{len(problems)} problem{'s' * (len(problems) > 1)}"
        raise InvalidInput(
            f"The instance was not deployed: {count} with the request.",
            details=problems,
            hint="Fix each field listed and deploy again; nothing was stored.",
        )
    if taken is not None:
        raise Conflict(
            f"An instance named '{name}' already exists.",
            details={"name": "already in use"},
            hint="Choose another name, or delete that instance first.",
        )
    return _Plan(name, integration, version, config, connections, chosen, publish, request.test)


def _store(hub: Hub, plan: _Plan) -> str:
    hidden = [v.key for v in plan.integration.config if v.type == "secret"]
    try:
        with session_scope(hub.db) as session:
            if plan.publish:
                repo.publish_version(session, plan.integration.name, plan.version)
            instance_id = repo.create_instance(
                session, plan.name, plan.integration.name, plan.version
            )
            if plan.test:
                instance_row(session, instance_id).follows_draft = True
            repo.set_config_values(
                session, instance_id, plan.config, box=hub.box, secret_keys=hidden
            )
            for slot, (type_, values) in plan.connections.items():
                repo.set_connection(session, hub.box, instance_id, slot, type_, values)
            types = {s.key: s.type for s in plan.integration.connections}
            for slot, credential_id in plan.chosen.items():
                link_slot(session, instance_id, slot, types[slot], credential_id)
            repo.create_webhook_tokens(session, instance_id, [f.id for f in plan.integration.flows])
    except IntegrityError:
        raise Conflict(
            f"An instance named '{plan.name}' already exists.", details={"name": "already in use"}
        ) from None
    return instance_id


# --- deploy plan (preview) -----------------------------------------------------------------------


class PlannedRun(BaseModel):
    """One run a deploy would make, in order: a trigger's `on_deploy` hook or a deploy flow."""

    order: int = Field(description="1-based position in the deploy sequence.")
    flow_id: str
    flow_name: str
    kind: Literal["flow", "hook"]
    trigger: str = Field(description="The flow's trigger (`component.trigger`).")
    config: dict[str, Any] = Field(description="Config the run sees; secret-typed values masked.")
    reads: list[str] = Field(
        default_factory=list, description="Config keys its templates read (`config.<key>`)."
    )


_CONFIG_READ = re.compile(r"\bconfig\.([A-Za-z_][A-Za-z0-9_]*)")


async def deploy_plan(
    hub: Hub,
    integration: str,
    config: Mapping[str, Any] | None = None,
    version: int | None = None,
) -> list[PlannedRun]:
    """What deploying `integration` with `config` would run, in order, and the config each run
    would see (declared defaults filled in, secret-typed values masked); nothing is stored.

    For a form being filled: required values not given yet are left out rather than refused;
    unknown keys and values of the wrong type are InvalidInput by `config.<key>` as in `deploy`.
    The version is chosen as `deploy` chooses it.
    """
    given = dict(config or {})
    request = DeployRequest(name="preview", integration=integration, version=version)
    loaded = await asyncio.to_thread(_plan_integration, hub, request)
    try:
        values = resolve_config(loaded.config, given)
    except ConfigErrors as exc:
        wrong = [p for p in exc.problems if p.kind != "missing"]
        if wrong:
            raise InvalidInput(
                f"The deploy plan needs valid config values: {len(wrong)} "
                f"problem{'s' * (len(wrong) > 1)}.",
                details={f"config.{p.key}": p.message for p in wrong},
                hint="Fix each field listed.",
            ) from None
        missing = {p.key for p in exc.of_kind("missing")}
        variables = [v for v in loaded.config if v.key not in missing]
        values = resolve_config(variables, given)
    seen, _secrets = config_values(loaded.config, values)
    hidden = {v.key for v in loaded.config if v.type == "secret"}
    masked = {k: MASK if k in hidden else v for k, v in seen.items()}
    return [
        PlannedRun(
            order=i,
            flow_id=flow.id,
            flow_name=flow.label,
            kind="flow" if hook is None else "hook",
            trigger=flow.trigger.action,
            config=masked,
            reads=_config_reads(flow, hook is not None),
        )
        for i, (flow, hook) in enumerate(deploy_sequence(hub, loaded), start=1)
    ]


def _plan_integration(hub: Hub, request: DeployRequest) -> Integration:
    with session_scope(hub.db, write=False) as session:
        version, _ = _resolve_version(session, request)
        return repo.load_integration(session, request.integration, version)


def _config_reads(flow: Flow, trigger_only: bool) -> list[str]:
    steps = [flow.trigger] if trigger_only else flow.all_steps()
    found: set[str] = set()
    for step in steps:
        found.update(_CONFIG_READ.findall(repr(step.inputs)))
    return sorted(found)


# --- enable, delete, recover --------------------------------------------------------------------


async def set_enabled(hub: Hub, instance_id: str, enabled: bool) -> InstanceView:
    """Turn routing of webhooks (and schedules) to the instance on or off."""
    _ = hub.runner  # the workers must run: they apply the change
    await asyncio.to_thread(_set_enabled, hub, instance_id, enabled)
    await hub.instance_changed(instance_id)
    return await get_instance(hub, instance_id)


def _set_enabled(hub: Hub, instance_id: str, enabled: bool) -> None:
    with session_scope(hub.db) as session:
        row = instance_row(session, instance_id)
        if row.status == DELETING:
            raise Conflict(f"Instance '{row.name}' is being deleted.")
        row.enabled, row.updated_at = enabled, time.time()


async def delete_instance(hub: Hub, instance_id: str) -> TeardownReport:
    """Stop routing, run tear-down flows and `on_delete` hooks, remove the instance.

    Every tear-down run is attempted even after one fails; failures stay visible as executions
    (and in the report) and do not keep the instance. Refused (Conflict) while it is deploying.
    """
    _ = hub.runner  # the workers must run: they apply the change
    loaded = await asyncio.to_thread(_begin_delete, hub, instance_id)
    await hub.instance_changed(instance_id)
    runs = await run_teardown(hub, loaded)
    await asyncio.to_thread(_remove, hub, instance_id)
    await hub.instance_changed(instance_id)
    for run in runs:
        if run.status != "succeeded":
            log.warning(
                "tear-down of instance %s (%s): %s %s %s: %s",
                loaded.name,
                loaded.instance_id,
                run.kind,
                run.flow_id,
                run.status,
                (run.error or {}).get("message", ""),
            )
    return TeardownReport(
        instance_id=loaded.instance_id,
        name=loaded.name,
        removed=True,
        ok=all(r.status == "succeeded" for r in runs),
        runs=runs,
    )


def _begin_delete(hub: Hub, instance_id: str) -> InstanceEnvironment:
    with session_scope(hub.db) as session:
        row = instance_row(session, instance_id)
        if row.status == DEPLOYING:
            raise Conflict(
                f"Instance '{row.name}' is still deploying.",
                hint="Wait until its deploy finishes, then delete it.",
            )
        row.status, row.updated_at = DELETING, time.time()
    # Routing stopped (committed above); now read what the tear-down needs.
    return load_for_runs(hub, instance_id)


def _remove(hub: Hub, instance_id: str) -> None:
    with session_scope(hub.db) as session:
        row = session.get(InstanceRow, instance_id)
        if row is not None:  # config, connections, tokens, state and inbox rows cascade
            session.delete(row)
            session.flush()
            remove_own_credentials(session, instance_id)


async def recover_interrupted(hub: Hub) -> list[str]:
    """Mark instances a stopped server left `deploying` as `deploy_failed`; return their ids.

    Call at start-up, before the dispatcher starts. Instances left `deleting` stay so: deleting
    them again finishes the tear-down.
    """
    return await asyncio.to_thread(_recover, hub)


def _recover(hub: Hub) -> list[str]:
    with session_scope(hub.db, write=False) as session:
        query = select(InstanceRow.id).where(InstanceRow.status == DEPLOYING)
        ids = list(session.exec(query))
    for instance_id in ids:
        message = "The server stopped while this instance was being deployed."
        finish_deploy(hub, instance_id, [interrupted(message)])
    return ids
