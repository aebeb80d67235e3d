"""Test runs from the designer: run a draft flow on a test payload, run up to a step, listen.

Convention (as in the other services): `async` functions taking the `Hub`; database work runs in a
worker thread. Failures raise `app.services.errors` (NotFound, Conflict, InvalidInput).

A test run (`run_test`) runs the integration's newest version (the draft being edited) on the
engine, with no instance: config is the declared defaults plus the `config` overrides given,
connections are only those given (never stored), state lives in memory for the run. It is
recorded exactly like a real run (an execution row and step records through `SqlRecorder`, with
`instance_id` NULL), so `app.services.executions` lists and shows it; its id starts with
`test-<integration row id>-`, which is how `executions` reports `source: "test"` (no schema
change). Every engine report also goes to the caller's live `observer` (badges as steps start
and finish). An invalid flow is refused before anything runs or is stored.

Run up to here (`upto`): only that step and the steps it depends on (its ancestors) run. With
`reuse_from` (an earlier execution of the same flow), those ancestors reuse the outputs that run
recorded instead of running again: each shows as succeeded with the old output and a log line
naming the execution it came from. The trigger always runs (on the payload given), the `upto`
step itself always runs, and steps without a succeeded top-level record in that run run again.

Listening (`start_listening`): a test URL `/webhooks/test/<token>` that captures the next request
sent to it (method, headers, query, body parsed exactly as real ingest parses it), saves it as a
test payload on the flow (named "Captured <date time>"), answers the sender 202, and wakes
`await listener.wait()`. It expires after `expires_in` seconds; an unknown, used or expired token is
404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from sqlmodel import Session, col, select

from app.persistence import repositories as repo
from app.persistence.db import session_scope
from app.persistence.models import (
    ExecutionRow,
    InstanceRow,
    IntegrationRow,
    IntegrationVersionRow,
    StepRecordRow,
    TestPayloadRow,
)
from app.persistence.recording import SqlRecorder
from app.services import payloads
from app.services.bodies import BodyError, BodyOptions, parse_body
from app.services.config_values import ConfigValueError, check_connections, coerce_config
from app.services.environment import config_values
from app.services.errors import Conflict, InvalidInput, NotFound, ServiceError
from app.services.executions import TEST_RUN_PREFIX
from app.services.hub import Hub
from app.services.ingest import Incoming, IngestError, Reply
from app.services.integrations import IssueView
from app.services.payloads import PayloadInput, TestPayload
from app.services.routing import body_options
from components.api import Connection, Response, TriggerEvent
from components.registry import Registry
from runtime.context import RunContext
from runtime.engine import Pin, run_flow
from runtime.graph import LOOP_PORTS, loop_bodies, to_graph
from runtime.ids import new_execution_id
from runtime.model import Flow, Integration, Step
from runtime.observer import ExecutionInfo, ExecutionResult, Observer, Status, StepRecord
from runtime.redaction import redact, secret_values
from runtime.suite_model import PinnedOutput
from runtime.validation import errors_only, validate_flow

__all__ = [
    "TEST_RUN_PREFIX",
    "Listener",
    "TestRequest",
    "TestRun",
    "capture",
    "last_test_run",
    "run_test",
    "start_listening",
]

log = logging.getLogger("flowyard.testruns")


class TestRequest(BaseModel):
    """An unsaved sample request to run a flow on (a saved test payload is given by its id)."""

    __test__ = False  # not a pytest test class, despite the name
    model_config = ConfigDict(extra="forbid")

    method: str = "POST"
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)


class TestRun(BaseModel):
    """How a test run ended. Step records: `executions.get_execution(hub, execution_id)`."""

    __test__ = False

    execution_id: str
    flow_id: str
    status: str = Field(description="succeeded, failed, crashed or cancelled.")
    started_at: float
    duration_ms: float
    steps_run: int
    output: Any = None
    error: dict[str, Any] | None = None
    response: dict[str, Any] | None = Field(
        None, description="What a respond step answered: {status, headers, body}."
    )
    upto: str | None = None
    reused: list[str] = Field(
        default_factory=list, description="Steps whose output came from `reuse_from`."
    )


# --- running ------------------------------------------------------------------------------------


@dataclass
class _Setup:
    """What one test run needs from the database (read in one transaction)."""

    integration: Integration
    integration_id: int
    flow: Flow
    request: TestRequest
    earlier: dict[str, StepRecord] = field(default_factory=dict)


async def run_test(
    hub: Hub,
    name: str,
    flow_id: str,
    payload: int | TestRequest | PayloadInput | Mapping[str, Any] | None = None,
    *,
    observer: Observer | None = None,
    upto: str | None = None,
    reuse_from: str | None = None,
    config: Mapping[str, Any] | None = None,
    connections: Mapping[str, Mapping[str, str]] | None = None,
    pinned: Mapping[str, PinnedOutput] | None = None,
) -> TestRun:
    """Run the draft flow on a test payload (its id, or a request), recorded as an execution.

    `observer` receives every engine report live. `upto` runs only that step and its ancestors;
    `reuse_from` (with `upto`) reuses their outputs from that earlier execution. `config`
    overrides declared defaults (typed like a deploy form); `connections` are test credentials
    by slot. `pinned` steps are not run: their pinned output (and port) is used and their
    records say so. Refused with InvalidInput (naming the step) when the flow has errors, and with
    InvalidInput by field (`payload`, `upto`, `reuse_from`, `config.<key>`,
    `connections.<slot>`, `pinned.<step>`) for bad arguments; nothing runs or is stored then.
    """
    request = _request(payload) if not isinstance(payload, int) else None
    if reuse_from is not None and upto is None:
        raise InvalidInput(
            "Reusing an earlier run needs the step to run up to.",
            details={"reuse_from": "give `upto` too: the step whose ancestors are reused"},
        )
    setup = await asyncio.to_thread(
        _setup, hub, name, flow_id, payload if isinstance(payload, int) else None, reuse_from
    )
    flow, integration = setup.flow, setup.integration
    request = request or setup.request
    only, reuse = _partial(hub.registry, flow, upto, setup.earlier)
    flow = _runnable_part(hub.registry, integration, flow, only)
    pins = _pins(flow, pinned or {})
    values, hidden = _config(integration, config or {})
    creds = _connections(integration, connections or {})
    execution_id = f"{TEST_RUN_PREFIX}{setup.integration_id}-{new_execution_id()}"
    context = RunContext(
        registry=hub.registry,
        http=hub.http,
        execution_id=execution_id,
        config=values,
        connections=creds,
        instance={"id": None, "name": "test"},
        instance_id=execution_id,  # state of a test run is its own (kept in memory)
        secrets=tuple(hidden),
        flows={f.id: f for f in integration.flows},
    )
    recorder = SqlRecorder(hub.db)
    await asyncio.to_thread(_insert_execution, hub, execution_id, flow.id)
    tee = _Tee(recorder, observer)
    try:
        result = await run_flow(
            flow, _event(request), context, tee, only=only, reuse=reuse or None, pinned=pins
        )
    finally:
        await asyncio.shield(recorder.flush())
    masked = secret_values([*hidden, *_connection_values(creds)])
    return _view(result, masked, upto, sorted(reuse, key=_order(flow)))


def _pins(flow: Flow, pinned: Mapping[str, PinnedOutput]) -> dict[str, Pin]:
    steps = {s.id for s in flow.steps}
    unknown = [s for s in pinned if s not in steps]
    if unknown:
        known = ", ".join(s.id for s in flow.steps) or "none"
        raise InvalidInput(
            f"Flow '{flow.label}' has no step '{unknown[0]}' to pin.",
            details={f"pinned.{s}": f"no such step (its steps: {known})" for s in unknown},
            hint="Pin a step of this flow (the trigger always runs).",
        )
    return {s: Pin(p.output, p.port) for s, p in pinned.items()}


def _request(payload: TestRequest | PayloadInput | Mapping[str, Any] | None) -> TestRequest:
    if payload is None:
        return TestRequest()
    if isinstance(payload, TestRequest):
        return payload
    data = (
        payload.model_dump(include={"body", "headers", "query"})
        if isinstance(payload, PayloadInput)
        else dict(payload)
    )
    try:
        return TestRequest.model_validate(data)
    except ValidationError as exc:
        details = {
            ".".join(["payload", *(str(p) for p in e["loc"])]): e["msg"] for e in exc.errors()
        }
        raise InvalidInput(
            "The test request is not valid.",
            details=details,
            hint="Give body, headers (text values), query and method.",
        ) from None


def _setup(
    hub: Hub, name: str, flow_id: str, payload_id: int | None, reuse_from: str | None
) -> _Setup:
    with session_scope(hub.db, write=False) as session:
        owner = session.exec(select(IntegrationRow).where(IntegrationRow.name == name)).first()
        if owner is None or owner.id is None:
            raise NotFound(f"There is no integration named '{name}'.")
        integration = repo.load_integration(session, name)
        flow = next((f for f in integration.flows if f.id == flow_id), None)
        if flow is None:
            known = ", ".join(f.id for f in integration.flows) or "none"
            raise NotFound(f"Integration '{name}' has no flow '{flow_id}' (its flows: {known}).")
        request = TestRequest()
        if payload_id is not None:
            row = session.get(TestPayloadRow, payload_id)
            if row is None or row.integration_id != owner.id:
                raise NotFound(f"Integration '{name}' has no test payload {payload_id}.")
            if row.flow_id != flow_id:
                raise InvalidInput(
                    f"Test payload '{row.name}' belongs to flow '{row.flow_id}', not '{flow_id}'.",
                    details={"payload": f"a payload of flow '{row.flow_id}'"},
                    hint="Pick a payload saved on this flow's trigger.",
                )
            request = TestRequest(body=row.body, headers=dict(row.headers), query=dict(row.query))
        earlier: dict[str, StepRecord] = {}
        if reuse_from is not None:
            earlier = _earlier_records(session, owner.id, flow_id, reuse_from)
    return _Setup(integration, owner.id, flow, request, earlier)


def _earlier_records(
    session: Session, integration_id: int, flow_id: str, execution_id: str
) -> dict[str, StepRecord]:
    """The succeeded top-level step records of an earlier run of the same flow."""
    row = session.get(ExecutionRow, execution_id)
    if row is None:
        raise NotFound(f"There is no execution '{execution_id}' to reuse outputs from.")
    owned = execution_id.startswith(f"{TEST_RUN_PREFIX}{integration_id}-")
    if not owned and row.instance_id is not None:
        instance = session.get(InstanceRow, row.instance_id)
        version = session.get(IntegrationVersionRow, instance.version_id) if instance else None
        owned = version is not None and version.integration_id == integration_id
    if not owned or row.flow_id != flow_id or row.parent_execution_id is not None:
        raise InvalidInput(
            f"Execution '{execution_id}' is not a run of flow '{flow_id}' of this integration.",
            details={"reuse_from": "pick an earlier run of this flow"},
        )
    records: dict[str, StepRecord] = {}
    for step in session.exec(
        select(StepRecordRow)
        .where(StepRecordRow.execution_id == execution_id, StepRecordRow.status == "succeeded")
        .order_by(col(StepRecordRow.id))
    ):
        if step.iteration_path:
            continue
        records[step.step_id] = StepRecord(
            execution_id=execution_id,
            step_id=step.step_id,
            step_name=step.step_name,
            action=step.action,
            status=Status.SUCCEEDED,
            input=step.input,
            output=step.output,
            port=step.port,
        )
    return records


def _runnable_part(
    registry: Registry, integration: Integration, flow: Flow, only: set[str] | None
) -> Flow:
    """The flow to run, or InvalidInput naming its errors. A run up to a step (`only`) minds
    only the steps it runs and flow-wide problems: a half-built step elsewhere does not block
    it; the run then gets the flow cut down to those steps (the engine runs only valid flows)."""
    every = errors_only(validate_flow(flow, registry, integration))
    if not every:
        return flow
    errors = [e for e in every if only is None or e.step is None or e.step in only]
    if not errors and only is not None:
        return flow.model_copy(
            update={
                "steps": [s for s in flow.steps if s.id in only],
                "edges": [e for e in flow.edges if e.source in only and e.target in only],
            }
        )
    more = f" (and {len(errors) - 1} more problem{'s' * (len(errors) > 2)})" * (len(errors) > 1)
    raise InvalidInput(
        f"Flow '{flow.label}' cannot run: {errors[0].message}{more}",
        details={"issues": [IssueView.of(flow, i).model_dump() for i in errors]},
        hint=errors[0].hint or "Fix the problems listed, then run the test again.",
    )


def _partial(
    registry: Registry, flow: Flow, upto: str | None, earlier: Mapping[str, StepRecord]
) -> tuple[set[str] | None, dict[str, StepRecord]]:
    """(steps to run, records to reuse) for a run up to `upto`; (None, {}) for a whole run."""
    if upto is None:
        return None, {}
    graph = to_graph(flow)
    if upto not in graph:
        known = ", ".join(s.id for s in flow.all_steps())
        raise InvalidInput(
            f"Flow '{flow.label}' has no step '{upto}' to run up to.",
            details={"upto": f"no step '{upto}' (its steps: {known})"},
        )
    only = {upto, *nx.ancestors(graph, upto)}

    def is_loop(step: Step) -> bool:
        try:
            return registry.action(step.action).ports == LOOP_PORTS
        except LookupError:
            return False

    # A loop around `upto` must run (its body is where `upto` runs); so must `upto` itself.
    enclosing = {
        loop for loop, body in loop_bodies(graph, is_loop, flow.edges).items() if upto in body
    }
    fresh = {upto, flow.trigger.id, *enclosing}
    reuse = {k: r for k, r in earlier.items() if k in only and k not in fresh}
    return only, reuse


def _config(integration: Integration, given: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Declared defaults plus typed overrides, and the secret values among them."""
    declared = {v.key: v for v in integration.config}
    problems: dict[str, str] = {}
    typed: dict[str, Any] = {}
    for key, value in given.items():
        variable = declared.get(key)
        if variable is None:
            names = ", ".join(declared) or "none"
            problems[f"config.{key}"] = f"there is no config variable '{key}' (declared: {names})"
        elif value is not None:
            try:
                typed[key] = coerce_config(variable, value)
            except ConfigValueError as exc:
                problems[f"config.{key}"] = str(exc)
    if problems:
        raise InvalidInput("The test run's config values are not valid.", details=problems)
    values, hidden = config_values(integration.config, typed)
    return values, hidden


