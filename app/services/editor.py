"""The integration editor: create, open and save a draft integration flow by flow.

Convention (as in the other services): `async` functions taking the `Hub`; database work runs in a
worker thread (`asyncio.to_thread`, one transaction per call). Failures raise `app.services.errors`
(NotFound 404, Conflict 409, InvalidInput 422 with `details` by field). `problems` and
`auto_layout` are plain functions: they only compute.

Editing always writes to the integration's draft (the newest version; saving after a publish
starts a new draft copied from it, revisions included). Each flow has a `revision`: `save_flow`
is refused with Conflict when the flow changed since the editor loaded it ("changed elsewhere ...
reload"); a refused save changes nothing. Flows with validation errors can be saved (the designer
saves every edit); `problems` lists what blocks a run, a publish or a deploy.

Layout (canvas positions) is kept apart from logic, in the draft's document
(`Integration.layout`: flow id -> step id -> position), exactly as integration files keep it:
moving a node (`save_layout`) never bumps a flow's revision, so a drag in one tab cannot make a
logic edit elsewhere stale. Layout is last-write-wins per flow. `save_flow(..., positions=...)`
saves a logic edit and its positions in one transaction (e.g. a node dropped from the palette);
positions of steps a flow no longer has are dropped whenever it is saved.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import networkx as nx
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import Session, col, select

from app.persistence import repositories as repo
from app.persistence.db import session_scope
from app.persistence.models import IntegrationRow, IntegrationVersionRow
from app.services import edit_bursts
from app.services.config_values import ConfigValueError, coerce_config
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.hub import Hub
from app.services.integrations import IssueView, check_integration
from components.registry import Registry
from runtime.graph import to_graph
from runtime.model import (
    ConfigVariable,
    ConnectionSlot,
    Flow,
    Integration,
    Position,
    Step,
)
from runtime.validation import action_ports, validate_flow

__all__ = [
    "EditorState",
    "FlowSaved",
    "add_flow",
    "auto_layout",
    "create_integration",
    "delete_flow",
    "load_editor",
    "problems",
    "rename_flow",
    "save_config",
    "save_flow",
    "save_layout",
]


class EditorState(BaseModel):
    """What the editor opens: the draft integration (flows, config, layout) and flow revisions."""

    integration: Integration
    version: int = Field(description="The version shown: the draft, or the newest published.")
    published: bool = Field(
        description="The version shown is published: the first save starts a new draft."
    )
    revisions: dict[str, int] = Field(
        default_factory=dict, description="flow id -> revision to pass to `save_flow`."
    )

    def flow(self, flow_id: str) -> Flow | None:
        return next((f for f in self.integration.flows if f.id == flow_id), None)

    def positions(self, flow_id: str) -> dict[str, Position]:
        """The saved canvas positions of one flow's steps (may miss steps: lay those out)."""
        return dict(self.integration.layout.get(flow_id, {}))


class FlowSaved(BaseModel):
    """A saved flow: its new revision and its validation problems (saving never refuses them)."""

    flow_id: str
    revision: int
    problems: list[IssueView] = Field(default_factory=list)


_NAME_MAX = 200
_ID_HELP = "use letters, digits and underscores, starting with a letter or underscore (at most 64)"

COLUMN_GAP = 280.0
"""Horizontal distance between auto-layout columns, in canvas pixels."""
ROW_GAP = 140.0
"""Vertical distance between steps of one auto-layout column."""


# --- helpers ------------------------------------------------------------------------------------


def _registry(source: Hub | Registry) -> Registry:
    return source if isinstance(source, Registry) else source.registry


def _field_errors(exc: ValidationError, prefix: str) -> dict[str, str]:
    """pydantic errors as `{prefix.loc: message}`, first message per field."""
    details: dict[str, str] = {}
    for error in exc.errors():
        where = ".".join(str(p) for p in (prefix, *error["loc"]) if p != "")
        message = _ID_HELP if error["type"] == "string_pattern_mismatch" else error["msg"]
        details.setdefault(where or "value", message)
    return details


def _count(problems: Mapping[str, str]) -> str:
    return f"{len(problems)} problem{'s' * (len(problems) > 1)}"


