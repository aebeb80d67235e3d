"""The pipe between the server and its engine processes: batches of messages as pickle frames.

Both ends are our own processes on one socketpair, so pickle is safe here: nothing from outside
ever reaches this channel. Messages are tuples whose first item names them. What one side sends
during one turn of its event loop travels as one frame (one pickle, one write): per-message
frames cost the engine process a fifth of its CPU in syscalls and pickling (py-spy, bench/ingest).

Server -> engine process:
- `("env", instance_id, InstanceEnvironment)`: what runs of that instance need (sent before the
  first run of each loaded environment, again after it changed);
- `("forget", instance_id)`: the instance changed or was deleted;
- `("run", job, instance_id, flow_id, execution_id, TriggerEvent)`;
- `("cancel", job)`: the server stopped waiting for that run;
- `("state", request, ok, value)`: the answer to a state request (`value` is the error's text
  when not `ok`).

Engine process -> server:
- `("ready",)` once it can run flows;
- `("response", job, Response)` as soon as a respond step answered (a synchronous webhook waits);
- `("done", job, reports, ExecutionResult)`: `reports` are the run's records as the server's
  recorder stores them (`app.persistence.recording.Report`), in order;
- `("invalid", job, issues)`: the flow failed validation (`FlowValidationError.issues`);
- `("error", job, text)`: the run raised outside the engine's own handling (a bug);
- `("state", request, op, instance_id, flow_id, key, value)`: load, store or remove state.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from collections.abc import Callable
from typing import Any, cast

__all__ = ["Message", "Pipe"]

Message = tuple[Any, ...]

_HEADER = struct.Struct(">I")


class Pipe(asyncio.Protocol):
    """One end of the pipe. `on_message` gets every message in order; `closed` completes when
    the other end went away (or `close()` was called). A message that cannot be pickled (a
    component's output holding a Python object, say) is left out and given to `on_unsendable`
    with the error; the rest of its batch is sent."""

    def __init__(
        self,
        on_message: Callable[[Message], None],
        on_unsendable: Callable[[Message, Exception], None] | None = None,
    ) -> None:
        self._on_message = on_message
        self._on_unsendable = on_unsendable
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._out: list[Message] = []
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def send(self, message: Message) -> None:
        """Queue `message`; everything queued in this loop turn is written as one frame."""
        if not self.is_open:
            return
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(message)

    def _flush(self) -> None:
        batch, self._out = self._out, []
        if not batch or not self.is_open:
            return
        try:
            data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            sendable = [m for m in batch if self._sendable(m)]
            data = pickle.dumps(sendable, protocol=pickle.HIGHEST_PROTOCOL)
        assert self._transport is not None
        self._transport.write(_HEADER.pack(len(data)) + data)

    def _sendable(self, message: Message) -> bool:
        try:
            pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            if self._on_unsendable is not None:
                self._on_unsendable(message, exc)  # may send another message: the next frame
            return False
        return True

    def close(self) -> None:
        """Write what is queued, then close this end."""
        self._flush()
        if self._transport is not None:
            self._transport.close()

    # ------------------------------------------------------------------------------ protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while len(buffer) - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer, start)
            end = start + _HEADER.size + size
            if len(buffer) < end:
                break
            batch: list[Message] = pickle.loads(buffer[start + _HEADER.size : end])
            start = end
            for message in batch:
                self._on_message(message)
        del buffer[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        self._out = []
        if not self.closed.done():
            self.closed.set_result(None)
