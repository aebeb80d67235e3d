"""A transient failure's message tells the truth about retrying: once with no retry policy,
every attempt with one, and a connection failure never claims a retry that does not happen."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from components.api import TriggerEvent
from components.registry import Registry, default_registry
from runtime.context import RunContext
from runtime.engine import run_flow
from runtime.http import make_http_client
from runtime.model import Flow
from runtime.observer import MemoryRecorder, Status

GOLDEN_COMPONENTS = Path(__file__).parent / "golden" / "components"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return default_registry(GOLDEN_COMPONENTS)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client() as client:
        yield client


def one_step(step: dict[str, Any]) -> Flow:
    return Flow.model_validate(
        {
            "id": "main",
            "trigger": {"id": "trigger", "action": "manual.manual"},
            "steps": [step],
            "edges": [{"from": "trigger", "to": step["id"]}],
        }
    )


async def failed_hint(flow: Flow, registry: Registry, http: httpx.AsyncClient) -> str:
    recorder = MemoryRecorder()
    await run_flow(flow, TriggerEvent(), RunContext(registry=registry, http=http), recorder)
    record = recorder.records[-1]
    assert record.status == Status.FAILED
    assert record.error is not None
    return record.error.hint


async def test_without_a_retry_policy_the_hint_says_it_was_tried_once(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    flow = one_step({"id": "flaky", "action": "testkit.flaky", "inputs": {"fail_times": 5}})
    hint = await failed_hint(flow, registry, http)
    assert "It was tried once: the step has no retry policy" in hint
    assert "retried by its policy" not in hint


async def test_with_a_retry_policy_the_hint_counts_the_attempts(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    step = {
        "id": "flaky",
        "action": "testkit.flaky",
        "inputs": {"fail_times": 5},
        "retry": {"max_attempts": 2, "delay": 0, "jitter": False},
    }
    hint = await failed_hint(one_step(step), registry, http)
    assert hint == "It failed all 2 attempts its retry policy allows."


async def test_a_refused_connection_does_not_claim_a_retry(
    registry: Registry, http: httpx.AsyncClient
) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook"
    flow = one_step({"id": "call", "action": "http.request", "inputs": {"url": url}})
    hint = await failed_hint(flow, registry, http)
    assert hint.startswith("Check that the service is reachable.")
    assert "retried by its policy" not in hint
    assert "no retry policy" in hint
