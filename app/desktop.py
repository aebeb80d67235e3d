"""`flowyard desktop`: the same app in a native window (pywebview, the `desktop` extra).

One process holds everything. Our FastAPI app (with NiceGUI mounted by `ui.run_with`, exactly as
`flowyard serve` builds it) runs under uvicorn in a background thread on 127.0.0.1; the window
runs in the main thread, as pywebview requires. NiceGUI's own `ui.run(native=True)` is not used:
it would run NiceGUI's server instead of ours and open the window in a multiprocessing child,
which outlives a killed parent. Here, closing the window (or SIGINT/SIGTERM) stops the server and
returns; a SIGKILL takes the window down with the process, and the browser engine's helper
processes (QtWebEngineProcess) exit by themselves once their parent's IPC channel closes
(`tests/test_desktop.py` checks both).

On Linux the window is Qt WebEngine (PyQt6 wheels from PyPI). The GTK backend would need
PyGObject compiled against system libraries; Qt needs only a few shared X libraries that desktop
systems have anyway (on a bare Debian: libxcb-icccm4, libxcb-keysyms1, libxcb-cursor0,
libxkbcommon-x11-0). NiceGUI's native settings (`nicegui.app.native.window_args`,
`.start_args`, `.settings`) apply to this window too.

pywebview is imported with `importlib`: it is an optional extra, and the import must not fail
(or be type-checked) where it is not installed.
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import typer

from app.cli import EXIT_INVALID
from app.persistence.lock import DataDirInUse, check_free
from app.settings import Settings

__all__ = ["run_desktop"]

INSTALL_HINT = "pip install 'flowyard[desktop]'"
TITLE = "Flowyard"
_SERVER_START_SECONDS = 120.0
_SERVER_STOP_SECONDS = 30.0
_EXIT_SECONDS = 10.0
# Same reasons as for Debian's chromium in the tests: without these, the engine keeps trying to
# reach hosts this machine cannot reach.
_CHROMIUM_FLAGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def _fail(message: str, *details: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    for line in details:
        typer.echo(f"  {line}", err=True)
    return typer.Exit(EXIT_INVALID)


def _load_webview() -> Any:
    """The `webview` module with a usable backend, or exit 2 saying how to install one."""
    try:
        webview = importlib.import_module("webview")
        if sys.platform.startswith("linux"):
            importlib.import_module("qtpy.QtWebEngineWidgets")
    except ImportError as exc:
        raise _fail(
            "desktop mode needs the desktop extra, which is not installed.",
            f"install it with: {INSTALL_HINT}",
            f"({exc})",
        ) from None
    return webview


def _check_display() -> None:
    """Qt aborts the whole process without a display: say so plainly first."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise _fail(
            "no display to open a window on (neither DISPLAY nor WAYLAND_DISPLAY is set).",
            "run it from a desktop session, or use `flowyard serve` and a browser.",
        )


def _configure_engine() -> None:
    """Environment for Qt WebEngine, set before it starts (it reads it once)."""
    flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "").split()
    flags += [flag for flag in _CHROMIUM_FLAGS if flag not in flags]
    os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = " ".join(flags)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Chromium refuses to start its sandbox as root (containers, CI); it exits otherwise.
        os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")


def _bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1 (`port` 0: a free one), bound before the app is built."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise _fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    return sock


class _ServerThread(threading.Thread):
    """uvicorn serving our app on an already bound socket; `stop()` shuts it down gracefully."""

    def __init__(self, app: Any, sock: socket.socket, settings: Settings) -> None:
        super().__init__(name="flowyard-server", daemon=True)
        import uvicorn

        from app.http_server import uvicorn_options

        config = uvicorn.Config(app, timeout_graceful_shutdown=5, **uvicorn_options(settings))
        self.server = uvicorn.Server(config)
        self.sock = sock
        self.on_exit: list[Callable[[], None]] = []

    def run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        finally:
            for callback in self.on_exit:
                callback()

    def wait_started(self, timeout: float, stop: threading.Event) -> bool:
        """True once serving; False if it died, did not start in time, or `stop` was set."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.is_alive() and not stop.is_set():
            if self.server.started:
                return True
            time.sleep(0.05)
        return self.server.started and not stop.is_set()

    def stop(self, timeout: float) -> None:
        self.server.should_exit = True
        self.join(timeout)
        if self.is_alive():
            self.server.force_exit = True
            self.join(5)


def _settings(port: int, data_dir: Path) -> Settings:
    components_dir = os.environ.get("FLOWYARD_COMPONENTS_DIR")
    return Settings(
        host="127.0.0.1",
        port=port,
        data_dir=data_dir,
        components_dir=Path(components_dir) if components_dir else None,
        settle_heap=True,
    )


def run_desktop(*, port: int, data_dir: Path) -> None:
    """Serve the app on 127.0.0.1 and show it in a native window until the window is closed."""
    webview = _load_webview()
    _check_display()
    _configure_engine()
    try:
        check_free(data_dir)  # the server holds the lock; checked here for a plain message
    except DataDirInUse as exc:
        raise _fail(str(exc)) from None
    import nicegui

    from app.server import create_app

    sock = _bind(port)
    port = sock.getsockname()[1]
    settings = _settings(port, data_dir)
    server = _ServerThread(create_app(settings), sock, settings)
    # SIGINT/SIGTERM, or a server that died, close the window; from then on everything unwinds
    # like a click on the window's close button. pywebview replaces the SIGINT handler with its
    # own (same effect) once its GUI loop runs.
    stop = threading.Event()
    signalled: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signalled.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.on_exit.append(stop.set)
    server.start()
    if not server.wait_started(_SERVER_START_SECONDS, stop):
        server.stop(_SERVER_STOP_SECONDS)
        if signalled:  # stopped while starting
            return
        raise _fail("the server did not start; see the messages above.")
    typer.echo(f"Flowyard desktop on {settings.base_url} (data in {data_dir.resolve()})")

    webview.settings.update(nicegui.app.native.settings)
    window = webview.create_window(
        TITLE,
        f"{settings.base_url}/",
        width=1280,
        height=800,
        min_size=(800, 600),
        **nicegui.app.native.window_args,
    )

    def close_on_stop() -> None:
        stop.wait()
        # A stop that comes before the window is on screen closes it once it is there.
        if window.events.shown.wait(_SERVER_START_SECONDS) and not window.events.closed.is_set():
            with contextlib.suppress(Exception):  # closed meanwhile
                window.destroy()

    threading.Thread(target=close_on_stop, name="flowyard-close", daemon=True).start()
    start_args: dict[str, Any] = {"private_mode": True}
    if sys.platform.startswith("linux"):
        start_args["gui"] = "qt"
    start_args.update(nicegui.app.native.start_args)
    try:
        webview.start(**start_args)
    finally:
        server.stop(_SERVER_STOP_SECONDS)
    typer.echo("Flowyard desktop closed.")
    _exit_watchdog(_EXIT_SECONDS)


def _exit_watchdog(seconds: float) -> None:
    """Make sure the process ends once the window is closed and the server stopped.

    Interpreter shutdown then joins leftover threads (Qt's, the server's thread-pool workers). In
    two clean-clone test runs out of many, the process stayed after "closed" (SIGINT; the cause
    was not found, and it never showed when run alone). Everything is stopped and saved by then,
    so if the process is still here after `seconds`, every thread's stack goes to stderr (to find
    the cause next time) and the process exits.
    """

    def fire() -> None:
        sys.stderr.write(f"flowyard desktop: still running {seconds:g} s after closing:\n")
        faulthandler.dump_traceback(all_threads=True)
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(0)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
