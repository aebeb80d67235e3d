"""Running payload suites: each test of a flow run headless, checked, and counted for coverage.

`await run_suite(integration, registry)` runs every test of every flow (or `flows`) and returns
a `SuiteReport`: one `TestOutcome` per test (passed, or the first mismatch: step, path,
expected, got) and a `FlowCoverage` per flow. Outbound HTTP is answered by the test's
`responses:` and then its flow's `test_responses:` (`runtime.recorded`); pass `live=` an HTTP
client to call the real services instead (exchanges are still recorded). The engine's clock is
a fake one, so retries and delays do not wait.

Each test runs as instance `test` with fresh in-memory state (seeded from the test's `state:`),
webhook URLs `https://flowyard.test/webhooks/<flow id>`, the config of `testing: config:` then
the test's own `config:` over the declared defaults, and credentials from
`testing: connections:` (slots and fields left out get dummy values, masked like real ones).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from components.api import Connection, TriggerEvent
from components.registry import Registry
from runtime.context import RunContext
from runtime.coverage import FlowCoverage, run_coverage
from runtime.engine import Pin, run_flow
from runtime.errors import FlowValidationError
from runtime.matching import first_mismatch
from runtime.model import Flow, Integration
from runtime.observer import ExecutionResult, MemoryRecorder, Status, StepRecord
from runtime.prepare import prepare_flow
from runtime.recorded import RecordedClient, Responder
from runtime.state import MemoryState
from runtime.suite_model import Expectation, FlowTest

__all__ = [
    "Failure",
    "SuiteReport",
    "TestOutcome",
    "check_expectation",
    "run_suite",
    "run_test",
    "suite_config",
    "suite_connections",
]

TEST_INSTANCE = "test"
_DUMMY_FIELDS = {
    "api_key": ("api_key",),
    "basic": ("username", "password"),
    "bearer": ("token",),
    "oauth2": ("access_token",),
    "custom": (),
}


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a test did not pass: the first mismatch (`step` None for the execution itself)."""

    __test__ = False

    step: str | None
    path: str
    expected: Any
    got: Any
    detail: str = ""

    def __str__(self) -> str:
        where = f"step {self.step}, {self.path}" if self.step else self.path
        text = f"{where}: expected {_shown(self.expected)}, got {_shown(self.got)}"
        return f"{text} ({self.detail})" if self.detail else text

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "path": self.path,
            "expected": self.expected,
            "got": self.got,
            "detail": self.detail,
            "text": str(self),
        }


@dataclass(slots=True)
class TestOutcome:
    """One test's run: passed when `failure` is None."""

    __test__ = False

    flow_id: str
    test: str
    status: str
    duration_ms: float
    failure: Failure | None = None
    records: list[StepRecord] = field(default_factory=list)
    response: dict[str, Any] | None = None
    covered_steps: list[str] = field(default_factory=list)
    covered_paths: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.failure is None

    def to_json(self) -> dict[str, Any]:
        return {
            "flow": self.flow_id,
            "test": self.test,
            "passed": self.passed,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 3),
            "failure": None if self.failure is None else self.failure.to_json(),
            "steps": [r.to_json() for r in self.records],
            "response": self.response,
            "coverage": {"steps": self.covered_steps, "paths": self.covered_paths},
        }


@dataclass(slots=True)
class SuiteReport:
    """Every test's outcome and each flow's coverage."""

    outcomes: list[TestOutcome] = field(default_factory=list)
    coverage: list[FlowCoverage] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": sum(o.passed for o in self.outcomes),
            "failed": sum(not o.passed for o in self.outcomes),
            "tests": [o.to_json() for o in self.outcomes],
            "coverage": [c.to_json() for c in self.coverage],
        }


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


# --- values for test runs -----------------------------------------------------------------------


