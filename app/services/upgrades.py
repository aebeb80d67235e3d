"""Change a deployed instance in place: upgrade it to another published version, or edit its
config values and connection credentials.

Convention (as in the other services): `async` functions taking the `Hub`; database work runs in
a worker thread, one short transaction each. Failures raise `app.services.errors`: NotFound (404),
Conflict (409: the instance is deploying or being deleted), InvalidInput (422, `details` by field:
`version`, `config.<key>`, `connections.<slot>[.<field>]`, `flows.<flow>.trigger.<field>`).
Everything is checked before anything is stored: a refused change changes nothing.

What an instance keeps across both: its id, name, webhook URLs (a flow new in the target version
gets a URL of its own), state, enabled switch, executions, and every config value and connection
the change does not name. Values are merged: a config key given replaces the stored value (`None`
or "" clears it, so its default or "required" applies; the mask `***` a page shows for a secret
keeps it); a connection slot given replaces that slot's credentials.

Upgrade (`upgrade_instance`): the target must be a published version other than the one the
instance runs (an older one is a rollback). The instance is switched in one transaction; runs
already executing keep the flows they started with (each holds its environment), every later
run uses the new version. Then the deploy hooks and deploy flows whose definition changed (or
that are new) run again, in deploy order, while the instance is `deploying`; it ends `active`,
or `deploy_failed` with the failing run, exactly as a deploy does. Unchanged ones do not run:
webhooks they registered elsewhere stay registered. An instance whose deploy failed runs the
whole deploy sequence of the new version (upgrading is how a fixed version gets deployed).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from app.persistence import repositories as repo
from app.persistence.crypto import SecretKeyError
from app.persistence.db import session_scope
from app.persistence.models import IntegrationVersionRow, WebhookTokenRow
from app.services import lifecycle
from app.services.config_values import ConfigErrors, check_connections, resolve_config
from app.services.errors import Conflict, InvalidInput
from app.services.hub import Hub
from app.services.instances import InstanceView, get_instance
from app.services.integrations import check_integration, refuse_errors
from app.services.trigger_settings import trigger_problems
from runtime.model import Flow, Integration

__all__ = ["InstanceChange", "UpgradeReport", "UpgradeRequest", "update_instance", "upgrade"]


class InstanceChange(BaseModel):
    """Config values and connection credentials to change; what is not named is kept."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] = Field(
        default_factory=dict,
        description='key -> value (typed JSON or text); null or "" clears it; "***" keeps '
        "a secret as stored.",
    )
    connections: dict[str, Any] = Field(
        default_factory=dict, description="slot -> {field: value}: replaces that slot's values."
    )


class UpgradeRequest(InstanceChange):
    """The published version to run, and values the new version needs (e.g. a new variable)."""

    version: int = Field(description="A published version other than the one it runs.")


class UpgradeReport(BaseModel):
    instance: InstanceView
    previous_version: int
    version: int
    runs: list[lifecycle.LifecycleRun] = Field(
        description="The deploy hooks and flows that changed and ran again, in order."
    )


@dataclass
class _Current:
    """What the instance has now (values decrypted), read before a change."""

    instance_id: str
    name: str
    integration_name: str
    integration: Integration
    version: int
    test: bool
    failed: bool
    """Its deploy failed (`deploy_failed`)."""
    config: dict[str, Any]
    connections: dict[str, tuple[str, dict[str, Any]]]


@dataclass
class _Settled:
    """What a change stores: the version row, config values and connections to write."""

    integration: Integration
    version_id: int | None
    config: dict[str, Any]
    connections: dict[str, tuple[str, dict[str, str]]]


def _current(hub: Hub, session: Session, instance_id: str) -> _Current:
    row = lifecycle.instance_row(session, instance_id)
    if row.status in (lifecycle.DEPLOYING, lifecycle.DELETING):
        raise Conflict(
            f"Instance '{row.name}' is {row.status}: it cannot be changed now.",
            hint="Wait until it is done, then try again.",
        )
    name, version = lifecycle.integration_of(session, row.version_id)
    if row.follows_draft:
        version = _versions(session, version.integration_id)[-1]
    try:
        config = repo.load_config_values(session, hub.box, instance_id)
        connections = repo.load_connections(session, hub.box, instance_id)
    except SecretKeyError as exc:
        raise Conflict(
            f"Instance '{row.name}' cannot be changed: {exc}",
            hint="Restore the secret key its values were stored with, or delete the instance "
            "and deploy it again.",
        ) from None
    return _Current(
        instance_id=instance_id,
        name=row.name,
        integration_name=name,
        integration=repo.load_integration(session, name, version.version),
        version=version.version,
        test=row.follows_draft,
        failed=row.status == lifecycle.DEPLOY_FAILED,
        config=config,
        connections=connections,
    )


