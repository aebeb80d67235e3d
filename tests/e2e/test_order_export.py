"""The one-way export example: `flowyard run` pushes a paid order to a shipping service.

The shipping service is a small aiohttp server on 127.0.0.1; the command is the one a user
types, run as a real process.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from components.api import Connection, TriggerEvent
from components.registry import default_registry
from runtime.context import RunContext
from runtime.engine import run_flow
from runtime.files import load_integration
from runtime.http import make_http_client
from runtime.observer import MemoryRecorder, Status
from tests.e2e.conftest import child_env
from tests.server.conftest import ROOT

EXAMPLE = ROOT / "examples" / "order-export.yaml"
PAYLOAD = ROOT / "examples" / "payloads" / "order-paid.json"


@pytest.fixture
async def shipping() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], Any]]]]:
    received: list[tuple[dict[str, str], Any]] = []

    async def create(request: web.Request) -> web.Response:
        received.append(({k.lower(): v for k, v in request.headers.items()}, await request.json()))
        return web.json_response({"id": "shp_1"}, status=201)

    app = web.Application()
    app.router.add_post("/shipments", create)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", received
    await runner.cleanup()


async def run_export(payload: Path, shipping_url: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "run",
        str(EXAMPLE),
        "--flow",
        "order_paid",
        "--payload",
        str(payload),
        "--config",
        f"shipping_url={shipping_url}",
        "--config",
        "webhook_secret=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "--connection",
        "shipping_api.api_key=ship-key-1",
        "--json",
        cwd=ROOT,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


def statuses(result: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for s in result["steps"]}


async def test_a_paid_order_becomes_a_shipment(
    shipping: tuple[str, list[tuple[dict[str, str], Any]]],
) -> None:
    url, received = shipping
    result = await run_export(PAYLOAD, url)
    assert statuses(result)["shipped"] == "succeeded"
    assert statuses(result)["not_shipped"] == "skipped"
    ((headers, body),) = received
    assert headers["x-api-key"] == "ship-key-1"
    assert headers["idempotency-key"] == "order-ord_8XK2Q4"
    assert body == {
        "reference": "1042",
        "service": "express",
        "recipient": {
            "name": "Ada Lovelace",
            "street": "12 Marylebone Road",
            "postal_code": "NW1 5LR",
            "city": "London",
            "country": "GB",
        },
        # The gift card needs no shipping: neither an item nor weight.
        "items": [{"sku": "MUG-BLUE", "quantity": 2}, {"sku": "TEE-M", "quantity": 1}],
        "weight_grams": 900,
    }


@pytest.mark.parametrize(
    "change",
    [
        {"type": "order.refunded"},
        {"data": {"lines": [{"sku": "GIFT", "requires_shipping": False}]}},
    ],
    ids=["refund", "nothing-to-ship"],
)
async def test_other_orders_are_not_exported(
    shipping: tuple[str, list[tuple[dict[str, str], Any]]], change: dict[str, Any]
) -> None:
    """Run in-process (the command is covered above): same flow, same engine."""
    url, received = shipping
    body = json.loads(PAYLOAD.read_text())["body"]
    body["type"] = change.get("type", body["type"])
    body["data"].update(change.get("data", {}))
    integration = load_integration(EXAMPLE)
    flow = integration.flow("order_paid")
    assert flow is not None
    recorder = MemoryRecorder()
    async with make_http_client() as http:
        context = RunContext(
            registry=default_registry(),
            http=http,
            config={
                "shipping_url": url,
                "default_service": "standard",
                "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            },
            connections={
                "shipping_api": Connection("shipping_api", "api_key", {"api_key": SecretStr("k1")})
            },
        )
        result = await run_flow(flow, TriggerEvent(body=body), context, recorder)
    assert result.status == Status.SUCCEEDED, result.error
    done = {r.step_id: r.status for r in recorder.records}
    assert done["not_shipped"] == Status.SUCCEEDED
    assert done["create_shipment"] == Status.SKIPPED
    assert received == []