def _stale(exc: repo.StaleRevision, name: str) -> Conflict:
    details = {"flow": exc.flow_id, "revision": exc.actual, "expected": exc.expected}
    if exc.expected == 0:
        return Conflict(
            f"Integration '{name}' already has a flow '{exc.flow_id}'.",
            details={**details, "flow_id": "already in use"},
            hint="Choose another flow id.",
        )
    if exc.actual == 0:
        return Conflict(
            f"Flow '{exc.flow_id}' was deleted elsewhere; your edit was not saved.",
            details=details,
            hint="Reload the integration. Copy what you need from this tab first.",
        )
    return Conflict(str(exc), details=details, hint="Reload the flow, then apply your edit again.")


def _flow_model(flow: Flow | Mapping[str, Any]) -> Flow:
    if isinstance(flow, Flow):
        return flow
    try:
        return Flow.model_validate(flow)
    except ValidationError as exc:
        raise InvalidInput(
            "The flow was not saved: it is not a valid flow.",
            details=_field_errors(exc, ""),
            hint="Fix each field listed; nothing was saved.",
        ) from None


def _positions(
    flow: Flow, raw: Mapping[str, Position | Mapping[str, float]], *, unknown: bool = False
) -> dict[str, Position]:
    """Validated positions of `flow`'s steps; InvalidInput naming each bad entry. Positions of
    steps the flow does not have are refused, or dropped when `unknown` is true."""
    steps = {s.id for s in flow.all_steps()}
    positions: dict[str, Position] = {}
    problems: dict[str, str] = {}
    for step_id, value in raw.items():
        where = f"positions.{step_id}"
        if step_id not in steps:
            if not unknown:
                problems[where] = f"flow '{flow.id}' has no step '{step_id}'"
            continue
        try:
            position = value if isinstance(value, Position) else Position.model_validate(value)
        except ValidationError:
            problems[where] = 'give the position as {"x": <number>, "y": <number>}'
            continue
        if not (math.isfinite(position.x) and math.isfinite(position.y)):
            problems[where] = "x and y must be finite numbers"
            continue
        positions[step_id] = position
    if problems:
        raise InvalidInput(
            f"The layout of flow '{flow.id}' was not saved: {_count(problems)}.",
            details=problems,
            hint="Positions are given per step id of the flow; nothing was saved.",
        )
    return positions


def _write_layout(
    session: Session,
    name: str,
    integration: Integration,
    flow_id: str,
    positions: Mapping[str, Position],
) -> None:
    layout = {
        fid: {sid: p.model_dump(mode="json") for sid, p in steps.items()}
        for fid, steps in integration.layout.items()
        if fid != flow_id
    }
    if positions:
        layout[flow_id] = {sid: p.model_dump(mode="json") for sid, p in positions.items()}
    repo.save_document(session, name, {"layout": layout})


def _load(session: Session, name: str) -> Integration:
    try:
        return repo.load_integration(session, name)
    except repo.NotFound:
        raise NotFound(f"There is no integration named '{name}'.") from None


def _stored_flow(integration: Integration, flow_id: str) -> Flow:
    flow = next((f for f in integration.flows if f.id == flow_id), None)
    if flow is None:
        known = ", ".join(f.id for f in integration.flows) or "none"
        raise NotFound(
            f"Integration '{integration.name}' has no flow '{flow_id}' (its flows: {known})."
        )
    return flow


def _issues(registry: Registry, integration: Integration, flow: Flow) -> list[IssueView]:
    return [IssueView.of(flow, i) for i in validate_flow(flow, registry, integration)]


# --- open and create ----------------------------------------------------------------------------


async def create_integration(hub: Hub, name: str, description: str = "") -> EditorState:
    """A new, empty draft integration. A name in use is a Conflict naming it."""
    name = name.strip()
    if not name:
        raise InvalidInput("Give the integration a name.", details={"name": "required"})
    if len(name) > _NAME_MAX:
        raise InvalidInput(
            f"The integration name is longer than {_NAME_MAX} characters.",
            details={"name": f"at most {_NAME_MAX} characters"},
        )
    await asyncio.to_thread(_create, hub, Integration(name=name, description=description))
    return await load_editor(hub, name)


