"""The version workflow over HTTP against a real server: publish with a note, deploy only
published versions, edit an instance's values, upgrade it in place and send to the same URL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server.conftest import FIXTURES, ServerProcess
from tests.server.test_http_api import wait_for


def api(server: ServerProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{server.url}/api{path}", timeout=30, **kwargs)


def imported(server: ServerProcess, text: str) -> None:
    answer = api(
        server, "POST", "/integrations", content=text, headers={"Content-Type": "application/yaml"}
    )
    assert answer.status_code in (200, 201), answer.text


@pytest.mark.timeout(120)
def test_publish_deploy_edit_and_upgrade_over_http(server: ServerProcess) -> None:
    text = (FIXTURES / "webhooks.yaml").read_text()
    imported(server, text)
    published = api(server, "POST", "/integrations/Webhook checks/publish", json={"note": "v1"})
    assert published.json() == {"name": "Webhook checks", "version": 1}
    imported(server, text.replace('default: "got"', 'default: "seen"'))  # draft version 2
    refused = api(
        server,
        "POST",
        "/instances",
        json={"name": "shop", "integration": "Webhook checks", "version": 2},
    )
    assert refused.status_code == 422, refused.text
    assert set(refused.json()["details"]) == {"version"}
    deployed = api(
        server, "POST", "/instances", json={"name": "shop", "integration": "Webhook checks"}
    )
    assert deployed.status_code == 201, deployed.text
    view = deployed.json()
    assert (view["version"], view["version_note"], view["latest_published"]) == (1, "v1", 1)
    url = next(f["webhook_url"] for f in view["flows"] if f["flow_id"] == "echo")

    path = f"/instances/{view['id']}"
    bad = api(
        server, "PATCH", path, json={"config": {"nope": 1}, "connections": {"api": {"token": ""}}}
    )
    assert bad.status_code == 422, bad.text
    assert set(bad.json()["details"]) == {"config.nope", "connections.api.token"}
    assert api(server, "PATCH", "/instances/missing", json={}).status_code == 404
    changed = api(server, "PATCH", path, json={"config": {"reply_prefix": "hello"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["config"]["reply_prefix"] == "hello"

    same = api(server, "POST", f"{path}/upgrade", json={"version": 1})
    assert same.status_code == 422
    assert same.json()["details"] == {"version": "already runs version 1"}
    draft = api(server, "POST", f"{path}/upgrade", json={"version": 2})
    assert draft.status_code == 422
    assert draft.json()["details"] == {"version": "published versions: 1"}
    assert api(server, "POST", "/integrations/Webhook checks/publish").json()["version"] == 2
    upgraded = api(server, "POST", f"{path}/upgrade", json={"version": 2})
    assert upgraded.status_code == 200, upgraded.text
    report = upgraded.json()
    assert (report["previous_version"], report["version"], report["runs"]) == (1, 2, [])
    assert report["instance"]["config"]["reply_prefix"] == "hello"  # kept
    after = next(f["webhook_url"] for f in report["instance"]["flows"] if f["flow_id"] == "echo")
    assert after == url

    sent = httpx.post(url, json={"n": 1}, timeout=10)
    assert sent.status_code == 202, sent.text
    assert wait_for(server, sent.json()["execution_id"])["status"] == "succeeded"
    versions = api(server, "GET", "/integrations/Webhook checks").json()["versions"]
    assert [(v["version"], v["published"], v["note"]) for v in versions] == [
        (1, True, "v1"),
        (2, True, None),
    ]
