"""Editing one flow: the operations the canvas, palette and keyboard perform, with undo/redo.

`FlowEditor` holds an immutable `Flow` and its canvas positions. Each operation builds a new
flow, checks it (a refused edit raises `EditError` with a message naming the step and changes
nothing) and pushes the previous state on the undo stack. Nothing here touches the database or
NiceGUI: the editor page saves `editor.flow` and `editor.layout` after each change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from components.registry import Registry
from runtime.graph import to_graph
from runtime.model import DEFAULT_PORT, Edge, Flow, FlowSettings, Position, Step

__all__ = [
    "COALESCE_SECONDS",
    "Clipboard",
    "EditError",
    "FlowEditor",
    "History",
    "is_trigger",
    "new_step_id",
    "step_ports",
]

_MAX_UNDO = 200
COALESCE_SECONDS = 1.5
"""Inspector edits of one step closer together than this are undone together."""
_ID_CHARS = re.compile(r"[^A-Za-z0-9_]+")


class EditError(ValueError):
    """An edit that would break the flow; the message says which step and why."""


def step_ports(step: Step, registry: Registry) -> tuple[str, ...]:
    """Output ports of a (non-trigger) step; `out` when its component is missing, so it draws."""
    try:
        return registry.action(step.action).output_ports(step.inputs)
    except LookupError:
        return (DEFAULT_PORT,)


def is_trigger(action: str, registry: Registry) -> bool:
    """Whether `component.key` names a trigger (a flow's start) rather than an action."""
    try:
        registry.trigger(action)
    except LookupError:
        return False
    return True


def new_step_id(action: str, taken: Iterable[str]) -> str:
    """A readable, unused step id from an action key: `http.request` -> `request`, `request_2`."""
    base = _ID_CHARS.sub("_", action.rpartition(".")[2]).strip("_").lower()
    base = re.sub(r"_\d+$", "", base) or "step"  # a copy of `message_2` is `message_3`
    if not base[0].isalpha():
        base = f"step_{base}"
    base = base[:56]
    used = set(taken)
    if base not in used:
        return base
    number = 2
    while f"{base}_{number}" in used:
        number += 1
    return f"{base}_{number}"


@dataclass(frozen=True, slots=True)
class Clipboard:
    """Copied steps with the edges among them and their positions."""

    steps: tuple[Step, ...]
    edges: tuple[Edge, ...]
    positions: Mapping[str, Position]


@dataclass(frozen=True, slots=True)
class _State:
    flow: Flow
    layout: Mapping[str, Position]


@dataclass(frozen=True, slots=True)
class History:
    """A snapshot of a `FlowEditor`'s undo and redo stacks and the state they lead from.

    `flow` and `layout` are the editor's state when the snapshot was taken: the history applies
    only to an editor showing exactly that flow (see `FlowEditor.adopt_history`).
    """

    flow: Flow
    layout: Mapping[str, Position]
    undo: tuple[_State, ...]
    redo: tuple[_State, ...]


@dataclass
class FlowEditor:
    """One flow being edited, with its positions and undo/redo history."""

    flow: Flow
    registry: Registry
    layout: dict[str, Position] = field(default_factory=dict)
    _undo: list[_State] = field(default_factory=list)
    _redo: list[_State] = field(default_factory=list)
    _last_replace: tuple[str, float, _State] | None = field(default=None, repr=False)

    # -- history --------------------------------------------------------------------------------

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def _commit(self, flow: Flow, layout: Mapping[str, Position] | None = None) -> None:
        self._undo.append(_State(self.flow, dict(self.layout)))
        del self._undo[:-_MAX_UNDO]
        self._redo.clear()
        self.flow = flow
        if layout is not None:
            self.layout = dict(layout)

    def history(self) -> History:
        """The undo/redo history as it stands (immutable states: nothing is copied deeply)."""
        return History(self.flow, dict(self.layout), tuple(self._undo), tuple(self._redo))

    def adopt_history(self, history: History) -> bool:
        """Take over `history` if it leads from the flow this editor shows; False otherwise.

        A history recorded on another flow (edited elsewhere since) would undo into edits this
        editor never saw, so it is refused and this editor's own history is kept.
        """
        if history.flow != self.flow:
            return False
        self._undo = list(history.undo)
        self._redo = list(history.redo)
        self._last_replace = None
        return True

    def undo(self) -> bool:
        """Go back one edit; False when there is nothing to undo."""
        if not self._undo:
            return False
        self._redo.append(_State(self.flow, dict(self.layout)))
        state = self._undo.pop()
        self.flow, self.layout = state.flow, dict(state.layout)
        return True

    def redo(self) -> bool:
        """Re-apply the last undone edit; False when there is none."""
        if not self._redo:
            return False
        self._undo.append(_State(self.flow, dict(self.layout)))
        state = self._redo.pop()
        self.flow, self.layout = state.flow, dict(state.layout)
        return True

    # -- lookups --------------------------------------------------------------------------------

    def step(self, step_id: str) -> Step | None:
        """The step (or trigger) with this id."""
        return next((s for s in self.flow.all_steps() if s.id == step_id), None)

    def _ids(self) -> set[str]:
        return {s.id for s in self.flow.all_steps()}

    # -- operations -----------------------------------------------------------------------------

    def add_step(self, action: str, position: Position) -> Step:
        """Add a step running `action` at `position` (a trigger replaces the flow's trigger)."""
        if self.registry.get(action.partition(".")[0]) is None:
            raise EditError(f"Component of '{action}' is not installed.")
        if is_trigger(action, self.registry):
            trigger = self.flow.trigger.model_copy(update={"action": action, "inputs": {}})
            self._commit(
                self.flow.model_copy(update={"trigger": trigger}),
                {**self.layout, trigger.id: position},
            )
            return trigger
        try:
            self.registry.action(action)
        except LookupError as exc:
            raise EditError(str(exc)) from None
        step = Step(id=new_step_id(action, self._ids()), action=action)
        flow = self.flow.model_copy(update={"steps": [*self.flow.steps, step]})
        self._commit(flow, {**self.layout, step.id: position})
        return step

    def remove(self, step_ids: Iterable[str]) -> list[str]:
        """Remove steps and their edges; the trigger stays. Returns the ids removed."""
        gone = {i for i in step_ids if i != self.flow.trigger.id and self.step(i) is not None}
        if not gone:
            return []
        steps = [s for s in self.flow.steps if s.id not in gone]
        edges = [e for e in self.flow.edges if e.source not in gone and e.target not in gone]
        layout = {k: v for k, v in self.layout.items() if k not in gone}
        self._commit(self.flow.model_copy(update={"steps": steps, "edges": edges}), layout)
        return sorted(gone)

    def move(self, positions: Mapping[str, Position]) -> None:
        """Record new positions (a drag); not an undo step of its own when nothing moved."""
        known = {k: v for k, v in positions.items() if self.step(k) is not None}
        if all(self.layout.get(k) == v for k, v in known.items()):
            return
        self._commit(self.flow, {**self.layout, **known})

    def connect(self, source: str, port: str, target: str) -> Edge:
        """Add an edge from `source`'s `port` to `target`, refusing what would break the flow."""
        src, dst = self.step(source), self.step(target)
        if src is None or dst is None:
            raise EditError(f"Cannot connect '{source}' to '{target}': no such step.")
        if target == self.flow.trigger.id:
            raise EditError(f"'{dst.name or dst.id}' is the trigger: nothing can lead into it.")
        if source == target:
            raise EditError(f"'{src.name or src.id}' cannot be connected to itself.")
        ports = self.ports(src)
        if port not in ports:
            raise EditError(
                f"Step '{src.name or src.id}' has no port '{port}' (it has: {', '.join(ports)})."
            )
        if any(
            e.source == source and e.target == target and e.port == port for e in self.flow.edges
        ):
            raise EditError(f"'{source}' ({port}) is already connected to '{target}'.")
        graph = to_graph(self.flow)
        if nx.has_path(graph, target, source):
            raise EditError(
                f"Connecting '{src.name or src.id}' to '{dst.name or dst.id}' would make a loop: "
                f"'{dst.name or dst.id}' already leads to '{src.name or src.id}'. Flows are "
                "acyclic; use a loop step to repeat work."
            )
        edge = Edge.model_validate({"from": source, "to": target, "port": port})
        self._commit(self.flow.model_copy(update={"edges": [*self.flow.edges, edge]}))
        return edge

    def ports(self, step: Step) -> tuple[str, ...]:
        """Output ports of a step of this flow (the trigger has `out`)."""
        if step.id == self.flow.trigger.id:
            return (DEFAULT_PORT,)
        return step_ports(step, self.registry)

    def disconnect(self, edges: Iterable[tuple[str, str, str]]) -> int:
        """Remove edges given as (source, port, target); returns how many were removed."""
        doomed = set(edges)
        kept = [e for e in self.flow.edges if (e.source, e.port, e.target) not in doomed]
        removed = len(self.flow.edges) - len(kept)
        if removed:
            self._commit(self.flow.model_copy(update={"edges": kept}))
        return removed

    def replace_step(self, step: Step, *, now: float | None = None) -> None:
        """Put an edited step (same id) in place; edges from ports it no longer has are dropped.

        Edits of one step arriving within `COALESCE_SECONDS` of each other (typing in the
        inspector) are one undo step: pass `now` (a monotonic time) to allow that.
        """
        if step.id == self.flow.trigger.id:
            flow = self.flow.model_copy(update={"trigger": step})
        else:
            if self.step(step.id) is None:
                raise EditError(f"Step '{step.id}' is not in this flow any more.")
            steps = [step if s.id == step.id else s for s in self.flow.steps]
            flow = self.flow.model_copy(update={"steps": steps})
            ports = set(self.ports(step))
            edges = [e for e in flow.edges if e.source != step.id or e.port in ports]
            flow = flow.model_copy(update={"edges": edges})
        last = self._last_replace
        if (
            now is not None
            and last is not None
            and last[0] == step.id
            and now - last[1] <= COALESCE_SECONDS
            and self._undo
            and self._undo[-1] is last[2]
        ):
            self.flow = flow  # the same undo step as the keystrokes just before
            self._last_replace = (step.id, now, last[2])
            return
        self._commit(flow)
        if now is not None:
            self._last_replace = (step.id, now, self._undo[-1])

    def rename_step(self, old: str, new: str) -> None:
        """Change a step's id, updating its edges, positions and `steps.<id>` references."""
        if old == new:
            return
        if self.step(old) is None:
            raise EditError(f"Step '{old}' is not in this flow.")
        if new in self._ids():
            raise EditError(f"Step id '{new}' is already used in this flow; pick another.")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", new):
            raise EditError(
                f"'{new}' is not a valid step id: use letters, digits and _, not starting with a "
                "digit, at most 64 characters."
            )
        pattern = re.compile(rf"\bsteps\.{re.escape(old)}\b")

        def rewrite(value: Any) -> Any:
            if isinstance(value, str):
                return pattern.sub(f"steps.{new}", value)
            if isinstance(value, list):
                return [rewrite(v) for v in value]
            if isinstance(value, dict):
                return {k: rewrite(v) for k, v in value.items()}
            return value

        def renamed(step: Step) -> Step:
            return step.model_copy(
                update={"id": new if step.id == old else step.id, "inputs": rewrite(step.inputs)}
            )

        edges = [
            Edge.model_validate(
                {
                    "from": new if e.source == old else e.source,
                    "to": new if e.target == old else e.target,
                    "port": e.port,
                }
            )
            for e in self.flow.edges
        ]
        flow = self.flow.model_copy(
            update={
                "trigger": renamed(self.flow.trigger),
                "steps": [renamed(s) for s in self.flow.steps],
                "edges": edges,
            }
        )
        layout = {(new if k == old else k): v for k, v in self.layout.items()}
        self._commit(Flow.model_validate(flow.model_dump(by_alias=True)), layout)

    def copy(self, step_ids: Iterable[str]) -> Clipboard:
        """The chosen steps (never the trigger) with the edges among them."""
        chosen = {i for i in step_ids if i != self.flow.trigger.id}
        steps = tuple(s for s in self.flow.steps if s.id in chosen)
        ids = {s.id for s in steps}
        edges = tuple(e for e in self.flow.edges if e.source in ids and e.target in ids)
        positions = {i: self.layout[i] for i in ids if i in self.layout}
        return Clipboard(steps, edges, positions)

    def paste(self, clipboard: Clipboard, offset: float = 40.0) -> list[str]:
        """Add copies of the clipboard's steps with fresh ids, shifted by `offset`."""
        if not clipboard.steps:
            return []
        taken = self._ids()
        renames: dict[str, str] = {}
        for step in clipboard.steps:
            renames[step.id] = new_step_id(step.id, taken)
            taken.add(renames[step.id])
        steps = [s.model_copy(update={"id": renames[s.id]}) for s in clipboard.steps]
        edges = [
            Edge.model_validate(
                {"from": renames[e.source], "to": renames[e.target], "port": e.port}
            )
            for e in clipboard.edges
        ]
        layout = dict(self.layout)
        for index, step in enumerate(clipboard.steps):
            base = clipboard.positions.get(step.id) or Position(x=100.0, y=100.0 + 80 * index)
            layout[renames[step.id]] = Position(x=base.x + offset, y=base.y + offset)
        flow = self.flow.model_copy(
            update={"steps": [*self.flow.steps, *steps], "edges": [*self.flow.edges, *edges]}
        )
        self._commit(flow, layout)
        return [renames[s.id] for s in clipboard.steps]

    def set_layout(self, layout: Mapping[str, Position]) -> None:
        """Replace every position at once (auto-layout), as one undoable edit."""
        self._commit(self.flow, {**self.layout, **layout})

    def set_settings(self, settings: FlowSettings) -> None:
        """Replace the flow's settings (timeouts, concurrency, retry, ...), as one undoable edit."""
        self._commit(self.flow.model_copy(update={"settings": settings}))

    def replace_flow(self, flow: Flow, layout: Mapping[str, Position]) -> None:
        """Load another version of the flow (after a reload); clears the history."""
        self.flow, self.layout = flow, dict(layout)
        self._undo.clear()
        self._redo.clear()
