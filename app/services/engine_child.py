"""An engine process: runs executions the server sends it, and sends back what they reported.

`python -m app.services.engine_child --fd N [--components-dir DIR]`, started by
`app.services.engine_pool.EngineProcesses` with one end of a socketpair as file descriptor N
(the protocol is in `app.services.engine_wire`). It opens no database: the server sends each
instance's environment, stores every record, and answers instance-state requests, so the
server's process stays the one writer. It exits when the server closes the pipe (also when the
server was killed), cancelling what it still runs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from app.heap import settle_heap
from app.persistence.recording import Report, finished_report, started_report, step_report
from app.services.engine_wire import Message, Pipe
from app.services.environment import InstanceEnvironment
from components.api import Response, TriggerEvent
from components.registry import Registry, default_registry
from runtime.engine import run_flow
from runtime.errors import FlowValidationError
from runtime.http import make_http_client
from runtime.observer import ExecutionInfo, ExecutionResult, StepRecord

__all__ = ["main"]

log = logging.getLogger("flowyard.engine")


class _Reports:
    """The observer of one run: its records as the server's recorder stores them (made here, so
    the server does less), and the synchronous reply sent at once."""

    def __init__(self, send: Callable[[Message], None], job: int) -> None:
        self.reports: list[Report] = []
        self._send, self._job = send, job

    def execution_started(self, info: ExecutionInfo) -> None:
        self.reports.append(started_report(info))

    def step_started(self, record: StepRecord) -> None:
        pass  # not stored by the server's recorder either

    def step_finished(self, record: StepRecord) -> None:
        self.reports.append(step_report(record))

    def response_ready(self, execution_id: str, response: Response) -> None:
        self._send(("response", self._job, response))

    def execution_finished(self, result: ExecutionResult) -> None:
        self.reports.append(finished_report(result))


class _RemoteState:
    """`runtime.state.StateBackend` answered by the server over the pipe."""

    def __init__(self, send: Callable[[Message], None]) -> None:
        self._send = send
        self._numbers = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[Any]] = {}

    async def _ask(
        self, op: str, instance_id: str, flow_id: str | None, key: str, value: Any
    ) -> Any:
        request = next(self._numbers)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[request] = future
        try:
            self._send(("state", request, op, instance_id, flow_id, key, value))
            return await future
        finally:
            self.waiting.pop(request, None)

    def answer(self, request: int, ok: bool, value: Any) -> None:
        future = self.waiting.get(request)
        if future is None or future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(RuntimeError(f"Instance state could not be used: {value}"))

    async def load(self, instance_id: str, flow_id: str | None, key: str) -> tuple[bool, Any]:
        found, value = await self._ask("load", instance_id, flow_id, key, None)
        return bool(found), value

    async def store(self, instance_id: str, flow_id: str | None, key: str, value: Any) -> None:
        await self._ask("store", instance_id, flow_id, key, value)

    async def remove(self, instance_id: str, flow_id: str | None, key: str) -> None:
        await self._ask("remove", instance_id, flow_id, key, None)


class _Engine:
    def __init__(self, registry: Registry, http: httpx.AsyncClient) -> None:
        self.registry = registry
        self.http = http
        self.pipe = Pipe(self.receive, self.unsendable)
        self.envs: dict[str, InstanceEnvironment] = {}
        self.runs: dict[int, asyncio.Task[None]] = {}
        self.state = _RemoteState(self.pipe.send)

    def receive(self, message: Message) -> None:
        kind = message[0]
        if kind == "run":
            job = message[1]
            self.runs[job] = asyncio.create_task(self.run(*message[1:]))
        elif kind == "env":
            self.envs[message[1]] = message[2]
        elif kind == "forget":
            self.envs.pop(message[1], None)
        elif kind == "state":
            self.state.answer(*message[1:])
        elif kind == "cancel" and (task := self.runs.get(message[1])) is not None:
            task.cancel()

    def unsendable(self, message: Message, exc: Exception) -> None:
        if message[0] == "done":
            text = (
                f"Its result could not be sent to the server ({type(exc).__name__}: {exc}); "
                "a step's output holds a value that is not JSON data."
            )
            self.pipe.send(("error", message[1], text))
        else:
            log.error("could not send %s: %s", message[0], exc)

    async def run(
        self, job: int, instance_id: str, flow_id: str, execution_id: str, event: TriggerEvent
    ) -> None:
        send = self.pipe.send
        try:
            env = self.envs[instance_id]
            context = env.run_context(self.registry, self.http, self.state, execution_id)
            reports = _Reports(send, job)
            result = await run_flow(env.flows[flow_id], event, context, reports)
            send(("done", job, reports.reports, result))
        except FlowValidationError as exc:
            send(("invalid", job, exc.issues))
        except asyncio.CancelledError:
            pass  # the server stopped waiting: nothing to report
        except Exception:
            send(("error", job, traceback.format_exc()))
        finally:
            self.runs.pop(job, None)

    async def stop(self) -> None:
        for task in self.runs.values():
            task.cancel()
        await asyncio.gather(*self.runs.values(), return_exceptions=True)


async def _main(fd: int, components_dir: Path | None) -> None:
    registry = default_registry(components_dir)
    loop = asyncio.get_running_loop()
    async with make_http_client() as http:
        engine = _Engine(registry, http)
        await loop.create_connection(lambda: engine.pipe, sock=socket.socket(fileno=fd))
        settle_heap()  # this process is ours alone, like the server's (app.heap)
        engine.pipe.send(("ready",))
        try:
            await engine.pipe.closed
        finally:
            await engine.stop()
            engine.pipe.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--components-dir", type=Path)
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    asyncio.run(_main(options.fd, options.components_dir))


if __name__ == "__main__":
    main()
