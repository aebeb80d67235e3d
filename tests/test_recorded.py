"""Recorded HTTP exchanges: step records keep what was sent and answered (secrets masked), and a
run answered from recordings sends nothing, failing clearly on a call nobody recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from components.api import Connection, TriggerEvent
from components.registry import Registry, default_registry
from runtime.context import RunContext
from runtime.engine import run_flow
from runtime.http import TransportName, make_http_client
from runtime.model import Flow
from runtime.observer import MemoryRecorder, Status, StepRecord
from runtime.recorded import (
    NoRecording,
    RecordedClient,
    RecordedExchange,
    Responder,
    exchanges_to_recordings,
)

ROOT = Path(__file__).parent.parent
API_KEY = "sk-live-0123456789"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return default_registry(ROOT / "examples" / "components")


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def orders(request: web.Request) -> web.Response:
        sent = await request.json()
        echo = {"id": 7, "sku": sent["sku"], "key_seen": request.headers.get("X-API-Key")}
        return web.json_response(echo, status=201)

    async def me(request: web.Request) -> web.Response:
        return web.json_response({"id": "u1", "email": "ada@example.test"})

    app = web.Application()
    app.router.add_post("/orders", orders)
    app.router.add_get("/api/me", me)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def http_flow(url: str, method: str = "POST", retry: bool = False) -> Flow:
    step: dict[str, Any] = {
        "id": "call",
        "action": "http.request",
        "inputs": {
            "method": method,
            "url": url,
            "body_type": "json" if method == "POST" else "none",
            "connection": "shop",
            **({"body": {"sku": "A1"}} if method == "POST" else {}),
        },
    }
    if retry:
        step["retry"] = {"max_attempts": 3, "delay": 0}
    return Flow.model_validate(
        {
            "id": "main",
            "trigger": {"id": "trigger", "action": "manual.manual"},
            "steps": [step],
            "edges": [{"from": "trigger", "to": "call"}],
        }
    )


async def run(
    flow: Flow, registry: Registry, http: httpx.AsyncClient
) -> tuple[Status, list[StepRecord]]:
    recorder = MemoryRecorder()
    shop = Connection("shop", "api_key", {"api_key": SecretStr(API_KEY)})
    crm = Connection("crm", "api_key", {"api_key": SecretStr(API_KEY)})
    context = RunContext(registry=registry, http=http, connections={"shop": shop, "crm": crm})
    result = await run_flow(flow, TriggerEvent(body={}), context, recorder)
    return result.status, recorder.for_execution(result.execution_id)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_live_http_step_keeps_its_exchange_with_secrets_masked(
    server: str, registry: Registry, transport: TransportName
) -> None:
    async with make_http_client(transport) as http:
        status, records = await run(http_flow(f"{server}/orders?page=2"), registry, http)
    assert status == Status.SUCCEEDED
    call = records[-1]
    assert call.output["body"]["key_seen"] == "***"  # the engine masks the key everywhere
    [exchange] = call.exchanges
    assert exchange["request"]["method"] == "POST"
    assert exchange["request"]["url"] == f"{server}/orders?page=2"
    assert exchange["request"]["body"] == {"sku": "A1"}
    assert exchange["request"]["headers"]["x-api-key"] == "***"
    assert exchange["response"]["status"] == 201
    assert exchange["response"]["headers"]["content-type"].startswith("application/json")
    assert exchange["response"]["body"] == {"id": 7, "sku": "A1", "key_seen": "***"}
    assert API_KEY not in repr(call.to_json())


async def test_a_custom_component_sending_through_httpx_is_recorded(
    server: str, registry: Registry
) -> None:
    flow = Flow.model_validate(
        {
            "id": "main",
            "trigger": {"id": "trigger", "action": "manual.manual"},
            "steps": [
                {"id": "me", "action": "crm.get_current_user", "inputs": {"base_url": server}}
            ],
            "edges": [{"from": "trigger", "to": "me"}],
        }
    )
    async with make_http_client() as http:
        status, records = await run(flow, registry, http)
    assert status == Status.SUCCEEDED
    [exchange] = records[-1].exchanges
    assert exchange["request"]["url"] == f"{server}/api/me"
    assert exchange["request"]["headers"]["authorization"] == "***"
    assert exchange["response"]["body"] == {"id": "u1", "email": "ada@example.test"}


async def test_a_recorded_run_sends_nothing_and_gets_the_recorded_answer(
    registry: Registry,
) -> None:
    recordings = [
        RecordedExchange.model_validate(
            {
                "request": {"method": "POST", "url": "https://shop.invalid/orders"},
                "response": {"status": 201, "body": {"id": 99}},
            }
        )
    ]
    async with RecordedClient(Responder(recordings)) as http:
        # `.invalid` never resolves: the step must not look the name up either.
        status, records = await run(http_flow("https://shop.invalid/orders"), registry, http)
    assert status == Status.SUCCEEDED
    call = records[-1]
    assert call.output["status"] == 201 and call.output["body"] == {"id": 99}
    [exchange] = call.exchanges
    assert exchange["request"]["body"] == {"sku": "A1"}
    assert exchange["request"]["headers"]["x-api-key"] == "***"
    assert exchange["response"]["body"] == {"id": 99}


async def test_a_call_without_recording_fails_the_step_naming_it_and_is_not_retried(
    registry: Registry,
) -> None:
    recordings = [
        RecordedExchange.model_validate({"request": {"url": "https://shop.invalid/orders"}})
    ]
    async with RecordedClient(Responder(recordings)) as http:
        flow = http_flow("https://shop.invalid/orders", retry=True)
        status, records = await run(flow, registry, http)
    assert status == Status.FAILED
    call = records[-1]
    assert call.attempt == 1
    assert call.error is not None and call.error.kind == "no_recording"
    assert "No recorded response for POST https://shop.invalid/orders" in call.error.message
    assert "recorded: GET https://shop.invalid/orders" in call.error.message
    assert "responses:" in call.error.hint


async def test_recordings_of_a_live_run_answer_the_same_run_again(
    server: str, registry: Registry
) -> None:
    flow = http_flow(f"{server}/orders")
    async with make_http_client() as http:
        _, live = await run(flow, registry, http)
    recordings = exchanges_to_recordings(e for r in live for e in r.exchanges)
    async with RecordedClient(Responder(recordings)) as http:
        status, replayed = await run(flow, registry, http)
    assert status == Status.SUCCEEDED
    assert replayed[-1].output == live[-1].output


def recording(method: str, url: str, body: Any = None, answer: Any = None) -> RecordedExchange:
    return RecordedExchange.model_validate(
        {"request": {"method": method, "url": url, "body": body}, "response": {"body": answer}}
    )


def test_matching_by_method_url_query_and_partial_body() -> None:
    responder = Responder(
        [
            recording("GET", "/items?page=1&size=10", answer="path only"),
            recording("POST", "https://api.test/items", body={"kind": "a"}, answer="kind a"),
            recording("POST", "https://api.test/items", answer="any body"),
            recording("GET", "https://api.test:8443/items", answer="other port"),
        ]
    )
    url = httpx.URL
    assert responder.answer("GET", url("http://x.test/items?size=10&page=1"), None).body == (
        "path only"
    )
    body = b'{"kind": "a", "extra": 1}'
    assert responder.answer("POST", url("https://api.test/items"), body).body == "kind a"
    assert responder.answer("POST", url("https://api.test/items"), b"{}").body == "any body"
    assert responder.answer("GET", url("https://api.test:8443/items"), None).body == "other port"
    with pytest.raises(NoRecording):
        responder.answer("GET", url("https://api.test/items"), None)  # port 443, not 8443
    with pytest.raises(NoRecording):
        responder.answer("GET", url("http://x.test/items?page=2&size=10"), None)
    with pytest.raises(NoRecording):
        responder.answer("DELETE", url("https://api.test/items"), None)


def test_repeated_calls_use_recordings_in_order_then_repeat_the_last() -> None:
    responder = Responder([recording("GET", "/n", answer=1), recording("GET", "/n", answer=2)])
    answers = [responder.answer("GET", httpx.URL("http://a.test/n"), None).body for _ in range(3)]
    assert answers == [1, 2, 2]


def test_a_recording_with_a_bad_method_or_url_is_refused_by_field() -> None:
    with pytest.raises(ValueError, match="'FETCH' is not an HTTP method"):
        recording("FETCH", "/x")
    with pytest.raises(ValueError, match="neither an absolute http"):
        recording("GET", "ftp://files.test/x")


def test_the_recorded_interface_is_pinned() -> None:
    # Replay and dry runs build on these names: changing them is an interface change.
    import runtime.recorded

    assert sorted(runtime.recorded.__all__) == [
        "NoRecording",
        "RecordedClient",
        "RecordedExchange",
        "RecordedRequest",
        "RecordedResponse",
        "Responder",
        "capturing",
        "exchange_json",
        "exchanges_to_recordings",
        "note_exchange",
        "note_response",
    ]