def _create(hub: Hub, integration: Integration) -> None:
    with session_scope(hub.db) as session:
        taken = session.exec(
            select(IntegrationRow.id).where(IntegrationRow.name == integration.name)
        ).first()
        if taken is not None:
            raise Conflict(
                f"An integration named '{integration.name}' already exists.",
                details={"name": "already in use"},
                hint="Choose another name, or open that integration.",
            )
        repo.save_integration(session, integration)


async def load_editor(hub: Hub, name: str) -> EditorState:
    """The draft integration (or the newest published version) with each flow's revision."""
    return await asyncio.to_thread(_load_editor, hub, name)


def _load_editor(hub: Hub, name: str) -> EditorState:
    with session_scope(hub.db, write=False) as session:
        integration = _load(session, name)
        revisions = repo.flow_revisions(session, name)
        published = session.exec(
            select(IntegrationVersionRow.published)
            .join(IntegrationRow, col(IntegrationRow.id) == IntegrationVersionRow.integration_id)
            .where(IntegrationRow.name == name)
            .where(IntegrationVersionRow.version == integration.version)
        ).one()
    return EditorState(
        integration=integration,
        version=integration.version,
        published=published,
        revisions=revisions,
    )


# --- flows --------------------------------------------------------------------------------------


async def save_flow(
    hub: Hub,
    name: str,
    flow: Flow | Mapping[str, Any],
    expected_revision: int,
    positions: Mapping[str, Position | Mapping[str, float]] | None = None,
    *,
    edit: str | None = None,
) -> FlowSaved:
    """Save one flow (and, if given, its positions) if it is still at `expected_revision`.

    Stale -> Conflict ("... changed elsewhere ... Reload ...", `details` with the current
    revision); nothing is written. A mapping is validated as a `Flow` (InvalidInput by field).
    A new flow is saved with `expected_revision=0`. Positions of steps the flow does not have
    are dropped (stored ones too); a malformed position is InvalidInput.

    `edit` names an edit in progress (e.g. `step:notify` while its fields are typed in): saves of
    the same edit in quick succession keep the revision the first one made, so typing a word is
    one revision, not one per keystroke (see `app.services.edit_bursts`).
    """
    model = _flow_model(flow)
    checked = _positions(model, positions or {}, unknown=True)
    revision, integration = await asyncio.to_thread(
        _save_flow, hub, name, model, expected_revision, checked, edit
    )
    return FlowSaved(
        flow_id=model.id,
        revision=revision,
        problems=_issues(hub.registry, integration, model),
    )


def _save_flow(
    hub: Hub,
    name: str,
    flow: Flow,
    expected: int,
    positions: Mapping[str, Position],
    edit: str | None = None,
) -> tuple[int, Integration]:
    started = time.monotonic()
    burst = edit_bursts.last_burst(hub.db, name, flow.id)
    with session_scope(hub.db) as session:
        try:
            written_at = (
                repo.rewrite_flow(session, name, flow, expected, burst.written_at)
                if burst is not None and burst.continues(edit, expected, started)
                else None
            )
            if written_at is None:
                revision = repo.save_flow(session, name, flow, expected)
                written_at = repo.flow_written_at(session, name, flow.id)
            else:
                revision = expected
        except repo.StaleRevision as exc:
            raise _stale(exc, name) from None
        except repo.NotFound:
            raise NotFound(f"There is no integration named '{name}'.") from None
        edit_bursts.remember(
            hub.db,
            name,
            flow.id,
            edit_bursts.Burst(edit, revision, written_at, started)
            if edit is not None and written_at is not None
            else None,
        )
        integration = repo.load_integration(session, name)
        steps = {s.id for s in flow.all_steps()}
        current = dict(integration.layout.get(flow.id, {}))
        merged = {k: v for k, v in {**current, **positions}.items() if k in steps}
        if merged != current:
            _write_layout(session, name, integration, flow.id, merged)
    return revision, integration


async def save_layout(
    hub: Hub,
    name: str,
    flow_id: str,
    positions: Mapping[str, Position | Mapping[str, float]],
    *,
    replace: bool = False,
) -> dict[str, Position]:
    """Store canvas positions of one flow's steps (merged, or `replace`d); no revision bump.

    Returns the flow's positions as stored. Unknown step ids are InvalidInput.
    """
    return await asyncio.to_thread(_save_layout, hub, name, flow_id, positions, replace)


