"""Deploy and tear-down dry runs: run the lifecycle flows and hooks, send nothing, store nothing.

`dry_run(registry, env, event)` runs what a deploy (`deploy_sequence`: hooks, then deploy flows;
the first failure skips the rest) or a tear-down (`teardown_sequence`: every delete flow, then
every hook) would run, on the engine, with:

- outbound HTTP answered by a `runtime.recorded.RecordedClient`: the given recordings and the
  flows' declared `test_responses` first; a call none of them matches gets a stub answer
  (200, echoing the request's body back) instead of failing, so the flow goes on;
- instance state in memory, starting from `state` (a tear-down starts from the instance's);
- nothing recorded in the database.

The report lists each run, every call that would be made (method, URL, body; credential headers
and the run's secret values masked) with what answered it, and each state key that would be set
or deleted. `dry_run_deploy` (a deploy request, checked as `deploy` checks it) and
`dry_run_teardown` (an existing instance) are the server's entry points; the CLI calls
`dry_run` on an integration file.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlmodel import Session, col, select

from app.persistence.db import session_scope
from app.persistence.models import INSTANCE_SCOPE, InstanceStateRow
from app.services.environment import InstanceEnvironment, config_values, load_environment
from app.services.errors import Conflict
from app.services.hub import Hub
from app.services.instances import DeployRequest, plan_deploy
from app.services.lifecycle import (
    LifecycleRun,
    deploy_sequence,
    lifecycle_event,
    run_hook,
    teardown_sequence,
)
from components.api import Connection
from components.registry import Registry
from runtime.engine import run_flow
from runtime.errors import FlowValidationError
from runtime.model import Flow
from runtime.observer import MemoryRecorder
from runtime.recorded import (
    NoRecording,
    RecordedClient,
    RecordedExchange,
    RecordedResponse,
    Responder,
    capturing,
)
from runtime.redaction import redact, secret_values
from runtime.state import MemoryState

__all__ = [
    "DRY_RUN_INSTANCE",
    "ECHO_HEADER",
    "DryRunCall",
    "DryRunReport",
    "DryRunRequest",
    "StateChange",
    "TeardownDryRun",
    "dry_run",
    "dry_run_deploy",
    "dry_run_teardown",
    "instance_state",
]

DRY_RUN_INSTANCE = "dry-run"
"""The instance id a deploy dry run uses (the instance does not exist yet)."""
ECHO_HEADER = "x-flowyard-dry-run"
"""Response header of the stub answers (value `echo`)."""

Event = Literal["deploy", "delete"]
StateKey = tuple[str | None, str]
"""(flow id, or None for instance-wide keys; key)."""


class DryRunCall(BaseModel):
    """One outbound call a run would make, and what answered it in the dry run."""

    flow_id: str
    step_id: str = Field(description="The step (or, for a hook, the trigger) that made it.")
    method: str
    url: str
    body: Any = Field(None, description="The request body (JSON, or text); secrets masked.")
    status: int = Field(description="Status of the answer the dry run gave.")
    answered_by: Literal["recording", "echo"] = Field(
        description="`recording`: a given or declared response; `echo`: the stub."
    )


class StateChange(BaseModel):
    """One instance state key a run would set or delete."""

    scope: str = Field(description="`instance`, or the id of the flow a flow-scoped key is in.")
    key: str
    change: Literal["set", "deleted"]
    value: Any = Field(None, description="The value it would hold (secrets masked).")


class DryRunReport(BaseModel):
    """What a deploy or tear-down would do. Nothing was sent and nothing was stored."""

    event: Event
    instance: str = Field(description="The instance's name.")
    ok: bool = Field(description="Every run succeeded.")
    runs: list[LifecycleRun] = Field(description="In order; a run after a failure is skipped.")
    calls: list[DryRunCall]
    state: list[StateChange]


class DryRunRequest(DeployRequest):
    """A deploy request, plus recorded responses to answer its calls with."""

    responses: list[RecordedExchange] = Field(
        default_factory=list,
        description="Answers to outbound calls (matched by method and URL), used before the "
        "flows' declared test_responses; other calls get an echoing stub.",
    )


class TeardownDryRun(BaseModel):
    """Options of a tear-down dry run."""

    model_config = ConfigDict(extra="forbid")

    responses: list[RecordedExchange] = Field(
        default_factory=list, description="Answers to outbound calls, as for a deploy dry run."
    )


class _EchoingResponder(Responder):
    """A `Responder` whose unmatched calls get 200 with their own body instead of failing."""

    def answer(self, method: str, url: httpx.URL, content: bytes | None) -> RecordedResponse:
        try:
            return super().answer(method, url, content)
        except NoRecording:
            echoed = _json_or_text(content or b"")
            return RecordedResponse(
                status=200, headers={ECHO_HEADER: "echo"}, body={} if echoed == "" else echoed
            )


def _json_or_text(content: bytes) -> Any:
    text = content.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


# --- the run --------------------------------------------------------------------------------------


async def dry_run(
    registry: Registry,
    env: InstanceEnvironment,
    event: Event,
    *,
    responses: Sequence[RecordedExchange] = (),
    state: Mapping[StateKey, Any] | None = None,
) -> DryRunReport:
    """Run `env`'s deploy or tear-down sequence with nothing sent or stored; see the module."""
    sequence = (deploy_sequence if event == "deploy" else teardown_sequence)(
        registry, env.integration
    )
    declared = [r for flow, _ in sequence for r in flow.test_responses]
    memory = MemoryState()
    before = dict(state or {})
    memory.data = {(env.instance_id, flow, key): value for (flow, key), value in before.items()}
    runs: list[LifecycleRun] = []
    calls: list[DryRunCall] = []
    failed = False
    async with RecordedClient(_EchoingResponder([*responses, *declared])) as client:
        for flow, hook_class in sequence:
            if failed and event == "deploy":
                kind: Literal["flow", "hook"] = "flow" if hook_class is None else "hook"
                runs.append(LifecycleRun(flow_id=flow.id, kind=kind, status="skipped"))
                continue
            if hook_class is None:
                run, made = await _run_flow(registry, env, flow, event, client, memory)
            else:
                exchanges: list[dict[str, Any]] = []
                hook = "on_deploy" if event == "deploy" else "on_delete"
                with capturing(exchanges):
                    run = await run_hook(env, flow, hook_class, hook, http=client, state=memory)
                made = [(flow.trigger.id, e) for e in exchanges]
            runs.append(run)
            calls += [_call(flow.id, step, exchange) for step, exchange in made]
            failed = failed or run.status != "succeeded"
    after = {(flow, key): value for (_, flow, key), value in memory.data.items()}
    report = DryRunReport(
        event=event,
        instance=env.name,
        ok=not failed,
        runs=runs,
        calls=calls,
        state=_changes(before, after),
    )
    return DryRunReport.model_validate(redact(report.model_dump(), env.secrets))


