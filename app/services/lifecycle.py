"""Lifecycle runs of an instance: its deploy and tear-down hooks and flows, and their record.

`instances` (the public service) calls this module; routes never do. Each run is a `LifecycleRun`:

- **Deploy** (`run_deploy`, in the order of `deploy_sequence`): in file order, each trigger's
  `on_deploy` hook (for triggers whose class defines one), then every flow whose trigger kind is
  `deploy`, through `hub.runner.run_lifecycle` (recorded as executions of the instance). Both
  see every flow's webhook URL and the instance's state. The first failure stops the sequence:
  what follows is listed as `skipped`. `finish_deploy` then makes the instance `active` when all
  succeeded, else `deploy_failed`, and keeps the outcome of each run (execution id, status,
  error) as the instance's lifecycle record.
- **Tear-down** (`run_teardown`): every `delete`-kind flow, then every `on_delete` hook, all of
  them even after a failure.

Hooks get their trigger's resolved inputs and the instance's config, connections, state and
webhook URLs, and run under the flow's `step_timeout`; a hook that raises is a failed run, never a
crash of the caller. Config and connection values are masked in every error and log line kept.

The lifecycle record lives in the instance's state under the scope `@lifecycle` (a scope no flow
id can take), so it is removed with the instance.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from typing import Any, Literal

import httpx
import pydantic
from pydantic import BaseModel, Field
from sqlmodel import Session, select

from app.persistence.db import session_scope
from app.persistence.models import (
    InstanceRow,
    InstanceStateRow,
    IntegrationRow,
    IntegrationVersionRow,
)
from app.persistence.recording import SqlStateBackend
from app.services.environment import InstanceEnvironment, load_environment
from app.services.errors import NotFound
from app.services.hub import Hub
from components.api import FlowyardError, StepLogger, Trigger, TriggerContext
from components.api import TriggerEvent as Event
from components.registry import Registry
from runtime.expressions import ExpressionLimits, render
from runtime.model import Flow, Integration
from runtime.redaction import MASK, redact
from runtime.state import BoundState, StateBackend

__all__ = [
    "ACTIVE",
    "DELETING",
    "DEPLOYING",
    "DEPLOY_FAILED",
    "LIFECYCLE_SCOPE",
    "MASK",
    "LifecycleRun",
    "deploy_and_finish",
    "deploy_sequence",
    "finish_deploy",
    "instance_row",
    "integration_of",
    "interrupted",
    "lifecycle_event",
    "lifecycle_record",
    "load_for_runs",
    "run_deploy",
    "run_hook",
    "run_teardown",
    "teardown_sequence",
    "trigger_kind",
]

DEPLOYING, ACTIVE, DEPLOY_FAILED, DELETING = "deploying", "active", "deploy_failed", "deleting"
LIFECYCLE_SCOPE = "@lifecycle"


class LifecycleRun(BaseModel):
    """One deploy or tear-down run: a lifecycle flow (an execution) or a trigger's hook."""

    flow_id: str
    kind: Literal["flow", "hook"]
    status: str = Field(description="succeeded, failed, crashed, cancelled or skipped.")
    execution_id: str | None = None
    error: dict[str, Any] | None = None
    logs: list[str] = Field(default_factory=list, description="A hook's log lines.")


# --- loading --------------------------------------------------------------------------------------


def instance_row(session: Session, instance_id: str) -> InstanceRow:
    """The instance's row; NotFound when there is none."""
    row = session.get(InstanceRow, instance_id)
    if row is None:
        raise NotFound(f"There is no instance with id '{instance_id}'.")
    return row


def integration_of(session: Session, version_id: int) -> tuple[str, IntegrationVersionRow]:
    """(integration name, version row) of the version an instance pins."""
    version = session.get(IntegrationVersionRow, version_id)
    assert version is not None  # instances.version_id is a foreign key
    integration = session.get(IntegrationRow, version.integration_id)
    assert integration is not None
    return integration.name, version


def load_for_runs(hub: Hub, instance_id: str) -> InstanceEnvironment:
    """Everything lifecycle runs need: the same environment executions run in (blocking; NotFound
    when missing). If the secret key changed, `problem` says why config and connections are empty.
    """
    return load_environment(hub, instance_id)


def trigger_kind(hub: Hub, flow: Flow) -> str | None:
    """The kind of the flow's trigger (webhook, schedule, deploy, ...); None if unloadable."""
    cls = _trigger_class(hub, flow)
    return cls.kind if cls is not None else None


def _trigger_class(hub: Hub | Registry, flow: Flow) -> type[Trigger[Any]] | None:
    registry = hub if isinstance(hub, Registry) else hub.registry
    try:
        return registry.trigger(flow.trigger.action)
    except LookupError:
        return None


def _has_hook(cls: type[Trigger[Any]] | None, hook: str) -> bool:
    return cls is not None and getattr(cls, hook) is not getattr(Trigger, hook)


# --- deploy and tear-down -------------------------------------------------------------------------


