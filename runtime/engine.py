"""The engine: runs one flow for one trigger event, reporting every step to an observer.

Entry point: `await run_flow(flow, event, context, observer)`, a plain async function so an
in-process worker and a distributed one call it the same way.

Scheduling. Steps run one at a time in a deterministic order (file order breaks ties). When a step
finishes on port `p`, its edges on `p` are *taken* and its other edges are *dead*. A step is decided
once all its incoming edges are: it runs if at least one was taken, otherwise it is recorded as
`skipped` and its own edges die. That gives branches (untaken paths skipped) and joins (run once all
incoming paths are finished or skipped and at least one finished) with one rule.

Loops. A loop step's `body` port leads to its body: the steps reachable from it. The engine runs
the body once per item (sequentially, or `concurrency` at a time), each iteration with its own
`loop.item`, `loop.index` and its own step records, then continues on `done` with
`{count, results}`, where `results[i]` is the output of the last step iteration `i` ran.

Partial runs (the designer's "run up to here"). `only` limits a run to some steps: the others are
neither run nor recorded. `reuse` gives earlier records whose output and port stand in for
running a step: the step is recorded as succeeded with that output and a log line naming the
execution it came from.

Pinned steps (test runs). `pinned` gives outputs that stand in for running some steps, wherever
they run (inside loop bodies too): the step is recorded as succeeded with `pinned` set, and a
pinned loop does not run its body.

HTTP exchanges. Each step's record keeps the requests it made and their answers
(`runtime.recorded.capturing`), with the run's secrets masked like the rest of the record.

Failures. A step error is retried by the step's policy when retryable; after the last attempt
`on_error: fail` fails the execution and `on_error: continue` records the error as the step's
output and continues on its `error` port if connected, else on its default port.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pydantic

from components.api import (
    DEFAULT_PORT,
    Action,
    LoopPlan,
    Response,
    Result,
    StepContext,
    StepLogger,
    Trigger,
    TriggerContext,
    TriggerEvent,
)
from runtime.context import RunContext
from runtime.errors import (
    EngineCrash,
    FlowError,
    FlowValidationError,
    FlowyardError,
    LimitExceeded,
    RetryableError,
    StepConfigError,
    StepError,
    StepTimeout,
)
from runtime.model import Flow, RetryPolicy
from runtime.observer import (
    ErrorInfo,
    ExecutionInfo,
    ExecutionResult,
    Observer,
    Status,
    StepRecord,
)
from runtime.prepare import PreparedFlow, PreparedStep, prepare_flow
from runtime.recorded import capturing
from runtime.redaction import redact, secret_values, watch_tokens
from runtime.state import BoundState

__all__ = ["Pin", "backoff_delay", "run_flow"]


@dataclass(frozen=True, slots=True)
class Pin:
    """A pinned step's stand-in result: `output`, leaving on `port` (None: the step's default
    port, `done` for a loop)."""

    output: Any
    port: str | None = None


class _NullObserver:
    def execution_started(self, info: ExecutionInfo) -> None:
        pass

    def step_started(self, record: StepRecord) -> None:
        pass

    def step_finished(self, record: StepRecord) -> None:
        pass

    def response_ready(self, execution_id: str, response: Response) -> None:
        pass

    def execution_finished(self, result: ExecutionResult) -> None:
        pass


class _Abort(Exception):
    """Unwinds the scheduler when a step failed and the execution must stop."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


def _retry_truth(hint: str, policy: RetryPolicy | None, attempts: int) -> str:
    """A transient failure's hint, plus what retrying did: components cannot know the policy."""
    if policy is None:
        said = (
            "It was tried once: the step has no retry policy (add one under Error handling "
            "to retry failures like this)."
        )
    else:
        said = f"It failed all {attempts} attempts its retry policy allows."
    return f"{hint} {said}".strip()