def suite_config(
    integration: Integration, test: FlowTest | None = None, given: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """(config values, missing required keys): defaults, `testing: config:`, `given`, the
    test's own `config:`, later ones winning."""
    values = {v.key: v.default for v in integration.config if v.default is not None}
    values.update(integration.testing.config)
    values.update(given or {})
    if test is not None:
        values.update(test.config)
    missing = [v.key for v in integration.config if v.required and values.get(v.key) is None]
    return values, missing


def suite_connections(
    integration: Integration, given: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, Connection]:
    """Credentials for test runs: `given`, then `testing: connections:`, then dummies."""
    connections = {}
    for slot in integration.connections:
        values = {f: f"test-{slot.key}-{f}" for f in _DUMMY_FIELDS[slot.type]}
        values.update(integration.testing.connections.get(slot.key, {}))
        values.update((given or {}).get(slot.key, {}))
        secrets = {k: SecretStr(v) for k, v in values.items()}
        connections[slot.key] = Connection(slot.key, slot.type, secrets)
    return connections


def _event(test: FlowTest) -> TriggerEvent:
    request = test.request
    headers = {
        str(k).lower(): json.dumps(v) if isinstance(v, bool) else str(v)
        for k, v in request.headers.items()
    }
    body = request.body
    if body is None:
        raw = b""
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = json.dumps(body, ensure_ascii=False).encode()
        headers.setdefault("content-type", "application/json")
    return TriggerEvent(
        body=body, headers=headers, query=dict(request.query), raw_body=raw, method=request.method
    )


# --- expectations -------------------------------------------------------------------------------


def _last_run(records: Sequence[StepRecord], step_id: str) -> StepRecord | None:
    ran = [r for r in records if r.step_id == step_id and r.status != Status.SKIPPED]
    return ran[-1] if ran else None


def _status_of(records: Sequence[StepRecord], step_id: str) -> str:
    mine = [r for r in records if r.step_id == step_id]
    return "not recorded" if not mine else mine[-1].status.value


def check_expectation(
    expect: Expectation, result: ExecutionResult, records: Sequence[StepRecord]
) -> Failure | None:
    """The first way the run differs from `expect`, or None when it matches."""
    error = result.error.message if result.error else ""
    if result.status.value != expect.status:
        return Failure(None, "status", expect.status, result.status.value, error)
    if expect.error is not None and expect.error not in error:
        return Failure(None, "error", expect.error, error)
    for step_id in expect.ran:
        if _last_run(records, step_id) is None:
            return Failure(step_id, "ran", "ran", _status_of(records, step_id))
    for step_id in expect.skipped:
        ran = _last_run(records, step_id)
        if ran is not None:
            return Failure(step_id, "skipped", "skipped", ran.status.value)
    for step_id, want in expect.steps.items():
        if (failure := _check_step(step_id, want, records)) is not None:
            return failure
    if expect.reply is not None:
        return _check_reply(expect, result)
    return None


def _check_step(step_id: str, want: Any, records: Sequence[StepRecord]) -> Failure | None:
    given = want.model_fields_set
    record = _last_run(records, step_id)
    if record is None:
        got = _status_of(records, step_id)
        if want.status == "skipped" and got == "skipped":
            return None
        return Failure(step_id, "status", want.status or "ran", got)
    if want.status is not None and record.status.value != want.status:
        detail = record.error.message if record.error else ""
        return Failure(step_id, "status", want.status, record.status.value, detail)
    if want.port is not None and record.port != want.port:
        return Failure(step_id, "port", want.port, record.port)
    if "output" in given:
        found = first_mismatch(want.output, record.output, "output")
        if found is not None:
            return Failure(step_id, found.path, found.expected, found.got, _missing(found.missing))
    if want.error is not None:
        message = record.error.message if record.error else ""
        if want.error not in message:
            return Failure(step_id, "error", want.error, message or None)
    return None


def _missing(missing: bool) -> str:
    return "the key is missing" if missing else ""


def _check_reply(expect: Expectation, result: ExecutionResult) -> Failure | None:
    want = expect.reply
    assert want is not None
    reply = result.response
    if reply is None:
        return Failure(None, "reply", "a reply", None, "no respond step answered")
    if want.status is not None and reply.status != want.status:
        return Failure(None, "reply.status", want.status, reply.status)
    headers = {k.lower(): v for k, v in dict(reply.headers).items()}
    wanted = {k.lower(): v for k, v in want.headers.items()}
    found = first_mismatch(wanted, headers, "reply.headers")
    if found is None and "body" in want.model_fields_set:
        found = first_mismatch(want.body, reply.body, "reply.body")
    if found is not None:
        return Failure(None, found.path, found.expected, found.got, _missing(found.missing))
    return None


# --- running ------------------------------------------------------------------------------------


async def _no_wait(_seconds: float) -> None:
    return None


async def run_test(
    integration: Integration,
    flow: Flow,
    test: FlowTest,
    registry: Registry,
    *,
    config: Mapping[str, Any] | None = None,
    connections: Mapping[str, Connection] | None = None,
    live: httpx.AsyncClient | None = None,
) -> TestOutcome:
    """Run one test of `flow` and check it (see the module doc for what the run gets)."""
    values, missing = suite_config(integration, test, config)
    started = time.perf_counter()
    if missing:
        failure = Failure(
            None,
            "config",
            f"values for {', '.join(missing)}",
            None,
            "set them under `testing: config:` in the file, in the test's `config:`, or with "
            "--config",
        )
        return TestOutcome(flow.id, test.name, "invalid", 0.0, failure)
    secret_keys = {v.key for v in integration.config if v.type == "secret"}
    state = MemoryState()
    for key, value in test.state.items():
        await state.store(TEST_INSTANCE, None, key, value)
    recorder = MemoryRecorder()
    responder = Responder([*test.responses, *flow.test_responses])
    client = live if live is not None else RecordedClient(responder)
    context = RunContext(
        registry=registry,
        http=client,
        config=values,
        connections=connections if connections is not None else suite_connections(integration),
        instance={"id": TEST_INSTANCE, "name": TEST_INSTANCE},
        instance_id=TEST_INSTANCE,
        state=state,
        webhook_urls={f.id: f"https://flowyard.test/webhooks/{f.id}" for f in integration.flows},
        secrets=[str(values[k]) for k in secret_keys if values.get(k) is not None],
        flows={f.id: f for f in integration.flows},
        sleep=_no_wait,
    )
    pins = {s: Pin(p.output, p.port) for s, p in test.pinned.items()}
    try:
        result = await run_flow(flow, _event(test), context, recorder, pinned=pins)
    except FlowValidationError as exc:
        failure = Failure(None, "flow", "a valid flow", None, exc.message)
        return TestOutcome(flow.id, test.name, "invalid", 0.0, failure)
    finally:
        if live is None:
            await client.aclose()
    records = recorder.for_execution(result.execution_id)
    covered = run_coverage(prepare_flow(flow, registry), records)
    reply = result.response
    return TestOutcome(
        flow.id,
        test.name,
        result.status.value,
        (time.perf_counter() - started) * 1000,
        check_expectation(test.expect, result, records),
        records,
        None
        if reply is None
        else {"status": reply.status, "headers": dict(reply.headers), "body": reply.body},
        sorted(covered.steps),
        sorted(f"{s}:{p}" for s, p in covered.paths),
    )


async def run_suite(
    integration: Integration,
    registry: Registry,
    *,
    flows: Sequence[str] | None = None,
    config: Mapping[str, Any] | None = None,
    connections: Mapping[str, Mapping[str, str]] | None = None,
    live: httpx.AsyncClient | None = None,
) -> SuiteReport:
    """Run every test of every flow (or of `flows`, by id), with coverage per flow."""
    report = SuiteReport()
    creds = suite_connections(integration, connections)
    for flow in integration.flows:
        if flows is not None and flow.id not in flows:
            continue
        prepared = prepare_flow(flow, registry)
        coverage = FlowCoverage.of(prepared)
        for test in flow.tests:
            outcome = await run_test(
                integration, flow, test, registry, config=config, connections=creds, live=live
            )
            report.outcomes.append(outcome)
            if outcome.status != "invalid":
                coverage.add(test.name, run_coverage(prepared, outcome.records))
        report.coverage.append(coverage)
    return report
