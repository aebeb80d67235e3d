"""http.request: bodies, auth, response parsing, error mapping, redirects and address checks."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import ipaddress
import json
import socket
import time
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from components.api import (
    Connection,
    Result,
    RetryableError,
    StepConfigError,
    StepError,
    literal_address,
)
from components.builtin import http as http_action
from components.builtin.http import BLOCK_PRIVATE_ENV, HttpRequest, HttpRequestInputs
from runtime.http import make_http_client
from tests.components.conftest import Harness, json_response


class Recorder:
    """A MockTransport handler that records requests and answers with a fixed response."""

    def __init__(self, response: httpx.Response | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.response = response or json_response({"ok": True})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.response

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


async def call(harness: Harness, client: httpx.AsyncClient, **inputs: Any) -> dict[str, Any]:
    ctx = harness.ctx(http=client, connections=inputs.pop("connections", None))
    result = await HttpRequest().run(HttpRequestInputs.model_validate(inputs), ctx)
    assert isinstance(result, Result)
    assert isinstance(result.output, dict)
    return result.output


@pytest.fixture(autouse=True)
def _private_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BLOCK_PRIVATE_ENV, raising=False)


# -- request bodies and query ----------------------------------------------------------------------


async def test_json_body_query_and_headers(
    harness: Harness, fake_dns: dict[str, list[str]]
) -> None:
    rec = Recorder(json_response({"id": 7}, 201))
    out = await call(
        harness,
        harness.client(rec),
        method="POST",
        url="https://api.test/v1/orders?existing=1",
        headers={"X-Trace": "abc"},
        query={"page": 2, "tags": ["a", "b"], "flag": True, "skip": None},
        body_type="json",
        body={"name": "Ada", "qty": 3},
    )
    req = rec.last
    assert req.method == "POST"
    assert req.url.params.multi_items() == [
        ("existing", "1"),
        ("page", "2"),
        ("tags", "a"),
        ("tags", "b"),
        ("flag", "true"),
    ]
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-trace"] == "abc"
    assert req.headers["user-agent"].startswith("Flowyard/")
    assert json.loads(req.content) == {"name": "Ada", "qty": 3}
    assert out == {
        "status": 201,
        "headers": {"content-type": "application/json", "content-length": "9"},
        "body": {"id": 7},
        "body_base64": False,
    }


async def test_form_body(harness: Harness, fake_dns: dict[str, list[str]]) -> None:
    rec = Recorder()
    await call(
        harness,
        harness.client(rec),
        method="POST",
        url="https://api.test/form",
        body_type="form",
        body={"name": "Ada Lovelace", "roles": ["admin", "dev"], "active": False},
    )
    assert rec.last.headers["content-type"] == "application/x-www-form-urlencoded"
    assert rec.last.content == b"name=Ada+Lovelace&roles=admin&roles=dev&active=false"


async def test_raw_body_keeps_user_content_type(
    harness: Harness, fake_dns: dict[str, list[str]]
) -> None:
    rec = Recorder()
    client = harness.client(rec)
    await call(harness, client, method="PUT", url="https://api.test/r", body_type="raw", body="a,b")
    assert rec.last.headers["content-type"] == "text/plain; charset=utf-8"
    assert rec.last.content == b"a,b"
    await call(
        harness,
        client,
        method="PUT",
        url="https://api.test/r",
        headers={"content-type": "text/csv"},
        body_type="raw",
        body="a,b",
    )
    assert rec.last.headers.get_list("content-type") == ["text/csv"]


@pytest.mark.parametrize(
    ("body_type", "body", "message"),
    [
        ("none", {"a": 1}, "body type is 'none'"),
        ("form", [1, 2], "must be an object"),
        ("raw", {"a": 1}, "must be text, not an object"),
        ("json", float("nan"), "cannot be sent as JSON"),
    ],
)
async def test_unusable_body_is_a_config_error(
    harness: Harness, body_type: str, body: Any, message: str
) -> None:
    with pytest.raises(StepConfigError, match=message):
        await call(
            harness,
            harness.client(),
            method="POST",
            url="https://api.test/x",
            body_type=body_type,
            body=body,
        )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("url", "ftp://files.test/a", "absolute http"),
        ("url", "/relative/path", "absolute http"),
        ("url", "https://user:pw@api.test/", "basic connection"),
        ("headers", {"X-A": "1\r\nX-Injected: 2"}, "line break"),
        ("headers", {"Bad Header": "1"}, "not a valid header name"),
    ],
)
def test_inputs_refuse_bad_urls_and_headers(field: str, value: Any, message: str) -> None:
    inputs: dict[str, Any] = {"url": "https://api.test/", field: value}
    with pytest.raises(ValidationError, match=message):
        HttpRequestInputs.model_validate(inputs)


# -- auth from connections -------------------------------------------------------------------------

SECRET = "s3cr3t-value-42"


@pytest.mark.parametrize(
    ("conn_type", "values", "header", "expected"),
    [
        ("api_key", {"api_key": SECRET}, "x-api-key", SECRET),
        ("bearer", {"token": SECRET}, "authorization", f"Bearer {SECRET}"),
        ("oauth2", {"access_token": SECRET}, "authorization", f"Bearer {SECRET}"),
        (
            "basic",
            {"username": "ada", "password": SECRET},
            "authorization",
            "Basic " + base64.b64encode(f"ada:{SECRET}".encode()).decode(),
        ),
    ],
)
async def test_connection_auth_is_sent_and_never_logged(
    harness: Harness,
    fake_dns: dict[str, list[str]],
    conn_type: str,
    values: dict[str, str],
    header: str,
    expected: str,
) -> None:
    # The service echoes the credentials back in a 401 body: the error must not repeat them.
    def handler(request: httpx.Request) -> httpx.Response:
        recorded.append(request)
        return httpx.Response(401, text=f"bad credentials: {request.headers.get(header)}")

    recorded: list[httpx.Request] = []
    conn = Connection(
        key="crm", type=conn_type, values={k: SecretStr(v) for k, v in values.items()}
    )
    with pytest.raises(StepError) as info:
        await call(
            harness,
            harness.client(handler),
            url="https://api.test/me",
            connection="crm",
            connections={"crm": conn},
        )
    assert recorded[0].headers[header] == expected
    assert not isinstance(info.value, RetryableError)
    assert "401" in info.value.message
    assert SECRET not in info.value.message
    assert expected.split()[-1] not in info.value.message
    assert harness.messages, "a log line per request"
    for line in harness.messages:
        assert SECRET not in line
        assert expected not in line


async def test_api_key_header_name_is_configurable(
    harness: Harness, fake_dns: dict[str, list[str]]
) -> None:
    rec = Recorder()
    conn = Connection(key="k", type="api_key", values={"api_key": SecretStr("abcd1234")})
    await call(
        harness,
        harness.client(rec),
        url="https://api.test/",
        connection="k",
        api_key_header="Api-Token",
        connections={"k": conn},
    )
    assert rec.last.headers["api-token"] == "abcd1234"
    assert "x-api-key" not in rec.last.headers


@pytest.mark.parametrize(
    ("connections", "message"),
    [
        ({}, "Connection 'crm' is not available"),
        ({"crm": Connection(key="crm", type="custom")}, "type 'custom'"),
        ({"crm": Connection(key="crm", type="bearer")}, "has no value 'token'"),
    ],
)
async def test_connection_problems_are_config_errors(
    harness: Harness, connections: dict[str, Connection], message: str
) -> None:
    with pytest.raises(StepConfigError, match=message):
        await call(
            harness,
            harness.client(),
            url="https://api.test/",
            connection="crm",
            connections=connections,
        )


async def test_client_cookies_and_defaults_do_not_leak(
    harness: Harness, fake_dns: dict[str, list[str]]
) -> None:
    rec = Recorder()
    client = harness.client(rec)
    client.cookies.set("session", "other-flow", domain="api.test")
    client.headers["X-Other-Flow"] = "1"
    await call(harness, client, url="https://api.test/")
    assert "cookie" not in rec.last.headers
    assert "x-other-flow" not in rec.last.headers


# -- response parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "content", "body", "is_base64"),
    [
        (
            {"content-type": "application/json; charset=utf-8"},
            b'{"a": [1, 2]}',
            {"a": [1, 2]},
            False,
        ),
        ({"content-type": "application/vnd.api+json"}, b"[1]", [1], False),
        ({"content-type": "application/json"}, b"not json", "not json", False),
        ({"content-type": "text/plain; charset=latin-1"}, "café".encode("latin-1"), "café", False),
        ({"content-type": "application/xml"}, b"<a>1</a>", "<a>1</a>", False),
        ({"content-type": "application/atom+xml"}, b"<feed/>", "<feed/>", False),
        (
            {"content-type": "image/png"},
            b"\x89PNG\r\n",
            base64.b64encode(b"\x89PNG\r\n").decode(),
            True,
        ),
        ({}, b"plain words", "plain words", False),
        ({}, b"\xff\xfe\x00", base64.b64encode(b"\xff\xfe\x00").decode(), True),
        ({"content-type": "application/json"}, b"", None, False),
    ],
)
async def test_response_parsed_by_content_type(
    harness: Harness,
    fake_dns: dict[str, list[str]],
    headers: dict[str, str],
    content: bytes,
    body: Any,
    is_base64: bool,
) -> None:
    rec = Recorder(httpx.Response(200, headers=headers, content=content))
    out = await call(harness, harness.client(rec), url="https://api.test/file")
    assert out["body"] == body
    assert out["body_base64"] is is_base64


# -- error mapping ---------------------------------------------------------------------------------


async def test_4xx_is_a_step_error_with_status_and_excerpt(
    harness: Harness, fake_dns: dict[str, list[str]]
) -> None:
    rec = Recorder(json_response({"error": "order 9 not found"}, 404))
    with pytest.raises(StepError) as info:
        await call(harness, harness.client(rec), url="https://api.test/orders/9")
    assert type(info.value) is StepError
    assert "HTTP 404 Not Found from GET https://api.test/orders/9" in info.value.message
    assert "order 9 not found" in info.value.message


async def test_long_error_body_is_cut(harness: Harness, fake_dns: dict[str, list[str]]) -> None:
    rec = Recorder(httpx.Response(400, text="x" * 5000))
    with pytest.raises(StepError) as info:
        await call(harness, harness.client(rec), url="https://api.test/")
    assert len(info.value.message) < 500


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [
        (500, {}, None),
        (502, {}, None),
        (503, {"Retry-After": "7"}, 7.0),
        (429, {"Retry-After": "2.5"}, 2.5),
        (429, {}, None),
        (429, {"Retry-After": "soon"}, None),
    ],
)
async def test_5xx_and_429_are_retryable(
    harness: Harness,
    fake_dns: dict[str, list[str]],
    status: int,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    rec = Recorder(httpx.Response(status, headers=headers, text="busy"))
    with pytest.raises(RetryableError) as info:
        await call(harness, harness.client(rec), url="https://api.test/")
    assert info.value.retry_after == retry_after
    assert f"HTTP {status}" in info.value.message


async def test_retry_after_http_date(harness: Harness, fake_dns: dict[str, list[str]]) -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    rec = Recorder(httpx.Response(429, headers={"Retry-After": when}))
    with pytest.raises(RetryableError) as info:
        await call(harness, harness.client(rec), url="https://api.test/")
    assert info.value.retry_after is not None
    assert 100 < info.value.retry_after <= 120


@pytest.mark.parametrize("status", [404, 429, 500])
async def test_on_http_error_output_returns_the_answer(
    harness: Harness, fake_dns: dict[str, list[str]], status: int
) -> None:
    rec = Recorder(json_response({"error": "nope"}, status))
    out = await call(harness, harness.client(rec), url="https://api.test/", on_http_error="output")
    assert out["status"] == status
    assert out["body"] == {"error": "nope"}


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("read timed out"), httpx.ConnectTimeout("connect timed out")]
)
async def test_transport_timeout_is_retryable(
    harness: Harness, fake_dns: dict[str, list[str]], exc: Exception
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(RetryableError, match="timed out"):
        await call(harness, harness.client(handler), url="https://api.test/")


async def test_connect_error_is_retryable(harness: Harness, fake_dns: dict[str, list[str]]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(RetryableError, match="connection refused"):
        await call(harness, harness.client(handler), url="https://api.test/")
    assert any("failed" in line for line in harness.messages)


async def test_international_host_names_are_resolved_as_punycode(
    harness: Harness, fake_dns: dict[str, list[str]]
) -> None:
    fake_dns["xn--bcher-kva.test"] = ["93.184.216.34"]
    rec = Recorder()
    await call(harness, harness.client(rec), url="https://bücher.test/")
    assert rec.last.url.raw_host == b"xn--bcher-kva.test"


async def test_a_name_is_resolved_once_for_steps_in_a_row(
    harness: Harness, fake_dns: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check's lookup is kept briefly (the client's connection does its own): a flow calling
    one API in every step does not pay a DNS lookup per step."""
    loop = asyncio.get_running_loop()
    resolve, lookups = loop.getaddrinfo, []

    async def counted(host: str, port: int, **kwargs: Any) -> Any:
        lookups.append(host)
        return await resolve(host, port, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", counted)
    for _ in range(3):
        await call(harness, harness.client(Recorder()), url="https://api.test/items")
    assert lookups == ["api.test"]
    fake_dns["internal.test"] = ["10.1.2.3"]  # another name is looked up, and checked
    monkeypatch.setenv("FLOWYARD_HTTP_BLOCK_PRIVATE", "1")
    with pytest.raises(StepError, match="private"):
        await call(harness, harness.client(Recorder()), url="https://internal.test/")
    assert lookups == ["api.test", "internal.test"]


async def test_unknown_host_is_retryable(harness: Harness, fake_dns: dict[str, list[str]]) -> None:
    with pytest.raises(RetryableError, match=r"Could not resolve host 'nowhere\.invalid'"):
        await call(harness, harness.client(), url="https://nowhere.invalid/")


async def test_real_server_timeout_is_retryable(
    harness: Harness, local_server: str, real_client: httpx.AsyncClient
) -> None:
    started = time.monotonic()
    with pytest.raises(RetryableError, match=r"timed out after 0\.3 s"):
        await call(harness, real_client, url=f"{local_server}/slow", timeout=0.3)
    assert time.monotonic() - started < 3


# -- real server, redirects and logging ------------------------------------------------------------


async def test_real_server_roundtrip_and_log_line(
    harness: Harness, local_server: str, real_client: httpx.AsyncClient
) -> None:
    out = await call(
        harness,
        real_client,
        method="POST",
        url=f"{local_server}/echo",
        query={"q": "x y"},
        body_type="json",
        body={"a": 1},
    )
    assert out["status"] == 200
    assert out["body"]["method"] == "POST"
    assert out["body"]["query"] == [["q", "x y"]]
    assert json.loads(out["body"]["body"]) == {"a": 1}
    assert out["headers"]["content-type"].startswith("application/json")
    [line] = harness.messages
    assert line.startswith(f"POST {local_server}/echo?q=")
    assert "-> 200 (" in line
    assert line.endswith(" ms)")


async def test_redirect_is_followed_and_logged_per_hop(
    harness: Harness, local_server: str, real_client: httpx.AsyncClient
) -> None:
    out = await call(harness, real_client, url=f"{local_server}/to-json")
    assert out["body"] == {"hello": "world", "n": 1}
    assert [m.split(" -> ")[1].split(" ")[0] for m in harness.messages] == ["302", "200"]


async def test_redirect_not_followed_is_output(
    harness: Harness, local_server: str, real_client: httpx.AsyncClient
) -> None:
    out = await call(harness, real_client, url=f"{local_server}/to-json", follow_redirects=False)
    assert out["status"] == 302
    assert out["headers"]["location"] == "/json"


async def test_redirect_loop_stops(
    harness: Harness, local_server: str, real_client: httpx.AsyncClient
) -> None:
    with pytest.raises(StepError, match="redirected more than 10 times"):
        await call(harness, real_client, url=f"{local_server}/loop")
    assert len(harness.messages) == 11


async def test_303_turns_post_into_get_and_307_keeps_it(
    harness: Harness, local_server: str, real_client: httpx.AsyncClient
) -> None:
    out = await call(
        harness,
        real_client,
        method="POST",
        url=f"{local_server}/see-other",
        body_type="json",
        body={"a": 1},
    )
    assert (out["body"]["method"], out["body"]["body"]) == ("GET", "")
    out = await call(
        harness,
        real_client,
        method="POST",
        url=f"{local_server}/temporary",
        body_type="json",
        body={"a": 1},
    )
    assert out["body"]["method"] == "POST"
    assert json.loads(out["body"]["body"]) == {"a": 1}


async def test_compressed_answer_is_decoded(
    harness: Harness, local_server: str, real_client: httpx.AsyncClient
) -> None:
    out = await call(harness, real_client, url=f"{local_server}/gzip")
    assert out["body"]["packed"] is True
    assert out["headers"]["content-encoding"] == "gzip"


async def test_repeated_answer_headers_are_joined_under_lower_case_names(
    harness: Harness, local_server: str, real_client: httpx.AsyncClient
) -> None:
    out = await call(harness, real_client, url=f"{local_server}/repeated")
    assert out["headers"]["x-tag"] == "a, b"
    assert out["body"] == "two tags"
    assert all(name == name.lower() for name in out["headers"])


@pytest.mark.parametrize("chunked", [False, True])
async def test_answer_over_the_cap_is_a_step_error(
    harness: Harness,
    local_server: str,
    real_client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    chunked: bool,
) -> None:
    monkeypatch.setattr(http_action, "MAX_RESPONSE_BYTES", 5_000)
    query = "&chunked=1" if chunked else ""
    out = await call(harness, real_client, url=f"{local_server}/bytes?n=5000{query}")
    assert base64.b64decode(out["body"]) == b"x" * 5000  # exactly the cap is fine
    with pytest.raises(StepError, match="answered with more than") as info:
        await call(harness, real_client, url=f"{local_server}/bytes?n=5001{query}")
    assert not isinstance(info.value, RetryableError)


async def test_refused_connection_is_retryable(
    harness: Harness, real_client: httpx.AsyncClient
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RetryableError, match=rf"GET http://127\.0\.0\.1:{port}/ failed: "):
        await call(harness, real_client, url=f"http://127.0.0.1:{port}/")


async def test_flowyard_client_answers_without_httpx_send(
    harness: Harness, local_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[httpx.Request] = []
    async with make_http_client() as client, make_http_client("httpx") as other:
        original = type(client).send
        assert type(other) is type(client)

        async def send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> Any:
            sent.append(request)
            return await original(self, request, **kwargs)

        monkeypatch.setattr(type(client), "send", send)
        out = await call(harness, client, url=f"{local_server}/json")
        assert out["body"] == {"hello": "world", "n": 1}
        assert sent == []  # straight through aiohttp
        out = await call(harness, other, url=f"{local_server}/json")
        assert out["body"] == {"hello": "world", "n": 1}
        assert len(sent) == 1  # httpx's own transport: through `send`


async def test_cross_origin_redirect_drops_credentials(
    harness: Harness, fake_dns: dict[str, list[str]]
) -> None:
    seen: dict[str, httpx.Headers] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[f"{request.url.host}{request.url.path}"] = request.headers
        if request.url.path == "/same":
            return httpx.Response(302, headers={"location": "/next"})
        if request.url.path == "/next":
            return httpx.Response(302, headers={"location": "https://u:hunter2@b.test/final"})
        return json_response({"done": True})

    conn = Connection(key="k", type="bearer", values={"token": SecretStr("tok-123456")})
    out = await call(
        harness,
        harness.client(handler),
        url="https://a.test/same",
        headers={"Cookie": "sid=1", "X-Keep": "yes"},
        connection="k",
        connections={"k": conn},
    )
    assert out["body"] == {"done": True}
    assert seen["a.test/next"]["authorization"] == "Bearer tok-123456"
    assert "authorization" not in seen["b.test/final"]
    assert "cookie" not in seen["b.test/final"]
    assert seen["b.test/final"]["x-keep"] == "yes"
    assert not any("hunter2" in line for line in harness.messages)


async def test_sensitive_query_values_are_masked_in_logs(
    harness: Harness, fake_dns: dict[str, list[str]]
) -> None:
    rec = Recorder()
    await call(harness, harness.client(rec), url="https://api.test/x?api_key=k-9876&page=2")
    assert rec.last.url.params["api_key"] == "k-9876"
    [line] = harness.messages
    assert "k-9876" not in line
    assert "api_key=***" in line
    assert "page=2" in line


# -- address checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./computeMetadata/v1/",
        "http://sneaky.test/",  # resolves to the metadata address
    ],
)
async def test_metadata_addresses_are_always_refused(
    harness: Harness, fake_dns: dict[str, list[str]], url: str
) -> None:
    fake_dns["sneaky.test"] = ["93.184.216.34", "169.254.169.254"]
    rec = Recorder()
    with pytest.raises(StepError, match="metadata") as info:
        await call(harness, harness.client(rec), url=url)
    assert not isinstance(info.value, RetryableError)
    assert info.value.hint == ""  # unsetting the private block would not allow it
    assert rec.requests == []


