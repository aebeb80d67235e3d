"""What a sender can hold on a real server: header caps (431), a read timeout (408), half-close.

Raw sockets, because an HTTP client library cannot send a Content-Length larger than its body or
shut down its sending side and still read the answer.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.server.conftest import ServerProcess, free_port
from tests.server.test_http_api import deploy, total, wait_for

READ_TIMEOUT = 1.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp("limits")
    process = ServerProcess(
        tmp / "data",
        free_port(),
        tmp / "server.log",
        env={"FLOWYARD_READ_TIMEOUT": str(READ_TIMEOUT)},
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def echo_path(server: ServerProcess) -> str:
    return urlsplit(deploy(server, "webhooks.yaml", "limits")["echo"]).path


def exchange(
    server: ServerProcess, head: bytes, body: bytes = b"", *, half_close: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; the status, headers and body of the answer (the connection closes)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        # the server may answer and close before taking everything
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
            if b"\r\n\r\n" in received:
                head_part, _, rest = received.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head_part.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    None,
                )
                if length is not None and len(rest) >= length:
                    break
    assert received, "the server closed the connection without an answer"
    head_part, _, rest = received.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, rest


def post_head(path: str, length: int, extra: bytes = b"") -> bytes:
    return (
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n"
        ).encode()
        + extra
        + b"\r\n"
    )


def test_too_many_headers_are_refused_with_431_and_nothing_is_stored(
    server: ServerProcess, echo_path: str
) -> None:
    before = total(server)
    many = b"".join(f"X-H{n}: v\r\n".encode() for n in range(1000))
    status, _, body = exchange(server, post_head(echo_path, 2, many), b"{}")
    assert status == 431
    assert "header fields" in json.loads(body)["error"]
    assert total(server) == before


@pytest.mark.parametrize("size", [100_000, 8_000_000])
def test_a_huge_header_is_refused_with_431_and_nothing_is_stored(
    server: ServerProcess, echo_path: str, size: int
) -> None:
    before = total(server)
    big = b"X-Big: " + b"a" * size + b"\r\n"
    status, headers, _ = exchange(server, post_head(echo_path, 2, big), b"{}")
    assert (status, headers["connection"]) == (431, "close")
    assert total(server) == before


def test_ordinary_headers_and_a_large_body_in_one_write_are_accepted(
    server: ServerProcess, echo_path: str
) -> None:
    fifty = b"".join(f"X-H{n}: {'v' * 150}\r\n".encode() for n in range(50))
    body = json.dumps({"pad": "x" * 900_000}).encode()
    status, _, answer = exchange(server, post_head(echo_path, len(body), fifty), body)
    assert status == 202, answer
    assert wait_for(server, json.loads(answer)["execution_id"])["status"] == "succeeded"


def test_a_body_shorter_than_its_content_length_gets_408_and_nothing_is_stored(
    server: ServerProcess, echo_path: str
) -> None:
    before = total(server)
    started = time.monotonic()
    status, _, body = exchange(server, post_head(echo_path, 100), b'{"a": 1}')
    assert status == 408
    assert "Content-Length" in json.loads(body)["error"]
    assert time.monotonic() - started >= READ_TIMEOUT  # it did wait for the rest
    assert total(server) == before
    # and the server still answers everyone else
    assert httpx.get(f"{server.url}/api/health").status_code == 200


def test_a_half_closed_request_is_answered_and_runs_once(
    server: ServerProcess, echo_path: str
) -> None:
    before = total(server)
    body = b'{"n": 1}'
    status, _, answer = exchange(server, post_head(echo_path, len(body)), body, half_close=True)
    assert status == 202, answer
    assert wait_for(server, json.loads(answer)["execution_id"])["status"] == "succeeded"
    assert total(server) == before + 1