async def _run_flow(
    registry: Registry,
    env: InstanceEnvironment,
    flow: Flow,
    event: Event,
    client: httpx.AsyncClient,
    memory: MemoryState,
) -> tuple[LifecycleRun, list[tuple[str, dict[str, Any]]]]:
    recorder = MemoryRecorder()
    context = env.run_context(registry, client, memory, f"dry-run-{flow.id}")
    try:
        result = await run_flow(flow, lifecycle_event(event, env), context, recorder)
    except FlowValidationError as exc:
        invalid = {"kind": exc.kind, "message": str(exc), "hint": "", "step": None}
        return LifecycleRun(flow_id=flow.id, kind="flow", status="failed", error=invalid), []
    error: dict[str, Any] | None = None
    if result.error is not None:
        e = result.error
        error = {"kind": e.kind, "message": e.message, "hint": e.hint, "step": e.step}
    run = LifecycleRun(flow_id=flow.id, kind="flow", status=result.status.value, error=error)
    made = [(r.step_id, e) for r in recorder.records for e in r.exchanges]
    return run, made


def _call(flow_id: str, step_id: str, exchange: Mapping[str, Any]) -> DryRunCall:
    request, response = exchange["request"], exchange["response"]
    echoed = ECHO_HEADER in (response.get("headers") or {})
    return DryRunCall(
        flow_id=flow_id,
        step_id=step_id,
        method=request["method"],
        url=request["url"],
        body=request.get("body"),
        status=response["status"],
        answered_by="echo" if echoed else "recording",
    )


