"""Replay a past execution on the current draft with a per-step diff; turn one into a test.

`replay_on_draft(hub, execution_id)` takes any finished execution (of an instance, or a test
run), and runs its request on the flow of the same id in the integration's newest version (the
draft being edited), with:

- outbound HTTP answered by the execution's own recorded exchanges (`runtime.recorded`, matched
  by method and URL, bodies not compared: an edited flow may send another body); a call the
  original did not make fails its step with `no_recording`: nothing is sent again;
- the instance's config, connections and a copy of its current state when the instance still
  exists, else the integration's `testing:` values (as test suites use); `config` overrides;
- nothing stored: the replay's records stay in memory.

The diff pairs step records by (step id, loop iteration): steps that ran (any status but
`skipped`) in one run only, and for each step that ran in both its status, port, input and
output side by side with the paths that changed (`runtime.diffing`).

`execution_as_test(hub, execution_id, name, save)` makes a suite payload (h-testcore's
`runtime.suite_model.FlowTest`) from an execution: its request, its exchanges as `responses`,
and as expectations its status, the top-level steps that ran and were skipped, and each ran
step's output. With `save`, it is appended to the draft flow's `tests:`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from app.persistence import repositories as repo
from app.persistence.db import session_scope
from app.persistence.models import ExecutionRow, InboxRow, InstanceRow, StepRecordRow
from app.services.bodies import parse_body
from app.services.dry_run import instance_state
from app.services.environment import load_environment
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.executions import execution_flow
from app.services.hub import Hub
from components.api import TriggerEvent
from runtime.context import RunContext
from runtime.diffing import changed_paths
from runtime.engine import run_flow
from runtime.errors import FlowValidationError
from runtime.model import Flow, Integration
from runtime.observer import MemoryRecorder, StepRecord
from runtime.recorded import RecordedClient, Responder, exchanges_to_recordings
from runtime.redaction import credential_header
from runtime.state import MemoryState
from runtime.suite_model import FlowTest
from runtime.suites import suite_config, suite_connections

__all__ = [
    "ReplayDiff",
    "ReplayOptions",
    "SaveAsTest",
    "SavedTest",
    "SideBySide",
    "StepDiff",
    "execution_as_test",
    "replay_on_draft",
]

_FINISHED = ("succeeded", "failed", "crashed", "cancelled")
_NOISE_HEADERS = frozenset(
    {"host", "content-length", "connection", "user-agent", "accept-encoding"}
)
"""Request headers a saved test leaves out: the transport's, not the sender's (credentials are
left out too, by `credential_header`: the test is written into the integration file)."""


class ReplayOptions(BaseModel):
    """Options of a replay on the draft."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] = Field(
        default_factory=dict, description="Config values over the instance's (or test) ones."
    )


