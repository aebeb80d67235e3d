"""Everything the engine derives from a flow once, so each run only evaluates and executes.

`prepare_flow` validates the flow, resolves its components, compiles its input templates and
precomputes the scheduling structure (out-edges, regions, in-degrees). Results are cached by flow
identity: flow models are frozen, and an edit makes a new model.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from components.api import Action, Trigger
from components.registry import Registry
from runtime.errors import Issue
from runtime.expressions import Compiled, compile_value
from runtime.graph import LOOP_PORTS, loop_bodies, loop_owners, to_graph
from runtime.model import Flow, Step
from runtime.validation import action_ports, errors_only, validate_flow

__all__ = ["PreparedFlow", "PreparedStep", "Region", "prepare_flow"]

_CACHE_SIZE = 256


@dataclass(slots=True)
class PreparedStep:
    step: Step
    id: str
    label: str
    order: int
    cls: type[Action[Any]] | type[Trigger[Any]]
    instance: Action[Any] | None
    inputs: Compiled
    raw: dict[str, Any]
    ports: tuple[str, ...]
    out_edges: list[tuple[str, str]] = field(default_factory=list)
    has_error_edge: bool = False


@dataclass(slots=True)
class Region:
    """The steps run together: the top level, or one loop's body (per item)."""

    indegree: dict[str, int]
    roots: list[str]


@dataclass(slots=True)
class PreparedFlow:
    flow: Flow
    issues: list[Issue]
    errors: list[Issue]
    steps: dict[str, PreparedStep] = field(default_factory=dict)
    regions: dict[str | None, Region] = field(default_factory=dict)


_cache: OrderedDict[tuple[int, int], PreparedFlow] = OrderedDict()


def prepare_flow(flow: Flow, registry: Registry) -> PreparedFlow:
    """Validate and precompute `flow` (cached by identity). Check `.errors` before running."""
    key = (id(flow), id(registry))
    cached = _cache.get(key)
    if cached is not None and cached.flow is flow:
        _cache.move_to_end(key)
        return cached
    prepared = _prepare(flow, registry)
    _cache[key] = prepared
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return prepared


def _prepare(flow: Flow, registry: Registry) -> PreparedFlow:
    issues = validate_flow(flow, registry)
    errors = errors_only(issues)
    prepared = PreparedFlow(flow, issues, errors)
    if errors:
        return prepared
    for order, step in enumerate(flow.all_steps()):
        cls: type[Action[Any]] | type[Trigger[Any]]
        if step is flow.trigger:
            cls = registry.trigger(step.action)
            instance = None
        else:
            cls = registry.action(step.action)
            instance = cls()
        prepared.steps[step.id] = PreparedStep(
            step=step,
            id=step.id,
            label=step.label,
            order=order,
            cls=cls,
            instance=instance,
            inputs=compile_value(step.inputs),
            raw=step.inputs,
            ports=action_ports(cls, step),
        )
    for edge in flow.edges:
        source = prepared.steps[edge.source]
        source.out_edges.append((edge.port, edge.target))
        source.has_error_edge |= edge.port == "error"

    graph = to_graph(flow)

    def is_loop(step: Step) -> bool:
        cls = prepared.steps[step.id].cls
        return issubclass(cls, Action) and cls.ports == LOOP_PORTS

    owners = loop_owners(loop_bodies(graph, is_loop, flow.edges))
    members: dict[str | None, list[str]] = {None: []}
    for step in flow.steps:
        members.setdefault(owners.get(step.id), []).append(step.id)
        if is_loop(step):
            members.setdefault(step.id, [])
    for region_id, nodes in members.items():
        indegree = dict.fromkeys(nodes, 0)
        for edge in flow.edges:
            if edge.target in indegree and (
                owners.get(edge.source) == region_id
                or edge.source == region_id
                or (region_id is None and edge.source == flow.trigger.id)
            ):
                indegree[edge.target] += 1
        roots = [n for n in nodes if indegree[n] == 0]
        prepared.regions[region_id] = Region(indegree, roots)
    return prepared
