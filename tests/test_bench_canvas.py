"""The canvas benchmark's machinery works: a tiny graph is loaded, dragged and zoomed in chromium.

No timing thresholds here (timings belong to `python -m bench.canvas`); only that every figure
is a real measurement: the graph was drawn, the node moved, the numbers are positive.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from bench.canvas import BenchServer, launch_chromium, measure_size
from bench.canvas_app import grid_layout, synthetic_flow
from components.registry import Registry
from runtime.validation import validate_flow


def test_synthetic_flow_is_a_valid_dag_of_mixed_steps() -> None:
    flow = synthetic_flow(60, 75)
    registry = Registry()
    registry.load_builtins()

    assert len(flow.all_steps()) == 60
    assert len(flow.edges) == 75
    assert flow.trigger.action == "webhook.webhook"
    assert {s.action for s in flow.steps} >= {"http.request", "branch.expression", "loop.items"}
    graph: nx.DiGraph[str] = nx.DiGraph([(e.source, e.target) for e in flow.edges])
    assert nx.is_directed_acyclic_graph(graph)
    assert nx.descendants(graph, "trigger") == {s.id for s in flow.steps}
    errors = [i for i in validate_flow(flow, registry) if i.severity == "error"]
    assert errors == []
    positions = grid_layout(flow)
    assert len({(p.x, p.y) for p in positions.values()}) == 60


def test_bench_measures_load_and_drag_of_a_small_graph(tmp_path: Path) -> None:
    with BenchServer(tmp_path / "server.log") as server, launch_chromium() as browser:
        result = measure_size(browser, server.wait(), 20, 24, loads=1, warmup=0, drags=2, moves=8)

    (load,) = result.loads
    assert load.ms > 0
    assert (load.dom_nodes, load.dom_edges) == (20, 24)
    assert load.minimap  # 20 nodes: below the large-graph threshold
    assert len(result.drags) == len(result.raf_drags) == len(result.zoomed_drags) == 2
    assert result.frame_ms > 0
    for drag in [*result.drags, *result.raf_drags, *result.zoomed_drags]:
        assert drag.ms_per_move > 0
        assert drag.after != drag.before, "the dragged node did not move"
    assert abs(result.zoomed_zoom - 1.0) < 0.05  # wheel-zoomed to EDIT_ZOOM
    assert 0 < result.zoomed_dom_nodes <= 20
    assert result.errors == []