class SaveAsTest(BaseModel):
    """Options of Save as test."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None, min_length=1, max_length=200, description="Default: `Execution <id>`."
    )
    save: bool = Field(False, description="Append it to the draft flow's tests.")


class SideBySide(BaseModel):
    """One value in the original run and in the replay, and the paths where they differ."""

    original: Any = None
    replay: Any = None
    changed: list[str] = Field(description="Paths that differ (`` is the whole value).")


class StepDiff(BaseModel):
    """A step that ran in both runs."""

    step_id: str
    step_name: str
    iteration: list[int] = Field(description="Loop indexes, outermost first; [] outside loops.")
    status: SideBySide
    port: SideBySide
    input: SideBySide
    output: SideBySide
    error: SideBySide
    changed: bool = Field(description="Anything above differs.")


class ReplayDiff(BaseModel):
    """The original execution against its replay on the draft."""

    execution_id: str
    integration: str
    flow_id: str
    draft_version: int
    original_status: str
    replay_status: str
    replay_error: dict[str, Any] | None = None
    only_original: list[str] = Field(description="Steps (`id` or `id[i]`) only the original ran.")
    only_replay: list[str] = Field(description="Steps only the replay ran.")
    steps: list[StepDiff]
    identical: bool = Field(description="Same steps ran, with the same statuses and values.")


class SavedTest(BaseModel):
    """An execution as a suite payload of its flow."""

    integration: str
    flow_id: str
    test: dict[str, Any] = Field(description="The test, as it reads in the integration file.")
    saved: bool = Field(description="Appended to the draft flow's tests.")


# --- loading the original -------------------------------------------------------------------------


class _Original:
    def __init__(
        self, row: ExecutionRow, records: list[StepRecordRow], event: TriggerEvent, raw: Any
    ) -> None:
        self.row, self.records, self.event, self.request = row, records, event, raw


def _load(hub: Hub, execution_id: str) -> _Original:
    with session_scope(hub.db, write=False) as session:
        row = session.get(ExecutionRow, execution_id)
        if row is None:
            raise NotFound(f"There is no execution '{execution_id}'.")
        if row.parent_execution_id is not None:
            raise InvalidInput(
                f"Execution '{execution_id}' is a flow called by another execution.",
                hint=f"Replay its parent, '{row.parent_execution_id}'.",
            )
        if row.status not in _FINISHED:
            raise Conflict(
                f"Execution '{execution_id}' is {row.status}; only a finished one can be replayed.",
                hint="Wait until it has finished.",
            )
        records = list(
            session.exec(
                select(StepRecordRow)
                .where(col(StepRecordRow.execution_id) == execution_id)
                .order_by(col(StepRecordRow.id))
            )
        )
        inbox = session.exec(
            select(InboxRow).where(col(InboxRow.execution_id) == execution_id)
        ).first()
        session.expunge_all()
    if inbox is not None:
        headers = {str(k).lower(): str(v) for k, v in inbox.headers.items()}
        try:
            body: Any = parse_body(headers, inbox.body)
        except Exception:
            body = inbox.body.decode("utf-8", errors="replace")
        event = TriggerEvent(
            body=body,
            headers=headers,
            query=dict(inbox.query),
            raw_body=inbox.body,
            method=inbox.method,
        )
        request = {"method": inbox.method, "headers": headers, "query": inbox.query, "body": body}
        return _Original(row, records, event, request)
    return _Original(row, records, *_from_trigger_record(execution_id, records))


def _from_trigger_record(
    execution_id: str, records: list[StepRecordRow]
) -> tuple[TriggerEvent, dict[str, Any]]:
    """A test run keeps no request row: its trigger's output is the request it was given."""
    out = records[0].output if records else None
    if not isinstance(out, dict) or "body" not in out:
        raise Conflict(
            f"Execution '{execution_id}' kept no request to replay.",
            hint="Run the flow on a test payload instead.",
        )
    headers = {str(k): str(v) for k, v in (out.get("headers") or {}).items()}
    query = dict(out.get("query") or {})
    method = str(out.get("method") or "POST")
    raw = str(out.get("raw_body") or "").encode()
    event = TriggerEvent(
        body=out["body"], headers=headers, query=query, raw_body=raw, method=method
    )
    return event, {"method": method, "headers": headers, "query": query, "body": out["body"]}


async def _integration_of(hub: Hub, execution_id: str) -> str:
    found = await execution_flow(hub, execution_id)
    if found is None:
        raise Conflict(
            f"Execution '{execution_id}' cannot be matched to one integration.",
            hint="Its instance was deleted and several integrations have a flow of that id.",
        )
    return found.integration


def _draft(hub: Hub, name: str, flow_id: str) -> tuple[Integration, Flow]:
    with session_scope(hub.db, write=False) as session:
        try:
            integration = repo.load_integration(session, name)
        except repo.NotFound:
            raise NotFound(f"There is no integration named '{name}' any more.") from None
    flow = next((f for f in integration.flows if f.id == flow_id), None)
    if flow is None:
        raise Conflict(
            f"The draft of integration '{name}' has no flow '{flow_id}' any more.",
            hint="Restore the flow in the draft, or replay another execution.",
        )
    return integration, flow