def _save_layout(
    hub: Hub,
    name: str,
    flow_id: str,
    positions: Mapping[str, Position | Mapping[str, float]],
    replace: bool,
) -> dict[str, Position]:
    with session_scope(hub.db) as session:
        integration = _load(session, name)
        flow = _stored_flow(integration, flow_id)
        checked = _positions(flow, positions)
        merged = {} if replace else dict(integration.layout.get(flow_id, {}))
        merged.update(checked)
        if merged != integration.layout.get(flow_id, {}):
            _write_layout(session, name, integration, flow_id, merged)
    return merged


async def add_flow(
    hub: Hub, name: str, flow_id: str, flow_name: str, trigger_action: str
) -> FlowSaved:
    """A new flow holding only its trigger (`component.trigger`, e.g. `webhook.webhook`).

    The trigger step's id is `trigger`. A flow id in use is a Conflict; a bad id, name or trigger
    is InvalidInput by field (`flow_id`, `flow_name`, `trigger_action`).
    """
    problems: dict[str, str] = {}
    if not _valid_id(flow_id):
        problems["flow_id"] = _ID_HELP
    flow_name = flow_name.strip()
    if len(flow_name) > _NAME_MAX:
        problems["flow_name"] = f"at most {_NAME_MAX} characters"
    title = ""
    try:
        title = hub.registry.trigger(trigger_action).title
    except LookupError as exc:
        problems["trigger_action"] = str(exc)
    if problems:
        raise InvalidInput(
            f"The flow was not added: {_count(problems)}.",
            details=problems,
            hint="Fix each field listed; nothing was saved.",
        )
    flow = Flow(
        id=flow_id,
        name=flow_name,
        trigger=Step(id="trigger", name=title, action=trigger_action),
    )
    return await save_flow(hub, name, flow, 0, {"trigger": Position(x=0, y=0)})


def _valid_id(value: str) -> bool:
    try:
        Step(id=value, action="x.y")
    except ValidationError:
        return False
    return True


async def rename_flow(
    hub: Hub, name: str, flow_id: str, new_name: str, expected_revision: int | None = None
) -> FlowSaved:
    """Change a flow's display name (its id stays: URLs and payloads use it); bumps the revision.

    With `expected_revision`, a flow changed since is a Conflict as in `save_flow`.
    """
    new_name = new_name.strip()
    if not new_name or len(new_name) > _NAME_MAX:
        problem = "give the flow a name" if not new_name else f"at most {_NAME_MAX} characters"
        raise InvalidInput(
            f"Flow '{flow_id}' was not renamed: {problem}.", details={"name": problem}
        )
    revision, integration, flow = await asyncio.to_thread(
        _rename, hub, name, flow_id, new_name, expected_revision
    )
    return FlowSaved(
        flow_id=flow_id, revision=revision, problems=_issues(hub.registry, integration, flow)
    )


def _rename(
    hub: Hub, name: str, flow_id: str, new_name: str, expected: int | None
) -> tuple[int, Integration, Flow]:
    with session_scope(hub.db) as session:
        integration = _load(session, name)
        flow = _stored_flow(integration, flow_id)
        current = repo.flow_revisions(session, name)[flow_id]
        if expected is not None and expected != current:
            raise _stale(repo.StaleRevision(flow_id, expected, current), name)
        renamed = flow.model_copy(update={"name": new_name})
        edit_bursts.forget(hub.db, name, flow_id)
        try:
            revision = repo.save_flow(session, name, renamed, current)
        except repo.StaleRevision as exc:  # pragma: no cover - same transaction as the read
            raise _stale(exc, name) from None
    return revision, integration, renamed


async def delete_flow(hub: Hub, name: str, flow_id: str) -> None:
    """Remove a flow (and its layout) from the draft. Its test payloads are kept.

    Refused with Conflict while the integration's endpoint uses it as its pre-process flow.
    """
    await asyncio.to_thread(_delete_flow, hub, name, flow_id)


def _delete_flow(hub: Hub, name: str, flow_id: str) -> None:
    with session_scope(hub.db) as session:
        integration = _load(session, name)
        flow = _stored_flow(integration, flow_id)
        if integration.endpoint.preprocess_flow == flow_id:
            raise Conflict(
                f"Flow '{flow.label}' is the pre-process flow of integration '{name}'.",
                hint="Choose another pre-process flow (or none) first, then delete it.",
            )
        repo.delete_flow(session, name, flow_id)


