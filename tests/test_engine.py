"""Engine behaviour that golden files cannot express: cancellation, timeouts, secrets, context."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from aiohttp import web
from pydantic import SecretStr

from components.api import Connection, TriggerEvent
from components.registry import Registry, default_registry
from runtime.context import RunContext
from runtime.engine import backoff_delay, run_flow
from runtime.graph import flow_from_node_link, flow_to_node_link, to_graph
from runtime.http import make_http_client
from runtime.model import Flow, RetryPolicy
from runtime.observer import MemoryRecorder, Status, StepRecord
from tests.loopback import serving

GOLDEN_COMPONENTS = Path(__file__).parent / "golden" / "components"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return default_registry(GOLDEN_COMPONENTS)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client() as client:
        yield client


def linear(*steps: dict[str, Any], **settings: Any) -> Flow:
    ids = ["trigger", *(s["id"] for s in steps)]
    return Flow.model_validate(
        {
            "id": "main",
            "settings": settings,
            "trigger": {"id": "trigger", "action": "manual.manual"},
            "steps": list(steps),
            "edges": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
        }
    )


async def test_cancelling_the_task_records_cancelled_and_reraises(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    flow = linear({"id": "slow", "action": "testkit.sleep", "inputs": {"seconds": 30}})
    recorder = MemoryRecorder()
    started = asyncio.Event()

    class Probe(MemoryRecorder):
        def step_started(self, record: Any) -> None:
            recorder.step_started(record)
            if record.step_id == "slow":
                started.set()

        def step_finished(self, record: Any) -> None:
            recorder.step_finished(record)

        def execution_finished(self, result: Any) -> None:
            recorder.execution_finished(result)

    task = asyncio.create_task(
        run_flow(flow, TriggerEvent(), RunContext(registry=registry, http=http), Probe())
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorder.records[-1].step_id == "slow"
    assert recorder.records[-1].status == Status.CANCELLED
    assert recorder.results[-1].status == Status.CANCELLED


async def test_execution_timeout_fails_the_execution(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    flow = linear({"id": "slow", "action": "testkit.sleep", "inputs": {"seconds": 30}}, timeout=0.1)
    recorder = MemoryRecorder()
    result = await run_flow(
        flow, TriggerEvent(), RunContext(registry=registry, http=http), recorder
    )
    assert result.status == Status.FAILED
    assert result.error is not None and result.error.kind == "limit_exceeded"
    assert "ran longer than 0.1 s" in result.error.message
    assert recorder.records[-1].status == Status.CANCELLED


async def test_the_flow_setting_expression_budget_bounds_its_expressions(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    step = {
        "id": "count",
        "action": "testkit.echo",
        "inputs": {"value": "{{ $count($map([1..5000], function($i){ $i * 2 })) }}"},
    }
    context = RunContext(registry=registry, http=http)
    result = await run_flow(linear(step), TriggerEvent(), context)  # about 15,000 steps
    assert result.status == Status.SUCCEEDED
    assert result.output == 5000
    tight = await run_flow(linear(step, expression_budget=10_000), TriggerEvent(), context)
    assert tight.status == Status.FAILED
    assert tight.error is not None and tight.error.kind == "limit_exceeded"
    assert "more than 10,000 evaluation steps, its expression budget" in tight.error.message
    assert "Raise expression_budget in the flow settings" in tight.error.hint
    with pytest.raises(pydantic.ValidationError, match="expression_budget"):
        linear(step, expression_budget=0)
    with pytest.raises(pydantic.ValidationError, match="expression_budget"):
        linear(step, expression_budget=10**9)


async def test_secrets_are_redacted_from_inputs_and_logs(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    flow = linear(
        {"id": "say", "action": "testkit.echo", "inputs": {"value": "token is hunter2hunter2"}}
    )
    connections = {"crm": Connection("crm", "bearer", {"token": SecretStr("hunter2hunter2")})}
    recorder = MemoryRecorder()
    context = RunContext(registry=registry, http=http, connections=connections)
    await run_flow(flow, TriggerEvent(), context, recorder)
    record = recorder.records[-1]
    assert record.status == Status.SUCCEEDED
    assert all("hunter2hunter2" not in line.message for line in record.logs)
    assert record.logs[0].message == "echo token is ***"
    assert record.input == {"value": "token is ***", "port": "out"}
    assert record.output == "token is ***"


async def test_invalid_input_type_names_step_and_input(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    flow = linear(
        {
            "id": "flaky",
            "name": "Flaky",
            "action": "testkit.flaky",
            "inputs": {"fail_times": "{{ trigger.body.n }}"},
        }
    )
    result = await run_flow(
        flow, TriggerEvent(body={"n": "many"}), RunContext(registry=registry, http=http)
    )
    assert result.status == Status.FAILED
    assert result.error is not None
    assert result.error.kind == "misconfigured"
    assert "Step 'Flaky' has invalid inputs: input 'fail_times'" in result.error.message
    assert "'many'" in result.error.message


async def test_idempotency_key_is_stable_across_retries_and_differs_per_step(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    retry = {"max_attempts": 3, "delay": 0, "jitter": False}
    flow = linear(
        {"id": "one", "action": "testkit.flaky", "inputs": {"fail_times": 0}},
        {"id": "two", "action": "testkit.flaky", "inputs": {"fail_times": 1}, "retry": retry},
    )
    recorder = MemoryRecorder()

    async def no_sleep(_: float) -> None:
        return None

    context = RunContext(registry=registry, http=http, execution_id="exec-1", sleep=no_sleep)
    await run_flow(flow, TriggerEvent(), context, recorder)
    one, two = recorder.records[1].output, recorder.records[2].output
    assert two["attempt"] == 2
    assert one["key"] != two["key"]
    recorder2 = MemoryRecorder()
    context2 = RunContext(registry=registry, http=http, execution_id="exec-1", sleep=no_sleep)
    await run_flow(flow, TriggerEvent(), context2, recorder2)
    assert recorder2.records[2].output["key"] == two["key"]


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(delay=1, max_delay=5, backoff="exponential", jitter=False)
    assert [backoff_delay(policy, n, 0.5, None) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    jittered = RetryPolicy(delay=2, backoff="fixed", jitter=True)
    assert backoff_delay(jittered, 1, 0.0, None) == pytest.approx(1.5)
    assert backoff_delay(jittered, 1, 0.999, None) == pytest.approx(2.499)
    assert backoff_delay(jittered, 1, 0.5, 10) == 10


def test_node_link_round_trip() -> None:
    flow = Flow.model_validate(
        {
            "id": "main",
            "name": "Main",
            "trigger": {"id": "trigger", "action": "manual.manual"},
            "steps": [
                {"id": "route", "action": "branch.value", "inputs": {"value": 1, "cases": []}},
                {"id": "a", "action": "testkit.echo", "retry": {"max_attempts": 2}},
            ],
            "edges": [
                {"from": "trigger", "to": "route"},
                {"from": "route", "to": "a", "port": "else"},
            ],
        }
    )
    data = flow_to_node_link(flow)
    assert {n["id"] for n in data["nodes"]} == {"trigger", "route", "a"}
    assert flow_from_node_link(data) == flow
    graph = to_graph(flow)
    assert graph.edges["route", "a"]["port"] == "else"


def test_node_link_keeps_the_file_order_of_edges() -> None:
    flow = Flow.model_validate(
        {
            "id": "main",
            "trigger": {"id": "trigger", "action": "manual.manual"},
            "steps": [{"id": s, "action": "testkit.echo"} for s in ("a", "b", "c")],
            "edges": [
                {"from": "b", "to": "c"},
                {"from": "trigger", "to": "b"},
                {"from": "a", "to": "c"},
                {"from": "trigger", "to": "a"},
            ],
        }
    )
    assert flow_from_node_link(flow_to_node_link(flow)).edges == flow.edges


async def test_state_persists_across_runs_by_scope(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    flow = linear(
        {"id": "get", "action": "state.get", "inputs": {"key": "cursor", "default": 0}},
        {
            "id": "put",
            "action": "state.set",
            "inputs": {"key": "cursor", "value": "{{ steps.get.output.value + 1 }}"},
        },
    )
    context = RunContext(registry=registry, http=http)
    for expected in (1, 2):
        recorder = MemoryRecorder()
        await run_flow(flow, TriggerEvent(), context, recorder)
        assert recorder.records[-1].output["value"] == expected


async def test_an_engine_bug_marks_the_execution_crashed_not_failed(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    class BrokenObserver(MemoryRecorder):
        def step_finished(self, record: Any) -> None:
            if record.step_id == "say":
                raise RuntimeError("recorder lost its database")
            super().step_finished(record)

    flow = linear({"id": "say", "action": "testkit.echo", "inputs": {"value": 1}})
    observer = BrokenObserver()
    result = await run_flow(
        flow, TriggerEvent(), RunContext(registry=registry, http=http), observer
    )
    assert result.status == Status.CRASHED
    assert result.error is not None
    assert result.error.kind == "crashed"
    assert "RuntimeError: recorder lost its database" in result.error.message
    assert observer.results == [result]


async def test_secret_inputs_are_redacted_in_step_records(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    flow = Flow.model_validate(
        {
            "id": "main",
            "trigger": {
                "id": "trigger",
                "action": "webhook.webhook",
                "inputs": {"signature": {"scheme": "hmac_sha256", "secret": "s3cret-signing-key"}},
            },
        }
    )
    recorder = MemoryRecorder()
    result = await run_flow(
        flow, TriggerEvent(body={}), RunContext(registry=registry, http=http), recorder
    )
    assert result.status == Status.SUCCEEDED
    (record,) = recorder.records
    assert record.input["signature"]["secret"] == "**********"
    assert "s3cret-signing-key" not in repr(record.to_json())


async def test_context_secrets_are_redacted_in_reports_but_not_in_the_result(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    flow = linear({"id": "say", "action": "testkit.echo", "inputs": {"value": "{{ config.key }}"}})
    recorder = MemoryRecorder()
    context = RunContext(
        registry=registry, http=http, config={"key": "cfg-secret-1"}, secrets=["cfg-secret-1"]
    )
    result = await run_flow(flow, TriggerEvent(), context, recorder)
    assert recorder.records[-1].output == "***"
    assert recorder.records[-1].input["value"] == "***"
    assert recorder.results[-1].output == "***"
    assert result.output == "cfg-secret-1"  # a calling flow or sync reply gets the real value


# --- partial runs: `only` and `reuse` (the designer's "run up to here") -------------------------


def diamond() -> Flow:
    """trigger -> a -> b -> c, and a -> side: each echoes a value derived from its parent."""
    return Flow.model_validate(
        {
            "id": "main",
            "trigger": {"id": "trigger", "action": "manual.manual"},
            "steps": [
                {"id": "a", "action": "testkit.echo", "inputs": {"value": "{{ trigger.body.n }}"}},
                {
                    "id": "b",
                    "action": "testkit.echo",
                    "inputs": {"value": "{{ steps.a.output + 1 }}"},
                },
                {
                    "id": "c",
                    "action": "testkit.echo",
                    "inputs": {"value": "{{ steps.b.output + 1 }}"},
                },
                {"id": "side", "action": "testkit.echo", "inputs": {"value": "side"}},
            ],
            "edges": [
                {"from": "trigger", "to": "a"},
                {"from": "a", "to": "b"},
                {"from": "b", "to": "c"},
                {"from": "a", "to": "side"},
            ],
        }
    )


def earlier(step_id: str, output: Any, port: str = "out") -> StepRecord:
    return StepRecord(
        execution_id="earlier-run",
        step_id=step_id,
        step_name=step_id,
        action="testkit.echo",
        status=Status.SUCCEEDED,
        input={"value": "recorded input"},
        output=output,
        port=port,
    )


async def test_only_runs_the_given_steps_and_records_no_other(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    recorder = MemoryRecorder()
    result = await run_flow(
        diamond(),
        TriggerEvent(body={"n": 1}),
        RunContext(registry=registry, http=http),
        recorder,
        only={"a", "b"},
    )
    assert result.status == Status.SUCCEEDED
    assert [(r.step_id, r.status, r.output) for r in recorder.records] == [
        ("trigger", Status.SUCCEEDED, recorder.records[0].output),
        ("a", Status.SUCCEEDED, 1),
        ("b", Status.SUCCEEDED, 2),
    ]
    assert [r.step_id for r in recorder.started] == ["trigger", "a", "b"]
    assert result.output == 2
    assert result.steps_run == 3


async def test_only_skips_a_step_whose_inputs_were_left_out(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    recorder = MemoryRecorder()
    result = await run_flow(
        diamond(),
        TriggerEvent(body={"n": 1}),
        RunContext(registry=registry, http=http),
        recorder,
        only={"c"},
    )
    assert result.status == Status.SUCCEEDED
    assert [(r.step_id, r.status) for r in recorder.records] == [
        ("trigger", Status.SUCCEEDED),
        ("c", Status.SKIPPED),
    ]


async def test_reused_steps_are_recorded_with_the_earlier_output_and_not_run(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    flow = diamond()
    # `a` would fail if it ran: the reused record stands in for it.
    steps = [
        s.model_copy(update={"action": "testkit.fail", "inputs": {"message": "ran"}})
        if s.id == "a"
        else s
        for s in flow.steps
    ]
    failing = flow.model_copy(update={"steps": steps})
    recorder = MemoryRecorder()
    result = await run_flow(
        failing,
        TriggerEvent(body={"n": 1}),
        RunContext(registry=registry, http=http),
        recorder,
        only={"a", "b"},
        reuse={"a": earlier("a", 41)},
    )
    assert result.status == Status.SUCCEEDED
    assert result.output == 42
    assert [r.step_id for r in recorder.started] == ["trigger", "a", "b"]  # live badges
    a = recorder.records[1]
    assert (a.step_id, a.status, a.output, a.port) == ("a", Status.SUCCEEDED, 41, "out")
    assert a.input == {"value": "recorded input"}
    assert a.execution_id == result.execution_id
    assert [line.message for line in a.logs] == [
        "reused the output of execution earlier-run; the step did not run"
    ]
    assert recorder.records[2].logs[0].message == "echo 42"  # b ran, on the reused output


async def test_a_reused_branch_takes_its_recorded_port(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    flow = Flow.model_validate(
        {
            "id": "main",
            "trigger": {"id": "trigger", "action": "manual.manual"},
            "steps": [
                {"id": "pick", "action": "testkit.echo", "inputs": {"value": 1, "port": "out"}},
                {"id": "yes", "action": "testkit.echo", "inputs": {"value": "yes"}},
                {"id": "no", "action": "testkit.echo", "inputs": {"value": "no"}},
            ],
            "edges": [
                {"from": "trigger", "to": "pick"},
                {"from": "pick", "to": "yes"},
                {"from": "pick", "to": "no", "port": "error"},
            ],
        }
    )
    flow = flow.model_copy(
        update={
            "steps": [flow.steps[0].model_copy(update={"on_error": "continue"}), *flow.steps[1:]]
        }
    )
    recorder = MemoryRecorder()
    result = await run_flow(
        flow,
        TriggerEvent(),
        RunContext(registry=registry, http=http),
        recorder,
        reuse={"pick": earlier("pick", {"error": "recorded"}, port="error")},
    )
    assert result.status == Status.SUCCEEDED
    assert [(r.step_id, r.status) for r in recorder.records] == [
        ("trigger", Status.SUCCEEDED),
        ("pick", Status.SUCCEEDED),
        ("yes", Status.SKIPPED),
        ("no", Status.SUCCEEDED),
    ]


async def test_a_record_whose_port_is_gone_is_not_reused(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    recorder = MemoryRecorder()
    result = await run_flow(
        diamond(),
        TriggerEvent(body={"n": 1}),
        RunContext(registry=registry, http=http),
        recorder,
        only={"a"},
        reuse={"a": earlier("a", 99, port="removed")},
    )
    assert result.output == 1  # ran for real
    assert recorder.records[1].logs[0].message == "echo 1"


async def test_steps_inside_a_loop_body_are_not_reused(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    flow = Flow.model_validate(
        {
            "id": "main",
            "trigger": {"id": "trigger", "action": "manual.manual"},
            "steps": [
                {"id": "each", "action": "loop.items", "inputs": {"items": [1, 2]}},
                {
                    "id": "double",
                    "action": "testkit.echo",
                    "inputs": {"value": "{{ loop.item * 2 }}"},
                },
            ],
            "edges": [
                {"from": "trigger", "to": "each"},
                {"from": "each", "to": "double", "port": "body"},
            ],
        }
    )
    recorder = MemoryRecorder()
    result = await run_flow(
        flow,
        TriggerEvent(),
        RunContext(registry=registry, http=http),
        recorder,
        reuse={"double": earlier("double", 0)},
    )
    assert result.output == {"count": 2, "results": [2, 4]}
    recorder_loop = MemoryRecorder()
    reused_loop = await run_flow(
        flow,
        TriggerEvent(),
        RunContext(registry=registry, http=http),
        recorder_loop,
        reuse={"each": earlier("each", {"count": 0, "results": []}, port="done")},
    )
    assert reused_loop.output == {"count": 0, "results": []}
    assert [r.step_id for r in recorder_loop.records] == ["trigger", "each"]  # body not run


class FreshTokens:
    """An OAuth token source whose tokens were issued after the run's values were read."""

    def __init__(self) -> None:
        self.token = "fresh-token-1"

    async def access_token(self) -> str:
        return self.token

    async def refreshed(self, rejected: str) -> str:
        self.token = "fresh-token-2"
        return self.token


