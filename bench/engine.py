"""Engine benchmarks, each printed beside a plain-Python baseline measured in the same run.

    make bench            # or: .venv/bin/python -m bench.engine

Targets (2-core build machine): a no-op step costs at most 50 µs; the 10-step flow with 20
template inputs per step runs in at most 1 ms. The ratio column compares against the baseline so
numbers from machines of different speed stay comparable. Timings never gate a test.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from components.api import Action, Component, NoInputs, StepContext, TriggerEvent
from components.registry import Registry
from runtime.context import RunContext
from runtime.engine import run_flow
from runtime.http import make_http_client
from runtime.model import Flow
from runtime.observer import MemoryRecorder, Status


class NoOp(Action[NoInputs]):
    key = "noop"
    title = "No-op"
    description = "Does nothing."

    async def run(self, inputs: NoInputs, ctx: StepContext) -> Any:
        return None


BENCH = Component(key="bench", title="Bench", actions=[NoOp])


def linear_flow(n: int, action: str, inputs: dict[str, Any] | None = None) -> Flow:
    ids = ["trigger"] + [f"s{i}" for i in range(n)]
    return Flow.model_validate(
        {
            "id": "bench",
            "settings": {"max_steps": 10_000_000, "timeout": 3600},
            "trigger": {"id": "trigger", "action": "manual.manual"},
            "steps": [{"id": i, "action": action, "inputs": inputs or {}} for i in ids[1:]],
            "edges": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
        }
    )


def twenty_inputs() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for i in range(10):
        fields[f"path{i}"] = "{{ trigger.body.order.customer.name }}"
    for i in range(5):
        fields[f"lit{i}"] = f"constant {i}"
    for i in range(3):
        fields[f"text{i}"] = "Order {{ trigger.body.order.id }} for {{ trigger.body.order.total }}"
    fields["math"] = "{{ trigger.body.order.total * 1.2 }}"
    fields["filter"] = "{{ $count(trigger.body.order.lines[qty > 1]) }}"
    return {"fields": fields}


PAYLOAD = {
    "order": {
        "id": "A-1",
        "total": 99.5,
        "customer": {"name": "Ada"},
        "lines": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 1}],
    }
}


async def best_of(repeat: int, fn: Callable[[], Awaitable[None]]) -> float:
    """Fastest of `repeat` timed runs, in seconds (min is the least noisy estimator here)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return min(times)


async def baseline_steps(n: int) -> None:
    """What a minimal async engine does per step: await a coroutine, keep a record."""

    async def noop() -> None:
        return None

    records = []
    for i in range(n):
        t0 = time.perf_counter()
        await noop()
        records.append({"id": i, "status": "succeeded", "ms": time.perf_counter() - t0})


def baseline_fields(payload: dict[str, Any]) -> dict[str, Any]:
    order = payload["order"]
    out: dict[str, Any] = {f"path{i}": order["customer"]["name"] for i in range(10)}
    out.update({f"lit{i}": f"constant {i}" for i in range(5)})
    out.update({f"text{i}": f"Order {order['id']} for {order['total']}" for i in range(3)})
    out["math"] = order["total"] * 1.2
    out["filter"] = sum(1 for line in order["lines"] if line["qty"] > 1)
    return out


def report(name: str, value: float, unit: str, baseline: float, target: float | None) -> None:
    ratio = value / baseline if baseline else float("inf")
    verdict = ""
    if target is not None:
        verdict = f"  target ≤ {target:g} {unit}: {'met' if value <= target else 'MISSED'}"
    base = f"plain Python {baseline:.2f} {unit}, ratio {ratio:.0f}"
    print(f"{name}: {value:.1f} {unit}  ({base}){verdict}")


async def main() -> None:
    registry = Registry([BENCH])
    registry.load_builtins()
    async with make_http_client() as http:

        async def run(flow: Flow, body: Any = None) -> None:
            context = RunContext(registry=registry, http=http)
            result = await run_flow(flow, TriggerEvent(body=body), context, MemoryRecorder())
            assert result.status == Status.SUCCEEDED, result.error

        # 1. no-op steps in a 1,000-step linear flow
        n = 1000
        noop_flow = linear_flow(n, "bench.noop")
        await run(noop_flow)  # warm the prepare cache and the code paths
        engine_s = await best_of(7, lambda: run(noop_flow))
        base_s = await best_of(7, lambda: baseline_steps(n))
        per_step = engine_s / (n + 1) * 1e6
        print(f"no-op step: {per_step:.1f} us")
        report("  1,000-step flow per step", per_step, "us", base_s / n * 1e6, 50)

        # 2. 10 steps x 20 template inputs
        ten_flow = linear_flow(10, "transform.object", twenty_inputs())
        await run(ten_flow, PAYLOAD)
        engine_s = await best_of(50, lambda: run(ten_flow, PAYLOAD))

        async def base_ten() -> None:
            for _ in range(10):
                baseline_fields(PAYLOAD)

        base_s = await best_of(50, base_ten)
        report("10-step / 20-input flow", engine_s * 1e3, "ms", base_s * 1e3, 1.0)

        # 3. a 10,000-item loop with one transform per item
        items = 10_000
        loop_flow = Flow.model_validate(
            {
                "id": "loop",
                "settings": {"max_steps": 10_000_000, "timeout": 3600},
                "trigger": {"id": "trigger", "action": "manual.manual"},
                "steps": [
                    {
                        "id": "each",
                        "action": "loop.items",
                        "inputs": {"items": "{{ trigger.body }}"},
                    },
                    {
                        "id": "double",
                        "action": "transform.object",
                        "inputs": {"fields": {"value": "{{ loop.item }}", "i": "{{ loop.index }}"}},
                    },
                ],
                "edges": [
                    {"from": "trigger", "to": "each"},
                    {"from": "each", "to": "double", "port": "body"},
                ],
            }
        )
        data = list(range(items))
        engine_s = await best_of(3, lambda: run(loop_flow, data))

        async def base_loop() -> None:
            out = []
            for index, item in enumerate(data):
                out.append({"value": item, "i": index})

        base_s = await best_of(3, base_loop)
        report(
            "10,000-item loop per item",
            engine_s / items * 1e6,
            "us",
            base_s / items * 1e6,
            None,
        )
        print(f"  10,000-item loop total: {engine_s * 1e3:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
