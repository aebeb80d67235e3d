"""The flow canvas: a Vue Flow element (built from `designer/frontend/`) and what it draws.

Python owns the graph. `FlowCanvas.show(...)` pushes the whole graph with a new revision; the
browser reloads only when the revision changes, since every NiceGUI update resends all props.
Each user edit in the browser arrives once as a `CanvasEvent` (moved, removed, connected,
dropped from the palette, selection) and is never pushed back. Run statuses and validation
problems are separate props, so badges never travel back with the graph.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nicegui import ui
from nicegui.events import GenericEventArguments

from components.api import DEFAULT_PORT
from components.registry import Registry
from designer.editing import step_ports
from runtime.model import Flow, Position

__all__ = [
    "BUNDLE",
    "CanvasEvent",
    "FlowCanvas",
    "NodeKind",
    "canvas_graph",
    "node_kind",
]

BUNDLE = Path(__file__).parent / "frontend" / "dist" / "flowyard_canvas.js"
"""The built element; `make run` and `make test` build it from `designer/frontend/`."""

if not BUNDLE.exists():
    raise RuntimeError(
        f"The canvas bundle {BUNDLE} is missing: build it with `make canvas` "
        "(npm ci && npm run build in designer/frontend)."
    )

NodeKind = Literal["trigger", "branch", "loop", "action"]
DRAG_TYPE = "application/x-flowyard-action"
"""The dataTransfer type palette items set to the dragged `component.action` key."""

_ids = itertools.count(1)


def node_kind(ports: tuple[str, ...]) -> NodeKind:
    """How a step looks: loops have `body`/`done`, branches several ports, actions one."""
    if "body" in ports and "done" in ports:
        return "loop"
    return "branch" if len(ports) > 1 or ports != (DEFAULT_PORT,) else "action"


def _default_position(index: int) -> Position:
    return Position(x=80 + 260 * index, y=120)


def canvas_graph(
    flow: Flow,
    registry: Registry,
    layout: Mapping[str, Position] | None = None,
    *,
    selected: frozenset[str] = frozenset(),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(nodes, edges) in the element's JSON form; steps without a position get a default one."""
    layout = layout or {}
    nodes: list[dict[str, Any]] = []
    ports_of: dict[str, tuple[str, ...]] = {}
    for index, step in enumerate([flow.trigger, *flow.steps]):
        is_trigger = index == 0
        ports = (DEFAULT_PORT,) if is_trigger else step_ports(step, registry)
        ports_of[step.id] = ports
        position = layout.get(step.id) or _default_position(index)
        nodes.append(
            {
                "id": step.id,
                "kind": "trigger" if is_trigger else node_kind(ports),
                "label": step.name or step.id,
                "action": step.action,
                "ports": list(ports),
                "description": step.notes,
                "position": {"x": position.x, "y": position.y},
                "selected": step.id in selected,
            }
        )
    edges = [
        {
            "id": f"{edge.source}:{edge.port}->{edge.target}",
            "source": edge.source,
            "target": edge.target,
            "port": edge.port,
            "label": edge.port if len(ports_of.get(edge.source, ())) > 1 else "",
        }
        for edge in flow.edges
    ]
    return nodes, edges


@dataclass(frozen=True, slots=True)
class CanvasEvent:
    """One user edit on the canvas, as the browser reported it.

    `type` is one of `nodes_moved` (`positions`), `nodes_removed` (`ids`), `edge_added` /
    `edges_removed` (`edges`: dicts with source, target, port), `drop` (`action`, `position`:
    a palette item dropped there) and `selection` (`ids` of nodes, `edge_ids`).
    """

    type: str
    ids: tuple[str, ...] = ()
    edge_ids: tuple[str, ...] = ()
    positions: dict[str, Position] = field(default_factory=dict)
    edges: tuple[dict[str, str], ...] = ()
    action: str = ""
    position: Position | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> CanvasEvent:
        """Read the browser's payload; raises `ValueError` on anything malformed."""
        kind = str(data.get("type", ""))
        if kind == "nodes_moved":
            moved = {
                str(n["id"]): Position(x=float(n["x"]), y=float(n["y"])) for n in data["nodes"]
            }
            return cls(kind, ids=tuple(moved), positions=moved)
        if kind == "nodes_removed":
            return cls(kind, ids=tuple(str(i) for i in data["ids"]))
        if kind in ("edge_added", "edges_removed"):
            raw = [data["edge"]] if kind == "edge_added" else data["edges"]
            edges = tuple(
                {"source": str(e["source"]), "target": str(e["target"]), "port": str(e["port"])}
                for e in raw
            )
            return cls(kind, edges=edges)
        if kind == "drop":
            position = Position(x=float(data["x"]), y=float(data["y"]))
            return cls(kind, action=str(data["action"]), position=position)
        if kind == "selection":
            return cls(
                kind,
                ids=tuple(str(i) for i in data.get("nodes", [])),
                edge_ids=tuple(str(i) for i in data.get("edges", [])),
            )
        raise ValueError(f"unknown canvas event type {kind!r}")


