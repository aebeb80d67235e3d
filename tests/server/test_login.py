"""Bound beyond loopback, the API wants its token and the pages a login with that token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import ServerProcess, free_port

TOKEN = "test-token-0123456789"


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base: Path = tmp_path_factory.mktemp("exposed")
    server = ServerProcess(
        base / "data",
        free_port(),
        base / "server.log",
        host="0.0.0.0",
        env={"FLOWYARD_API_TOKEN": TOKEN},
    )
    server.start()
    yield server
    server.stop()


def test_the_api_needs_the_token_but_health_does_not(exposed: ServerProcess) -> None:
    assert httpx.get(f"{exposed.url}/api/health").status_code == 200
    refused = httpx.get(f"{exposed.url}/api/integrations")
    assert refused.status_code == 401 and "Bearer" in refused.json()["error"]
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.get(f"{exposed.url}/api/integrations", headers=wrong).status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{exposed.url}/api/integrations", headers=right).status_code == 200


def test_pages_redirect_to_the_login_and_a_wrong_token_is_refused(exposed: ServerProcess) -> None:
    page = httpx.get(f"{exposed.url}/executions")
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/executions"
    form = httpx.get(f"{exposed.url}/login?next=/executions")
    assert form.status_code == 200 and "API token" in form.text
    wrong = httpx.post(f"{exposed.url}/login", data={"token": "nope", "next": "/executions"})
    assert wrong.status_code == 401 and "not this server" in wrong.text
    assert "set-cookie" not in wrong.headers


def test_the_token_logs_in_and_the_cookie_opens_the_pages(exposed: ServerProcess) -> None:
    with httpx.Client(base_url=exposed.url) as client:
        login = client.post("/login", data={"token": TOKEN, "next": "//evil.example/x"})
        assert login.status_code == 303
        assert login.headers["location"] == "/"  # never an open redirect
        assert "httponly" in login.headers["set-cookie"].lower()
        page = client.get("/executions")
        assert page.status_code == 200 and "Flowyard" in page.text
