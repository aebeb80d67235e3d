"""Engine processes: the server's executions run in child processes, so flows use more cores.

One Python process runs one core's worth of Python at a time, and an execution's engine work
(templates, components, the HTTP client) is about half of the server's CPU per webhook
(`bench/ingest`). `EngineProcesses(count, ...)` starts `count` engine processes
(`app.services.engine_child`) and `run()` hands each execution to the least busy one. The server
keeps everything else: the inbox, claims, leases, per-flow limits, retries, and every database
write (the engine process's reports come back and go to the server's recorder; instance state is
read and written by the server on the engine's behalf). So durability is unchanged: an execution
counts only once its records are committed by the server, and a run lost with its process is
recorded as crashed.

Deploy and tear-down flows, test runs and the CLI run in the server's own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.persistence.recording import SqlRecorder
from app.services.engine_wire import Message, Pipe
from app.services.environment import InstanceEnvironment
from components.api import Response, TriggerEvent
from runtime.errors import FlowValidationError
from runtime.observer import ExecutionResult
from runtime.state import StateBackend

__all__ = ["EngineLost", "EngineNotStarted", "EngineProcesses"]

log = logging.getLogger("flowyard.engines")

_FAILED_STARTS = 3
"""Engine processes that die before they are ready, in a row, before the pool gives up (and the
server runs executions itself)."""


class EngineLost(Exception):
    """The engine process running an execution exited, or the run broke outside the engine."""


class EngineNotStarted(EngineLost):
    """The engine process given the execution died before it was ready: the run never began."""


def _python() -> list[str]:
    """The command that starts an engine process (its pipe's `--fd` follows)."""
    return [sys.executable, "-m", "app.services.engine_child"]


@dataclass(slots=True)
class _Job:
    future: asyncio.Future[ExecutionResult]
    on_response: Callable[[Response], None]


@dataclass(eq=False)
class _Child:
    number: int
    process: asyncio.subprocess.Process
    pipe: Pipe
    jobs: dict[int, _Job] = field(default_factory=dict)
    sent: dict[str, InstanceEnvironment] = field(default_factory=dict)
    ready: bool = False
    watcher: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.pipe.is_open


class EngineProcesses:
    """`count` engine processes for one server; see the module docstring.

    `recorder` receives every run's records (unflushed); `state` answers the engines'
    instance-state requests; `components_dir` is the custom components folder every engine
    process loads (as the server's registry did).
    """

    def __init__(
        self,
        count: int,
        *,
        recorder: SqlRecorder,
        state: StateBackend,
        components_dir: Path | None = None,
    ) -> None:
        self.count = count
        self.recorder = recorder
        self.state = state
        self.components_dir = components_dir
        self._children: list[_Child | None] = [None] * count
        self._jobs = itertools.count(1)
        self._failed_starts = 0
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        # Replacing a dead process waits for the spawn; runs arriving meanwhile must not start
        # a second process for the same slot.
        self._spawning = asyncio.Lock()

    @property
    def available(self) -> bool:
        """False once engine processes kept dying at start (the server then runs flows itself)."""
        return not self._stopping and self._failed_starts < _FAILED_STARTS

    async def start(self) -> None:
        """Start every engine process (they get ready in the background)."""
        for slot in range(self.count):
            await self._spawn(slot)

    async def stop(self, grace: float = 10.0) -> None:
        """Close the pipes (each engine process then exits) and wait for the processes."""
        self._stopping = True
        children = [child for child in self._children if child is not None]
        for child in children:
            child.pipe.close()
        for child in children:
            try:
                await asyncio.wait_for(child.process.wait(), grace)
            except TimeoutError:
                log.warning("engine process %d did not exit; killing it", child.process.pid)
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
                await child.process.wait()
            if child.watcher is not None:
                await asyncio.gather(child.watcher, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def pids(self) -> list[int]:
        """Process ids of the engine processes ready now (for tests and health)."""
        return [c.process.pid for c in self._children if c is not None and c.alive and c.ready]

    def forget(self, instance_id: str) -> None:
        """The instance changed: its next run sends the engines its new environment."""
        for child in self._children:
            if child is not None and child.sent.pop(instance_id, None) is not None:
                child.pipe.send(("forget", instance_id))

    async def run(
        self,
        env: InstanceEnvironment,
        flow_id: str,
        event: TriggerEvent,
        execution_id: str,
        on_response: Callable[[Response], None],
    ) -> ExecutionResult:
        """Run one execution in an engine process, as `runtime.engine.run_flow` with the
        recorder as its observer would: the records reach the recorder (unflushed) when the run
        ends, a respond step's reply reaches `on_response` at once. Raises
        `FlowValidationError` like `run_flow`, and `EngineLost` if the process exited before the
        run ended."""
        child = await self._pick()
        if child.sent.get(env.instance_id) is not env:
            child.pipe.send(("env", env.instance_id, env))
            child.sent[env.instance_id] = env
        job = next(self._jobs)
        future: asyncio.Future[ExecutionResult] = asyncio.get_running_loop().create_future()
        child.jobs[job] = _Job(future, on_response)
        child.pipe.send(("run", job, env.instance_id, flow_id, execution_id, event))
        try:
            return await future
        finally:
            if child.jobs.pop(job, None) is not None and not future.done():
                child.pipe.send(("cancel", job))  # this caller was cancelled

    # ------------------------------------------------------------------------------ processes

    async def _pick(self) -> _Child:
        if not all(c is not None and c.alive for c in self._children):
            async with self._spawning:
                for slot, child in enumerate(self._children):
                    if child is None or not child.alive:
                        await self._spawn(slot)
        live = [c for c in self._children if c is not None and c.alive]
        if not live:
            raise EngineNotStarted("No engine process could be started; see the server log.")
        return min(live, key=lambda c: len(c.jobs))

    async def _spawn(self, slot: int) -> None:
        if not self.available:
            return
        parent_end, child_end = socket.socketpair()
        fd = child_end.fileno()
        command = [*_python(), "--fd", str(fd)]
        if self.components_dir is not None:
            command += ["--components-dir", str(self.components_dir)]
        try:
            process = await asyncio.create_subprocess_exec(
                *command, stdin=subprocess.DEVNULL, pass_fds=(fd,)
            )
        except OSError:
            log.exception("could not start an engine process")
            parent_end.close()
            self._failed_starts += 1
            return
        finally:
            child_end.close()
        child: _Child | None = None

        def receive(message: Message) -> None:
            assert child is not None
            try:
                self._handle(child, message)
            except Exception:
                log.exception("engine process %d sent what the server cannot use", process.pid)

        pipe = Pipe(receive)
        await asyncio.get_running_loop().create_connection(lambda: pipe, sock=parent_end)
        child = _Child(slot, process, pipe)
        child.watcher = asyncio.create_task(self._watch(child), name=f"flowyard-engine-{slot}")
        self._children[slot] = child

    async def _watch(self, child: _Child) -> None:
        """Once the pipe closed: reap the process, and fail the runs it took with it."""
        try:
            await child.pipe.closed
        finally:
            child.pipe.close()
            code = await child.process.wait()
            if not child.ready:
                self._failed_starts += 1
            if not self._stopping:
                log.error(
                    "engine process %d exited (code %s)%s",
                    child.process.pid,
                    code,
                    "" if child.ready else " before it was ready",
                )
            lost = EngineLost if child.ready else EngineNotStarted
            for job in child.jobs.values():
                if not job.future.done():
                    job.future.set_exception(
                        lost(f"The engine process running it exited (code {code}).")
                    )
            child.jobs.clear()
            if not child.ready:
                async with self._spawning:  # a start that failed is tried again at once
                    if self._children[child.number] is child:
                        await self._spawn(child.number)

    def _handle(self, child: _Child, message: Message) -> None:
        kind = message[0]
        if kind == "ready":
            child.ready = True
            self._failed_starts = 0
            return
        if kind == "state":
            task = asyncio.create_task(self._answer_state(child, *message[1:]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        job = child.jobs.get(message[1])
        if job is None:
            return  # its caller stopped waiting
        if kind == "response":
            job.on_response(message[2])
        elif kind == "done":
            self.recorder.report(message[2])
            job.future.set_result(message[3])
        elif kind == "invalid":
            job.future.set_exception(FlowValidationError(message[2]))
        elif kind == "error":
            job.future.set_exception(EngineLost(f"The engine process failed: {message[2]}"))

    async def _answer_state(
        self,
        child: _Child,
        request: int,
        op: str,
        instance_id: str,
        flow_id: str | None,
        key: str,
        value: Any,
    ) -> None:
        try:
            if op == "load":
                answer: Any = await self.state.load(instance_id, flow_id, key)
            elif op == "store":
                await self.state.store(instance_id, flow_id, key, value)
                answer = None
            elif op == "remove":
                await self.state.remove(instance_id, flow_id, key)
                answer = None
            else:
                raise ValueError(f"unknown state operation {op!r}")
            ok = True
        except Exception as exc:
            log.exception("instance state %s of %s failed", op, instance_id)
            ok, answer = False, f"{type(exc).__name__}: {exc}"
        child.pipe.send(("state", request, ok, answer))