def _changes(before: Mapping[StateKey, Any], after: Mapping[StateKey, Any]) -> list[StateChange]:
    changes = [
        StateChange(scope=flow or "instance", key=key, change="set", value=value)
        for (flow, key), value in after.items()
        if (flow, key) not in before or before[(flow, key)] != value
    ]
    changes += [
        StateChange(scope=flow or "instance", key=key, change="deleted")
        for (flow, key) in before
        if (flow, key) not in after
    ]
    return changes


# --- the server's entry points --------------------------------------------------------------------


async def dry_run_deploy(hub: Hub, request: DryRunRequest) -> DryRunReport:
    """What deploying `request` would do; the request is checked as `deploy` checks it
    (InvalidInput / Conflict name what is wrong). Webhook URLs are placeholders: real ones are
    made when the instance is deployed."""
    plan = await plan_deploy(hub, request)
    config, secret = config_values(plan.integration.config, plan.config)
    connections = {
        slot: Connection(slot, type_, {k: SecretStr(str(v)) for k, v in values.items()})
        for slot, (type_, values) in plan.connections.items()
    }
    env = InstanceEnvironment(
        instance_id=DRY_RUN_INSTANCE,
        name=plan.name,
        status="deploying",
        enabled=True,
        created_at=time.time(),
        integration=plan.integration,
        flows={f.id: f for f in plan.integration.flows},
        config=config,
        connections=connections,
        webhook_urls={f.id: hub.webhook_url(f"dry-run-{f.id}") for f in plan.integration.flows},
        secrets=secret_values([*secret, *_values(connections.values())]),
    )
    return await dry_run(hub.registry, env, "deploy", responses=request.responses)


def _values(connections: Iterable[Connection]) -> list[str]:
    return [v.get_secret_value() for c in connections for v in c.values.values()]


async def dry_run_teardown(
    hub: Hub, instance_id: str, responses: Sequence[RecordedExchange] = ()
) -> DryRunReport:
    """What deleting the instance would do, from its config, connections and current state;
    NotFound when there is no such instance."""
    env, state = await asyncio.to_thread(_load_for_teardown, hub, instance_id)
    if env.problem is not None:
        raise Conflict(
            f"Instance '{env.name}' cannot be dry-run: {env.problem}",
            hint="Restore the secret key its connections were saved with.",
        )
    return await dry_run(hub.registry, env, "delete", responses=responses, state=state)


def _load_for_teardown(
    hub: Hub, instance_id: str
) -> tuple[InstanceEnvironment, dict[StateKey, Any]]:
    env = load_environment(hub, instance_id)
    with session_scope(hub.db, write=False) as session:
        return env, instance_state(session, instance_id)


def instance_state(session: Session, instance_id: str) -> dict[StateKey, Any]:
    """The state an instance's flows can read, by (flow id or None, key)."""
    rows = session.exec(
        select(InstanceStateRow).where(col(InstanceStateRow.instance_id) == instance_id)
    ).all()
    return {
        (None if r.flow_id == INSTANCE_SCOPE else r.flow_id, r.key): r.value
        for r in rows
        if not r.flow_id.startswith("@")  # the host's own records (lifecycle, alerts)
    }