def deploy_sequence(
    hub: Hub | Registry, integration: Integration
) -> list[tuple[Flow, type[Trigger[Any]] | None]]:
    """What a deploy runs, in order: `(flow, trigger class)` for each trigger that defines an
    `on_deploy` hook, then `(flow, None)` for each `deploy`-kind flow; both in file order."""
    steps: list[tuple[Flow, type[Trigger[Any]] | None]] = []
    kinds = {}
    for flow in integration.flows:
        cls = _trigger_class(hub, flow)
        kinds[flow.id] = cls.kind if cls is not None else None
        if _has_hook(cls, "on_deploy"):
            steps.append((flow, cls))
    steps += [(f, None) for f in integration.flows if kinds[f.id] == "deploy"]
    return steps


def teardown_sequence(
    hub: Hub | Registry, integration: Integration
) -> list[tuple[Flow, type[Trigger[Any]] | None]]:
    """What a tear-down runs, in order: `(flow, None)` for each `delete`-kind flow, then
    `(flow, trigger class)` for each trigger that defines an `on_delete` hook."""
    classes = [(flow, _trigger_class(hub, flow)) for flow in integration.flows]
    flows = [(f, None) for f, cls in classes if cls is not None and cls.kind == "delete"]
    hooks = [(f, cls) for f, cls in classes if _has_hook(cls, "on_delete")]
    return [*flows, *hooks]


async def run_deploy(
    hub: Hub,
    loaded: InstanceEnvironment,
    runs: list[LifecycleRun],
    only: set[tuple[str, bool]] | None = None,
) -> None:
    """Hooks, then deploy flows, in file order; appends to `runs`, stops at the first failure.

    `only` limits the sequence to these `(flow id, is a hook)` (an upgrade's changed ones).
    """
    failed = False
    for flow, hook_class in deploy_sequence(hub, loaded.integration):
        if only is not None and (flow.id, hook_class is not None) not in only:
            continue
        if failed:
            kind: Literal["flow", "hook"] = "flow" if hook_class is None else "hook"
            runs.append(LifecycleRun(flow_id=flow.id, kind=kind, status="skipped"))
            continue
        if hook_class is not None:
            run = await _run_hook(hub, loaded, flow, hook_class, "on_deploy")
        else:
            run = await _run_flow(hub, loaded, flow, lifecycle_event("deploy", loaded))
        runs.append(run)
        failed = run.status != "succeeded"


async def deploy_and_finish(
    hub: Hub, instance_id: str, only: set[tuple[str, bool]] | None = None, what: str = "deploy"
) -> list[LifecycleRun]:
    """Run the deploy sequence (or `only` part of it, see `run_deploy`) of a `deploying`
    instance and record the outcome (`finish_deploy`), also when cancelled (`what` names the
    operation in the record of an interruption)."""
    runs: list[LifecycleRun] = []
    try:
        loaded = await asyncio.to_thread(load_for_runs, hub, instance_id)
        await run_deploy(hub, loaded, runs, only)
    except asyncio.CancelledError:
        runs.append(interrupted(f"The {what} was interrupted."))
        await asyncio.shield(asyncio.to_thread(finish_deploy, hub, instance_id, runs))
        raise
    await asyncio.to_thread(finish_deploy, hub, instance_id, runs)
    return runs


async def run_teardown(hub: Hub, loaded: InstanceEnvironment) -> list[LifecycleRun]:
    """Every `delete`-kind flow, then every `on_delete` hook; all run even after a failure."""
    runs: list[LifecycleRun] = []
    if loaded.problem is not None:
        error = {"kind": "secret_key", "message": loaded.problem, "hint": "", "step": None}
        runs.append(LifecycleRun(flow_id="", kind="hook", status="failed", error=error))
    for flow, cls in teardown_sequence(hub, loaded.integration):
        if cls is None:
            runs.append(await _run_flow(hub, loaded, flow, lifecycle_event("delete", loaded)))
        else:
            runs.append(await _run_hook(hub, loaded, flow, cls, "on_delete"))
    return runs


def lifecycle_event(kind: str, loaded: InstanceEnvironment) -> Event:
    """The trigger event of a deploy or tear-down flow."""
    body = {"event": kind, "instance_id": loaded.instance_id, "instance_name": loaded.name}
    return Event(body=body)


# --- the lifecycle record -------------------------------------------------------------------------


def finish_deploy(hub: Hub, instance_id: str, runs: list[LifecycleRun]) -> None:
    """Keep the deploy's runs as the record; a `deploying` instance becomes active or failed."""
    failed = next((r for r in runs if r.status not in ("succeeded", "skipped")), None)
    record = {
        "event": "deploy",
        "finished_at": time.time(),
        "runs": [r.model_dump() for r in runs],
        "error": failed.error if failed else None,
    }
    with session_scope(hub.db) as session:
        row = session.get(InstanceRow, instance_id)
        if row is None:  # deleted meanwhile
            return
        if row.status == DEPLOYING:
            row.status = DEPLOY_FAILED if failed else ACTIVE
        row.updated_at = time.time()
        state = _lifecycle_row(session, instance_id)
        if state is None:
            session.add(
                InstanceStateRow(
                    instance_id=instance_id,
                    flow_id=LIFECYCLE_SCOPE,
                    key="deploy",
                    value=record,
                    updated_at=time.time(),
                )
            )
        else:
            state.value, state.updated_at = record, time.time()


