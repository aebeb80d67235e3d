"""`flowyard desktop` as a user runs it: a real window on a virtual X display (Xvfb).

The window must show the app served from our own server, and no process may outlive it: neither
when the user closes the window nor when the main process is killed with SIGKILL. Every process
the app starts inherits a marker in its environment, so a survivor is found even after it was
reparented. The page's URL, title and text are read through the web engine's DevTools endpoint
(`QTWEBENGINE_REMOTE_DEBUGGING`, set by the test only). A screenshot of the display goes to
`test-artifacts/desktop/`.

Needs Debian's xvfb, xdotool and imagemagick, and the `desktop` extra with the X libraries Qt
loads (the Makefile's QT_PACKAGES; a missing one is named before the app starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import importlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import httpx
import pytest
from typer.testing import CliRunner

from app.cli import app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "warehouse-import.yaml"
EXAMPLE_NAME = "Warehouse import"
ARTIFACTS = ROOT / "test-artifacts" / "desktop"
MARK_VARIABLE = "FLOWYARD_TEST_MARK"
STARTUP_SECONDS = 90.0
EXIT_SECONDS = 30.0
XVFB = ("Xvfb", "-screen", "0", "1280x800x24", "-nolisten", "tcp")

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Xvfb is Linux-only"),
    pytest.mark.timeout(240),
]

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], seconds: float, log: Path) -> T:
    """`probe()` once it returns something truthy; fail with the app's log after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {seconds} s. App log:\n{read_log(log)}")
        time.sleep(0.2)


def read_log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else "(no log)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def marked_processes(mark: str) -> dict[int, str]:
    """Live processes whose environment carries `mark`, with their command lines."""
    needle = f"{MARK_VARIABLE}={mark}".encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                found[int(entry.name)] = command.decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or a zombie
            continue
    return found


# --- the X display ------------------------------------------------------------------------------


def require_tools() -> None:
    missing = [tool for tool in ("Xvfb", "xdotool", "import") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: apt-get install -y xvfb xdotool imagemagick",
            pytrace=False,
        )
    try:
        importlib.import_module("webview")
    except ImportError:
        pytest.fail("the desktop extra is missing: pip install -e '.[desktop]'", pytrace=False)
    if unresolved := missing_qt_libraries():
        pytest.fail(
            f"Qt's X platform plugin cannot load {', '.join(unresolved)}: "
            "install the Debian packages listed in the Makefile's QT_PACKAGES",
            pytrace=False,
        )


def missing_qt_libraries() -> list[str]:
    """Shared libraries PyQt6's xcb platform plugin needs that the system lacks (from `ldd`)."""
    qt = importlib.import_module("PyQt6")
    plugin = Path(str(qt.__file__)).parent / "Qt6" / "plugins" / "platforms" / "libqxcb.so"
    if not plugin.exists() or shutil.which("ldd") is None:
        return []
    listing = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout
    return sorted({line.split()[0] for line in listing.splitlines() if "not found" in line})


@pytest.fixture
def display(tmp_path: Path) -> Iterator[str]:
    """A fresh Xvfb display; Xvfb picks a free display number itself (`-displayfd`)."""
    require_tools()
    read_end, write_end = os.pipe()
    with (tmp_path / "xvfb.log").open("wb") as log:
        xvfb = subprocess.Popen(
            [*XVFB, "-displayfd", str(write_end)],
            pass_fds=(write_end,),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    os.close(write_end)
    try:
        number = b""
        deadline = time.monotonic() + 30
        while not number.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], 0.5)
            if ready:
                chunk = os.read(read_end, 16)
                if not chunk:
                    break
                number += chunk
        if not number.strip():
            pytest.fail(f"Xvfb did not start:\n{read_log(tmp_path / 'xvfb.log')}")
        yield f":{number.decode().strip()}"
    finally:
        os.close(read_end)
        xvfb.terminate()
        try:
            xvfb.wait(10)
        except subprocess.TimeoutExpired:
            xvfb.kill()
            xvfb.wait(10)


def visible_windows(display: str, name: str) -> list[int]:
    result = subprocess.run(
        ["xdotool", "search", "--onlyvisible", "--name", f"^{name}$"],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        text=True,
        check=False,
    )
    return [int(line) for line in result.stdout.split()]


class _XClientMessage(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("window", ctypes.c_ulong),
        ("message_type", ctypes.c_ulong),
        ("format", ctypes.c_int),
        ("data", ctypes.c_long * 5),
    ]


