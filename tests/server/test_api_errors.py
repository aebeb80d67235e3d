"""The REST API answers every mistake with JSON, over HTTP against a real server with its pages.

NiceGUI is mounted at `/` behind the API; a request the API cannot route must not fall through
to its HTML pages. Text that is not Unicode (a lone surrogate from a `\\ud800` escape) must be
refused naming the field before it reaches the database or the encryption.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.server import create_app
from app.services.errors import InvalidInput
from app.settings import Settings
from tests.server.conftest import ServerProcess, free_port

SURROGATE = "\\ud800"
"""A lone surrogate as JSON writes it: raw bytes in the body, so no client encoder refuses it."""

INTEGRATION = """\
name: Signed
config:
  - {key: signing_secret, type: secret, required: true}
connections:
  - {key: shop, type: api_key}
flows:
  - id: orders
    name: Orders
    trigger:
      id: receive
      action: webhook.webhook
      inputs:
        signature: {scheme: hmac_sha256, secret: '{{ config.signing_secret }}'}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base: Path = tmp_path_factory.mktemp("api-errors")
    process = ServerProcess(base / "data", free_port(), base / "server.log")
    process.start()
    imported = httpx.post(
        f"{process.url}/api/integrations",
        content=INTEGRATION,
        headers={"Content-Type": "application/yaml"},
    )
    assert imported.status_code == 201, imported.text
    yield process
    process.stop()


def send(server: ServerProcess, method: str, path: str, raw: str = "") -> httpx.Response:
    return httpx.request(
        method,
        f"{server.url}{path}",
        content=raw.encode("ascii"),
        headers={"Content-Type": "application/json"} if raw else {},
        timeout=30,
    )


def json_error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json", response.text[:200]
    body: dict[str, object] = response.json()
    assert isinstance(body["error"], str) and body["error"]
    return body


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/api/health", "GET"),
        ("PUT", "/api/instances", "GET, POST"),
        ("DELETE", "/api/executions", "GET"),
        ("GET", "/api/integrations/Signed/publish", "POST"),
        ("PUT", "/api/instances/some-id", "DELETE, GET, PATCH"),  # PATCH edits values
    ],
)
def test_a_method_the_api_path_does_not_take_is_a_json_405_with_allow(
    server: ServerProcess, method: str, path: str, allow: str
) -> None:
    body = json_error(send(server, method, path), 405)
    assert send(server, method, path).headers["allow"] == allow
    assert f"{method} is not allowed on {path}" in str(body["error"])


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/nope"), ("POST", "/api/integrations/Signed/flows"), ("GET", "/api")],
)
def test_an_unknown_api_path_is_a_json_404(server: ServerProcess, method: str, path: str) -> None:
    body = json_error(send(server, method, path), 404)
    assert path in str(body["error"])
    assert "allow" not in send(server, method, path).headers


def test_the_pages_and_their_404_are_still_nicegui(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/").status_code == 200
    page = httpx.get(f"{server.url}/no-such-page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{server.url}/api/health").json()["status"] == "ok"


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ('{"name": "bad%s", "flows": []}', "name"),
        ('{"name": "ok", "description": "bad%s"}', "description"),
        (
            '{"name": "ok", "flows": [{"id": "a", "name": "F", "trigger": {"id": "t", '
            '"action": "manual.manual"}, "steps": [{"id": "s", "action": "log.log", '
            '"inputs": {"message": "m%s"}}], "edges": [{"from": "t", "to": "s"}]}]}',
            "flows[0] (a) > steps[0] (s) > inputs > message",
        ),
        ('{"text": "flows: []\\nname: bad%s"}', "line 2"),
    ],
)
def test_an_integration_file_with_a_lone_surrogate_is_refused_naming_where(
    server: ServerProcess, raw: str, where: str
) -> None:
    body = json_error(send(server, "POST", "/api/integrations", raw % SURROGATE), 422)
    (error,) = body["details"]["errors"]  # type: ignore[index]
    assert error.startswith(f"<upload>: {where}: ")
    assert "\\ud800" in error and "not valid Unicode" in error
    names = [i["name"] for i in httpx.get(f"{server.url}/api/integrations").json()]
    assert names == ["Signed"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (
            '{"name": "shop%s", "integration": "Signed", "config": {"signing_secret": "s3cret"}, '
            '"connections": {"shop": {"api_key": "k"}}}',
            "name",
        ),
        (
            '{"name": "shop", "integration": "Signed", "config": {"signing_secret": "s3c%s"}, '
            '"connections": {"shop": {"api_key": "k"}}}',
            "config.signing_secret",
        ),
        (
            '{"name": "shop", "integration": "Signed", "config": {"signing_secret": "s3cret"}, '
            '"connections": {"shop": {"api_key": "k%s"}}}',
            "connections.shop.api_key",
        ),
        (
            '{"name": "shop", "integration": "Signed%s", "config": {"signing_secret": "s3cret"}}',
            "integration",
        ),
    ],
)
def test_a_deploy_with_a_lone_surrogate_is_refused_naming_the_field(
    server: ServerProcess, raw: str, field: str
) -> None:
    body = json_error(send(server, "POST", "/api/instances", raw % SURROGATE), 422)
    details = body["details"]
    assert isinstance(details, dict)
    assert list(details) == [field]
    assert "not valid Unicode" in details[field]
    assert httpx.get(f"{server.url}/api/instances").json() == []


@pytest.mark.parametrize(
    ("method", "path", "raw", "field"),
    [
        (
            "POST",
            "/api/instances",
            '{"name": "shop", "integration": "Signed", "config": {"signing_secret": "s3cret", '
            '"colo%sr": 1}}',
            "config.colo\\ud800r",
        ),
        (
            "POST",
            "/api/integrations/Signed/payloads",
            '{"name": "order", "flow_id": "orders", "body": {"items": [{"sku": "a%s"}]}}',
            "body.items.0.sku",
        ),
        (
            "PUT",
            "/api/integrations/Signed/flows/orders",
            '{"flow": {"name": "Orders%s", "trigger": {"id": "t", "action": "manual.manual"}}, '
            '"revision": 1}',
            "flow.name",
        ),
        (
            "POST",
            "/api/integrations/Signed/flows/orders/test",
            '{"request": {"body": {"note": "%s"}}}',
            "request.body.note",
        ),
    ],
)
def test_any_json_body_with_a_lone_surrogate_is_refused_naming_the_field(
    server: ServerProcess, method: str, path: str, raw: str, field: str
) -> None:
    body = json_error(send(server, method, path, raw % SURROGATE), 422)
    assert body["details"] == {
        field: "holds \\ud800, a lone surrogate, which is not valid Unicode text; remove it or "
        "fix the escape"
    }
    assert httpx.get(f"{server.url}/api/integrations/Signed/payloads").json() == []
    assert httpx.get(f"{server.url}/api/executions").json()["total"] == 0


async def test_an_error_answer_quoting_a_lone_surrogate_is_still_json(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, ui=False))

    @app.get("/quote")  # outside /api, whose catch-all route comes first
    async def quote() -> None:
        raise InvalidInput("There is no integration named 'x\ud800'.", details={"k\udfff": "v"})

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        answer = await client.get("/quote")
    assert answer.status_code == 422
    assert answer.json() == {
        "error": "There is no integration named 'x\ud800'.",
        "details": {"k\udfff": "v"},
    }