# --- config -------------------------------------------------------------------------------------


async def save_config(
    hub: Hub,
    name: str,
    variables: Sequence[ConfigVariable | Mapping[str, Any]],
    connections: Sequence[ConnectionSlot | Mapping[str, Any]],
) -> EditorState:
    """Replace the draft's config variables and connection slots.

    Every problem comes back at once as InvalidInput with `details` by field: `config.<i>.<field>`
    and `connections.<i>.<field>` (position in the given list), e.g. a duplicate key, a default
    that is not of the variable's type, or a default on a secret variable. Defaults given as
    text are stored typed ("3" for an integer is 3). Flows reading a removed variable show it in
    `problems`.
    """
    problems: dict[str, str] = {}
    checked_vars = _check_variables(variables, problems)
    checked_slots = _check_slots(connections, problems)
    if problems:
        raise InvalidInput(
            f"The config of integration '{name}' was not saved: {_count(problems)}.",
            details=problems,
            hint="Fix each field listed; nothing was saved.",
        )
    document = {
        "config": [v.model_dump(mode="json", by_alias=True) for v in checked_vars],
        "connections": [c.model_dump(mode="json", by_alias=True) for c in checked_slots],
    }
    await asyncio.to_thread(_save_document, hub, name, document)
    return await load_editor(hub, name)


def _check_variables(
    given: Sequence[ConfigVariable | Mapping[str, Any]], problems: dict[str, str]
) -> list[ConfigVariable]:
    checked: list[ConfigVariable] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(given):
        where = f"config.{i}"
        try:
            variable = (
                raw if isinstance(raw, ConfigVariable) else ConfigVariable.model_validate(raw)
            )
        except ValidationError as exc:
            problems.update(_field_errors(exc, where))
            continue
        if variable.key in seen:
            problems[f"{where}.key"] = (
                f"'{variable.key}' is already the key of variable {seen[variable.key] + 1}"
            )
            continue
        seen[variable.key] = i
        if variable.default is not None:
            if variable.type == "secret":
                problems[f"{where}.default"] = (
                    "a secret variable has no default: its value is given per instance and "
                    "stored encrypted"
                )
                continue
            try:
                default = coerce_config(variable, variable.default)
            except ConfigValueError as exc:
                problems[f"{where}.default"] = f"the default does not fit: {exc}"
                continue
            variable = variable.model_copy(update={"default": default})
        checked.append(variable)
    return checked


def _check_slots(
    given: Sequence[ConnectionSlot | Mapping[str, Any]], problems: dict[str, str]
) -> list[ConnectionSlot]:
    checked: list[ConnectionSlot] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(given):
        where = f"connections.{i}"
        try:
            slot = raw if isinstance(raw, ConnectionSlot) else ConnectionSlot.model_validate(raw)
        except ValidationError as exc:
            problems.update(_field_errors(exc, where))
            continue
        if slot.key in seen:
            problems[f"{where}.key"] = (
                f"'{slot.key}' is already the key of connection {seen[slot.key] + 1}"
            )
            continue
        seen[slot.key] = i
        checked.append(slot)
    return checked


def _save_document(hub: Hub, name: str, changes: dict[str, Any]) -> None:
    with session_scope(hub.db) as session:
        _load(session, name)
        repo.save_document(session, name, changes)


# --- problems -----------------------------------------------------------------------------------


def problems(
    source: Hub | Registry, integration: Integration, flow: Flow | None = None
) -> list[IssueView]:
    """Validation problems for the problems list: of `flow` (checked against the integration's
    config, e.g. an unsaved edit), else of every flow. Errors first; each names its step."""
    registry = _registry(source)
    if flow is None:
        return check_integration(integration, registry)
    return _issues(registry, integration, flow)


# --- auto-layout --------------------------------------------------------------------------------