class _XEvent(ctypes.Union):
    _fields_ = [("xclient", _XClientMessage), ("pad", ctypes.c_long * 24)]


def close_window(display: str, window: int) -> None:
    """Ask the window to close, as a window manager's close button does (WM_DELETE_WINDOW)."""
    library = ctypes.util.find_library("X11")
    assert library, "libX11 not found"
    x11 = ctypes.CDLL(library)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XSendEvent.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_int,
        ctypes.c_long,
        ctypes.POINTER(_XEvent),
    ]
    x11.XFlush.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    connection = x11.XOpenDisplay(display.encode())
    assert connection, f"cannot open X display {display}"
    try:
        event = _XEvent()
        event.xclient.type = 33  # ClientMessage
        event.xclient.send_event = 1
        event.xclient.display = connection
        event.xclient.window = window
        event.xclient.message_type = x11.XInternAtom(connection, b"WM_PROTOCOLS", 0)
        event.xclient.format = 32
        event.xclient.data[0] = x11.XInternAtom(connection, b"WM_DELETE_WINDOW", 0)
        event.xclient.data[1] = 0  # CurrentTime
        assert x11.XSendEvent(connection, window, 0, 0, ctypes.byref(event)) != 0
        x11.XFlush(connection)
    finally:
        x11.XCloseDisplay(connection)


