"""Flow <-> networkx DiGraph, the stored node-link form, and loop-body structure.

Nodes are step ids with a `step` attribute (the `Step` model) and `order` (file order, the
engine's tie-break so runs are deterministic); edges carry their `port`. The stored form is
networkx node-link JSON, which the app keeps in the database beside a revision number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import networkx as nx

from runtime.model import Edge, Flow, Step

__all__ = [
    "LOOP_PORTS",
    "flow_from_node_link",
    "flow_to_node_link",
    "loop_bodies",
    "loop_owners",
    "to_graph",
]

LOOP_PORTS = ("body", "done")
"""An action whose ports are exactly these is a loop: it returns a `LoopPlan`."""


def to_graph(flow: Flow) -> nx.DiGraph[str]:
    """The flow as a DiGraph. Edges to unknown steps are left out (validation reports them)."""
    graph: nx.DiGraph[str] = nx.DiGraph()
    for order, step in enumerate(flow.all_steps()):
        graph.add_node(step.id, step=step, order=order)
    for edge in flow.edges:
        if edge.source in graph and edge.target in graph:
            graph.add_edge(edge.source, edge.target, port=edge.port)
    return graph


def flow_to_node_link(flow: Flow) -> dict[str, Any]:
    """The stored form: node-link JSON with each step's data and the flow's own fields."""
    graph: nx.DiGraph[str] = nx.DiGraph(
        id=flow.id,
        name=flow.name,
        description=flow.description,
        trigger=flow.trigger.id,
        settings=flow.settings.model_dump(mode="json"),
    )
    if flow.tests:  # the suite travels with the flow (kept out when empty: older stored forms)
        graph.graph["tests"] = [t.model_dump(mode="json", exclude_unset=True) for t in flow.tests]
    if flow.test_responses:
        graph.graph["test_responses"] = [
            r.model_dump(mode="json", exclude_unset=True) for r in flow.test_responses
        ]
    for step in flow.all_steps():
        graph.add_node(step.id, **step.model_dump(mode="json", exclude={"id"}, exclude_unset=True))
    # networkx yields edges in adjacency order, not file order: `order` restores the file's order
    # on load, so an import followed by an export shows no diff nobody made.
    for order, edge in enumerate(flow.edges):
        graph.add_edge(edge.source, edge.target, port=edge.port, order=order)
    data: dict[str, Any] = nx.node_link_data(graph, edges="edges")
    return data


def flow_from_node_link(data: dict[str, Any]) -> Flow:
    """Rebuild a `Flow` from its stored form; pydantic validates the result."""
    graph = nx.node_link_graph(data, directed=True, edges="edges")
    meta = graph.graph
    steps = {node: {"id": node, **attrs} for node, attrs in graph.nodes(data=True)}
    trigger = steps.pop(meta["trigger"])
    return Flow.model_validate(
        {
            "id": meta["id"],
            "name": meta.get("name", ""),
            "description": meta.get("description", ""),
            "settings": meta.get("settings", {}),
            "tests": meta.get("tests", []),
            "test_responses": meta.get("test_responses", []),
            "trigger": trigger,
            "steps": list(steps.values()),
            "edges": [
                {"from": s, "to": t, "port": attrs.get("port", "out")}
                for s, t, attrs in sorted(
                    graph.edges(data=True), key=lambda e: e[2].get("order", 0)
                )
            ],
        }
    )


def loop_bodies(
    graph: nx.DiGraph[str], is_loop: Callable[[Step], bool], edges: Iterable[Edge]
) -> dict[str, set[str]]:
    """For each loop step: the steps reachable from its `body` port (the body runs per item)."""
    entries: dict[str, set[str]] = {}
    for edge in edges:
        if edge.port == "body" and edge.target in graph:
            entries.setdefault(edge.source, set()).add(edge.target)
    bodies: dict[str, set[str]] = {}
    for node, attrs in graph.nodes(data=True):
        if is_loop(attrs["step"]):
            body: set[str] = set()
            for entry in entries.get(node, ()):
                body.add(entry)
                body |= nx.descendants(graph, entry)
            bodies[node] = body
    return bodies


def loop_owners(bodies: dict[str, set[str]]) -> dict[str, str]:
    """Map each step inside a loop body to its innermost loop."""
    owners: dict[str, str] = {}
    for loop, body in bodies.items():
        for node in body:
            current = owners.get(node)
            if current is None or len(body) < len(bodies[current]):
                owners[node] = loop
    return owners
