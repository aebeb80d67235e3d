"""In-process workers: claim inbox rows with a lease, run them on the engine, record them.

`WorkerPool(hub)` implements `app.services.hub.Dispatcher`. `start()` recovers what a crash left
(rows left `running` are queued again and re-run as `recovered`; lifecycle executions left running
are marked crashed), then runs a claim loop, a lease heartbeat, the schedule ticker and retention.

Guarantees, for every inbox row: its execution and all its step records are committed (one
`SqlRecorder`, group commit) in the transaction that marks the row finished, and a re-run first
deletes what an interrupted run recorded under the same execution id. So each acknowledged row
ends with exactly one finished execution, whatever was killed when.

Handover: an async webhook received while this pool has a free worker is committed already
leased to this process (`try_reserve` holds the slot from before the commit until the row starts)
and runs at once, without a claim; its row is then a claimed row like any other (leases renewed,
handed back on stop, claimed again after a crash). A sequential flow's rows, rows over their
flow's limit, and rows arriving while every worker is busy are stored queued and claimed by the
claim loop, as are rows of other processes; the claim is what recovers a crash.

Per (instance, flow): at most `settings.concurrency` executions at once, or one at a time in
arrival order when `settings.sequential`. Failed executions are retried per
`settings.execution_retry` as a new inbox row (source `retry`, a new execution id, `replay_of` the
failed one) after the backoff; flow errors (invalid flow, expressions, limits) and stop steps are
not retried. Only active, enabled instances run; a disabled instance's rows wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection

from app.persistence import inbox
from app.persistence.db import WRITE_OPTION, shared
from app.persistence.inbox import Claimed, Finish, FlowLimits, Retry, claimed_from
from app.persistence.recording import Batched, SqlRecorder, SqlStateBackend
from app.services.alerts import Escalations
from app.services.bodies import BodyOptions, parse_body
from app.services.environment import EnvironmentCache, InstanceEnvironment
from app.services.errors import NotFound
from app.services.hub import Hub, SyncOutcome
from app.services.listener import InboxListener
from app.services.retention import prune
from app.services.routing import body_options
from app.services.schedules import ScheduleTicker
from app.services.threads import to_thread_shielded
from components.api import Response, TriggerEvent
from runtime.engine import backoff_delay, run_flow
from runtime.errors import (
    ExpressionError,
    FlowError,
    FlowValidationError,
    LimitExceeded,
    StopFlow,
)
from runtime.ids import new_execution_id
from runtime.model import Flow
from runtime.observer import ErrorInfo, ExecutionInfo, ExecutionResult, Status, StepRecord

__all__ = ["WorkerPool"]

log = logging.getLogger("flowyard.workers")

_NOT_RETRIED = frozenset(
    {
        FlowError.kind,
        FlowValidationError.kind,
        ExpressionError.kind,
        LimitExceeded.kind,
        StopFlow.kind,
        "body_error",
        "environment",
    }
)
"""Error kinds a rerun of the unchanged flow would hit again."""


class _Reservation:
    """A worker of a `WorkerPool` held for one async webhook until its row is stored.

    `limit` is the flow's concurrency, for `InboxWriter.submit`. `hand_over` must be called
    once, with the store's future: the row then runs at once if it was committed leased to this
    process; otherwise (queued, duplicate, failed) the worker is free again.
    """

    __slots__ = ("_pool", "limit")

    def __init__(self, pool: WorkerPool, limit: int) -> None:
        self._pool, self.limit = pool, limit

    def hand_over(self, stored: asyncio.Future[tuple[str, bool]], values: dict[str, Any]) -> None:
        self._pool._handing.add(stored)
        stored.add_done_callback(lambda done: self._pool._hand_over(values, done))


class _Replies:
    """Sync waiters, plus recent outcomes so a waiter that registers late still gets them."""

    def __init__(self, ttl: float = 120.0, size: int = 10_000) -> None:
        self._ttl, self._size = ttl, size
        self._outcomes: OrderedDict[str, tuple[float, SyncOutcome]] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[SyncOutcome]]] = {}

    def publish(self, execution_id: str, outcome: SyncOutcome) -> None:
        now = time.monotonic()
        self._outcomes[execution_id] = (now, outcome)
        self._outcomes.move_to_end(execution_id)
        while self._outcomes and (
            len(self._outcomes) > self._size
            or next(iter(self._outcomes.values()))[0] < now - self._ttl
        ):
            self._outcomes.popitem(last=False)
        for waiter in self._waiters.pop(execution_id, []):
            if not waiter.done():
                waiter.set_result(outcome)

    def known(self, execution_id: str) -> SyncOutcome | None:
        entry = self._outcomes.get(execution_id)
        if entry is None or entry[0] < time.monotonic() - self._ttl:
            return None
        return entry[1]

    async def wait(self, execution_id: str, seconds: float) -> SyncOutcome | None:
        known = self.known(execution_id)
        if known is not None:
            return known
        waiter: asyncio.Future[SyncOutcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(execution_id, []).append(waiter)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), seconds)
        except TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(execution_id)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[execution_id]


class _Fanout:
    """The observer of a run: everything to the recorder, replies to the sync waiters."""

    def __init__(self, recorder: SqlRecorder, replies: _Replies) -> None:
        self._recorder, self._replies = recorder, replies

    def execution_started(self, info: ExecutionInfo) -> None:
        self._recorder.execution_started(info)

    def step_started(self, record: StepRecord) -> None:
        self._recorder.step_started(record)

    def step_finished(self, record: StepRecord) -> None:
        self._recorder.step_finished(record)

    def response_ready(self, execution_id: str, response: Response) -> None:
        self._recorder.response_ready(execution_id, response)
        self._replies.publish(execution_id, SyncOutcome(response, None))

    def execution_finished(self, result: ExecutionResult) -> None:
        self._recorder.execution_finished(result)


def _failure(
    execution_id: str, flow_id: str, error: ErrorInfo, status: Status = Status.FAILED
) -> ExecutionResult:
    return ExecutionResult(
        execution_id=execution_id,
        flow_id=flow_id,
        status=status,
        started_at=time.time(),
        duration_ms=0.0,
        error=error,
    )


class WorkerPool:
    """Runs executions for this process; see the module docstring. Implements `Dispatcher`.

    `clock` drives leases, retries' `not_before`, schedules and retention (tests inject one);
    `poll_interval` is how often idle workers look for due retries and expired leases.
    """

    def __init__(
        self,
        hub: Hub,
        *,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 1.0,
        schedule_interval: float = 5.0,
        retention_interval: float = 300.0,
        recover: bool = True,
    ) -> None:
        self.hub = hub
        self.settings = hub.settings
        self.clock = clock
        self.poll_interval = poll_interval
        self.schedule_interval = schedule_interval
        self.retention_interval = retention_interval
        self.recover = recover
        self.environments = EnvironmentCache(hub)
        self._options: dict[str, tuple[InstanceEnvironment, dict[str, BodyOptions | None]]] = {}
        self.recorder = SqlRecorder(hub.db, on_write=self._claim_in)
        self.state = SqlStateBackend(hub.db)
        self.schedules = ScheduleTicker(hub, self.environments, clock=clock, on_fire=self.notify)
        self.escalations = Escalations(hub, self.environments, self.notify)  # error flows, alerts
        self._replies = _Replies()
        self._wake = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        # Claimed rows not started yet (leased; a slot frees soon), and the bookkeeping that
        # keeps claims from the claim loop and from the recorder's transactions from overlapping.
        # Both run in worker threads, hence the lock.
        self._ready: deque[Claimed] = deque()
        self._leasing = 0
        self._committing = 0
        self._ready_lock = threading.Lock()
        # Slots held for async webhooks being committed leased to this process (`try_reserve`),
        # their pending stores, and the rows of those that arrived while the pool was stopping.
        self._reserved = 0
        self._handing: set[asyncio.Future[tuple[str, bool]]] = set()
        self._handed_back: list[int] = []
        # Until then (monotonic), the claim loop does not claim: the last claim found fewer
        # rows than it had room for, and nothing was queued since (`notify` counts in
        # `_notified` and ends it); it lasts one poll interval (due retries, expired leases).
        self._drained_until = 0.0
        self._notified = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lifecycle: set[asyncio.Task[Any]] = set()
        self._services: list[asyncio.Task[None]] = []
        self._stopping = False
        self._random = random.Random()
        self._listener: InboxListener | None = None

    # ------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Recover what a crash left, then start claiming, heartbeats, schedules and retention."""
        if self.hub.dispatcher is None:
            self.hub.dispatcher = self
        if self.recover and not shared(self.hub.db):
            # Alone on its database (SQLite): whatever was left running died with the last run.
            # On a shared database other processes may be running those rows; a dead one's rows
            # are claimed again when their lease expires.
            requeued = await asyncio.to_thread(inbox.requeue_running, self.hub.db)
            crashed = await asyncio.to_thread(
                inbox.crash_orphaned_executions, self.hub.db, now=self.clock()
            )
            if requeued or crashed:
                log.warning("recovered %d unfinished requests; %d runs crashed", requeued, crashed)
        self._stopping = False
        self._loop = loop = asyncio.get_running_loop()
        if shared(self.hub.db):

            def wake() -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(self.notify)

            def changed(instance_id: str | None) -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(self.hub.forget_instance, instance_id)

            self._listener = InboxListener(self.hub.db, wake, on_instance=changed)
            self._listener.start()
        self._services = [
            asyncio.create_task(self._claim_loop(), name="flowyard-claim"),
            asyncio.create_task(self._heartbeat_loop(), name="flowyard-lease"),
            asyncio.create_task(
                self._every(self.schedule_interval, self._tick), name="flowyard-schedules"
            ),
            asyncio.create_task(
                self._every(self.retention_interval, self.prune), name="flowyard-retention"
            ),
        ]
        self._wake.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; wait up to `grace` seconds for running executions, then cancel them
        and hand their rows back to the queue (re-run as recovered, here or by another worker),
        with the rows claimed but not started."""
        self._stopping = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop(wait=False)  # joined last: the grace below is for the executions
        for task in self._services:
            task.cancel()
        await asyncio.gather(*self._services, return_exceptions=True)
        self._services = []
        if self._handing:  # rows being committed leased to us: handed back below
            await asyncio.wait(list(self._handing), timeout=grace)
        work = [*self._running.values(), *self._lifecycle]
        cancelled: list[int] = []
        if work:
            _, late = await asyncio.wait(work, timeout=grace)
            cancelled = [row_id for row_id, task in self._running.items() if task in late]
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.escalations.stop(grace)
        try:
            await self.recorder.flush()
        except Exception:
            log.exception("could not write the last execution records")
        with self._ready_lock:
            unstarted = [row.id for row in self._ready] + self._handed_back
            self._ready.clear()
            self._handed_back = []
        try:
            await asyncio.to_thread(inbox.requeue, self.hub.db, unstarted, started=False)
            await asyncio.to_thread(inbox.requeue, self.hub.db, cancelled, started=True)
        except Exception:
            log.exception("could not give back %d claimed requests", len(unstarted))
        if listener is not None:
            await asyncio.to_thread(listener.join, 5)

    # ------------------------------------------------------------------------------ Dispatcher

    def notify(self) -> None:
        self._notified += 1
        self._drained_until = 0.0
        self._wake.set()

    def start_now(self, row: Claimed) -> None:
        """Run a row committed already leased to this process (a synchronous webhook) at once,
        beside the claimed ones: it never waits behind a backlog, and its reply is local."""
        self._running[row.id] = asyncio.create_task(
            self._run_row(row), name=f"flowyard-run-{row.execution_id}"
        )

    def try_reserve(self, instance_id: str, flow_id: str) -> _Reservation | None:
        """Hold a free worker for an async webhook of (instance, flow) about to be stored, so it
        can be committed already leased to this process and run at once; None when it must be
        queued instead: the pool is stopping or full, the flow is sequential (FIFO is decided
        by the claim), or its instance is not loaded here yet (its limits are unknown)."""
        if self._stopping or not self._services:
            return None
        env = self.environments.cached(instance_id)
        flow = None if env is None else env.flows.get(flow_id)
        if flow is None or flow.settings.sequential:
            return None
        with self._ready_lock:
            # A claim in flight (`_leasing`) does not count: it usually finds nothing once
            # webhooks are handed over, and the rows it does find wait in `_ready` until a
            # worker frees (`_claim_loop` starts them only then), so none runs beyond `workers`.
            if self._free() + self._leasing <= 0:
                return None
            self._reserved += 1
        return _Reservation(self, flow.settings.concurrency)

    def _free(self) -> int:
        """Workers neither running, nor promised to a claimed or reserved row (hold the lock)."""
        taken = len(self._running) + len(self._ready) + self._leasing + self._reserved
        return self.settings.workers - taken

    def _hand_over(self, values: dict[str, Any], stored: asyncio.Future[tuple[str, bool]]) -> None:
        """`stored` finished: run the row if it was committed leased to us, else free the slot."""
        # not stored (the sender retries), or a duplicate: nothing to run
        fresh = not stored.cancelled() and stored.exception() is None and not stored.result()[1]
        if not fresh or values["status"] != "running":
            self._handing.discard(stored)
            with self._ready_lock:
                self._reserved -= 1
            if fresh:  # over its flow's limit: stored queued
                self.notify()
            return
        # Started on the loop's next turn, after the request's own task has resumed: the ack
        # goes out before the flow's first (synchronous) steps take the event loop. `stored`
        # stays in `_handing` until then, so a `stop()` beginning meanwhile waits for the row.
        asyncio.get_running_loop().call_soon(self._start_reserved, claimed_from(values), stored)

    def _start_reserved(self, row: Claimed, stored: asyncio.Future[tuple[str, bool]]) -> None:
        self._handing.discard(stored)
        with self._ready_lock:
            self._reserved -= 1
            if self._stopping:
                self._handed_back.append(row.id)
                return
        self.start_now(row)

    async def wait_for_reply(self, execution_id: str, seconds: float) -> SyncOutcome | None:
        return await self._replies.wait(execution_id, seconds)

    def invalidate(self, instance_id: str | None) -> None:
        self.environments.invalidate(instance_id)
        if instance_id is None:
            self._options.clear()
        else:
            self._options.pop(instance_id, None)
        self.notify()  # an enabled or activated instance may have rows waiting

    async def run_lifecycle(
        self, instance_id: str, flow_id: str, event: TriggerEvent
    ) -> ExecutionResult:
        """Run one flow of an instance now, without an inbox row; recorded before it returns."""
        task = asyncio.current_task()
        if task is not None:
            self._lifecycle.add(task)
        try:
            env = await self.environments.get(instance_id)
            flow = env.flows.get(flow_id)
            if flow is None:
                raise NotFound(f"Instance '{env.name}' has no flow '{flow_id}'.")
            execution_id = new_execution_id()
            await asyncio.to_thread(self._prepare_lifecycle, execution_id, flow_id, instance_id)
            result = await self._execute(env, flow, event, execution_id)
            await self.recorder.flush()
            self._replies.publish(execution_id, SyncOutcome(result.response, result))
            return result
        finally:
            if task is not None:
                self._lifecycle.discard(task)

    def _prepare_lifecycle(self, execution_id: str, flow_id: str, instance_id: str) -> None:
        with self.hub.db.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            inbox.prepare_execution(
                conn,
                execution_id=execution_id,
                flow_id=flow_id,
                instance_id=instance_id,
                queued_at=self.clock(),
            )

    # ------------------------------------------------------------------------------ services

    async def prune(self) -> None:
        """One retention pass (the pool runs it every `retention_interval` seconds)."""
        await to_thread_shielded(
            prune,
            self.hub.db,
            now=self.clock(),
            retention_days=self.settings.retention_days,
            max_executions=self.settings.retention_max_executions,
        )

    async def _tick(self) -> None:
        await self.schedules.tick()

    async def _every(self, seconds: float, job: Callable[[], Any]) -> None:
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background job %s failed", getattr(job, "__name__", job))
            await asyncio.sleep(seconds)

    async def _heartbeat_loop(self) -> None:
        lease = self.settings.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            try:
                held = [*self._running, *(row.id for row in list(self._ready))]
                until = self.clock() + lease
                await to_thread_shielded(inbox.renew_leases, self.hub.db, held, until)
            except Exception:
                log.exception("could not renew leases")

    def _limits(self, instance_id: str, flow_id: str) -> FlowLimits:
        try:
            env = self.environments.get_blocking(instance_id)
        except Exception:
            return FlowLimits()
        flow = env.flows.get(flow_id)
        if flow is None:
            return FlowLimits()
        return FlowLimits(flow.settings.concurrency, flow.settings.sequential)

    def _claim_in(self, conn: Connection) -> Callable[[bool], None] | None:
        """Claim rows for the free slots inside `conn`'s write transaction (worker thread).

        Called by the claim loop and, last, in every recorder transaction: rows finishing there
        free their slots, and the next rows are leased in the same commit. Claimed rows go to
        `_ready` once the transaction commits; the loop starts them as slots free.
        """
        with self._ready_lock:
            if self._stopping:
                return None
            # Rows committing free their slots in this very transaction.
            free = self._free() + min(self._committing, len(self._running))
            if free <= 0:
                return None
            self._leasing += free
            notified = self._notified
        try:
            with conn.begin_nested():  # a failed claim must not undo the records around it
                rows = inbox.claim_rows(
                    conn,
                    now=self.clock(),
                    lease_seconds=self.settings.lease_seconds,
                    limit=free,
                    limits_of=self._limits,
                )
        except Exception:
            log.exception("could not claim queued requests")
            rows = []

        def settle(committed: bool) -> None:
            with self._ready_lock:
                self._leasing -= free
                if committed:
                    self._ready.extend(rows)
                    if len(rows) < free and notified == self._notified:
                        self._drained_until = time.monotonic() + self.poll_interval
            if committed and rows and self._loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    self._loop.call_soon_threadsafe(self._wake.set)

        return settle

    def _claim(self) -> None:
        with self.hub.db.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            settle = self._claim_in(conn)
        if settle is not None:
            settle(True)

    async def _claim_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            while self._ready and len(self._running) < self.settings.workers:
                row = self._ready.popleft()
                self._running[row.id] = asyncio.create_task(
                    self._run_row(row), name=f"flowyard-run-{row.execution_id}"
                )
            # While executions are committing, their transaction claims for the slots they free.
            with self._ready_lock:
                idle = self._free() > 0
            # A finished run wakes the loop to start ready rows; once a claim came back short
            # (the usual case when webhooks are handed over) it does not query again for that.
            drained = time.monotonic() < self._drained_until
            if idle and self._committing == 0 and not drained:
                try:
                    await to_thread_shielded(self._claim)  # stop() waits for its commit
                except Exception:
                    log.exception("could not claim queued requests")
                if self._ready:
                    continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    # ------------------------------------------------------------------------------ running

    async def _run_row(self, row: Claimed) -> None:
        try:
            result, retry = await self._run_claimed(row)
            status = "done" if result.status == Status.SUCCEEDED else "failed"
            if result.error is not None and result.error.kind in ("body_error", "invalid_flow"):
                status = "dead"
            # The row is marked finished in the transaction that commits its records, together
            # with the other rows finishing there (one UPDATE executemany).
            finish = Batched(self._mark_finished, Finish(row, status, retry), row.execution_id)
            self._committing += 1
            try:
                await self.recorder.flush(then=finish)
            except Exception:
                self.recorder.forget(finish)  # requeued below instead
                raise
            finally:
                self._committing -= 1
            self._replies.publish(row.execution_id, SyncOutcome(result.response, result))
            self.escalations.finished(row, result, retried=retry is not None)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("execution %s could not be recorded; it will run again", row.execution_id)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(inbox.requeue, self.hub.db, [row.id])
            self._drained_until = 0.0
        finally:
            self._running.pop(row.id, None)
            self._wake.set()

    def _mark_finished(self, conn: Connection, items: list[Finish]) -> None:
        inbox.mark_finished(conn, items, now=self.clock())

    async def _run_claimed(self, row: Claimed) -> tuple[ExecutionResult, Retry | None]:
        try:
            env = await self.environments.get(row.instance_id)
        except NotFound:
            error = ErrorInfo("environment", "The instance was deleted before this request ran.")
            return self._record_failure(row.execution_id, row.flow_id, error), None
        flow = env.flows.get(row.flow_id)
        if flow is None:
            error = ErrorInfo(
                "invalid_flow",
                f"Version {env.integration.version} of integration '{env.integration.name}' has "
                f"no flow '{row.flow_id}'.",
                "Deploy a version that has the flow, or replay the request to another flow.",
            )
            return self._record_failure(row.execution_id, row.flow_id, error), None
        try:
            event = TriggerEvent(
                body=_parse_body(row.headers, row.body, self._body_options(env, flow)),
                headers={str(k): str(v) for k, v in row.headers.items()},
                query=row.query,
                raw_body=row.body,
                method=row.method,
            )
        except Exception as exc:
            error = ErrorInfo(
                "body_error",
                f"The stored request body cannot be parsed: {exc}",
                "Check the sender's Content-Type and body; the raw request is kept.",
            )
            return self._record_failure(row.execution_id, flow.id, error), None
        result = await self._execute(env, flow, event, row.execution_id)
        return result, self._retry_of(flow, row, result)

    def _body_options(self, env: InstanceEnvironment, flow: Flow) -> BodyOptions | None:
        """The flow's body options as ingest resolved them, once per loaded environment."""
        held = self._options.get(env.instance_id)
        if held is None or held[0] is not env:
            held = self._options[env.instance_id] = (env, {})
        if flow.id not in held[1]:
            held[1][flow.id] = body_options(self.hub.registry, flow, env.config, env.instance)
        return held[1][flow.id]

    def _retry_of(self, flow: Flow, row: Claimed, result: ExecutionResult) -> Retry | None:
        policy = flow.settings.execution_retry
        if policy is None or result.status != Status.FAILED or row.attempt >= policy.max_attempts:
            return None
        if result.error is not None and result.error.kind in _NOT_RETRIED:
            return None
        delay = backoff_delay(policy, row.attempt, self._random.random(), None)
        return Retry(delay=delay)

    async def _execute(
        self,
        env: InstanceEnvironment,
        flow: Flow,
        event: TriggerEvent,
        execution_id: str,
    ) -> ExecutionResult:
        """Run `flow` and report it to the recorder (not flushed yet) and the waiters."""
        if env.problem is not None:
            error = ErrorInfo(
                "environment",
                f"Instance '{env.name}' cannot run: {env.problem}",
                "Restore the secret key the connections were saved with, or set them again.",
            )
            return self._record_failure(execution_id, flow.id, error)
        observer = _Fanout(self.recorder, self._replies)
        try:
            context = env.run_context(self.hub.registry, self.hub.http, self.state, execution_id)
            return await run_flow(flow, event, context, observer)
        except FlowValidationError as exc:
            error = ErrorInfo(
                FlowValidationError.kind,
                f"Flow '{flow.label}' cannot run: {exc.message}",
                "Fix the flow in the designer and deploy the instance again.",
            )
            return self._record_failure(execution_id, flow.id, error)

    def _record_failure(
        self, execution_id: str, flow_id: str, error: ErrorInfo, status: Status = Status.FAILED
    ) -> ExecutionResult:
        result = _failure(execution_id, flow_id, error, status)
        self.recorder.execution_started(ExecutionInfo(execution_id, flow_id, result.started_at))
        self.recorder.execution_finished(result)
        return result

    @property
    def running(self) -> Mapping[int, asyncio.Task[None]]:
        """Inbox row ids this process is running now (for tests and health)."""
        return dict(self._running)


def _parse_body(headers: Mapping[str, Any], raw: bytes, options: BodyOptions | None) -> Any:
    headers = {str(k).lower(): str(v) for k, v in headers.items()}
    return parse_body(headers, raw, options=options)