def backoff_delay(
    policy: RetryPolicy, attempt: int, rng_value: float, retry_after: float | None
) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based). `rng_value` is in [0, 1)."""
    delay = policy.delay if policy.backoff == "fixed" else policy.delay * 2 ** (attempt - 1)
    if policy.jitter:
        delay *= 0.75 + 0.5 * rng_value
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, policy.max_delay)


async def run_flow(
    flow: Flow | PreparedFlow,
    event: TriggerEvent,
    context: RunContext,
    observer: Observer | None = None,
    *,
    only: Collection[str] | None = None,
    reuse: Mapping[str, StepRecord] | None = None,
    pinned: Mapping[str, Pin] | None = None,
) -> ExecutionResult:
    """Run `flow` for `event`. Raises `FlowValidationError` if the flow cannot run at all.

    Every other outcome is a result: succeeded, failed (a step or the flow is at fault), crashed
    (an engine bug) or, when the calling task is cancelled, cancelled (then `CancelledError` is
    re-raised after the observer has been told).

    `only`: run just these steps (the trigger always runs); the others are not run and not
    recorded. Pass a set closed under ancestors (a step and everything it depends on): a step
    whose incoming paths all lie outside it is recorded as skipped. `reuse`: step id -> a record
    of an earlier run; the step is not run but recorded as succeeded with that record's input,
    output and port. Only top-level steps are reused (not the trigger, not steps inside a loop
    body; a reused loop does not run its body); a record whose port the step no longer has is
    ignored and the step runs. Called flows run whole. `pinned`: step id -> the `Pin` used
    instead of running it (see the module doc).
    """
    prepared = flow if isinstance(flow, PreparedFlow) else prepare_flow(flow, context.registry)
    if prepared.errors:
        raise FlowValidationError(prepared.errors)
    run = _Run(prepared, event, context, observer or _NullObserver())
    if only is not None:
        run.only = frozenset(only)
    if reuse:
        run.reuse = reuse
    if pinned:
        run.pinned = pinned
    return await run.execute()


@dataclass(slots=True)
class _Scope:
    """What templates see in one region: outputs so far and the loop variables."""

    steps: dict[str, Any]
    loop: dict[str, Any] | None = None
    iteration: tuple[int, ...] = ()
    last_output: Any = None
    ran_any: bool = False
    values: dict[str, Any] = field(default_factory=dict)


class _Run:
    def __init__(
        self, prepared: PreparedFlow, event: TriggerEvent, context: RunContext, observer: Observer
    ) -> None:
        self.p = prepared
        self.flow = prepared.flow
        self.event = event
        self.ctx = context
        self.obs = observer
        self.limits = replace(context.limits, budget=self.flow.settings.expression_budget)
        self.execution_id = context.execution_id
        self.only: frozenset[str] | None = None
        self.reuse: Mapping[str, StepRecord] = {}
        self.pinned: Mapping[str, Pin] = {}
        self.steps_run = 0
        self.response: Response | None = None
        self.secrets = _secret_values(context)
        self.tokens_seen = False
        """A token source handed out a token after the run started (see `_seen_token`)."""
        self.state = BoundState(context.state, context.instance_id, self.flow.id)
        # What every trigger and step context shares for this run.
        self.services: dict[str, Any] = {
            "http": context.http,
            "config": context.config,
            "connections": watch_tokens(context.connections, self._seen_token),
            "state": self.state,
            "instance_id": context.instance_id,
            "flow_id": self.flow.id,
            "webhook_urls": context.webhook_urls,
        }
        self.base_scope: dict[str, Any] = {
            "config": dict(context.config),
            "instance": {**context.instance, "webhook_urls": dict(context.webhook_urls)},
            "flow": {"id": self.flow.id, "name": self.flow.label},
            "execution": {"id": self.execution_id},
        }

    # ----------------------------------------------------------------------------- execution

    async def execute(self) -> ExecutionResult:
        started_at = self.ctx.now()
        t0 = time.perf_counter()
        self.obs.execution_started(
            ExecutionInfo(self.execution_id, self.flow.id, started_at, self.ctx.parent_execution_id)
        )
        status, error, output = Status.SUCCEEDED, None, None
        try:
            async with asyncio.timeout(self.flow.settings.timeout):
                output = await self.run_top()
        except _Abort as abort:
            status, error = Status.FAILED, abort.error
        except TimeoutError:
            status = Status.FAILED
            error = ErrorInfo(
                LimitExceeded.kind,
                f"The execution ran longer than {self.flow.settings.timeout:g} s and was stopped.",
                "Raise the flow's timeout setting, or make slow steps faster.",
            )
        except asyncio.CancelledError:
            self.finish(started_at, t0, Status.CANCELLED, None, None)
            raise
        except Exception as exc:  # anything else is our bug: crashed, not failed
            status = Status.CRASHED
            error = ErrorInfo(
                EngineCrash.kind,
                f"The engine crashed: {type(exc).__name__}: {exc}",
                "This is a Flowyard bug; the execution can be replayed.",
            )
        return self.finish(started_at, t0, status, error, output)

    def finish(
        self,
        started_at: float,
        t0: float,
        status: Status,
        error: ErrorInfo | None,
        output: Any,
    ) -> ExecutionResult:
        result = ExecutionResult(
            execution_id=self.execution_id,
            flow_id=self.flow.id,
            status=status,
            started_at=started_at,
            duration_ms=(time.perf_counter() - t0) * 1000,
            error=error,
            output=output,
            response=self.response,
            steps_run=self.steps_run,
        )
        # The caller (a calling flow, a synchronous webhook) gets the real values; what is
        # reported to be recorded is redacted like every step record.
        self.obs.execution_finished(
            replace(result, output=redact(output, self.secrets), error=self.redact_error(error))
        )
        return result

    def redact_error(self, error: ErrorInfo | None) -> ErrorInfo | None:
        if error is None or not self.secrets:
            return error
        message, hint = redact(error.message, self.secrets), redact(error.hint, self.secrets)
        return replace(error, message=message, hint=hint)

    async def run_top(self) -> Any:
        trigger_out = await self.run_trigger()
        scope = _Scope(steps={self.flow.trigger.id: {"output": trigger_out}})
        scope.values = {**self.base_scope, "trigger": trigger_out, "steps": scope.steps}
        scope.last_output = trigger_out
        await self.run_region(None, scope, seeds={self.flow.trigger.id: DEFAULT_PORT})
        return scope.last_output

    async def run_trigger(self) -> Any:
        step = self.p.steps[self.flow.trigger.id]
        record = self.start_record(step, ())
        logger = StepLogger(self.secrets)
        try:
            inputs = self.resolve_inputs(step, self.base_scope)
            record.input = inputs.model_dump(mode="json")
            cls = step.cls
            assert issubclass(cls, Trigger)
            tctx = TriggerContext(log=logger, **self.services)
            output = _jsonable(await cls().run(inputs, self.event, tctx))
        except FlowyardError as exc:
            error = self.error_info(step, exc)
            self.end_record(record, Status.FAILED, logger, error=error)
            raise _Abort(error) from exc
        self.end_record(record, Status.SUCCEEDED, logger, output=output, port=DEFAULT_PORT)
        return output

    # ----------------------------------------------------------------------------- scheduling

    async def run_region(
        self, loop_id: str | None, scope: _Scope, seeds: Mapping[str, str]
    ) -> None:
        """Run the steps of one region (top level, or one loop body for one item).

        `seeds` are steps that already finished (the trigger, or the loop step itself) with the
        port they finished on.
        """
        region = self.p.regions[loop_id]
        remaining = dict(region.indegree)
        taken: dict[str, int] = {}
        ready: list[tuple[int, str]] = []

        def resolve_edges(step_id: str, port: str | None) -> None:
            for edge_port, target in self.p.steps[step_id].out_edges:
                if target not in remaining:
                    continue  # an edge into a nested body: that loop runs it
                if edge_port == port:
                    taken[target] = taken.get(target, 0) + 1
                remaining[target] -= 1
                if remaining[target] == 0:
                    heapq.heappush(ready, (self.p.steps[target].order, target))

        for seed, port in seeds.items():
            resolve_edges(seed, port)
        for step_id in region.roots:
            heapq.heappush(ready, (self.p.steps[step_id].order, step_id))

        only, reuse, pinned = self.only, self.reuse, self.pinned
        while ready:
            _, step_id = heapq.heappop(ready)
            step = self.p.steps[step_id]
            if only is not None and step_id not in only:
                resolve_edges(step_id, None)  # left out of a partial run: not recorded
                continue
            if not taken.get(step_id):
                self.record_skipped(step, scope.iteration)
                resolve_edges(step_id, None)
                continue
            if reuse and step_id in reuse and not scope.iteration:
                reused_port = self.reuse_step(step, scope, reuse[step_id])
                if reused_port is not None:
                    resolve_edges(step_id, reused_port)
                    continue
            if pinned and step_id in pinned:
                resolve_edges(step_id, self.pin_step(step, scope, pinned[step_id]))
                continue
            port = await self.run_step(step, scope)
            resolve_edges(step_id, port)

    # ----------------------------------------------------------------------------- steps

    def start_record(self, step: PreparedStep, iteration: tuple[int, ...]) -> StepRecord:
        self.steps_run += 1
        if self.steps_run > self.flow.settings.max_steps:
            limit = self.flow.settings.max_steps
            raise _Abort(
                ErrorInfo(
                    LimitExceeded.kind,
                    f"The execution stopped at step '{step.label}': it would run more than "
                    f"{limit} steps.",
                    "Raise the flow's max_steps setting, or loop over fewer items.",
                    step.id,
                )
            )
        record = StepRecord(
            execution_id=self.execution_id,
            step_id=step.id,
            step_name=step.label,
            action=step.step.action,
            status=Status.RUNNING,
            iteration=iteration,
            started_at=self.ctx.now(),
        )
        record.mono_start = time.perf_counter()
        self.obs.step_started(record)
        return record

    def _seen_token(self, token: str) -> None:
        if token not in self.secrets:
            self.secrets = secret_values([*self.secrets, token])
            self.tokens_seen = True

    def end_record(
        self,
        record: StepRecord,
        status: Status,
        logger: StepLogger,
        *,
        output: Any = None,
        port: str | None = None,
        error: ErrorInfo | None = None,
    ) -> None:
        record.duration_ms = (time.perf_counter() - record.mono_start) * 1000
        record.status = status
        record.output = output
        record.port = port
        record.error = error
        record.logs = logger.lines
        if self.tokens_seen:  # the logger masked only the values known when the step started
            record.logs = [replace(n, message=redact(n.message, self.secrets)) for n in record.logs]
        if self.secrets:  # a secret echoed into an input or output is never recorded
            record.input = redact(record.input, self.secrets)
            record.output = redact(output, self.secrets)
            record.exchanges = redact(record.exchanges, self.secrets)
            record.error = self.redact_error(error)
        self.obs.step_finished(record)

    def record_skipped(self, step: PreparedStep, iteration: tuple[int, ...]) -> None:
        self.obs.step_finished(
            StepRecord(
                execution_id=self.execution_id,
                step_id=step.id,
                step_name=step.label,
                action=step.step.action,
                status=Status.SKIPPED,
                iteration=iteration,
                started_at=self.ctx.now(),
            )
        )

    def reuse_step(self, step: PreparedStep, scope: _Scope, earlier: StepRecord) -> str | None:
        """Record `step` with an earlier run's result instead of running it; return its port.

        None (the step then runs) when the earlier port is not one the step has now.
        """
        if earlier.port is None or earlier.port not in step.ports:
            return None
        record = self.start_record(step, scope.iteration)
        record.input = earlier.input
        logger = StepLogger(self.secrets)
        logger.info("reused the output of execution %s; the step did not run", earlier.execution_id)
        self.end_record(record, Status.SUCCEEDED, logger, output=earlier.output, port=earlier.port)
        self.set_output(scope, step.id, earlier.output)
        return earlier.port

    def pin_step(self, step: PreparedStep, scope: _Scope, pin: Pin) -> str:
        """Record `step` with its pinned output instead of running it; return its port."""
        record = self.start_record(step, scope.iteration)
        record.pinned = True
        logger = StepLogger(self.secrets)
        default = "done" if {"body", "done"} <= set(step.ports) else step.ports[0]  # a loop
        port = pin.port or default
        if port not in step.ports:
            error = ErrorInfo(
                StepConfigError.kind,
                f"Step '{step.label}' is pinned on port '{port}', which it does not have "
                f"(its ports: {', '.join(step.ports)}).",
                "Fix the pin's port, or leave it out to use the step's default port.",
                step.id,
            )
            self.end_record(record, Status.FAILED, logger, error=error)
            raise _Abort(error)
        logger.info("pinned output used; the step did not run")
        self.end_record(record, Status.SUCCEEDED, logger, output=pin.output, port=port)
        self.set_output(scope, step.id, pin.output)
        return port

    def resolve_inputs(self, step: PreparedStep, values: Mapping[str, Any]) -> pydantic.BaseModel:
        """Render templates, then validate against the action's Inputs model."""
        raw = step.inputs.render(values, self.limits) if not step.inputs.static else step.raw
        try:
            return step.cls.Inputs.model_validate(raw)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"input '{'.'.join(map(str, e['loc'])) or '?'}': {e['msg']}"
                + (f" (got {_short(e.get('input'))})" if "input" in e and e["loc"] else "")
                for e in exc.errors()
            )
            raise StepConfigError(
                f"Step '{step.label}' has invalid inputs: {problems}.",
                hint="Fix the value in the inspector; a template may resolve to the wrong type.",
            ) from None

    async def run_step(self, step: PreparedStep, scope: _Scope) -> str:
        """Run one step (all its attempts); return the port taken. Raises `_Abort` on failure."""
        record = self.start_record(step, scope.iteration)
        logger = StepLogger(self.secrets)
        try:
            inputs = self.resolve_inputs(step, scope.values)
        except FlowyardError as exc:
            return self.fail_step(step, record, logger, scope, exc)
        record.input = inputs.model_dump(mode="json")
        attempt = 1
        while True:
            record.attempt = attempt
            try:
                with capturing(record.exchanges):
                    result = await self.attempt(step, inputs, logger, scope, attempt)
            except RetryableError as exc:
                policy = step.step.retry
                if policy is None or attempt >= policy.max_attempts:
                    exc.hint = _retry_truth(exc.hint, policy, attempt)
                    return self.fail_step(step, record, logger, scope, exc)
                delay = backoff_delay(policy, attempt, self.ctx.random.random(), exc.retry_after)
                logger.warning(
                    "attempt %d failed: %s; retrying in %.3g s", attempt, exc.message, delay
                )
                await self.ctx.sleep(delay)
                attempt += 1
                continue
            except FlowyardError as exc:
                return self.fail_step(step, record, logger, scope, exc)
            except asyncio.CancelledError:
                self.end_record(record, Status.CANCELLED, logger)
                raise
            break
        if isinstance(result, LoopPlan):
            return await self.run_loop(step, record, logger, scope, result)
        output, port = (
            (result.output, result.port) if isinstance(result, Result) else (result, DEFAULT_PORT)
        )
        output = _jsonable(output)
        if port not in step.ports:
            error = self.error_info(
                step,
                StepError(
                    f"Step '{step.label}' chose port '{port}', which it does not have "
                    f"(its ports: {', '.join(step.ports)}).",
                    hint=f"This is a bug in component '{step.step.action}'.",
                ),
            )
            self.end_record(record, Status.FAILED, logger, error=error)
            raise _Abort(error)
        self.end_record(record, Status.SUCCEEDED, logger, output=output, port=port)
        self.set_output(scope, step.id, output)
        return port

    async def attempt(
        self,
        step: PreparedStep,
        inputs: pydantic.BaseModel,
        logger: StepLogger,
        scope: _Scope,
        attempt: int,
    ) -> Any:
        """One attempt of `run`, bounded by the step timeout; other exceptions become StepError."""
        action = step.instance
        assert isinstance(action, Action)
        sctx = StepContext(
            log=logger,
            **self.services,
            execution_id=self.execution_id,
            step_id=step.id,
            attempt=attempt,
            iteration=scope.iteration,
            call_flow=self.call_flow,
            respond=self.respond,
            sleep=self.ctx.sleep,
        )
        timeout = step.step.timeout or self.flow.settings.step_timeout
        try:
            async with asyncio.timeout(timeout):
                return await action.run(inputs, sctx)
        except TimeoutError:
            raise StepTimeout(
                f"Step '{step.label}' ran longer than its {timeout:g} s timeout.",
                hint="Raise the step's timeout, or add a retry policy.",
            ) from None
        except (FlowyardError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise StepError(
                f"Step '{step.label}' raised {type(exc).__name__}: {exc}",
                hint=f"This is a bug in component '{step.step.action}'; report it to its author.",
            ) from exc

    def error_info(self, step: PreparedStep, exc: FlowyardError) -> ErrorInfo:
        message = exc.message
        if f"'{step.label}'" not in message:
            message = f"Step '{step.label}' failed: {message}"
        kind = (
            "component_error" if exc.__cause__ is not None and type(exc) is StepError else exc.kind
        )
        return ErrorInfo(kind, message, exc.hint, step.id)

    def fail_step(
        self,
        step: PreparedStep,
        record: StepRecord,
        logger: StepLogger,
        scope: _Scope,
        exc: FlowyardError,
    ) -> str:
        error = self.error_info(step, exc)
        continues = step.step.on_error == "continue" and not isinstance(exc, FlowError)
        if not continues:
            self.end_record(record, Status.FAILED, logger, error=error)
            raise _Abort(error)
        port = "error" if step.has_error_edge else step.ports[0]
        output = {"error": {"kind": error.kind, "message": error.message, "hint": error.hint}}
        logger.warning("continuing after error: %s", error.message)
        self.end_record(record, Status.FAILED, logger, output=output, port=port, error=error)
        self.set_output(scope, step.id, output)
        return port

    def set_output(self, scope: _Scope, step_id: str, output: Any) -> None:
        scope.steps[step_id] = {"output": output}
        scope.last_output = output
        scope.ran_any = True

    # ----------------------------------------------------------------------------- loops

    async def run_loop(
        self,
        step: PreparedStep,
        record: StepRecord,
        logger: StepLogger,
        scope: _Scope,
        plan: LoopPlan,
    ) -> str:
        items = list(plan.items)
        results: list[Any] = [None] * len(items)
        logger.info("looping over %d items (concurrency %d)", len(items), plan.concurrency)

        async def iteration(index: int) -> None:
            steps = dict(scope.steps)
            loop_vars = {"item": items[index], "index": index, "count": len(items)}
            if scope.loop is not None:
                loop_vars["parent"] = scope.loop
            inner = _Scope(
                steps=steps,
                loop=loop_vars,
                iteration=(*scope.iteration, index),
                values={**scope.values, "steps": steps, "loop": loop_vars},
            )
            await self.run_region(step.id, inner, seeds={step.id: "body"})
            results[index] = inner.last_output if inner.ran_any else items[index]

        try:
            if plan.concurrency <= 1:
                for index in range(len(items)):
                    await iteration(index)
            else:
                await self.run_concurrently(iteration, len(items), plan.concurrency)
        except _Abort as abort:
            error = ErrorInfo(
                abort.error.kind,
                f"Loop '{step.label}' stopped: {abort.error.message}",
                abort.error.hint,
                step.id,
            )
            self.end_record(record, Status.FAILED, logger, error=error)
            raise _Abort(abort.error) from None
        except asyncio.CancelledError:
            self.end_record(record, Status.CANCELLED, logger)
            raise
        output = {"count": len(items), "results": results}
        self.end_record(record, Status.SUCCEEDED, logger, output=output, port="done")
        self.set_output(scope, step.id, output)
        return "done"

    async def run_concurrently(self, iteration: Any, count: int, limit: int) -> None:
        semaphore = asyncio.Semaphore(limit)

        async def bounded(index: int) -> None:
            async with semaphore:
                await iteration(index)

        try:
            async with asyncio.TaskGroup() as group:
                for index in range(count):
                    group.create_task(bounded(index))
        except BaseExceptionGroup as group_error:
            aborts = [e for e in group_error.exceptions if isinstance(e, _Abort)]
            if aborts:
                raise aborts[0] from None
            raise

    # ----------------------------------------------------------------------------- context services

    def respond(self, response: Response) -> None:
        if self.response is not None:
            return  # the first reply wins: a synchronous caller has already been answered
        self.response = response
        self.obs.response_ready(self.execution_id, response)

    async def call_flow(self, ref: str, payload: Any) -> Any:
        flows = self.ctx.flows
        target = flows.get(ref) or next((f for f in flows.values() if f.name == ref), None)
        if target is None:
            names = ", ".join(sorted(flows)) or "none"
            raise StepConfigError(
                f"There is no flow '{ref}' to call (flows: {names}).",
                hint="Pick a flow of this integration.",
            )
        if self.ctx.call_depth >= self.ctx.max_call_depth:
            raise LimitExceeded(
                f"Flow calls are nested more than {self.ctx.max_call_depth} deep.",
                hint="A flow probably calls itself; break the chain.",
            )
        body: Any = payload
        headers: dict[str, str] = {}
        if isinstance(payload, dict):
            body, headers = payload.get("body"), payload.get("headers") or {}
        child_ctx = replace(
            self.ctx,
            execution_id=f"{self.execution_id}.{self.steps_run}",
            parent_execution_id=self.execution_id,
            call_depth=self.ctx.call_depth + 1,
        )
        try:
            result = await run_flow(
                target, TriggerEvent(body=body, headers=headers), child_ctx, self.obs
            )
        except FlowValidationError as exc:
            raise StepConfigError(f"Flow '{target.label}' cannot run: {exc.message}") from None
        if result.status != Status.SUCCEEDED:
            message = result.error.message if result.error else result.status.value
            raise StepError(f"Called flow '{target.label}' {result.status.value}: {message}")
        response = result.response
        return {
            "execution_id": result.execution_id,
            "output": result.output,
            "response": None
            if response is None
            else {
                "status": response.status,
                "headers": dict(response.headers),
                "body": response.body,
            },
        }


def _secret_values(context: RunContext) -> tuple[str, ...]:
    connections = context.connections.values()
    values = (v.get_secret_value() for c in connections for v in c.values.values())
    return secret_values([*values, *context.secrets])


def _jsonable(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    return value


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
