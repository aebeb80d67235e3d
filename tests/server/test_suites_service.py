"""Suites in the app: "Run all" over the API with coverage as data, suite payloads listed for the
payload library, pinned steps in a designer test run, and exchanges kept in stored records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.persistence import SecretBox, load_secret_key, open_database
from app.routes import api
from app.services import executions, integrations, payloads, suites, testruns
from app.services.errors import InvalidInput, NotFound, ServiceError
from app.services.hub import Hub
from app.settings import Settings
from components.registry import default_registry
from runtime.http import make_http_client
from runtime.suite_model import PinnedOutput

ROOT = Path(__file__).parent.parent.parent
CRM_ACME = ROOT / "examples" / "crm-acme.yaml"
ORDERS = ROOT / "examples" / "order-export.yaml"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    engine = open_database(tmp_path)
    async with make_http_client() as http:
        hub = Hub(
            settings=Settings(data_dir=tmp_path),
            db=engine,
            registry=default_registry(ROOT / "examples" / "components"),
            http=http,
            box=SecretBox(load_secret_key(tmp_path)),
        )
        await integrations.import_integration(hub, CRM_ACME.read_text(), CRM_ACME.name)
        await integrations.import_integration(hub, ORDERS.read_text(), ORDERS.name)
        yield hub
    engine.dispose()


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.hub = hub

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.status)  # as `app.server` answers

    app.include_router(api.router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=hub.settings.base_url) as http:
        yield http


async def test_run_all_over_the_api_reports_each_payload_and_coverage(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post("/api/integrations/CRM and Acme/suites/run", json={})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["passed"], report["failed"]) == (9, 0)
    first = report["tests"][0]
    assert (first["flow"], first["test"], first["passed"]) == (
        "deploy",
        "registers both outbound messages and the Acme webhook",
        True,
    )
    assert first["steps"][1]["exchanges"][0]["request"]["url"] == "http://127.0.0.1:8091/api/me"
    teardown = next(c for c in report["coverage"] if c["flow"] == "teardown")
    assert (teardown["covered"], teardown["total"], teardown["percent"]) == (12, 12, 100.0)
    ours = next(p for p in teardown["paths"] if (p["step"], p["port"]) == ("ours", "true"))
    assert ours["covered_by"] == [
        "removes only this instance's outbound messages, then the Acme webhook"
    ]
    one = await client.post("/api/integrations/CRM and Acme/suites/run", json={"flows": ["deploy"]})
    assert [t["flow"] for t in one.json()["tests"]] == ["deploy"]
    unknown = await client.post("/api/integrations/CRM and Acme/suites/run", json={"flows": ["x"]})
    assert unknown.status_code == 422
    assert "has no flow 'x'" in unknown.json()["error"]
    missing = await client.post("/api/integrations/Nope/suites/run")
    assert missing.status_code == 404


async def test_a_failing_payload_reports_its_mismatch(hub: Hub) -> None:
    text = CRM_ACME.read_text().replace("output: {id: acc_1}", "output: {id: acc_2}")
    await integrations.import_integration(hub, text, CRM_ACME.name)
    report = await suites.run_suites(hub, "CRM and Acme", ["crm_account"])
    failed = [t for t in report["tests"] if not t["passed"]]
    assert [t["failure"]["text"] for t in failed] == [
        'step create_account, output.id: expected "acc_2", got "acc_1"'
    ]


async def test_suite_payloads_are_listed_for_the_payload_library(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    listed = await payloads.list_suite_payloads(hub, "CRM and Acme", "teardown")
    assert [(p.flow_id, p.name, p.pinned) for p in listed] == [
        ("teardown", "removes only this instance's outbound messages, then the Acme webhook", []),
        (
            "teardown",
            "with nothing registered (list pinned empty) nothing is deleted",
            ["list_messages"],
        ),
    ]
    answer = await client.get("/api/integrations/Order export/suites/payloads")
    assert [p["name"] for p in answer.json()] == [
        "paid order with two lines to ship",
        "an order with nothing to ship is ignored",
    ]
    assert answer.json()[0]["body"]["data"]["order_number"] == "A-1001"
    with pytest.raises(NotFound):
        await payloads.list_suite_payloads(hub, "Nope")


@pytest.fixture
async def shipping() -> AsyncIterator[str]:
    async def shipments(request: web.Request) -> web.Response:
        return web.json_response(
            {"id": "shp_9", "key": request.headers.get("X-API-Key")}, status=201
        )

    app = web.Application()
    app.router.add_post("/shipments", shipments)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_a_test_run_pins_steps_and_keeps_exchanges_in_stored_records(
    hub: Hub, shipping: str
) -> None:
    request = testruns.TestRequest(
        body={
            "type": "order.paid",
            "data": {"id": 5, "order_number": "A-5", "lines": [{"sku": "B", "quantity": 1}]},
        }
    )
    run = await testruns.run_test(
        hub,
        "Order export",
        "order_paid",
        request,
        config={"shipping_url": shipping, "webhook_secret": "whsec_c2VjcmV0LXNlY3JldA=="},
        connections={"shipping_api": {"api_key": "sk-shipping-12345"}},
        pinned={
            "shippable": PinnedOutput(output={"pinned": True}, port="true"),
            "shipment": PinnedOutput(output={"reference": "A-5", "weight_grams": 1}),
        },
    )
    assert run.status == "succeeded", run.error
    detail = await executions.get_execution(hub, run.execution_id)
    steps = {s["step_id"]: s for s in detail["steps"]}
    assert (steps["shippable"]["pinned"], steps["shippable"]["port"]) == (True, "true")
    assert steps["shipment"]["pinned"] and steps["shipment"]["output"]["reference"] == "A-5"
    assert not steps["create_shipment"]["pinned"]
    [exchange] = steps["create_shipment"]["exchanges"]
    assert exchange["request"]["url"] == f"{shipping}/shipments"
    assert exchange["request"]["body"] == {"reference": "A-5", "weight_grams": 1}
    assert exchange["request"]["headers"]["x-api-key"] == "***"
    assert exchange["response"]["status"] == 201
    assert exchange["response"]["body"] == {"id": "shp_9", "key": "***"}
    with pytest.raises(InvalidInput) as refused:
        await testruns.run_test(
            hub, "Order export", "order_paid", request, pinned={"nope": PinnedOutput()}
        )
    assert "pinned.nope" in refused.value.details