def _versions(session: Session, integration_id: int) -> list[IntegrationVersionRow]:
    query = select(IntegrationVersionRow).where(
        IntegrationVersionRow.integration_id == integration_id
    )
    return list(session.exec(query.order_by(col(IntegrationVersionRow.version))))


def _settle(
    current: _Current, integration: Integration, change: InstanceChange, what: str
) -> tuple[dict[str, Any], dict[str, tuple[str, dict[str, str]]]]:
    """The config values and changed connections after `change`, checked against `integration`'s
    variables and slots; InvalidInput listing every problem by field."""
    declared = {v.key for v in integration.config}
    given = {k: v for k, v in current.config.items() if k in declared}
    for key, value in change.config.items():
        if value == lifecycle.MASK and key in current.config:
            continue  # the masked secret a page shows: keep the stored one
        if (value is None or value == "") and key in declared:
            given.pop(key, None)
        else:  # an unknown key is kept, so the check names it
            given[key] = value
    problems: dict[str, str] = {}
    config: dict[str, Any] = {}
    try:
        config = resolve_config(integration.config, given)
    except ConfigErrors as exc:
        problems.update({f"config.{k}": m for k, m in exc.by_key().items()})
    slots = {s.key for s in integration.connections}
    merged: dict[str, Any] = {s: v for s, (_, v) in current.connections.items() if s in slots}
    merged.update(change.connections)
    found, wrong = check_connections(integration.connections, merged)
    problems.update(wrong)
    if problems:
        count = f"{len(problems)} problem{'s' * (len(problems) > 1)}"
        raise InvalidInput(
            f"Instance '{current.name}' was not {what}: {count} with the values.",
            details=problems,
            hint="Fix each field listed and try again; nothing was changed.",
        )
    kept = {k: v for k, v in current.config.items() if k not in declared}
    stored = {**kept, **config}  # values of variables the version dropped stay stored
    changed = {
        slot: found[slot]
        for slot in found
        if slot in change.connections or current.connections.get(slot, ("",))[0] != found[slot][0]
    }
    return stored, changed


def _refuse_trigger_problems(
    hub: Hub, integration: Integration, config: dict[str, Any], name: str, what: str
) -> None:
    if wrong := trigger_problems(hub.registry, integration, config, name):
        raise InvalidInput(
            f"Instance '{name}' was not {what}: with these values, {len(wrong)} trigger "
            f"setting{'s' * (len(wrong) > 1)} would be invalid.",
            details=wrong,
            hint="Fix the config values (or the flows' trigger settings); nothing was changed.",
        )


def _store(hub: Hub, current: _Current, settled: _Settled, *, deploying: bool) -> None:
    secret = [v.key for v in settled.integration.config if v.type == "secret"]
    with session_scope(hub.db) as session:
        row = lifecycle.instance_row(session, current.instance_id)
        if row.status in (lifecycle.DEPLOYING, lifecycle.DELETING):  # changed since it was read
            raise Conflict(f"Instance '{row.name}' is {row.status}: it cannot be changed now.")
        if settled.version_id is not None:
            row.version_id = settled.version_id
        if deploying:
            row.status = lifecycle.DEPLOYING
        row.updated_at = time.time()
        repo.set_config_values(session, row.id, settled.config, box=hub.box, secret_keys=secret)
        for slot, (type_, values) in settled.connections.items():
            repo.set_connection(session, hub.box, row.id, slot, type_, values)
        tokens = repo.webhook_tokens(session, row.id)
        now = time.time()
        session.add_all(
            WebhookTokenRow(
                token=secrets.token_urlsafe(24), instance_id=row.id, flow_id=flow.id, created_at=now
            )
            for flow in settled.integration.flows
            if flow.id not in tokens
        )


# --- edit ---------------------------------------------------------------------------------------