def _connections(
    integration: Integration, given: Mapping[str, Mapping[str, str]]
) -> dict[str, Connection]:
    found, problems = check_connections(integration.connections, dict(given))
    # A test needs only the connections its steps use: a required slot left out is fine here.
    problems = {k: m for k, m in problems.items() if not m.endswith("is required")}
    if problems:
        raise InvalidInput("The test run's connections are not valid.", details=problems)
    return {
        slot: Connection(slot, type_, {k: SecretStr(v) for k, v in values.items()})
        for slot, (type_, values) in found.items()
    }


def _connection_values(connections: Mapping[str, Connection]) -> list[str]:
    return [v.get_secret_value() for c in connections.values() for v in c.values.values()]


def _event(request: TestRequest) -> TriggerEvent:
    headers = {k.lower(): v for k, v in request.headers.items()}
    body = request.body
    if body is None:
        raw = b""
    elif isinstance(body, str):
        raw = body.encode("utf-8")
    else:
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers.setdefault("content-type", "application/json")
    return TriggerEvent(
        body=body, headers=headers, query=dict(request.query), raw_body=raw, method=request.method
    )


def _insert_execution(hub: Hub, execution_id: str, flow_id: str) -> None:
    """The execution row, visible as running before the first step finishes."""
    with session_scope(hub.db) as session:
        session.add(
            ExecutionRow(
                id=execution_id,
                flow_id=flow_id,
                status="running",
                queued_at=time.time(),
                started_at=time.time(),
            )
        )