def auto_layout(flow: Flow, registry: Registry | None = None) -> dict[str, Position]:
    """Layered left-to-right positions (step id -> position), deterministic.

    Columns are topological generations (every edge goes to a later column; in a flow with a
    cycle, which validation reports, the edges closing it are ignored). Rows inside a column are
    ordered by barycenter sweeps that keep the order with the fewest crossings between adjacent
    columns; children of one step come in its port order (the action's declared ports when
    `registry` is given, else the order its edges appear in the flow). Columns are centred on the
    tallest one, `COLUMN_GAP` apart, rows `ROW_GAP` apart.
    """
    graph = _acyclic(to_graph(flow))
    order = {step.id: i for i, step in enumerate(flow.all_steps())}
    columns = [sorted(gen, key=order.__getitem__) for gen in nx.topological_generations(graph)]
    port_rank = _port_ranks(flow, registry)

    def rank_of(cols: list[list[str]]) -> dict[str, int]:
        return {node: i for col in cols for i, node in enumerate(col)}

    def sweep(cols: list[list[str]], downward: bool) -> list[list[str]]:
        result = [list(c) for c in cols]
        indices = range(1, len(result)) if downward else range(len(result) - 2, -1, -1)
        for k in indices:
            rank = rank_of(result)
            keys: dict[str, float] = {}
            for node in result[k]:
                if downward:
                    near = [
                        rank[u] + port_rank(u, graph.edges[u, node]["port"])
                        for u in graph.predecessors(node)
                    ]
                else:
                    near = [float(rank[w]) for w in graph.successors(node)]
                keys[node] = sum(near) / len(near) if near else float(rank[node])
            result[k].sort(key=lambda n: (keys[n], rank[n], order[n]))
        return result

    # The first downward sweep puts children in port order; later sweeps must beat it.
    current = sweep(columns, True)
    best, best_crossings = current, _crossings(graph, current)
    for _ in range(4):
        for downward in (True, False):
            current = sweep(current, downward)
            crossings = _crossings(graph, current)
            if crossings < best_crossings:
                best, best_crossings = current, crossings
    tallest = max((len(c) for c in best), default=0)
    positions: dict[str, Position] = {}
    for k, column in enumerate(best):
        offset = (tallest - len(column)) / 2
        for row, node in enumerate(column):
            positions[node] = Position(x=k * COLUMN_GAP, y=(row + offset) * ROW_GAP)
    return positions


def _acyclic(graph: nx.DiGraph[str]) -> nx.DiGraph[str]:
    """`graph` without the edges that close cycles (found depth-first in file order)."""
    if nx.is_directed_acyclic_graph(graph):
        return graph
    dag = graph.copy()
    order: dict[str, int] = {n: graph.nodes[n]["order"] for n in graph}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph, key=order.__getitem__):
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(sorted(graph.successors(root), key=order.__getitem__)))]
        while stack:
            node, successors = stack[-1]
            child = next(successors, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                dag.remove_edge(node, child)
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(sorted(graph.successors(child), key=order.__getitem__))))
    return dag


def _port_ranks(flow: Flow, registry: Registry | None) -> Callable[[str, str], float]:
    """`rank(step_id, port)` in [0, 1): where among its step's ports a port comes."""
    ports: dict[str, list[str]] = {}
    steps = {s.id: s for s in flow.all_steps()}
    if registry is not None:
        for step in flow.all_steps():
            try:
                cls = (
                    registry.trigger(step.action)
                    if step is flow.trigger
                    else registry.action(step.action)
                )
            except LookupError:
                continue
            ports[step.id] = list(action_ports(cls, step))
    for edge in flow.edges:
        known = ports.setdefault(edge.source, [])
        if edge.port not in known:
            known.append(edge.port)

    def rank(step_id: str, port: str) -> float:
        known = ports.get(step_id, [])
        if step_id not in steps or port not in known:
            return 0.0
        return known.index(port) / len(known)

    return rank


def _crossings(graph: nx.DiGraph[str], columns: list[list[str]]) -> int:
    """Edge crossings between adjacent columns (edges spanning more columns are not counted)."""
    column = {node: k for k, col in enumerate(columns) for node in col}
    rank = {node: i for col in columns for i, node in enumerate(col)}
    between: dict[int, list[tuple[int, int]]] = {}
    for u, v in graph.edges:
        if column[v] == column[u] + 1:
            between.setdefault(column[u], []).append((rank[u], rank[v]))
    total = 0
    for pairs in between.values():
        for i, (a1, b1) in enumerate(pairs):
            for a2, b2 in pairs[i + 1 :]:
                if (a1 - a2) * (b1 - b2) < 0:
                    total += 1
    return total