def screenshot(display: str, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    subprocess.run(
        ["import", "-display", display, "-window", "root", str(path)], check=True, timeout=30
    )
    return path


# --- the app ------------------------------------------------------------------------------------


def page_text(websocket_url: str) -> str:
    """The rendered text of the page, read through the DevTools protocol."""

    async def evaluate() -> str:
        request = {
            "id": 1,
            "method": "Runtime.evaluate",
            "params": {"expression": "document.body.innerText", "returnByValue": True},
        }
        async with aiohttp.ClientSession() as session, session.ws_connect(websocket_url) as ws:
            await ws.send_json(request)
            async for message in ws:
                answer: dict[str, Any] = message.json()
                if answer.get("id") == 1:
                    return str(answer.get("result", {}).get("result", {}).get("value", ""))
        return ""

    try:
        return asyncio.run(asyncio.wait_for(evaluate(), 10))
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return ""


@dataclass
class Desktop:
    """`python -m app desktop` on `display`, with its own data dir, port and process marker."""

    display: str
    tmp_path: Path
    port: int = field(default_factory=free_port)
    debug_port: int = field(default_factory=free_port)
    mark: str = field(default_factory=lambda: uuid.uuid4().hex)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.tmp_path / "desktop.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST",)}
        env.pop("WAYLAND_DISPLAY", None)
        env.update(
            DISPLAY=self.display,
            QTWEBENGINE_REMOTE_DEBUGGING=f"127.0.0.1:{self.debug_port}",
            **{MARK_VARIABLE: self.mark},
        )
        data_dir = self.tmp_path / "data"
        subprocess.run(
            [sys.executable, "-m", "app", "import", str(EXAMPLE), "--data-dir", str(data_dir)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        command = [sys.executable, "-m", "app", "desktop", "--port", str(self.port)]
        command += ["--data-dir", str(data_dir)]
        with self.log.open("wb") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # one process group: the teardown can sweep it
            )

    def running(self) -> subprocess.Popen[bytes]:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"flowyard desktop exited with {self.process.returncode}:\n{self.text()}")
        return self.process

    def text(self) -> str:
        return read_log(self.log)

    def server_answers(self) -> bool:
        self.running()
        try:
            return httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def page(self) -> dict[str, Any] | None:
        """The web view's page, once it shows our `/` (from the DevTools target list)."""
        self.running()
        try:
            targets = httpx.get(f"http://127.0.0.1:{self.debug_port}/json/list", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return None
        for target in targets:
            if target.get("type") == "page" and target.get("url") == f"{self.url}/":
                page: dict[str, Any] = target
                return page
        return None

    def open_window(self) -> tuple[int, dict[str, Any]]:
        """Start, and wait until the window is on screen showing the app's page."""
        self.start()
        wait_for("the server did not answer", self.server_answers, STARTUP_SECONDS, self.log)
        windows = wait_for(
            "no visible window named Flowyard appeared",
            lambda: visible_windows(self.display, "Flowyard"),
            STARTUP_SECONDS,
            self.log,
        )
        assert len(windows) == 1, windows
        page = wait_for("the window did not load the app", self.page, STARTUP_SECONDS, self.log)
        debugger = str(page["webSocketDebuggerUrl"]).replace(
            "//localhost:", "//127.0.0.1:"
        )  # the endpoint listens on 127.0.0.1 only
        wait_for(
            f"the page did not show {EXAMPLE_NAME!r}",
            lambda: EXAMPLE_NAME in page_text(debugger),
            STARTUP_SECONDS,
            self.log,
        )
        return windows[0], self.page() or page

    def wait_exit(self) -> int:
        assert self.process is not None
        try:
            return self.process.wait(EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"flowyard desktop did not exit within {EXIT_SECONDS} s:\n{self.text()}")

    def survivors(self) -> dict[int, str]:
        """Marked processes still alive after a deadline for them to exit by themselves."""
        deadline = time.monotonic() + EXIT_SECONDS
        while (alive := marked_processes(self.mark)) and time.monotonic() < deadline:
            time.sleep(0.2)
        return alive

    def sweep(self) -> None:
        """Teardown: kill whatever is left, so a failing test leaves nothing behind."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        for pid in marked_processes(self.mark):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def desktop(display: str, tmp_path: Path) -> Iterator[Desktop]:
    app_process = Desktop(display, tmp_path)
    try:
        yield app_process
    finally:
        app_process.sweep()


# --- tests --------------------------------------------------------------------------------------


def test_window_shows_the_app_and_closing_it_stops_everything(desktop: Desktop) -> None:
    window, page = desktop.open_window()
    assert "Flowyard" in page["title"]
    started = marked_processes(desktop.mark)
    assert len(started) > 1, f"expected the web engine's helper processes too: {started}"
    shot = screenshot(desktop.display, "window")
    assert shot.stat().st_size > 0

    close_window(desktop.display, window)

    assert desktop.wait_exit() == 0, desktop.text()
    assert "Flowyard desktop closed." in desktop.text()
    assert desktop.survivors() == {}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{desktop.url}/api/health", timeout=2)


def test_sigkill_of_the_main_process_leaves_no_window_process(desktop: Desktop) -> None:
    desktop.open_window()
    started = marked_processes(desktop.mark)
    assert len(started) > 1, f"expected the web engine's helper processes too: {started}"
    process = desktop.running()

    process.send_signal(signal.SIGKILL)
    process.wait(EXIT_SECONDS)

    assert desktop.survivors() == {}, f"started: {started}"
    assert visible_windows(desktop.display, "Flowyard") == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_closes_the_window_and_stops_the_server(
    desktop: Desktop, signum: signal.Signals
) -> None:
    desktop.open_window()

    desktop.running().send_signal(signum)

    assert desktop.wait_exit() == 0, desktop.text()
    assert desktop.survivors() == {}


def test_a_stop_signal_during_startup_still_stops_everything(desktop: Desktop) -> None:
    desktop.start()
    wait_for("the server did not answer", desktop.server_answers, STARTUP_SECONDS, desktop.log)

    desktop.running().send_signal(signal.SIGTERM)  # the window may not be on screen yet

    assert desktop.wait_exit() == 0, desktop.text()
    assert desktop.survivors() == {}


# --- without the extra or a display -------------------------------------------------------------


def run_cli(*args: str) -> tuple[int, str]:
    importlib.import_module("app.cli_server")  # registers `desktop` on the typer app
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_without_the_desktop_extra_it_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "webview", None)  # makes `import webview` fail

    code, output = run_cli("desktop", "--data-dir", str(tmp_path))

    assert code == 2
    assert "pip install 'flowyard[desktop]'" in output
    assert list(tmp_path.iterdir()) == []


def test_without_a_display_it_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    require_tools()
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)

    code, output = run_cli("desktop", "--data-dir", str(tmp_path))

    assert code == 2
    assert "no display" in output


def test_a_process_that_lingers_after_closing_is_ended_with_every_stack_printed() -> None:
    """What `run_desktop` arms once everything is stopped: a thread that would keep the process
    alive (here a non-daemon sleeper) cannot; its stack is printed for the diagnosis."""
    script = (
        "import threading, time\n"
        "from app.desktop import _exit_watchdog\n"
        "threading.Thread(target=time.sleep, args=(60,), name='lingering').start()\n"
        "_exit_watchdog(0.5)\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert time.monotonic() - started < 20
    assert done.returncode == 0
    assert "still running 0.5 s after closing" in done.stderr
    assert "in _shutdown" in done.stderr  # the main thread, waiting for the lingering one
