"""Acceptance over HTTP against a real server process on 127.0.0.1: deploy an instance from an
integration file, post webhooks in every format and signature scheme, read executions back."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from bench.serving import deploy_text
from tests.server.conftest import FIXTURES, ServerProcess

STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def deploy(server: ServerProcess, file: str, name: str, **request: Any) -> dict[str, str]:
    """Import `file`, deploy it as instance `name`; return {flow id: webhook URL}."""
    return deploy_text(server.url, (FIXTURES / file).read_text(), name, **request)


def wait_for(server: ServerProcess, execution_id: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{server.url}/api/executions/{execution_id}")
        if response.status_code == 200 and response.json()["status"] not in ("queued", "running"):
            detail: dict[str, Any] = response.json()
            return detail
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not finish: {response.text}")


def total(server: ServerProcess) -> int:
    count: int = httpx.get(f"{server.url}/api/executions", params={"limit": 1}).json()["total"]
    return count


def step_output(detail: dict[str, Any], step_id: str) -> Any:
    (record,) = [s for s in detail["steps"] if s["step_id"] == step_id]
    assert record["status"] == "succeeded", record
    return record["output"]


@pytest.mark.timeout(120)
def test_webhooks_in_every_format_run_and_are_recorded(server: ServerProcess) -> None:
    urls = deploy(server, "webhooks.yaml", "checks")

    sent = httpx.post(urls["echo"], json={"order": 7, "items": [1, 2]}, params={"src": "t"})
    assert sent.status_code == 202, sent.text
    detail = wait_for(server, sent.json()["execution_id"])
    assert detail["status"] == "succeeded"
    output = step_output(detail, "shape")
    assert output["body"] == {"order": 7, "items": [1, 2]}
    assert output["query"] == {"src": "t"}
    assert [s["step_id"] for s in detail["steps"]] == ["trigger", "shape"]

    form = httpx.post(
        urls["echo"],
        content=b"a=1&b=two",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 202, form.text
    assert step_output(wait_for(server, form.json()["execution_id"]), "shape")["body"] == {
        "a": "1",
        "b": "two",
    }

    xml = httpx.put(
        urls["echo"],
        content=b"<order><id>7</id><sku>x</sku></order>",
        headers={"Content-Type": "application/xml"},
    )
    assert xml.status_code == 202, xml.text
    body = step_output(wait_for(server, xml.json()["execution_id"]), "shape")["body"]
    assert body == {"order": {"id": "7", "sku": "x"}}

    payload = json.dumps({"ref": "refs/heads/main"}).encode()
    signature = hmac.new(b"gh-secret-1", payload, hashlib.sha256).hexdigest()
    github = httpx.post(
        urls["github"],
        content=payload,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": f"sha256={signature}",
            "X-GitHub-Delivery": "delivery-1",
        },
    )
    assert github.status_code == 202, github.text
    first_id = github.json()["execution_id"]
    assert step_output(wait_for(server, first_id), "note") == {"ref": "refs/heads/main"}
    again = httpx.post(
        urls["github"],
        content=payload,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": f"sha256={signature}",
            "X-GitHub-Delivery": "delivery-1",
        },
    )
    assert again.status_code == 200, again.text
    assert again.json()["execution_id"] == first_id

    message_id, timestamp = "msg_1", str(int(time.time()))
    standard_body = json.dumps({"type": "invoice.paid"}).encode()
    key = base64.b64decode(STANDARD_SECRET.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + standard_body
    standard_sig = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    standard = httpx.post(
        urls["standard"],
        content=standard_body,
        headers={
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": f"v1,{standard_sig}",
        },
    )
    assert standard.status_code == 202, standard.text
    assert step_output(wait_for(server, standard.json()["execution_id"]), "note") == {
        "type": "invoice.paid"
    }

    challenge = httpx.get(urls["challenge"], params={"challenge": "abc123"}, timeout=15)
    assert challenge.status_code == 200, challenge.text
    assert challenge.text == "abc123"
    assert challenge.headers["x-challenge"] == "answered"

    listed = httpx.get(f"{server.url}/api/executions", params={"flow": "echo"}).json()
    assert listed["counts"]["succeeded"] == 3
    found = httpx.get(f"{server.url}/api/executions", params={"q": "refs/heads/main"}).json()
    assert [e["id"] for e in found["executions"]] == [first_id]


@pytest.mark.timeout(120)
def test_bad_input_gets_its_4xx_and_stores_nothing(server: ServerProcess) -> None:
    urls = deploy(server, "webhooks.yaml", "bad-input")
    before = total(server)
    base = server.url

    assert httpx.post(f"{base}/webhooks/not-a-token", json={}).status_code == 404
    assert httpx.get(urls["echo"]).status_code == 405
    malformed = httpx.post(
        urls["echo"], content=b'{"a": 1,,}', headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert "position" in malformed.text or "column" in malformed.text
    too_big = httpx.post(
        urls["echo"], content=b"x" * (1_048_576 + 10), headers={"Content-Type": "text/plain"}
    )
    assert too_big.status_code == 413
    bad_xml = httpx.post(
        urls["echo"],
        content=b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "bbbb">]><a>&b;</a>',
        headers={"Content-Type": "application/xml"},
    )
    assert bad_xml.status_code == 400
    unsigned = httpx.post(urls["github"], json={"ref": "x"})
    assert unsigned.status_code == 401
    forged = httpx.post(
        urls["github"], json={"ref": "x"}, headers={"X-Hub-Signature-256": "sha256=00"}
    )
    assert forged.status_code == 401
    garbage = httpx.post(
        urls["standard"],
        json={},
        headers={
            "webhook-id": "m",
            "webhook-timestamp": "not-a-time",
            "webhook-signature": "v1,!!",
        },
    )
    assert garbage.status_code == 401
    stale_ts = str(int(time.time()) - 3600)
    stale = httpx.post(
        urls["standard"],
        json={},
        headers={"webhook-id": "m", "webhook-timestamp": stale_ts, "webhook-signature": "v1,AAAA"},
    )
    assert stale.status_code == 401
    foreign_host = httpx.get(f"{base}/api/health", headers={"Host": "evil.example"})
    assert foreign_host.status_code == 400
    # the webhook fast path sits inside the host check too: nothing stored
    foreign_webhook = httpx.post(urls["echo"], json={"a": 1}, headers={"Host": "evil.example"})
    assert foreign_webhook.status_code == 400

    time.sleep(0.5)
    assert total(server) == before
    assert "Traceback" not in server.log()


@pytest.mark.timeout(120)
def test_replay_disable_enable_and_publish(server: ServerProcess) -> None:
    urls = deploy(server, "webhooks.yaml", "ops")
    first = httpx.post(urls["echo"], json={"n": 1})
    original = wait_for(server, first.json()["execution_id"])

    replayed = httpx.post(f"{server.url}/api/executions/{original['id']}/replay")
    assert replayed.status_code == 202, replayed.text
    again = wait_for(server, replayed.json()["execution_id"])
    assert again["status"] == "succeeded"
    assert again["request"]["replay_of"] == original["id"]
    assert step_output(again, "shape") == step_output(original, "shape")
    assert httpx.post(f"{server.url}/api/executions/nope/replay").status_code == 404

    instance = httpx.get(f"{server.url}/api/instances").json()[0]
    assert (
        httpx.post(f"{server.url}/api/instances/{instance['id']}/disable").json()["enabled"]
        is False
    )
    refused = httpx.post(urls["echo"], json={"n": 2})
    assert refused.status_code == 503
    assert "retry-after" in refused.headers
    assert httpx.post(f"{server.url}/api/instances/{instance['id']}/enable").status_code == 200
    accepted = httpx.post(urls["echo"], json={"n": 3})
    assert accepted.status_code == 202
    assert wait_for(server, accepted.json()["execution_id"])["status"] == "succeeded"

    published = httpx.post(f"{server.url}/api/integrations/Webhook checks/publish")
    assert published.status_code == 200, published.text
    assert published.json()["version"] == 1
    detail = httpx.get(f"{server.url}/api/integrations/Webhook checks").json()
    assert detail["published"] is True
    conflict = httpx.delete(f"{server.url}/api/integrations/Webhook checks")
    assert conflict.status_code == 409
    assert "ops" in conflict.text
    bad_deploy = httpx.post(
        f"{server.url}/api/instances",
        json={"name": "x", "integration": "Webhook checks", "config": {"nope": 1}},
    )
    assert bad_deploy.status_code == 422
    assert "config.nope" in bad_deploy.text


def test_start_page_lists_instances_and_socket_refuses_foreign_origins(
    server: ServerProcess,
) -> None:
    deploy(server, "webhooks.yaml", "page-check")
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200
    assert "Flowyard</title>" in page.text
    assert "page-check" in page.text
    assert "Webhook checks" in page.text
    socket = f"{server.url}/_nicegui_ws/socket.io/"
    params = {"EIO": "4", "transport": "polling"}
    foreign = httpx.get(socket, params=params, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 400
    own = httpx.get(socket, params=params, headers={"Origin": server.url})
    assert own.status_code == 200


def test_signature_secret_from_a_secret_config_value(server: ServerProcess) -> None:
    urls = deploy(server, "signed.yaml", "signed", config={"signing_secret": "per-instance-9"})
    body = b'{"x": 1}'
    good = hmac.new(b"per-instance-9", body, hashlib.sha256).hexdigest()
    bad = hmac.new(b"someone-else", body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}
    refused = httpx.post(
        urls["signed"], content=body, headers={**headers, "X-Hub-Signature-256": f"sha256={bad}"}
    )
    assert refused.status_code == 401, refused.text
    accepted = httpx.post(
        urls["signed"], content=body, headers={**headers, "X-Hub-Signature-256": f"sha256={good}"}
    )
    assert accepted.status_code == 202, accepted.text
    assert wait_for(server, accepted.json()["execution_id"])["status"] == "succeeded"
    instance = httpx.get(f"{server.url}/api/instances").json()[0]
    assert instance["config"]["signing_secret"] == "***"
