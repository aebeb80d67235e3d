"""An API added from its OpenAPI document in the designer, dragged, filled and run.

A loopback app serves the real Petstore 3.0 document (from @readme/oas-examples) and implements
one of its operations. In the designer: "Add an API" with the document's URL; the palette lists
its operations; one is dragged onto the canvas and connected; its form is the spec's (the
`orderId` path parameter, the spec's base URL as the default); a test payload runs it against
the app.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from aiohttp import web
from playwright.sync_api import Page, expect

from tests.browser.conftest import shot
from tests.browser.test_designer import (
    connect,
    create_payload,
    drop_from_palette,
    fill_input,
    node,
    run_payload,
    saved_revision,
    select,
)
from tests.components.test_openapi import PETSTORE, spec_file
from tests.server.conftest import ServerProcess
from tests.server.fakeapps import FakeApp


class PetStore(FakeApp):
    """Serves the Petstore document at `/openapi.json` and `GET /v2/store/order/{orderId}`."""

    def _app(self) -> web.Application:
        app = super()._app()
        document = spec_file(PETSTORE).read_bytes()

        async def spec(request: web.Request) -> web.Response:
            del request
            return web.Response(body=document, content_type="application/json")

        async def order(request: web.Request) -> web.Response:
            order_id = int(request.match_info["order_id"])
            return web.json_response({"id": order_id, "petId": 7, "status": "placed"})

        app.router.add_get("/openapi.json", spec)
        app.router.add_get("/v2/store/order/{order_id}", order)
        return app


@pytest.fixture(scope="module")
def petstore() -> Iterator[PetStore]:
    app = PetStore("petstore")
    app.start()
    yield app
    app.stop()


def test_an_api_added_from_its_document_is_dragged_filled_and_run(
    page: Page, app_server: ServerProcess, petstore: PetStore
) -> None:
    page.goto(app_server.url + "/")
    page.get_by_test_id("new-integration").click()
    page.get_by_test_id("new-integration-name").fill("Pets")
    page.get_by_test_id("create-integration").click()
    expect(page).to_have_url(re.compile(r"/integrations/Pets$"))

    # A document that is not OpenAPI is refused in the dialog, naming the problem.
    page.get_by_test_id("add-api").click()
    page.get_by_test_id("add-api-url").fill(f"{petstore.url}/echo")
    page.get_by_test_id("add-api-go").click()
    expect(page.get_by_test_id("add-api-error")).to_contain_text("has openapi '(missing)'")

    page.get_by_test_id("add-api-url").fill(f"{petstore.url}/openapi.json")
    page.get_by_test_id("add-api-name").fill("pets")
    page.get_by_test_id("add-api-go").click()
    expect(page.get_by_test_id("palette-pets.get_order_by_id")).to_be_visible(timeout=20_000)
    expect(page.get_by_test_id("palette-pets.get_order_by_id")).to_contain_text(
        "store · Find purchase order by ID"
    )

    drop_from_palette(page, "webhook.webhook", 120, 220)
    expect(node(page, "trigger")).to_be_visible()
    drop_from_palette(page, "pets.get_order_by_id", 420, 220)
    expect(node(page, "get_order_by_id")).to_be_visible()
    connect(page, "trigger", "out", "get_order_by_id")

    # The form is the spec's: the path parameter and the server URL as the default base URL.
    select(page, "get_order_by_id")
    expect(page.get_by_test_id("inspector-input-base_url")).to_have_value(
        "http://petstore.swagger.io/v2"
    )
    expect(page.get_by_test_id("inspector-input-order_id")).to_be_visible()
    fill_input(page, "base_url", f"{petstore.url}/v2")
    page.get_by_test_id("inspector-mode-order_id").click()  # an integer field takes an expression
    fill_input(page, "order_id", "{{ trigger.body.order }}")
    saved_revision(page)

    create_payload(page, "Order 3", '{"order": 3}')
    run_payload(page, "Order 3")
    expect(page.get_by_test_id("badge-get_order_by_id")).to_have_text("succeeded")
    select(page, "get_order_by_id")
    expect(page.get_by_test_id("step-output")).to_contain_text("placed")
    assert ("GET", "/v2/store/order/3") in [(m, p) for m, p, _ in petstore.requests]
    shot(page, "add-api-run")