def _order(flow: Flow) -> Any:
    order = {s.id: i for i, s in enumerate(flow.all_steps())}
    return lambda step_id: order.get(step_id, len(order))


def _view(
    result: ExecutionResult, masked: tuple[str, ...], upto: str | None, reused: list[str]
) -> TestRun:
    response: Response | None = result.response
    error = result.error
    return TestRun(
        execution_id=result.execution_id,
        flow_id=result.flow_id,
        status=result.status.value,
        started_at=result.started_at,
        duration_ms=result.duration_ms,
        steps_run=result.steps_run,
        output=redact(result.output, masked),
        error=None
        if error is None
        else redact(
            {"kind": error.kind, "message": error.message, "hint": error.hint, "step": error.step},
            masked,
        ),
        response=None
        if response is None
        else redact(
            {"status": response.status, "headers": dict(response.headers), "body": response.body},
            masked,
        ),
        upto=upto,
        reused=reused,
    )


class _Tee:
    """Every report to the recorder, and to the caller's live observer (whose failures are
    logged and never break the run)."""

    def __init__(self, recorder: SqlRecorder, live: Observer | None) -> None:
        self._recorder, self._live = recorder, live

    def _tell(self, method: str, *args: Any) -> None:
        if self._live is None:
            return
        try:
            getattr(self._live, method)(*args)
        except Exception:
            log.exception("the live observer of a test run failed in %s; it gets no more", method)
            self._live = None

    def execution_started(self, info: ExecutionInfo) -> None:
        self._recorder.execution_started(info)
        self._tell("execution_started", info)

    def step_started(self, record: StepRecord) -> None:
        self._recorder.step_started(record)
        self._tell("step_started", record)

    def step_finished(self, record: StepRecord) -> None:
        self._recorder.step_finished(record)
        self._tell("step_finished", record)

    def response_ready(self, execution_id: str, response: Response) -> None:
        self._recorder.response_ready(execution_id, response)
        self._tell("response_ready", execution_id, response)

    def execution_finished(self, result: ExecutionResult) -> None:
        self._recorder.execution_finished(result)
        self._tell("execution_finished", result)


