"""Instance lifecycle against two fake third-party apps on loopback, through a real server:
deploy registers our webhooks in both, delete removes exactly those, deploying again works; and a
connection's secret appears in no step record, API response or log line."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.server.conftest import FIXTURES, ServerProcess
from tests.server.fakeapps import FakeApp
from tests.server.test_http_api import wait_for

SECRET = "tok-SECRET-9f8e7d6c"


@pytest.fixture
def apps() -> Iterator[tuple[FakeApp, FakeApp]]:
    a, b = FakeApp("a").start(), FakeApp("b").start()
    yield a, b
    a.stop()
    b.stop()


def deploy(server: ServerProcess, a: FakeApp, b: FakeApp, name: str) -> dict[str, object]:
    response = httpx.post(
        f"{server.url}/api/instances",
        json={
            "name": name,
            "integration": "Two-app lifecycle",
            "config": {"a_url": a.url, "b_url": b.url},
            "connections": {"api": {"token": SECRET}},
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    view: dict[str, object] = response.json()
    return view


@pytest.mark.timeout(120)
def test_deploy_registers_and_delete_removes_exactly_ours(
    server: ServerProcess, apps: tuple[FakeApp, FakeApp]
) -> None:
    a, b = apps
    a.subscriptions["a-foreign"] = {"id": "a-foreign", "url": "http://someone-else/"}
    imported = httpx.post(
        f"{server.url}/api/integrations",
        content=(FIXTURES / "lifecycle.yaml").read_text(),
        headers={"Content-Type": "application/yaml"},
    )
    assert imported.status_code == 201, imported.text

    view = deploy(server, a, b, "acme-1")
    assert view["status"] == "active", view
    urls = {f["flow_id"]: f["webhook_url"] for f in view["flows"]}  # type: ignore[attr-defined]
    ours_a = [s for s in a.subscriptions.values() if s["id"] != "a-foreign"]
    assert [s["url"] for s in ours_a] == [urls["a_changed"]]
    assert [s["url"] for s in b.subscriptions.values()] == [urls["b_changed"]]
    assert a.requests[0][2]["Authorization"] == f"Bearer {SECRET}"

    # A webhook whose flow calls app A, which echoes our Authorization header back.
    sent = httpx.post(str(urls["a_changed"]), json={"changed": True})
    assert sent.status_code == 202, sent.text
    detail = wait_for(server, sent.json()["execution_id"])
    assert detail["status"] == "succeeded", detail
    instance_id = str(view["id"])
    for path in (
        f"/api/executions/{sent.json()['execution_id']}",
        f"/api/instances/{instance_id}",
        "/api/instances",
        f"/api/executions?instance={instance_id}&children=true",
    ):
        text = httpx.get(f"{server.url}{path}").text
        assert SECRET not in text, path
    assert "***" in httpx.get(f"{server.url}/api/executions/{sent.json()['execution_id']}").text

    deleted = httpx.delete(f"{server.url}/api/instances/{instance_id}", timeout=30)
    assert deleted.status_code == 200, deleted.text
    assert list(a.subscriptions) == ["a-foreign"]
    assert b.subscriptions == {}
    assert httpx.get(f"{server.url}/api/instances/{instance_id}").status_code == 404
    assert httpx.post(str(urls["a_changed"]), json={}).status_code == 404

    again = deploy(server, a, b, "acme-1")
    assert again["status"] == "active"
    assert len(a.subscriptions) == 2
    assert len(b.subscriptions) == 1
    assert SECRET not in server.log()
