"""The small built-ins: loop, transform, state, delay, log, respond, stop, call_flow, triggers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from components.api import LoopPlan, Response, Result, StepConfigError, StopFlow, TriggerEvent
from components.builtin.call_flow import CallFlow, CallFlowInputs
from components.builtin.delay import DelayWait, DelayWaitInputs
from components.builtin.instance import DeleteTrigger, DeployTrigger
from components.builtin.log import LogMessage, LogMessageInputs
from components.builtin.loop import LoopItems, LoopItemsInputs
from components.builtin.manual import ManualTrigger
from components.builtin.respond import RespondInputs, WebhookRespond
from components.builtin.state import StateGet, StateGetInputs, StateSet, StateSetInputs
from components.builtin.stop import StopError, StopErrorInputs
from components.builtin.transform import TransformObject, TransformObjectInputs
from tests.components.conftest import Harness

# -- loop ------------------------------------------------------------------------------------------


async def test_loop_returns_a_plan(harness: Harness) -> None:
    inputs = LoopItemsInputs(items=[{"a": 1}, {"a": 2}], concurrency=4)
    plan = await LoopItems().run(inputs, harness.ctx())
    assert plan == LoopPlan([{"a": 1}, {"a": 2}], 4)
    assert LoopItems.output_ports({}) == ("body", "done")


async def test_loop_over_nothing_is_fine(harness: Harness) -> None:
    assert await LoopItems().run(LoopItemsInputs(items=[]), harness.ctx()) == LoopPlan([], 1)


@pytest.mark.parametrize(
    ("items", "got"),
    [
        ({"a": 1}, "an object"),
        ("a,b", "a string"),
        (3, "a number"),
        (None, "null"),
        (True, "a boolean"),
    ],
)
async def test_loop_refuses_non_lists(harness: Harness, items: Any, got: str) -> None:
    with pytest.raises(StepConfigError, match=f"must be a list, but they are {got}") as info:
        await LoopItems().run(LoopItemsInputs(items=items), harness.ctx())
    assert "{{" in info.value.hint


@pytest.mark.parametrize("concurrency", [0, 33])
def test_loop_concurrency_bounds(concurrency: int) -> None:
    with pytest.raises(ValidationError):
        LoopItemsInputs(items=[], concurrency=concurrency)


def test_loop_items_is_required() -> None:
    with pytest.raises(ValidationError, match="items"):
        LoopItemsInputs.model_validate({})


# -- transform -------------------------------------------------------------------------------------


async def test_transform_outputs_the_fields(harness: Harness) -> None:
    fields = {"id": 7, "name": "Ada", "tags": ["x"], "nested": {"ok": True}}
    result = await TransformObject().run(TransformObjectInputs(fields=fields), harness.ctx())
    assert result == Result(fields)
    schema = TransformObjectInputs.model_json_schema()
    assert schema["properties"]["fields"]["x-ui"] == "keyvalue"


# -- state -----------------------------------------------------------------------------------------


async def test_state_get_missing_gives_default(harness: Harness) -> None:
    inputs = StateGetInputs(key="cursor", default=0)
    result = await StateGet().run(inputs, harness.ctx())
    assert result.output == {"key": "cursor", "value": 0, "found": False}


async def test_state_set_then_get_per_scope(harness: Harness) -> None:
    flow_a, flow_b = harness.ctx(flow_id="a"), harness.ctx(flow_id="b")
    out = await StateSet().run(StateSetInputs(key="k", value={"n": 1}), flow_a)
    assert out.output == {"key": "k", "value": {"n": 1}}
    await StateSet().run(StateSetInputs(key="k", value="mine", scope="flow"), flow_a)

    get = StateGet()
    assert (await get.run(StateGetInputs(key="k"), flow_b)).output["value"] == {"n": 1}
    assert (await get.run(StateGetInputs(key="k", scope="flow"), flow_a)).output == {
        "key": "k",
        "value": "mine",
        "found": True,
    }
    missing = await get.run(StateGetInputs(key="k", scope="flow"), flow_b)
    assert missing.output["found"] is False


async def test_state_stores_null_as_found(harness: Harness) -> None:
    ctx = harness.ctx()
    await StateSet().run(StateSetInputs(key="k", value=None), ctx)
    result = await StateGet().run(StateGetInputs(key="k", default="d"), ctx)
    assert result.output == {"key": "k", "value": None, "found": True}


async def test_state_refuses_non_json(harness: Harness) -> None:
    with pytest.raises(StepConfigError, match="Cannot store the value under 'k'"):
        await StateSet().run(StateSetInputs(key="k", value={1, 2}), harness.ctx())


def test_state_key_required() -> None:
    with pytest.raises(ValidationError):
        StateGetInputs(key="")
    with pytest.raises(ValidationError):
        StateSetInputs.model_validate({"key": "k"})


# -- delay -----------------------------------------------------------------------------------------


async def test_delay_uses_the_engine_clock(harness: Harness) -> None:
    result = await DelayWait().run(DelayWaitInputs(seconds=90), harness.ctx())
    assert harness.sleeps == [90]
    assert result.output == {"seconds": 90}


@pytest.mark.parametrize("seconds", [-1, 3601])
def test_delay_bounds(seconds: float) -> None:
    with pytest.raises(ValidationError):
        DelayWaitInputs(seconds=seconds)


# -- log -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
async def test_log_writes_at_level(harness: Harness, level: Any) -> None:
    ctx = harness.ctx()
    inputs = LogMessageInputs(level=level, message="100% done", data={"id": 7})
    result = await LogMessage().run(inputs, ctx)
    assert result.output == {"level": level, "message": "100% done"}
    [line] = ctx.log.lines
    assert (line.level, line.message) == (level, '100% done {"id": 7}')


async def test_log_cuts_huge_data(harness: Harness) -> None:
    ctx = harness.ctx()
    await LogMessage().run(LogMessageInputs(message="m", data="x" * 50_000), ctx)
    assert len(ctx.log.lines[0].message) < 10_100


# -- respond ---------------------------------------------------------------------------------------


async def test_respond_sets_the_reply(harness: Harness) -> None:
    inputs = RespondInputs(status=202, headers={"X-Id": "1"}, body={"challenge": "abc"})
    result = await WebhookRespond().run(inputs, harness.ctx())
    assert harness.responses == [Response(202, {"X-Id": "1"}, {"challenge": "abc"})]
    assert result.output == {"status": 202, "headers": {"X-Id": "1"}, "body": {"challenge": "abc"}}


async def test_respond_defaults(harness: Harness) -> None:
    await WebhookRespond().run(RespondInputs(), harness.ctx())
    assert harness.responses == [Response(200, {}, None)]


@pytest.mark.parametrize(
    "data",
    [{"status": 99}, {"status": 600}, {"headers": {"X-A": "a\nb"}}, {"headers": {"a b": "1"}}],
)
def test_respond_refuses_bad_replies(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RespondInputs.model_validate(data)


# -- stop ------------------------------------------------------------------------------------------


async def test_stop_raises_stop_flow(harness: Harness) -> None:
    with pytest.raises(StopFlow, match="Order 7 has no customer") as info:
        await StopError().run(StopErrorInputs(message="Order 7 has no customer"), harness.ctx())
    assert info.value.message == "Order 7 has no customer"
    assert StopError.output_ports({}) == ()


def test_stop_needs_a_message() -> None:
    with pytest.raises(ValidationError):
        StopErrorInputs(message="")


# -- call_flow -------------------------------------------------------------------------------------


async def test_call_flow_forwards_payload_and_result(harness: Harness) -> None:
    harness.call_result = {"status": "ok", "n": 3}
    inputs = CallFlowInputs(flow="sync_customer", body={"id": 1}, headers={"X-From": "main"})
    result = await CallFlow().run(inputs, harness.ctx())
    assert harness.calls == [("sync_customer", {"body": {"id": 1}, "headers": {"X-From": "main"}})]
    assert result == Result({"status": "ok", "n": 3})


async def test_call_flow_defaults(harness: Harness) -> None:
    await CallFlow().run(CallFlowInputs(flow="other"), harness.ctx())
    assert harness.calls == [("other", {"body": None, "headers": {}})]


# -- simple triggers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "kind"),
    [(ManualTrigger, "manual"), (DeployTrigger, "deploy"), (DeleteTrigger, "delete")],
)
async def test_simple_triggers(harness: Harness, trigger: Any, kind: str) -> None:
    assert trigger.kind == kind
    event = TriggerEvent(body={"x": 1})
    out = await trigger().run(trigger.Inputs(), event, harness.ctx())
    assert out["body"] == {"x": 1}