async def last_test_run(hub: Hub, name: str, flow_id: str) -> str | None:
    """The id of the newest test run of the flow (what "run up to here" reuses), if any."""
    return await asyncio.to_thread(_last_test_run, hub, name, flow_id)


def _last_test_run(hub: Hub, name: str, flow_id: str) -> str | None:
    with session_scope(hub.db, write=False) as session:
        owner = session.exec(select(IntegrationRow.id).where(IntegrationRow.name == name)).first()
        if owner is None:
            raise NotFound(f"There is no integration named '{name}'.")
        prefix = f"{TEST_RUN_PREFIX}{owner}-"
        return session.exec(
            select(ExecutionRow.id)
            .where(
                col(ExecutionRow.id).startswith(prefix, autoescape=True),
                ExecutionRow.flow_id == flow_id,
                col(ExecutionRow.parent_execution_id).is_(None),
            )
            .order_by(col(ExecutionRow.started_at).desc(), col(ExecutionRow.id).desc())
            .limit(1)
        ).first()


# --- listening ----------------------------------------------------------------------------------

_DROPPED_HEADERS = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "upgrade"}
)
"""Not kept in a captured payload: they describe the transport, not the request."""

_MAX_LISTEN_SECONDS = 3600.0
_listeners: dict[str, Listener] = {}
"""Active listeners by token, for every hub of this process (tokens are unguessable)."""