async def test_tokens_handed_out_during_a_run_are_masked_like_stored_secrets(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    seen: list[str] = []

    async def echo_authorization(request: web.Request) -> web.Response:
        seen.append(request.headers["Authorization"])
        if len(seen) == 1:
            return web.json_response({"error": "expired"}, status=401)
        return web.json_response({"you_sent": request.headers["Authorization"]})

    app = web.Application()
    app.router.add_get("/me", echo_authorization)
    async with serving(app) as port:
        flow = linear(
            {
                "id": "me",
                "action": "http.request",
                "inputs": {"url": f"http://127.0.0.1:{port}/me", "connection": "crm"},
            }
        )
        stored = {"access_token": SecretStr("stored-token-0")}
        connections = {"crm": Connection("crm", "oauth2", stored, tokens=FreshTokens())}
        recorder = MemoryRecorder()
        context = RunContext(registry=registry, http=http, connections=connections)
        await run_flow(flow, TriggerEvent(), context, recorder)
    assert seen == ["Bearer fresh-token-1", "Bearer fresh-token-2"]  # refreshed after the 401
    record = recorder.records[-1]
    assert record.status == Status.SUCCEEDED
    assert record.output["body"] == {"you_sent": "Bearer ***"}
    for kept in (record.output, record.logs, record.exchanges):
        assert "fresh-token" not in repr(kept), kept