async def update_instance(hub: Hub, instance_id: str, change: InstanceChange) -> InstanceView:
    """Change config values and connection credentials in place; see the module docstring.

    The next run uses the new values; deploy flows are not run again (upgrade or redeploy when
    one registered something that depends on a changed value).
    """
    current = await asyncio.to_thread(_read, hub, instance_id)
    config, connections = _settle(current, current.integration, change, "changed")
    _refuse_trigger_problems(hub, current.integration, config, current.name, "changed")
    settled = _Settled(current.integration, None, config, connections)
    await asyncio.to_thread(_store, hub, current, settled, deploying=False)
    await hub.instance_changed(instance_id)
    return await get_instance(hub, instance_id)


def _read(hub: Hub, instance_id: str) -> _Current:
    with session_scope(hub.db, write=False) as session:
        return _current(hub, session, instance_id)


# --- upgrade ------------------------------------------------------------------------------------


async def upgrade(hub: Hub, instance_id: str, request: UpgradeRequest) -> UpgradeReport:
    """Switch the instance to another published version in place; see the module docstring."""
    _ = hub.runner  # the workers must run: they apply the change
    current, target, version_id = await asyncio.to_thread(_plan, hub, instance_id, request)
    config, connections = _settle(current, target, request, "upgraded")
    _refuse_trigger_problems(hub, target, config, current.name, "upgraded")
    # After a failed deploy nothing can be trusted to be registered: the whole sequence runs.
    rerun = None if current.failed else _changed_lifecycle(hub, current.integration, target)
    settled = _Settled(target, version_id, config, connections)
    deploying = rerun is None or bool(rerun)
    await asyncio.to_thread(_store, hub, current, settled, deploying=deploying)
    await hub.instance_changed(instance_id)
    runs: list[lifecycle.LifecycleRun] = []
    if deploying:
        runs = await lifecycle.deploy_and_finish(hub, instance_id, rerun, "upgrade")
        await hub.instance_changed(instance_id)
    return UpgradeReport(
        instance=await get_instance(hub, instance_id),
        previous_version=current.version,
        version=request.version,
        runs=runs,
    )


def _plan(
    hub: Hub, instance_id: str, request: UpgradeRequest
) -> tuple[_Current, Integration, int | None]:
    with session_scope(hub.db, write=False) as session:
        current = _current(hub, session, instance_id)
        if current.test:
            raise InvalidInput(
                f"Instance '{current.name}' is a test instance: it follows the draft, so there "
                "is no version to upgrade it to.",
                details={"version": "a test instance always runs the draft"},
                hint="Deploy a regular instance from a published version instead.",
            )
        row = lifecycle.instance_row(session, instance_id)
        _, pinned = lifecycle.integration_of(session, row.version_id)
        versions = _versions(session, pinned.integration_id)
        published = [v for v in versions if v.published]
        known = ", ".join(str(v.version) for v in published)
        chosen = next((v for v in published if v.version == request.version), None)
        if chosen is None:
            draft = any(v.version == request.version for v in versions)
            raise InvalidInput(
                f"Integration '{current.integration_name}' has no published version "
                f"{request.version}.",
                details={"version": f"published versions: {known}"},
                hint="Publish the draft first." if draft else "",
            )
        if chosen.version == current.version:
            raise InvalidInput(
                f"Instance '{current.name}' already runs version {chosen.version}.",
                details={"version": f"already runs version {chosen.version}"},
            )
        target = repo.load_integration(session, current.integration_name, chosen.version)
    issues = check_integration(target, hub.registry)
    refuse_errors(target.name, issues, f"version {chosen.version} cannot be run")
    return current, target, chosen.id


def _changed_lifecycle(hub: Hub, old: Integration, new: Integration) -> set[tuple[str, bool]]:
    """(flow id, is a hook) of each deploy hook and deploy flow of `new` that `old` lacks or
    defines differently (a hook: its trigger; a flow: its whole definition, names aside)."""
    before = {f.id: f for f in old.flows}

    def same(flow: Flow, hook: bool) -> bool:
        was = before.get(flow.id)
        if was is None:
            return False
        if hook:
            return was.trigger == flow.trigger
        return _logic(was) == _logic(flow)

    return {
        (flow.id, cls is not None)
        for flow, cls in lifecycle.deploy_sequence(hub, new)
        if not same(flow, cls is not None)
    }


def _logic(flow: Flow) -> dict[str, Any]:
    return flow.model_dump(mode="json", exclude={"name"})