def interrupted(message: str) -> LifecycleRun:
    """The run recorded for a deploy that was cut short (cancelled, or the server stopped)."""
    hint = "Delete the instance and deploy it again."
    error = {"kind": "interrupted", "message": message, "hint": hint, "step": None}
    return LifecycleRun(flow_id="", kind="hook", status="cancelled", error=error)


def lifecycle_record(session: Session, instance_id: str) -> dict[str, Any]:
    """The instance's last deploy record (`{}` before its deploy finished)."""
    row = _lifecycle_row(session, instance_id)
    return row.value if row is not None and isinstance(row.value, dict) else {}


def _lifecycle_row(session: Session, instance_id: str) -> InstanceStateRow | None:
    return session.exec(
        select(InstanceStateRow).where(
            InstanceStateRow.instance_id == instance_id,
            InstanceStateRow.flow_id == LIFECYCLE_SCOPE,
            InstanceStateRow.key == "deploy",
        )
    ).first()


# --- running lifecycle flows and hooks ------------------------------------------------------------


async def _run_flow(
    hub: Hub, loaded: InstanceEnvironment, flow: Flow, event: Event
) -> LifecycleRun:
    try:
        result = await hub.runner.run_lifecycle(loaded.instance_id, flow.id, event)
    except Exception as exc:
        error = _error(
            "lifecycle_failed",
            f"Flow '{flow.label}' could not be run: {type(exc).__name__}: {exc}",
            "Check the server log; the flow can be run again by deploying again.",
            loaded.secrets,
        )
        return LifecycleRun(flow_id=flow.id, kind="flow", status="crashed", error=error)
    error_info = None
    if result.error is not None:
        e = asdict(result.error)
        error_info = _error(e["kind"], e["message"], e["hint"], loaded.secrets, e.get("step"))
    return LifecycleRun(
        flow_id=flow.id,
        kind="flow",
        status=result.status.value,
        execution_id=result.execution_id,
        error=error_info,
    )


async def _run_hook(
    hub: Hub, loaded: InstanceEnvironment, flow: Flow, cls: type[Trigger[Any]], hook: str
) -> LifecycleRun:
    return await run_hook(loaded, flow, cls, hook, http=hub.http, state=SqlStateBackend(hub.db))


async def run_hook(
    loaded: InstanceEnvironment,
    flow: Flow,
    cls: type[Trigger[Any]],
    hook: str,
    *,
    http: httpx.AsyncClient,
    state: StateBackend,
) -> LifecycleRun:
    """Call a trigger's `on_deploy` / `on_delete` with its resolved inputs and instance services
    (`http` and `state`: the server's, or a dry run's recorded client and memory)."""
    logger = StepLogger(loaded.secrets)
    ctx = TriggerContext(
        log=logger,
        http=http,
        config=loaded.config,
        connections=loaded.connections,
        state=BoundState(state, loaded.instance_id, flow.id),
        instance_id=loaded.instance_id,
        flow_id=flow.id,
        webhook_urls=loaded.webhook_urls,
    )
    scope = {
        "config": dict(loaded.config),
        "instance": {"id": loaded.instance_id, "name": loaded.name},
        "flow": {"id": flow.id, "name": flow.label},
    }
    label = f"The {hook} hook of trigger '{flow.trigger.label}' in flow '{flow.label}'"
    error: dict[str, Any] | None = None
    try:
        raw = render(flow.trigger.inputs, scope, ExpressionLimits())
        inputs = cls.Inputs.model_validate(raw)
        async with asyncio.timeout(flow.settings.step_timeout):
            await getattr(cls(), hook)(inputs, ctx)
    except Exception as exc:
        kind, message, hint = _hook_failure(exc, label, flow.settings.step_timeout)
        error = _error(kind, message, hint, loaded.secrets, flow.trigger.id)
    return LifecycleRun(
        flow_id=flow.id,
        kind="hook",
        status="failed" if error else "succeeded",
        error=error,
        logs=[f"{line.level}: {line.message}" for line in logger.lines],
    )


def _hook_failure(exc: Exception, label: str, timeout: float) -> tuple[str, str, str]:
    """(kind, message, hint) of a hook that raised."""
    if isinstance(exc, TimeoutError):
        return "timeout", f"{label} took longer than {timeout:g} s.", "Raise its step_timeout."
    if isinstance(exc, FlowyardError):
        return exc.kind, f"{label} failed: {exc.message}", exc.hint
    if isinstance(exc, pydantic.ValidationError):
        problem = exc.errors()[0]["msg"]
        return "misconfigured", f"{label} has invalid inputs: {problem}.", "Fix its inputs."
    return "crashed", f"{label} crashed: {type(exc).__name__}: {exc}", "A bug in its component."


def _error(
    kind: str, message: str, hint: str, secrets: tuple[str, ...], step: str | None = None
) -> dict[str, Any]:
    return {
        "kind": kind,
        "message": redact(message, secrets),
        "hint": redact(hint, secrets),
        "step": step,
    }