Handler = Callable[[CanvasEvent], Awaitable[None] | None]


class FlowCanvas(ui.element, component=BUNDLE):
    """The Vue Flow canvas. Editable unless `readonly`; `on_change` receives every user edit."""

    def __init__(self, *, readonly: bool = False, on_change: Handler | None = None) -> None:
        super().__init__()
        self._revision = 0
        self._handlers: list[Handler] = [on_change] if on_change else []
        self._select_handlers: list[Callable[[str | None], Awaitable[None] | None]] = []
        self._shortcut_handlers: list[Callable[[str], Awaitable[None] | None]] = []
        self._props["canvasid"] = f"flowyard-canvas-{next(_ids)}"
        self._props["readonly"] = readonly
        self._props["graph"] = {"revision": 0, "nodes": [], "edges": []}
        self._props["statuses"] = {}
        self._props["problems"] = {}
        self._props["shortcuts"] = {}
        self.selected: tuple[str, ...] = ()
        self.classes("w-full h-full")
        self.on("change", self._receive)
        self.on("shortcut", self._shortcut)

    @property
    def revision(self) -> int:
        """The revision of the graph last pushed to the browser."""
        return self._revision

    def show(
        self,
        flow: Flow,
        registry: Registry,
        layout: Mapping[str, Position] | None = None,
        *,
        fit: bool = False,
    ) -> None:
        """Push `flow` as the whole graph (a new revision); `fit` zooms to it once drawn."""
        nodes, edges = canvas_graph(flow, registry, layout, selected=frozenset(self.selected))
        self._revision += 1
        self._props["graph"] = {
            "revision": self._revision,
            "nodes": nodes,
            "edges": edges,
            "fit": fit,
        }
        self.update()

    def show_empty(self) -> None:
        """Clear the canvas (an integration without flows)."""
        self._revision += 1
        self._props["graph"] = {"revision": self._revision, "nodes": [], "edges": []}
        self.update()

    def set_statuses(self, statuses: Mapping[str, str]) -> None:
        """Per-step run status badges (`running`, `succeeded`, `failed`, `skipped`...)."""
        self._props["statuses"] = dict(statuses)
        self.update()

    def set_problems(self, problems: Mapping[str, str]) -> None:
        """Validation problems per step id, drawn as a dashed outline with the message as title."""
        self._props["problems"] = dict(problems)
        self.update()

    def on_select(self, handler: Callable[[str | None], Awaitable[None] | None]) -> FlowCanvas:
        """Call `handler` with the single selected step id (None when not exactly one)."""
        self._select_handlers.append(handler)
        return self

    def set_shortcuts(
        self, keys: Mapping[str, str], handler: Callable[[str], Awaitable[None] | None]
    ) -> FlowCanvas:
        """Listen for `keys` (combination -> action, see `designer.shortcuts.keymap`) and call
        `handler` with the action; never while a field or code editor has the keys."""
        self._props["shortcuts"] = dict(keys)
        self._shortcut_handlers.append(handler)
        self.update()
        return self

    def focus(self, step_id: str, *, center: bool = True) -> None:
        """Select `step_id` and (unless not `center`) centre the view on it."""
        self.run_method("focusNode", step_id, center)

    def fit(self) -> None:
        """Zoom to show the whole flow."""
        self.run_method("fit")

    def select_all(self) -> None:
        """Select every step (the browser then reports the selection)."""
        self.run_method("selectAll")

    async def _shortcut(self, event: GenericEventArguments) -> None:
        action = event.args.get("action") if isinstance(event.args, dict) else None
        if action not in self._props["shortcuts"].values():
            return  # a stale page or a forged event: nothing to do
        for handler in self._shortcut_handlers:
            outcome = handler(str(action))
            if outcome is not None:
                await outcome

    async def _receive(self, event: GenericEventArguments) -> None:
        try:
            parsed = CanvasEvent.parse(event.args)
        except (KeyError, TypeError, ValueError) as exc:
            ui.notify(f"The canvas sent an edit Flowyard cannot read: {exc}", type="negative")
            return
        if parsed.type == "selection":
            self.selected = parsed.ids
            single = parsed.ids[0] if len(parsed.ids) == 1 else None
            for select in self._select_handlers:
                outcome = select(single)
                if outcome is not None:
                    await outcome
        for handler in self._handlers:
            result = handler(parsed)
            if result is not None:
                await result
