"""Path coverage as canvas marks: which steps, ports and edges a suite run covered, and by whom.

`coverage_marks(flow, coverage)` turns one flow's coverage from a suite report (the JSON of
`runtime.coverage.FlowCoverage.to_json`, as `app.services.suites.run_suites` returns it) into
the `coverage` prop of `designer.canvas.FlowCanvas`::

    {"steps": {step id: [test names]},          # every step; [] = uncovered
     "ports": {"step:port": [test names]},      # ports of steps with more than one
     "edges": {edge id: [test names]}}          # every edge; [] = not taken

An edge counts as taken by a test that both left its source on the edge's port (or, for a
one-port step, ran the source) and ran its target: a step reached from two sides does not
make both of its incoming edges look taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.model import Flow

__all__ = ["coverage_marks", "edge_id"]


def edge_id(source: str, port: str, target: str) -> str:
    """The canvas's id of an edge (`designer.canvas.canvas_graph` uses the same form)."""
    return f"{source}:{port}->{target}"


def coverage_marks(flow: Flow, coverage: Mapping[str, Any]) -> dict[str, dict[str, list[str]]]:
    """The canvas marks of `flow` for its suite `coverage` (see the module docstring)."""
    steps = {str(s["step"]): list(s["covered_by"]) for s in coverage.get("steps", [])}
    ports = {f"{p['step']}:{p['port']}": list(p["covered_by"]) for p in coverage.get("paths", [])}
    for step in flow.all_steps():
        steps.setdefault(step.id, [])
    edges: dict[str, list[str]] = {}
    for edge in flow.edges:
        leaving = ports.get(f"{edge.source}:{edge.port}", steps.get(edge.source, []))
        arriving = set(steps.get(edge.target, []))
        edges[edge_id(edge.source, edge.port, edge.target)] = [t for t in leaving if t in arriving]
    return {"steps": steps, "ports": ports, "edges": edges}