# --- replay ---------------------------------------------------------------------------------------


async def replay_on_draft(
    hub: Hub, execution_id: str, config: Mapping[str, Any] | None = None
) -> ReplayDiff:
    """Run the execution's request on the draft, answered by its recordings; see the module.

    `config` overrides config values (a designer test run keeps none of those it was given)."""
    original = await asyncio.to_thread(_load, hub, execution_id)
    name = await _integration_of(hub, execution_id)
    integration, flow = await asyncio.to_thread(_draft, hub, name, original.row.flow_id)
    context = await asyncio.to_thread(_context, hub, original.row.instance_id, integration)
    context.config = {**context.config, **(config or {})}
    exchanges = [e for r in original.records for e in (r.exchanges or [])]
    recorder = MemoryRecorder()
    async with RecordedClient(Responder(exchanges_to_recordings(exchanges))) as client:
        context.http = client
        try:
            result = await run_flow(flow, original.event, context, recorder)
        except FlowValidationError as exc:
            raise InvalidInput(
                f"The draft of flow '{flow.label}' cannot run: {exc.message}",
                details={"issues": [str(i) for i in exc.issues]},
                hint="Fix the flow in the designer, then replay again.",
            ) from None
    replayed = recorder.for_execution(result.execution_id)
    error = None
    if result.error is not None:
        e = result.error
        error = {"kind": e.kind, "message": e.message, "hint": e.hint, "step": e.step}
    only_original, only_replay, steps = _diff(original.records, replayed)
    return ReplayDiff(
        execution_id=execution_id,
        integration=integration.name,
        flow_id=flow.id,
        draft_version=integration.version,
        original_status=original.row.status,
        replay_status=result.status.value,
        replay_error=error,
        only_original=only_original,
        only_replay=only_replay,
        steps=steps,
        identical=not only_original
        and not only_replay
        and not any(s.changed for s in steps)
        and original.row.status == result.status.value,
    )


def _context(hub: Hub, instance_id: str | None, integration: Integration) -> RunContext:
    """What the replay runs with (its `http` is set by the caller)."""
    flows = {f.id: f for f in integration.flows}
    if instance_id is not None:
        with session_scope(hub.db, write=False) as session:
            exists = session.get(InstanceRow, instance_id) is not None
            state = instance_state(session, instance_id) if exists else {}
        if exists:
            env = load_environment(hub, instance_id)
            memory = MemoryState()
            memory.data = {(instance_id, f, k): v for (f, k), v in state.items()}
            context = env.run_context(hub.registry, hub.http, memory, "replay")
            context.flows = flows
            return context
    config, _missing = suite_config(integration)
    return RunContext(
        registry=hub.registry,
        http=hub.http,
        execution_id="replay",
        config=config,
        connections=suite_connections(integration),
        flows=flows,
    )


def _label(step_id: str, iteration: list[int]) -> str:
    return step_id + "".join(f"[{i}]" for i in iteration)


def _diff(
    original: list[StepRecordRow], replayed: list[StepRecord]
) -> tuple[list[str], list[str], list[StepDiff]]:
    before = {(r.step_id, tuple(r.iteration_path)): r for r in original if r.status != "skipped"}
    after = {(r.step_id, r.iteration): r for r in replayed if r.status.value != "skipped"}
    only_original = [_label(s, list(i)) for (s, i) in before if (s, i) not in after]
    only_replay = [_label(s, list(i)) for (s, i) in after if (s, i) not in before]
    steps = []
    for key, old in before.items():
        new = after.get(key)
        if new is None:
            continue
        new_error = None
        if new.error is not None:
            new_error = {"kind": new.error.kind, "message": new.error.message}
        old_error = (
            {"kind": old.error["kind"], "message": old.error["message"]} if old.error else None
        )
        sides = {
            "status": _side(old.status, new.status.value),
            "port": _side(old.port, new.port),
            "input": _side(old.input, new.input),
            "output": _side(old.output, new.output),
            "error": _side(old_error, new_error),
        }
        steps.append(
            StepDiff(
                step_id=old.step_id,
                step_name=old.step_name or old.step_id,
                iteration=list(key[1]),
                changed=any(side.changed for side in sides.values()),
                **sides,
            )
        )
    return only_original, only_replay, steps


