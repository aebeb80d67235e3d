"""Canvas benchmarks in headless chromium, the 500-node figures beside a 10-node baseline.

    .venv/bin/python -m bench.canvas            # --help for sizes and repeat counts

A `bench.canvas_app` server (its own process, 127.0.0.1) draws a synthetic flow full-window with
`fit`. Playwright drives Debian's chromium (`/usr/bin/chromium`) at 1280x800 and measures:

- load: navigation start to "rendered" — the canvas has loaded the graph revision, Vue Flow has
  measured its nodes (`data-initialized` equals `data-revision`), the fit is applied, every node
  and edge is in the DOM and measured, and one more frame has been drawn. Timed in the page
  (`performance.now()` counts from navigation start); the median of several fresh page loads after
  one warm-up load.
- drag: mouse down on the node nearest the middle of the window, 60 small moves, then wait until
  the frame showing the last one is drawn; total time / moves, median of a few drags (after one
  warm-up drag). Twice: at fit, where all 500 nodes are visible and so all are rendered, and at
  zoom 1.0, where the large-graph mode renders only the visible ones.
  Chromium dispatches mouse moves aligned to animation frames and Playwright's `mouse.move`
  returns once the page handled the move, so the moves go at the pace the canvas draws: one
  frame (16.7 ms) per move at best, more when a frame's work (handler, Vue update, style,
  layout, paint) takes longer. A second figure waits two more frames (double
  `requestAnimationFrame`) after every move: its floor is three frames (~50 ms) whatever the
  canvas costs, so only its ratio means something. A drag where the node does not follow the
  pointer (its transform) aborts the run.

Targets (2-core build machine): load ≤ 1.5 s and drag ≤ 30 ms per move at 500 nodes / 600 edges.
It also checks that the large-graph mode is on at 500 nodes (no minimap; only visible nodes in the
DOM once zoomed in). Ratios compare with the baseline so figures from machines of different speed
stay comparable. Timings never gate a test.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "BenchServer",
    "DragResult",
    "LoadResult",
    "SizeResult",
    "launch_chromium",
    "measure_size",
]

ROOT = Path(__file__).parent.parent
CHROMIUM = "/usr/bin/chromium"
"""Debian's chromium; the browser tests launch the same binary with the same flags."""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Browser UI only, never the page: Chromium 156 starts a `--top-chrome-webui` renderer per
    # window for the omnibox's dropdowns (chrome://omnibox-popup.top-chrome/ and its
    # omnibox_popup_aim.html), which headless never shows. Each new context's one loaded them
    # while the page loaded, at 40-65 % of a core here (ps), on 2 cores. `Target.getTargets` lists
    # neither with these three disabled; the page's own renderer is the same.
    "--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup,PreloadTopChromeWebUI",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
LOAD_TARGET_MS = 1500.0
EDIT_ZOOM = 1.0
"""The zoom of the second set of drags: nodes at their real size, as when editing."""
MOVE_TARGET_MS = 30.0

# Runs in every new document before the page's own scripts. Once per frame it checks how far the
# graph got (cheap attribute checks first) and notes when each phase was first seen; the drawn
# time is taken one frame after everything is in place, when the frame showing it was painted.
# `__flowyardExpect` is set per load by the bench.
READY_SCRIPT = """
(() => {
  const expect = window.__flowyardExpect || { nodes: 1, edges: 0 };
  const phases = (window.__flowyardPhases = {});
  function drawn() {
    const canvas = document.querySelector('.flowyard-canvas');
    if (!canvas) return false;
    const revision = canvas.dataset.revision;
    if (!revision || revision === '-1') return false;
    phases.graph ??= performance.now();
    if (canvas.dataset.initialized !== revision) return false;
    phases.measured ??= performance.now();
    const nodes = canvas.querySelectorAll('.vue-flow__node');
    if (nodes.length < expect.nodes) return false;
    for (const node of nodes) if (node.style.visibility === 'hidden') return false;
    return canvas.querySelectorAll('.vue-flow__edge').length >= expect.edges;
  }
  function check() {
    if (drawn()) requestAnimationFrame(() => { phases.drawn = performance.now(); });
    else requestAnimationFrame(check);
  }
  requestAnimationFrame(check);
})();
"""

