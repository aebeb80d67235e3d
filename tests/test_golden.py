"""Golden flows: each `golden/*.yaml` holds an integration, a run and its expected records.

    integration: {...}          # an integration file's content
    run: {flow: main, payload: {...}, config: {...}}
    expect:
      status: succeeded
      steps:                    # step records in the order they finished
        - [trigger, succeeded]                      # id and status, or a mapping:
        - {id: fetch, status: succeeded, attempt: 3, iteration: 0, port: out,
           output: {...}, error: "substring of the message", error_kind: retryable}
      output: ...               # execution output (optional)
      response: {...}           # the respond step's reply (optional)
      error: "substring"        # execution error message (optional)
      sleeps: [1.0, 2.0]        # waits asked of the engine's clock (optional)
      children:                 # executions of called flows, with their records (optional)
        - {flow: helper, steps: [...]}

New files are collected automatically. The engine's clock is fake: nothing here sleeps.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.api import TriggerEvent
from components.registry import Registry, default_registry
from runtime.context import RunContext
from runtime.engine import run_flow
from runtime.http import make_http_client
from runtime.model import Integration
from runtime.observer import MemoryRecorder, StepRecord

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(GOLDEN.glob("*.yaml"))


@pytest.fixture(scope="module")
def registry() -> Registry:
    registry = default_registry(GOLDEN / "components")
    assert not registry.problems, registry.problems
    return registry


def check_record(record: StepRecord, want: Any, index: int) -> None:
    if isinstance(want, list):
        want = {"id": want[0], "status": want[1]}
    where = f"record {index} ({record.step_id})"
    assert record.step_id == want["id"], f"{where}: expected step {want['id']}"
    assert record.status.value == want["status"], f"{where}: {record.error}"
    if "attempt" in want:
        assert record.attempt == want["attempt"], where
    if "iteration" in want:
        got = record.iteration[-1] if record.iteration else None
        assert got == want["iteration"], where
    if "iteration_path" in want:
        assert list(record.iteration) == want["iteration_path"], where
    if "port" in want:
        assert record.port == want["port"], where
    if "output" in want:
        assert record.output == want["output"], where
    if "input" in want:
        assert record.input == want["input"], where
    if "error" in want:
        assert record.error is not None, where
        assert want["error"] in record.error.message, f"{where}: {record.error.message}"
    if "error_kind" in want:
        assert record.error is not None and record.error.kind == want["error_kind"], where
    if "logs" in want:
        messages = [line.message for line in record.logs]
        for expected in want["logs"]:
            assert any(expected in m for m in messages), f"{where}: {messages}"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
async def test_golden(path: Path, registry: Registry) -> None:
    case = yaml.safe_load(path.read_text())
    integration = Integration.model_validate(case["integration"])
    run = case["run"]
    flow = integration.flow(run["flow"])
    assert flow is not None
    payload = run.get("payload", {})
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    recorder = MemoryRecorder()
    async with make_http_client() as http:
        context = RunContext(
            registry=registry,
            http=http,
            config=run.get("config", {}),
            flows={f.id: f for f in integration.flows},
            sleep=fake_sleep,
            random=random.Random(0),
        )
        event = TriggerEvent(body=payload.get("body"), headers=payload.get("headers", {}))
        result = await run_flow(flow, event, context, recorder)

    expect = case["expect"]
    records = recorder.for_execution(result.execution_id)
    summary = [(r.step_id, r.status.value, r.iteration) for r in records]
    assert result.status.value == expect["status"], (result.error, summary)
    assert len(records) == len(expect["steps"]), summary
    for index, (record, want) in enumerate(zip(records, expect["steps"], strict=True)):
        check_record(record, want, index)
    if "output" in expect:
        assert result.output == expect["output"]
    if "response" in expect:
        assert result.response is not None
        got = {"status": result.response.status, "body": result.response.body}
        got["headers"] = dict(result.response.headers)
        assert got == {"headers": {}, **expect["response"]}
    if "error" in expect:
        assert result.error is not None and expect["error"] in result.error.message, result.error
    children = [e for e in recorder.executions if e.parent_execution_id == result.execution_id]
    assert [c.flow_id for c in children] == [c["flow"] for c in expect.get("children", [])]
    for child, want_child in zip(children, expect.get("children", []), strict=True):
        child_records = recorder.for_execution(child.execution_id)
        assert len(child_records) == len(want_child["steps"])
        for index, (record, want) in enumerate(
            zip(child_records, want_child["steps"], strict=True)
        ):
            check_record(record, want, index)
    if "sleeps" in expect:
        assert sleeps == pytest.approx(expect["sleeps"])
