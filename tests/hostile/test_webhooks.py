"""The webhook route under hostile requests (`webhook_cases.py`), against one real server.

Each row: the answer's status (and a fragment of its text), then what it left: a refused request
stored nothing; an accepted one was stored once and its execution succeeded; the canary instance
still ran (during the exchange for raw-socket rows); the server logged no crash.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from tests.hostile.harness import Harness
from tests.hostile.rawhttp import exchange
from tests.hostile.webhook_cases import HOOKS, RAWS, Hook, Raw


def _send(harness: Harness, case: Hook) -> tuple[httpx.Response, dict[str, str], bytes]:
    url = harness.urls[case.flow]
    if case.path:
        url = harness.url + case.path
    if case.query:
        url = f"{url}?{case.query}"
    headers = dict(case.headers)
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    body = case.body
    if case.sign is not None:
        signed, body = case.sign.apply(case.id, case.body)
        headers.update(signed)
    response = httpx.request(case.method, url, content=body, headers=headers, timeout=30)
    return response, headers, body


@pytest.mark.parametrize("case", HOOKS, ids=[c.id for c in HOOKS])
def test_webhook_request(case: Hook, harness: Harness) -> None:
    with harness.case() as snapshot:
        response, headers, body = _send(harness, case)
        expected = case.expect if isinstance(case.expect, tuple) else (case.expect,)
        assert response.status_code in expected, response.text[:1000]
        assert case.fragment in response.text
        for name in case.absent_headers:
            assert name not in response.headers, response.headers
        accepted = response.is_success or bool(case.outcome)
        if response.is_success and case.then is not None:
            url = str(response.request.url)
            again = httpx.request(case.method, url, content=body, headers=headers, timeout=30)
            assert again.status_code == case.then, again.text[:1000]
            assert again.json()["execution_id"] == response.json()["execution_id"]
        harness.settle(
            snapshot,
            accepted=accepted,
            body_seen=case.body_seen,
            outcome=case.outcome or "succeeded",
        )


@pytest.mark.parametrize("case", RAWS, ids=[c.id for c in RAWS])
@pytest.mark.timeout(120)
def test_raw_socket_request(case: Raw, harness: Harness) -> None:
    with harness.case() as snapshot:
        path, host = harness.path_of("echo"), urlsplit(harness.url).netloc
        parts = [
            p.replace(b"{path}", path.encode()).replace(b"{host}", host.encode())
            for p in case.parts
        ]
        canary: list[str | None] = []
        answer = exchange(
            harness.port,
            parts,
            interval=case.interval,
            half_close=case.half_close,
            wait=case.wait,
            during=lambda: canary.append(harness.canary_alive()),
        )
        assert canary == [None], f"other integrations stalled during the exchange: {canary}"
        assert answer.status in case.expect, answer.text[:1000] or "no answer"
        accepted = answer.status is not None and 200 <= answer.status < 300
        harness.settle(snapshot, accepted=accepted)