NEXT_FRAME = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
FRAME_INTERVAL = """() => new Promise(resolve => {
  const times = [];
  function frame(t) {
    times.push(t);
    if (times.length < 31) requestAnimationFrame(frame);
    else resolve((times[30] - times[0]) / 30);
  }
  requestAnimationFrame(frame);
})"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class BenchServer:
    """`bench.canvas_app` in its own process on a free 127.0.0.1 port, stopped on exit.

    Entering starts the process and returns at once, so chromium can start meanwhile; `wait()`
    blocks until the server answers and returns its base URL.
    """

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{_free_port()}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BenchServer:
        # NiceGUI started under pytest looks for its screen-test port unless this is removed.
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        port = self.url.rsplit(":", 1)[1]
        command = [sys.executable, "-m", "bench.canvas_app", "--port", port]
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the handle
            self._process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def wait(self, timeout: float = 60.0) -> str:
        """The base URL, once `/ping` answers; raises with the server's log if it never does."""
        assert self._process is not None, "use BenchServer as a context manager"
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"bench server exited early:\n{self.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    return self.url
            if time.monotonic() > deadline:
                log = self.log_path.read_text()
                raise RuntimeError(f"bench server silent for {timeout} s:\n{log}")
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)


@contextlib.contextmanager
def launch_chromium() -> Iterator[Browser]:
    """Headless Debian chromium with the flags this machine needs (no background networking)."""
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One page load: milliseconds to rendered, and what the DOM held then.

    `phases`: milliseconds from navigation start to `html` (the page's HTML received), `graph`
    (the canvas holds the graph's revision), `measured` (Vue Flow measured the nodes) and
    `drawn` (= `ms`); the canvas phases are seen at frame granularity.
    """

    ms: float
    phases: dict[str, float]
    dom_nodes: int
    dom_edges: int
    minimap: bool
    zoom: float


@dataclass(frozen=True, slots=True)
class DragResult:
    """One drag: milliseconds per mouse move and the node's transform before and after."""

    ms_per_move: float
    moves: int
    before: str
    after: str


@dataclass(slots=True)
class SizeResult:
    """All measurements of one graph size."""

    nodes: int
    edges: int
    loads: list[LoadResult] = field(default_factory=list)
    drags: list[DragResult] = field(default_factory=list)
    raf_drags: list[DragResult] = field(default_factory=list)
    """Drags at fit that wait for two animation frames after every move."""
    zoomed_drags: list[DragResult] = field(default_factory=list)
    """Drags at zoom `EDIT_ZOOM`, where only the visible part of a large graph is rendered."""
    frame_ms: float = 0.0
    """The page's idle frame interval (requestAnimationFrame), the floor of a move."""
    zoomed_dom_nodes: int = 0
    zoomed_zoom: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def load_ms(self) -> float:
        return statistics.median(r.ms for r in self.loads)

    @property
    def move_ms(self) -> float:
        return statistics.median(d.ms_per_move for d in self.drags)

    @property
    def raf_move_ms(self) -> float:
        return statistics.median(d.ms_per_move for d in self.raf_drags)

    @property
    def zoomed_move_ms(self) -> float:
        return statistics.median(d.ms_per_move for d in self.zoomed_drags)


def _zoom(page: Page) -> float:
    zoom: float = page.evaluate(
        """() => {
          const pane = document.querySelector('.flowyard-canvas .vue-flow__transformationpane');
          return pane ? new DOMMatrix(getComputedStyle(pane).transform).a : 0;
        }"""
    )
    return zoom


def _load(page: Page, url: str, nodes: int, edges: int, timeout_ms: float) -> LoadResult:
    expect = f"window.__flowyardExpect = {{ nodes: {nodes}, edges: {edges} }};"
    page.add_init_script(expect + READY_SCRIPT)
    page.goto(url, wait_until="commit")
    try:
        page.wait_for_function("() => window.__flowyardPhases?.drawn", timeout=timeout_ms)
    except PlaywrightTimeoutError:
        state = page.evaluate(
            """() => {
              const canvas = document.querySelector('.flowyard-canvas');
              return {
                revision: canvas?.dataset.revision, initialized: canvas?.dataset.initialized,
                nodes: document.querySelectorAll('.vue-flow__node').length,
                edges: document.querySelectorAll('.vue-flow__edge').length,
              };
            }"""
        )
        raise RuntimeError(f"{url} was not drawn within {timeout_ms:g} ms: {state}") from None
    phases: dict[str, float] = page.evaluate(
        """() => ({
          html: performance.getEntriesByType('navigation')[0].responseEnd,
          ...window.__flowyardPhases,
        })"""
    )
    counts: dict[str, int] = page.evaluate(
        """() => ({
          nodes: document.querySelectorAll('.flowyard-canvas .vue-flow__node').length,
          edges: document.querySelectorAll('.flowyard-canvas .vue-flow__edge').length,
          minimap: document.querySelectorAll('.flowyard-canvas .vue-flow__minimap').length,
        })"""
    )
    minimap = counts["minimap"] > 0
    return LoadResult(
        phases["drawn"], phases, counts["nodes"], counts["edges"], minimap, _zoom(page)
    )


def _transform(page: Page, node_id: str) -> str:
    transform: str = page.locator(f'.vue-flow__node[data-id="{node_id}"]').evaluate(
        "el => el.style.transform"
    )
    return transform


def _translate(transform: str) -> tuple[float, float]:
    """(x, y) of a node's `translate(Xpx, Ypx)` style."""
    x, y = transform.removeprefix("translate(").removesuffix(")").split(",")[:2]
    return float(x.strip().removesuffix("px")), float(y.strip().removesuffix("px"))


def _drag(page: Page, node_id: str, moves: int, direction: int, wait_frames: bool) -> DragResult:
    """Drag `node_id` by `moves` small pointer moves; `wait_frames`: double rAF after each."""
    box = page.get_by_test_id(f"node-{node_id}").bounding_box()
    if box is None:
        raise RuntimeError(f"node {node_id} is not on screen")
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    before = _transform(page, node_id)
    page.mouse.move(x, y)
    page.evaluate(NEXT_FRAME)
    page.mouse.down()
    started = time.perf_counter()
    # Moves are dispatched aligned to frames and `mouse.move` returns once the page handled one,
    # so the loop is paced by the canvas's frames (see the module docstring).
    for i in range(1, moves + 1):
        page.mouse.move(x + direction * 2 * i, y + direction * i)
        if wait_frames:
            page.evaluate(NEXT_FRAME)
    page.evaluate(NEXT_FRAME)  # the last move is drawn
    elapsed = time.perf_counter() - started
    after = _transform(page, node_id)
    page.mouse.up()
    page.evaluate(NEXT_FRAME)
    # The node must follow the pointer: moved by the pointer's travel divided by the zoom.
    zoom = _zoom(page)
    (x0, y0), (x1, y1) = _translate(before), _translate(after)
    expected = (direction * 2 * moves / zoom, direction * moves / zoom)
    if abs(x1 - x0 - expected[0]) > 2 / zoom + 1 or abs(y1 - y0 - expected[1]) > 2 / zoom + 1:
        raise RuntimeError(
            f"dragging node {node_id} by {expected} (flow units) moved it from {before!r} to "
            f"{after!r}: the drag did not follow the pointer"
        )
    return DragResult(elapsed * 1e3 / moves, moves, before, after)


def _zoom_to(page: Page, zoom: float) -> tuple[int, float]:
    """Wheel-zoom to `zoom` around the middle of the window; (nodes in the DOM, zoom) after."""
    page.mouse.move(VIEWPORT["width"] / 2, VIEWPORT["height"] / 2)
    # Vue Flow multiplies the zoom by 2 ** (-deltaY * 0.002) per pixel-mode wheel event.
    page.mouse.wheel(0, -math.log2(zoom / _zoom(page)) / 0.002)
    page.wait_for_timeout(200)
    page.evaluate(NEXT_FRAME)
    count: int = page.locator(".flowyard-canvas .vue-flow__node").count()
    return count, _zoom(page)


def _central_node(page: Page) -> str:
    """The id of the node nearest the middle of the window."""
    node_id: str = page.evaluate(
        """([x, y]) => {
          let best = null, distance = Infinity;
          for (const node of document.querySelectorAll('.flowyard-canvas .vue-flow__node')) {
            const r = node.getBoundingClientRect();
            const d = Math.hypot(r.x + r.width / 2 - x, r.y + r.height / 2 - y);
            if (d < distance) [best, distance] = [node.dataset.id, d];
          }
          return best;
        }""",
        [VIEWPORT["width"] / 2, VIEWPORT["height"] / 2],
    )
    return node_id


def _drags(
    page: Page, count: int, warmup: int, moves: int, *, raf: bool = False
) -> tuple[list[DragResult], list[DragResult]]:
    """`warmup` + `count` drags of the central node (+ as many with double rAF when `raf`).

    Directions alternate so the node stays put; the two kinds interleave so a change in machine
    load hits both alike. Returns (plain drags, double-rAF drags), warm-up ones left out.
    """
    target = _central_node(page)
    plain: list[DragResult] = []
    waited: list[DragResult] = []
    for index in range(warmup + count * (2 if raf else 1)):
        wait_frames = raf and index >= warmup and (index - warmup) % 2 == 1
        drag = _drag(page, target, moves, 1 if index % 2 == 0 else -1, wait_frames)
        if index >= warmup:
            (waited if wait_frames else plain).append(drag)
    return plain, waited


def measure_size(
    browser: Browser,
    base_url: str,
    nodes: int,
    edges: int,
    *,
    loads: int = 5,
    warmup: int = 1,
    drags: int = 3,
    moves: int = 60,
    timeout_ms: float = 30_000,
) -> SizeResult:
    """Measure one graph size: page loads, then drags at fit and at `EDIT_ZOOM`.

    The page is loaded `warmup + loads` times; on the last load the node nearest the middle is
    dragged at fit (plainly and with double rAF), then the view is zoomed to `EDIT_ZOOM` and the
    node nearest the middle is dragged again.

    The first `warmup` loads and drags are not kept (cold caches, JIT). Raises `RuntimeError`
    when the page is not drawn in time, a drag moves nothing or the page logs an error.
    """
    result = SizeResult(nodes, edges)
    url = f"{base_url}/bench?nodes={nodes}&edges={edges}"
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page: Page | None = None
        for index in range(warmup + loads):
            if page is not None:
                page.close()
            page = context.new_page()
            page.on("pageerror", lambda error: result.errors.append(f"uncaught: {error}"))
            page.on(
                "console",
                lambda m: result.errors.append(f"console: {m.text}") if m.type == "error" else None,
            )
            load = _load(page, url, nodes, edges, timeout_ms)
            if index >= warmup:
                result.loads.append(load)
        assert page is not None
        result.frame_ms = page.evaluate(FRAME_INTERVAL)
        result.drags, result.raf_drags = _drags(page, drags, warmup, moves, raf=True)
        result.zoomed_dom_nodes, result.zoomed_zoom = _zoom_to(page, EDIT_ZOOM)
        result.zoomed_drags, _ = _drags(page, drags, warmup, moves)
    finally:
        context.close()
    if result.errors:
        raise RuntimeError(f"the bench page logged errors: {result.errors}")
    return result


def _report(name: str, value: float, baseline: float, target: float) -> None:
    ratio = value / baseline if baseline else float("inf")
    verdict = "met" if value <= target else "MISSED"
    base = f"baseline {baseline:.1f} ms, ratio {ratio:.2f}"
    print(f"{name}: {value:.1f} ms  ({base})  target ≤ {target:g} ms: {verdict}")


def _spread(values: list[float]) -> str:
    return " ".join(f"{v:.1f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description="Canvas load and drag benchmark in chromium.")
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--edges", type=int, default=600)
    parser.add_argument("--baseline-nodes", type=int, default=10)
    parser.add_argument("--baseline-edges", type=int, default=12)
    parser.add_argument("--loads", type=int, default=5, help="measured page loads per size")
    parser.add_argument("--drags", type=int, default=3, help="measured drags per size")
    parser.add_argument("--moves", type=int, default=60, help="mouse moves per drag")
    args = parser.parse_args()
    # Sampled before the run: the bench itself keeps both cores busy while it measures.
    busy = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    counts = {"loads": args.loads, "drags": args.drags, "moves": args.moves}
    with (
        tempfile.TemporaryDirectory() as tmp,
        BenchServer(Path(tmp) / "server.log") as server,
        launch_chromium() as browser,
    ):
        url = server.wait()
        base = measure_size(browser, url, args.baseline_nodes, args.baseline_edges, **counts)
        large = measure_size(browser, url, args.nodes, args.edges, **counts)

    size = f"{large.nodes} nodes / {large.edges} edges"
    print(
        f"canvas, {size} (baseline: {base.nodes} nodes / {base.edges} edges, same run; "
        f"headless chromium {VIEWPORT['width']}x{VIEWPORT['height']}; medians)"
    )
    if busy > cores / 2:
        print(
            f"  WARNING: load average {busy:.1f} on {cores} cores before the run: other processes "
            "share the CPU, absolute figures are inflated; trust the ratios more"
        )
    _report("  load to rendered", large.load_ms, base.load_ms, LOAD_TARGET_MS)
    print(
        f"    loads: {_spread([r.ms for r in large.loads])} ms; baseline "
        f"{_spread([r.ms for r in base.loads])} ms"
    )
    phases = {
        name: statistics.median(r.phases[name] for r in large.loads)
        for name in ("html", "graph", "measured")
    }
    print(
        "    phases (median ms from navigation start): HTML received {html:.0f}, graph in the "
        "canvas {graph:.0f}, nodes measured {measured:.0f}".format(**phases)
    )
    all_visible = f"{large.loads[-1].dom_nodes} of {large.nodes} nodes rendered"
    _report(f"  drag at fit ({all_visible}), per move", large.move_ms, base.move_ms, MOVE_TARGET_MS)
    print(
        f"    drags: {_spread([d.ms_per_move for d in large.drags])} ms/move; baseline "
        f"{_spread([d.ms_per_move for d in base.drags])} ms/move ({args.moves} moves each; "
        f"idle frame {large.frame_ms:.1f} ms, the floor)"
    )
    zoomed = f"zoom {large.zoomed_zoom:.2f}, {large.zoomed_dom_nodes} of {large.nodes} rendered"
    _report(
        f"  drag at {zoomed}, per move",
        large.zoomed_move_ms,
        base.zoomed_move_ms,
        MOVE_TARGET_MS,
    )
    print(
        f"    drags: {_spread([d.ms_per_move for d in large.zoomed_drags])} ms/move; baseline "
        f"{_spread([d.ms_per_move for d in base.zoomed_drags])} ms/move"
    )
    ratio = large.raf_move_ms / base.raf_move_ms
    print(
        f"  drag at fit, double rAF after every move: {large.raf_move_ms:.1f} ms  (baseline "
        f"{base.raf_move_ms:.1f} ms, ratio {ratio:.2f})  floor 3 frames, no target"
    )
    print("  every drag: the node followed the pointer")
    last = large.loads[-1]
    minimap_ok = not last.minimap and base.loads[-1].minimap
    visible_ok = large.zoomed_dom_nodes < large.nodes / 4
    print(
        f"  large-graph mode: minimap {'absent' if not last.minimap else 'PRESENT'} at "
        f"{large.nodes} nodes ({'present' if base.loads[-1].minimap else 'absent'} at "
        f"{base.nodes}); {last.dom_nodes} nodes / {last.dom_edges} edges in the DOM at fit "
        f"(zoom {last.zoom:.2f}), {large.zoomed_dom_nodes} nodes at zoom "
        f"{large.zoomed_zoom:.2f}: {'active' if minimap_ok and visible_ok else 'NOT ACTIVE'}"
    )


if __name__ == "__main__":
    main()
