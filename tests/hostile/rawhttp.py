"""A raw-socket HTTP/1.1 client for requests no well-behaved client library will send.

`exchange(port, parts, ...)` connects to 127.0.0.1, sends `parts` one after another (pausing
`interval` seconds between them, the way a slowloris sender trickles), optionally half-closes its
sending side, and reads until a response head arrives, the server closes, or `wait` seconds pass.
While the request is still being sent or awaited, `during()` runs in the calling thread: that is
where the hostile suite checks that other integrations keep running. Everything is bounded in time.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RawAnswer", "exchange"]


@dataclass(frozen=True)
class RawAnswer:
    """What came back: the status (None when no response head arrived) and the bytes read."""

    status: int | None
    data: bytes
    closed: bool
    """The server closed (or reset) the connection."""

    @property
    def text(self) -> str:
        return self.data.decode("latin-1")


def _status(data: bytes) -> int | None:
    line = data.split(b"\r\n", 1)[0].split()
    if len(line) >= 2 and line[0].startswith(b"HTTP/") and line[1].isdigit():
        return int(line[1])
    return None


def exchange(
    port: int,
    parts: list[bytes],
    *,
    interval: float = 0.0,
    half_close: bool = False,
    wait: float = 10.0,
    during: Callable[[], None] | None = None,
) -> RawAnswer:
    """Send `parts` to 127.0.0.1:`port` and read the answer; see the module docstring.

    Reading runs beside the sending (a server may answer and close before a huge request is
    sent) and stops once a full head (and the body its Content-Length announces) arrived, the
    server closed, or `wait` seconds after the last part was due. A server that stops reading
    (and resets) while parts are still being sent ends the sending, not the exchange.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=wait)
    deadline = time.monotonic() + interval * len(parts) + wait
    answer: list[RawAnswer] = []

    def send() -> None:
        try:
            for index, part in enumerate(parts):
                if index and interval:
                    time.sleep(interval)
                sock.sendall(part)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered early and closed: the reader has what it said
            pass

    sender = threading.Thread(target=send, daemon=True)
    # its own socket object, so the reader's short timeouts never cut the sender's sendall short
    reading = sock.dup()
    reader = threading.Thread(target=lambda: answer.append(_read(reading, deadline)), daemon=True)
    try:
        sender.start()
        reader.start()
        if during is not None:
            during()
        reader.join(max(0.0, deadline - time.monotonic()) + 1)
        return answer[0] if answer else RawAnswer(None, b"", closed=False)
    finally:
        reading.close()
        sock.close()
        sender.join(5)


def _read(sock: socket.socket, deadline: float) -> RawAnswer:
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, min(0.5, deadline - time.monotonic())))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # reset, or closed by the caller
            return RawAnswer(_status(data), data, closed=True)
        if not chunk:
            return RawAnswer(_status(data), data, closed=True)
        data += chunk
        if _complete(data):
            break
    return RawAnswer(_status(data), data, closed=False)


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value.strip())
    return True