def _side(original: Any, replay: Any) -> SideBySide:
    return SideBySide(original=original, replay=replay, changed=changed_paths(original, replay))


# --- save as test ---------------------------------------------------------------------------------


async def execution_as_test(
    hub: Hub, execution_id: str, name: str | None = None, *, save: bool = False
) -> SavedTest:
    """The execution as a suite payload of its flow; with `save`, appended to the draft flow's
    tests (Conflict when the flow already has a test of that name)."""
    original = await asyncio.to_thread(_load, hub, execution_id)
    integration = await _integration_of(hub, execution_id)
    config = await asyncio.to_thread(_plain_config, hub, original.row.instance_id)
    test = _as_test(original, name or f"Execution {execution_id}", config)
    if save:
        await asyncio.to_thread(_append, hub, integration, original.row.flow_id, test)
    return SavedTest(
        integration=integration,
        flow_id=original.row.flow_id,
        test=test.model_dump(mode="json", exclude_defaults=True),
        saved=save,
    )


def _plain_config(hub: Hub, instance_id: str | None) -> dict[str, Any]:
    """The instance's config values a test may keep (secret-typed ones left out); {} without
    an instance. The recorded URLs were built from them, so the test's calls match again."""
    if instance_id is None:
        return {}
    try:
        env = load_environment(hub, instance_id)
    except NotFound:
        return {}
    hidden = {v.key for v in env.integration.config if v.type == "secret"}
    return {k: v for k, v in env.config.items() if k not in hidden}


def _as_test(original: _Original, name: str, config: dict[str, Any]) -> FlowTest:
    records = [r for r in original.records if not r.iteration_path]
    trigger = original.records[0].step_id if original.records else None
    ran = [r for r in records if r.status == "succeeded" and r.step_id != trigger]
    request = original.request
    headers = {
        k: v
        for k, v in request["headers"].items()
        if k.lower() not in _NOISE_HEADERS and not credential_header(k)
    }
    exchanges = [e for r in original.records for e in (r.exchanges or [])]
    expect: dict[str, Any] = {
        "status": "succeeded" if original.row.status == "succeeded" else "failed",
        "ran": list(dict.fromkeys(r.step_id for r in ran)),
        "skipped": [r.step_id for r in records if r.status == "skipped"],
        "steps": {r.step_id: {"output": r.output} for r in ran if r.output is not None},
    }
    if original.row.status != "succeeded" and original.row.error:
        expect["error"] = original.row.error.get("message")
    return FlowTest.model_validate(
        {
            "name": name,
            "config": config,
            "request": {
                "method": request["method"],
                "headers": headers,
                "query": request["query"],
                "body": request["body"],
            },
            "responses": [
                r.model_dump(mode="json", exclude_defaults=True)
                for r in exchanges_to_recordings(exchanges)
            ],
            "expect": expect,
        }
    )


def _append(hub: Hub, integration: str, flow_id: str, test: FlowTest) -> None:
    with session_scope(hub.db) as session:
        flow, revision = repo.load_flow(session, integration, flow_id)
        if any(t.name == test.name for t in flow.tests):
            raise Conflict(
                f"Flow '{flow.label}' already has a test named '{test.name}'.",
                hint="Give the test another name.",
            )
        repo.save_flow(
            session, integration, flow.model_copy(update={"tests": [*flow.tests, test]}), revision
        )