class Listener:
    """A test URL waiting for one request; see the module docstring."""

    def __init__(self, hub: Hub, integration: str, flow_id: str, timeout: float, cap: int) -> None:
        self.hub = hub
        self.integration = integration
        self.flow_id = flow_id
        self.token = secrets.token_urlsafe(24)
        self.url = f"{hub.settings.base_url}/webhooks/test/{self.token}"
        self.expires_at = time.time() + timeout
        self.method: str | None = None
        """The captured request's method (test payloads keep body, headers and query)."""
        self.captured: TestPayload | None = None
        self._cap = cap
        self.body_options: BodyOptions | None = None
        self._claimed = False
        loop = asyncio.get_running_loop()
        self._future: asyncio.Future[TestPayload | None] = loop.create_future()
        self._timer = loop.call_later(timeout, self._close)

    @property
    def active(self) -> bool:
        """Still waiting: not captured, cancelled or expired."""
        return not self._future.done() and time.time() < self.expires_at

    async def wait(self, seconds: float | None = None) -> TestPayload | None:
        """The captured test payload; None when the listener expired or was cancelled, or after
        `seconds` (it keeps listening then: check `active`)."""
        if self._future.done():
            return self._future.result()
        limit = self.expires_at - time.time()
        if seconds is not None:
            limit = min(limit, seconds)
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(self._future), max(limit, 0))
        if not self.active:
            self._close()
        return self._future.result() if self._future.done() else None

    def cancel(self) -> None:
        """Stop listening: the URL answers 404 from now on; waiters get None."""
        self._close()

    def _close(self, payload: TestPayload | None = None) -> None:
        self._timer.cancel()
        if _listeners.get(self.token) is self:
            del _listeners[self.token]
        if not self._future.done():
            self._future.set_result(payload)


