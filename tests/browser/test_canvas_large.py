"""The canvas's large-graph mode (over 200 nodes) in chromium: what differs from a small graph
must still behave like it.

Large graphs draw their edges in one SVG of our own (`LiteEdges.vue`) instead of Vue Flow's
per-edge components, and shorten long titles instead of clipping them; the page is
`bench.canvas_app`'s synthetic flow.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from bench.canvas import BenchServer
from bench.canvas_app import long_name, synthetic_flow

NODES, EDGES = 300, 360

# Where an edge's path starts and ends, and its middle, in page coordinates.
_POINTS_OF = """function pointsOf(g) {
  const path = g.querySelector('.vue-flow__edge-path');
  const length = path.getTotalLength();
  const m = path.getScreenCTM();
  const at = (l) => { const p = path.getPointAtLength(l).matrixTransform(m); return [p.x, p.y]; };
  return { start: at(0), middle: at(length / 2), end: at(length) };
}"""
_EDGE_POINTS = f"(g) => {{ {_POINTS_OF} return pointsOf(g); }}"
_CENTER = """(el) => {
  const r = el.getBoundingClientRect();
  return [r.x + r.width / 2, r.y + r.height / 2];
}"""


@pytest.fixture(scope="module")
def bench_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log: Path = tmp_path_factory.mktemp("canvas-bench") / "server.log"
    with BenchServer(log) as server:
        yield server.wait()


def open_large(page: Page, url: str) -> None:
    page.goto(f"{url}/bench?nodes={NODES}&edges={EDGES}&names=true")
    expect(page.locator(".flowyard-canvas.fy-large")).to_have_count(1)
    expect(page.locator(".flowyard-canvas .vue-flow__edge")).to_have_count(EDGES)
    page.wait_for_function(
        "() => { const c = document.querySelector('.flowyard-canvas');"
        " return c.dataset.initialized === c.dataset.revision; }"
    )


def zoom_in(page: Page) -> None:
    """Wheel-zoom to about 1.0 around the middle of the window (culling then keeps a few nodes)."""
    page.mouse.move(800, 500)
    page.mouse.wheel(0, -600)
    page.wait_for_timeout(300)


def close(a: list[float], b: list[float], tolerance: float = 2.0) -> bool:
    return abs(a[0] - b[0]) <= tolerance and abs(a[1] - b[1]) <= tolerance


def test_long_titles_are_shortened_to_fit_their_nodes(page: Page, bench_url: str) -> None:
    open_large(page, bench_url)
    # The text's own extent (a Range), not its block's: the title does not clip.
    titles = page.evaluate(
        """() => [...document.querySelectorAll('.fy-node')].map((n) => {
          const title = n.querySelector('.fy-title');
          const text = document.createRange();
          text.selectNodeContents(title);
          const end = text.getBoundingClientRect().right;
          const overflow = end - title.getBoundingClientRect().right;
          // Port labels (true/false, body/done) sit at the right, beside the title line.
          const labels = [...n.querySelectorAll('.fy-port')].map((l) => l.getBoundingClientRect());
          const top = title.getBoundingClientRect();
          const beside = labels.filter((l) => l.top < top.bottom && l.bottom > top.top);
          const clearance = Math.min(Infinity, ...beside.map((l) => l.left - end));
          return {
            id: n.dataset.testid.slice(5), text: title.textContent, tip: n.title, overflow,
            clearance, labelled: labels.length,
          };
        })"""
    )
    assert len(titles) == NODES
    assert max(t["overflow"] for t in titles) <= 0.5, "a title overflows its node"
    assert sum(t["labelled"] > 0 for t in titles) > NODES // 4  # branches and loops
    assert min(t["clearance"] for t in titles) >= 2, "a title runs under a port label"
    for title in titles:
        if title["id"] == "trigger":  # short: shown whole, no tooltip
            assert (title["text"], title["tip"]) == ("Account updated", "")
            continue
        assert title["tip"] == long_name(title["id"])
        assert title["text"].endswith("…")
        assert title["tip"].startswith(title["text"][:-1])


def test_edges_are_selected_deleted_and_follow_a_dragged_node(page: Page, bench_url: str) -> None:
    open_large(page, bench_url)
    zoom_in(page)
    # An edge whose middle is on screen and not under a node, with its target in view: click it
    # there.
    edge_id = page.evaluate(
        f"""() => {{
          {_POINTS_OF}
          for (const g of document.querySelectorAll('.flowyard-canvas .vue-flow__edge')) {{
            const [x, y] = pointsOf(g).middle;
            if (x < 50 || y < 50 || x > 1550 || y > 950) continue;
            const target = g.dataset.id.split('->')[1];
            const box = document.querySelector(`[data-testid="node-${{target}}"]`)
              ?.getBoundingClientRect();
            if (!box || box.x < 50 || box.y < 50 || box.right > 1450 || box.bottom > 900) continue;
            const hit = document.elementFromPoint(x, y)?.closest('.vue-flow__edge');
            if (hit === g) return g.dataset.id;
          }}
          return null;
        }}"""
    )
    assert edge_id is not None, "no edge to click in view"
    edge = page.locator(f'.flowyard-canvas .vue-flow__edge[data-id="{edge_id}"]')
    page.mouse.click(*edge.evaluate(_EDGE_POINTS)["middle"])
    expect(edge).to_have_class(re.compile(r"\bselected\b"))

    # Dragging the edge's target moves the edge's end with its input handle.
    target = edge_id.split("->")[1]
    node = page.get_by_test_id(f"node-{target}")
    box = node.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 10)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(box["x"] + box["width"] / 2 + 6 * i, box["y"] + 10 + 3 * i)
    page.mouse.up()
    moved = node.bounding_box()
    assert moved is not None and moved["x"] > box["x"] + 30
    handle = node.locator(".vue-flow__handle.target").evaluate(_CENTER)
    assert close(edge.evaluate(_EDGE_POINTS)["end"], handle, 4)

    # The drag selected the node; click the edge again and delete it alone.
    page.mouse.click(*edge.evaluate(_EDGE_POINTS)["middle"])
    expect(edge).to_have_class(re.compile(r"\bselected\b"))
    expect(page.locator(".vue-flow__node.selected")).to_have_count(0)
    page.keyboard.press("Delete")
    expect(edge).to_have_count(0)
    expect(node).to_have_count(1)


def test_handles_connect_nodes_in_a_large_graph(page: Page, bench_url: str) -> None:
    open_large(page, bench_url)
    zoom_in(page)
    flow = synthetic_flow(NODES, EDGES)
    existing = {(e.source, e.target) for e in flow.edges}
    shown = page.evaluate(
        """() => [...document.querySelectorAll('.flowyard-canvas .vue-flow__node')]
          .filter((n) => { const r = n.getBoundingClientRect();
                           return r.x > 20 && r.y > 20 && r.right < 1580 && r.bottom < 980; })
          .map((n) => n.dataset.id)"""
    )
    actions = {s.id for s in flow.steps if s.action in ("http.request", "log.message")}
    source, target = next(
        (a, b)
        for a in shown
        for b in shown
        if a in actions and b != a and b != "trigger" and (a, b) not in existing
    )
    page.get_by_test_id(f"handle-{source}-out").click()
    page.get_by_test_id(f"node-{target}").locator(".vue-flow__handle.target").click()
    edge = page.locator(f'.flowyard-canvas .vue-flow__edge[data-id="{source}:out->{target}"]')
    expect(edge).to_have_count(1)
    points = edge.evaluate(_EDGE_POINTS)
    out_handle = page.get_by_test_id(f"handle-{source}-out").evaluate(_CENTER)
    in_handle = page.get_by_test_id(f"node-{target}").locator(".vue-flow__handle.target")
    assert close(points["start"], out_handle, 4)
    assert close(points["end"], in_handle.evaluate(_CENTER), 4)