async def test_redirect_to_metadata_is_refused(
    harness: Harness, local_server: str, real_client: httpx.AsyncClient
) -> None:
    with pytest.raises(StepError, match=r"Refused to call 169\.254\.169\.254"):
        await call(harness, real_client, url=f"{local_server}/to-metadata")
    assert len(harness.messages) == 1  # the redirect itself; the metadata address is never called


def test_literal_address_reads_ip_literals_only() -> None:
    assert literal_address("127.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert literal_address("::ffff:169.254.169.254") == ipaddress.ip_address(
        "::ffff:169.254.169.254"
    )
    assert literal_address("example.com") is None
    assert literal_address("999.1.1.1") is None


async def test_loopback_allowed_by_default(
    harness: Harness, local_server: str, real_client: httpx.AsyncClient
) -> None:
    out = await call(harness, real_client, url=f"{local_server}/json")
    assert out["status"] == 200


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/", "http://[::1]/", "http://internal.test/", "http://0.0.0.0/"]
)
async def test_block_private_refuses_private_addresses(
    harness: Harness,
    fake_dns: dict[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
) -> None:
    monkeypatch.setenv(BLOCK_PRIVATE_ENV, "1")
    fake_dns["internal.test"] = ["10.1.2.3"]
    rec = Recorder()
    with pytest.raises(StepError, match="private, loopback and link-local") as info:
        await call(harness, harness.client(rec), url=url)
    assert not isinstance(info.value, RetryableError)
    assert f"unset {BLOCK_PRIVATE_ENV}" in info.value.hint
    assert rec.requests == []


async def test_block_private_refuses_local_server(
    harness: Harness,
    local_server: str,
    real_client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(BLOCK_PRIVATE_ENV, "1")
    with pytest.raises(StepError, match=r"Refused to call 127\.0\.0\.1"):
        await call(harness, real_client, url=f"{local_server}/json")


async def test_block_private_allows_public_and_checks_redirects(
    harness: Harness, fake_dns: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BLOCK_PRIVATE_ENV, "1")
    fake_dns["intranet.test"] = ["192.168.1.10"]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "public.test":
            return httpx.Response(307, headers={"location": "http://intranet.test/admin"})
        raise AssertionError("the private host must not be called")

    rec = Recorder()
    out = await call(harness, harness.client(rec), url="https://public.test/ok")
    assert out["status"] == 200
    with pytest.raises(StepError, match=r"Refused to call intranet\.test \(192\.168\.1\.10\)"):
        await call(harness, harness.client(handler), url="https://public.test/redirect")