async def start_listening(
    hub: Hub, name: str, flow_id: str, *, expires_in: float = 300.0
) -> Listener:
    """A test URL for the flow that captures the next request as a test payload.

    The URL (`listener.url`) accepts any method; the body is capped like the flow's webhook
    trigger caps it. `expires_in` (seconds, at most an hour) is how long it listens.
    """
    if not 0 < expires_in <= _MAX_LISTEN_SECONDS:
        raise InvalidInput(
            f"Listen for more than 0 and at most {_MAX_LISTEN_SECONDS:g} seconds.",
            details={"expires_in": f"between 0 and {_MAX_LISTEN_SECONDS:g} seconds"},
        )
    flow = await asyncio.to_thread(_listened_flow, hub, name, flow_id)
    for token, listener in list(_listeners.items()):  # forget expired ones
        if not listener.active:
            listener._close()
            _listeners.pop(token, None)
    listener = Listener(hub, name, flow.id, expires_in, _body_cap(hub, flow))
    # As a deployed flow parses its bodies (no instance yet: its config reads as empty).
    listener.body_options = body_options(hub.registry, flow, {}, {"id": "", "name": ""})
    _listeners[listener.token] = listener
    return listener


def _listened_flow(hub: Hub, name: str, flow_id: str) -> Flow:
    with session_scope(hub.db, write=False) as session:
        try:
            integration = repo.load_integration(session, name)
        except repo.NotFound:
            raise NotFound(f"There is no integration named '{name}'.") from None
    flow = next((f for f in integration.flows if f.id == flow_id), None)
    if flow is None:
        known = ", ".join(f.id for f in integration.flows) or "none"
        raise NotFound(f"Integration '{name}' has no flow '{flow_id}' (its flows: {known}).")
    return flow


def _body_cap(hub: Hub, flow: Flow) -> int:
    cap = flow.trigger.inputs.get("max_body_bytes")
    if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
        return cap
    return hub.settings.max_body_bytes


async def capture(hub: Hub, token: str, request: Incoming) -> Reply:
    """The test URL's handler (called by `app.routes.webhooks`): capture, save, answer 202.

    Raises `IngestError`: 404 for an unknown, used, cancelled or expired token (or one that is
    capturing another request right now), 413 / 400 for a body over the cap or one that cannot
    be parsed (the listener keeps waiting then), 409 when the flow is gone.
    """
    listener = _listeners.get(token)
    if listener is None or listener.hub is not hub or not listener.active or listener._claimed:
        if listener is not None and not listener.active:
            listener._close()
        raise IngestError(
            404,
            "There is no test URL here: it expired, was cancelled or already captured a request.",
            hint="Start listening again in the designer's test panel.",
        )
    listener._claimed = True  # one capture at a time; released if this request is refused
    try:
        raw = await request.body(listener._cap)
        try:
            body = parse_body(request.headers, raw, options=listener.body_options)
        except BodyError as exc:
            raise IngestError(
                400, str(exc), hint="Send a body that matches its Content-Type."
            ) from None
        saved = await _save_capture(hub, listener, request, body)
    except BaseException:
        listener._claimed = False
        raise
    listener.method = request.method
    listener.captured = saved
    listener._close(saved)
    return Reply(
        202,
        {"captured": True, "payload_id": saved.id, "name": saved.name, "flow_id": saved.flow_id},
    )


async def _save_capture(hub: Hub, listener: Listener, request: Incoming, body: Any) -> TestPayload:
    headers = {k: v for k, v in request.headers.items() if k not in _DROPPED_HEADERS}
    base = "Captured " + time.strftime("%Y-%m-%d %H:%M", time.localtime())
    for attempt in range(1, 100):
        name = base if attempt == 1 else f"{base} ({attempt})"
        try:
            return await payloads.create_payload(
                hub,
                listener.integration,
                PayloadInput(
                    flow_id=listener.flow_id,
                    name=name,
                    body=body,
                    headers=headers,
                    query=request.query,
                ),
            )
        except Conflict:
            continue  # a payload of that name exists: try the next number
        except ServiceError as exc:  # the flow or integration was deleted meanwhile
            raise IngestError(409, f"The request was not captured: {exc.message}") from None
    raise IngestError(409, "The request was not captured: too many captures this minute.")
