"""The canvas benchmark's machinery works: a tiny graph is loaded, dragged and zoomed in chromium.

No timing thresholds here (timings belong to `python -m bench.canvas`); only that every figure
is a real measurement: the graph was drawn, the node moved, the numbers are positive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx
from playwright.sync_api import Page

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


# What the page holds: the view's transform, the nodes and edges in the DOM.
_VIEW_STATE = """() => {
  const pane = document.querySelector('.flowyard-canvas .vue-flow__transformationpane');
  const m = new DOMMatrix(getComputedStyle(pane).transform);
  const nodes = [...document.querySelectorAll('.flowyard-canvas .vue-flow__node')];
  const edges = [...document.querySelectorAll('.flowyard-canvas .vue-flow__edge')];
  return {
    zoom: m.a, x: m.e, y: m.f,
    nodes: nodes.map((n) => n.dataset.id),
    edges: edges.map((e) => e.dataset.id),
  };
}"""


def test_a_large_graph_renders_the_nodes_and_edges_in_view_as_the_view_moves(
    tmp_path: Path,
) -> None:
    nodes, edge_count, width, height = 300, 360, 1280, 800
    flow = synthetic_flow(nodes, edge_count)
    layout = grid_layout(flow)
    ends = {f"{e.source}:{e.port}->{e.target}": (e.source, e.target) for e in flow.edges}

    def in_view(view: dict[str, Any], w: float, h: float) -> set[str]:
        """Steps whose box (w x h flow units at their layout position) overlaps the window."""
        zoom, x, y = view["zoom"], view["x"], view["y"]
        return {
            step
            for step, p in layout.items()
            if p.x * zoom + x < width
            and (p.x + w) * zoom + x > 0
            and p.y * zoom + y < height
            and (p.y + h) * zoom + y > 0
        }

    def check(page: Page) -> dict[str, Any]:
        view: dict[str, Any] = page.evaluate(_VIEW_STATE)
        shown = set(view["nodes"])
        # A node is 170-240 x 50-60 flow units: everything surely in view is rendered, nothing
        # surely out of it is.
        assert in_view(view, 170, 50) <= shown <= in_view(view, 240, 60)
        drawn = set(view["edges"])
        between_shown = {e for e, (s, t) in ends.items() if s in shown and t in shown}
        assert between_shown <= drawn
        # Edges leaving the view are drawn too (their box overlaps it).
        assert any((s in shown) != (t in shown) for s, t in map(ends.__getitem__, drawn))
        return view

    with BenchServer(tmp_path / "server.log") as server, launch_chromium() as browser:
        page = browser.new_page(viewport={"width": width, "height": height})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.wait()}/bench?nodes={nodes}&edges={edge_count}")
        page.wait_for_function(
            "() => document.querySelectorAll('.flowyard-canvas .vue-flow__edge').length"
            f" >= {edge_count}"
        )
        fitted: dict[str, Any] = page.evaluate(_VIEW_STATE)
        assert len(fitted["nodes"]) == nodes  # the whole graph in view: all rendered

        page.mouse.move(width / 2, height / 2)
        page.mouse.wheel(0, -800)  # zoom in around the middle: most nodes leave the view
        page.wait_for_timeout(300)
        zoomed = check(page)
        assert zoomed["zoom"] > 2 * fitted["zoom"]
        assert len(zoomed["nodes"]) < nodes / 2

        # Pan by dragging the empty pane: nodes coming into view are rendered.
        point = page.evaluate(
            """() => {
              for (let y = 790; y > 0; y -= 7) for (let x = 5; x < 1275; x += 11) {
                const el = document.elementFromPoint(x, y);
                if (el && el.classList.contains('vue-flow__pane')) return [x, y];
              }
              return null;
            }"""
        )
        assert point is not None, "no empty spot on the pane to pan from"
        page.mouse.move(*point)
        page.mouse.down()
        for i in range(1, 21):
            page.mouse.move(point[0] + 15 * i, point[1] - 10 * i)
        page.mouse.up()
        page.wait_for_timeout(100)
        panned = check(page)
        assert (panned["x"], panned["y"]) != (zoomed["x"], zoomed["y"])
        assert set(panned["nodes"]) != set(zoomed["nodes"])

        # A node in view still drags at this zoom.
        node_id = panned["nodes"][len(panned["nodes"]) // 2]
        node = page.locator(f'.flowyard-canvas .vue-flow__node[data-id="{node_id}"]')
        before = node.evaluate("el => el.style.transform")
        box = node.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        for i in range(1, 11):
            page.mouse.move(box["x"] + box["width"] / 2 + 5 * i, box["y"] + box["height"] / 2)
        page.mouse.up()
        assert node.evaluate("el => el.style.transform") != before
        check(page)
    assert errors == []
