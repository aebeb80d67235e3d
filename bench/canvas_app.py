"""The page `bench.canvas` measures: one synthetic flow in a full-window `FlowCanvas`.

    .venv/bin/python -m bench.canvas_app --port 8123    # then open /bench?nodes=500&edges=600

`GET /bench?nodes=N&edges=M` draws a webhook trigger and N-1 steps of mixed kinds (HTTP request,
branch, loop, log, transform) joined by M edges that form a DAG, laid out in a grid and fitted to
the window; `&names=true` gives every step a long display name (tests of how titles are shown;
the benchmark's steps show their short ids). `GET /ping` answers once the server is up. Binds
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import functools
import math
import random
from typing import Any

from nicegui import ui

from components.registry import Registry
from runtime.model import Flow, Position

__all__ = ["ACTIONS", "grid_layout", "long_name", "synthetic_flow"]

ACTIONS: dict[str, dict[str, Any]] = {
    "http.request": {"method": "POST", "url": "https://crm.example.com/api/accounts"},
    "branch.expression": {
        "groups": [
            {"conditions": [{"left": "{{ trigger.body.plan }}", "operator": "==", "right": "pro"}]}
        ]
    },
    "loop.items": {"items": "{{ trigger.body.items }}"},
    "log.message": {"message": "seen {{ trigger.body.id }}"},
    "transform.object": {"fields": {"id": "{{ trigger.body.id }}", "source": "bench"}},
}
"""The step kinds, in the order they repeat, with inputs that look like a real flow's."""

# Loops continue on `done` only: an edge into a loop body from outside it is invalid, and random
# edges would make many.
PORTS = {"branch.expression": ("true", "false"), "loop.items": ("done",)}
COLUMN, ROW = 260, 110  # grid spacing in flow units: a node is ~200 x 56


@functools.cache
def synthetic_flow(nodes: int, edges: int, seed: int = 7) -> Flow:
    """A trigger plus `nodes - 1` steps joined by `edges` edges (at least `nodes - 1`): a DAG.

    Every step gets one edge from an earlier, nearby step (so all are reachable from the
    trigger); the remaining edges also go from an earlier to a later step, never twice alike.
    """
    if nodes < 2 or edges < nodes - 1:
        raise ValueError(f"need nodes >= 2 and edges >= nodes - 1, got {nodes} / {edges}")
    rng = random.Random(seed)
    kinds = list(ACTIONS)
    ids = ["trigger"] + [f"s{i}" for i in range(1, nodes)]
    action_of = {"trigger": "webhook.webhook"}
    action_of.update({step: kinds[(i - 1) % len(kinds)] for i, step in enumerate(ids) if i})

    def ports(source: str) -> tuple[str, ...]:
        return PORTS.get(action_of[source], ("out",))

    def port_of(source: str) -> str:
        return rng.choice(ports(source))

    seen: set[tuple[str, str, str]] = set()
    for i in range(1, nodes):
        source = ids[rng.randrange(max(0, i - 8), i)]
        seen.add((source, ids[i], port_of(source)))
    # Every (earlier step, later step, port) once: the most edges this many nodes can have.
    capacity = sum(len(ports(step)) * (nodes - 1 - i) for i, step in enumerate(ids))
    while len(seen) < min(edges, capacity):
        a, b = sorted(rng.sample(range(nodes), 2))
        seen.add((ids[a], ids[b], port_of(ids[a])))
    return Flow.model_validate(
        {
            "id": "bench",
            "name": f"Bench {nodes} / {edges}",
            "trigger": {"id": "trigger", "name": "Account updated", "action": "webhook.webhook"},
            "steps": [
                {"id": step, "action": action_of[step], "inputs": ACTIONS[action_of[step]]}
                for step in ids[1:]
            ],
            "edges": [{"from": s, "to": t, "port": p} for s, t, p in sorted(seen)],
        }
    )


def long_name(step_id: str) -> str:
    """A display name too long for a node's title (`names=true` on the bench page)."""
    return f"Update the CRM account and tell the sales team ({step_id})"


def grid_layout(flow: Flow) -> dict[str, Position]:
    """Steps in file order, row by row, in a grid about as wide as a 16:10 window."""
    steps = flow.all_steps()
    columns = max(1, math.ceil(math.sqrt(len(steps) * 1.6 * ROW / COLUMN)))
    return {
        step.id: Position(x=(i % columns) * COLUMN, y=(i // columns) * ROW)
        for i, step in enumerate(steps)
    }


@functools.cache
def _registry() -> Registry:
    registry = Registry()
    registry.load_builtins()
    return registry


def serve(port: int) -> None:
    """Register the page and run the server on 127.0.0.1:`port` until killed."""
    # Imported here: importing the canvas fails when its bundle is missing, and the flow builder
    # above is useful without it. Pages are registered here, not on import, so a test process
    # importing `synthetic_flow` does not gain NiceGUI pages.
    import nicegui

    from designer.canvas import FlowCanvas

    @ui.page("/bench")
    def bench_page(nodes: int = 500, edges: int = 600, names: bool = False) -> None:
        flow = synthetic_flow(nodes, edges)
        if names:
            steps = [s.model_copy(update={"name": long_name(s.id)}) for s in flow.steps]
            flow = flow.model_copy(update={"steps": steps})
        ui.query(".nicegui-content").classes("p-0 gap-0")
        canvas = FlowCanvas().style("width: 100vw; height: 100vh")
        canvas.show(flow, _registry(), grid_layout(flow), fit=True)

    @nicegui.app.get("/ping")
    def ping() -> dict[str, bool]:
        return {"ok": True}

    ui.run(host="127.0.0.1", port=port, show=False, reload=False, title="Flowyard canvas bench")


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the canvas bench page on 127.0.0.1.")
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)


if __name__ in {"__main__", "__mp_main__"}:
    main()
