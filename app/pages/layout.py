"""The frame every page is drawn in, plus the small helpers pages share.

Use `frame` inside a `@ui.page` function; it draws the header (the name, navigation to
Integrations, Executions and Instances, a dark-mode switch and a help button listing the keyboard
shortcuts from `designer.shortcuts.SHORTCUTS`, also opened with `?`) and yields the content
column::

    @ui.page("/executions")
    async def executions_page() -> None:
        with frame("Executions"):
            ui.label("...")

`frame(title, wide=True)` gives the content the whole width (the editor's canvas). The dark-mode
choice (auto, dark, light) is remembered per browser in `app.storage.user` when the server has a
storage secret; without one it lasts for the page only.

Helpers: `hub()` (the process's `Hub`, set by the server's lifespan), `show_error` (a service
error as a notification), `testid` (a `data-testid` from any text), `status_badge`, `when` and
`duration` (how times and durations read).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TypeVar

import nicegui
from nicegui import ui

from app.services.errors import ServiceError
from app.services.hub import Hub
from designer.shortcuts import SHORTCUTS

__all__ = [
    "NAV",
    "duration",
    "frame",
    "help_dialog",
    "hub",
    "preferences",
    "show_error",
    "status_badge",
    "steps_beside_detail",
    "testid",
    "when",
]

E = TypeVar("E", bound=ui.element)

NAV = (
    ("Integrations", "/"),
    ("Executions", "/executions"),
    ("Instances", "/instances"),
    ("Connections", "/connections"),
)
"""(label, path) of the header's navigation links."""

_DARK_KEY = "flowyard.dark"
_DARK_CYCLE: dict[bool | None, bool | None] = {None: True, True: False, False: None}
_DARK_ICON = {None: "brightness_auto", True: "dark_mode", False: "light_mode"}
_DARK_TIP = {None: "Theme: follows the system", True: "Theme: dark", False: "Theme: light"}

_STATUS_COLORS = {
    "succeeded": "positive",
    "active": "positive",
    "failed": "negative",
    "deploy_failed": "negative",
    "crashed": "deep-orange",
    "running": "primary",
    "deploying": "warning",
    "deleting": "warning",
    "queued": "grey-7",
    "cancelled": "grey-7",
    "skipped": "grey-5",
}


def hub() -> Hub:
    """The `Hub` the server's lifespan put at `nicegui.app.state.hub`."""
    current: Hub = nicegui.app.state.hub
    return current


def _preferences() -> MutableMapping[str, Any] | None:
    """Per-browser storage, or None when the server runs without a storage secret."""
    try:
        return nicegui.app.storage.user
    except RuntimeError:  # "app.storage.user needs a storage_secret passed in ui.run()"
        return None


# `?` opens the help, except typed into a field: `ui.keyboard` skips only focused <input>-like
# tags, and code editors (CodeMirror) are contenteditable <div>s. The canvas's shortcuts use the
# same test (FlowCanvas.vue, `typingInField`).
_HELP_KEY = """<script>
document.addEventListener('keydown', (e) => {
  const t = (e.composedPath && e.composedPath()[0]) || e.target;
  const typing = t instanceof Element && (t.isContentEditable || !!t.closest(
    'input, textarea, select, [contenteditable]:not([contenteditable="false"]), [role="textbox"], '
    + '.cm-editor, .nokey, .q-dialog'));
  if (e.key === '?' && !e.repeat && !typing) emitEvent('flowyard-help');
});
</script>"""


def preferences() -> MutableMapping[str, Any] | None:
    """What this browser chose (kept across reloads), or None without a storage secret."""
    return _preferences()


def help_dialog() -> ui.dialog:
    """A dialog listing the keyboard shortcuts (not opened yet)."""
    with ui.dialog().mark("help-dialog") as dialog, ui.card().classes("min-w-[24rem]"):
        ui.label("Keyboard shortcuts").classes("text-h6")
        with ui.grid(columns=2).classes("gap-x-6 gap-y-1 items-center"):
            for shortcut in SHORTCUTS:
                with ui.row().classes("gap-1"):
                    for keys in shortcut.keys:
                        ui.label(keys).classes(
                            "font-mono text-sm px-2 rounded bg-grey-3 text-black"
                        ).mark(f"shortcut-{shortcut.action}")
                ui.label(shortcut.description)
        with ui.row().classes("w-full justify-end"):
            ui.button("Close", on_click=dialog.close).props("flat")
    return dialog


@contextmanager
def frame(title: str, *, wide: bool = False) -> Iterator[ui.column]:
    """Draw the header and yield the page's content column; see the module docstring."""
    ui.page_title(f"{title} · Flowyard")
    prefs = _preferences()
    stored = prefs.get(_DARK_KEY) if prefs is not None else None
    dark = ui.dark_mode(stored if isinstance(stored, bool) else None)
    help_ = help_dialog()

    def cycle_theme() -> None:
        dark.value = _DARK_CYCLE[dark.value]
        if prefs is not None:
            prefs[_DARK_KEY] = dark.value
        theme.props(f"icon={_DARK_ICON[dark.value]}")
        tip.text = _DARK_TIP[dark.value]

    ui.on("flowyard-help", help_.open)
    ui.add_body_html(_HELP_KEY)
    with ui.header().classes("items-center gap-4 px-4 py-2"):
        ui.link("Flowyard", "/").classes("text-h6 text-white no-underline")
        for label, path in NAV:
            ui.link(label, path).classes("text-white").props(
                f'data-testid="nav-{label.lower()}"'
            ).mark(f"nav-{label.lower()}")
        ui.space()
        theme = (
            ui.button(icon=_DARK_ICON[dark.value], on_click=cycle_theme)
            .props('flat round color=white data-testid="theme-toggle"')
            .mark("theme-toggle")
        )
        with theme:
            tip = ui.tooltip(_DARK_TIP[dark.value])
        ui.button(icon="help_outline", on_click=help_.open).props(
            'flat round color=white data-testid="help-button"'
        ).tooltip("Keyboard shortcuts (?)").mark("help-button")
        ui.link("API", "/api/docs", new_tab=True).classes("text-white")
    width = "w-full" if wide else "w-full max-w-6xl mx-auto"
    with ui.column().classes(f"{width} gap-4 p-4") as content:
        ui.label(title).classes("text-h5").mark("page-title")
        yield content


def testid(element: E, value: str) -> E:
    """Set `data-testid` (what browser tests look for) to any text, quotes included."""
    element.props["data-testid"] = value
    return element


def show_error(exc: ServiceError) -> None:
    """A service's refusal as a notification: its message, then its hint."""
    text = exc.message + (f" {exc.hint}" if exc.hint else "")
    ui.notify(text, type="negative", multi_line=True, close_button=True)


def status_badge(status: str) -> ui.badge:
    """A coloured badge for an execution, step or instance status."""
    return ui.badge(status.replace("_", " "), color=_STATUS_COLORS.get(status, "grey-7")).props(
        f'data-testid="status-{status}"'
    )


def steps_beside_detail(list_mark: str, detail_mark: str, width: str) -> tuple[ui.list, ui.card]:
    """A "Steps" list card (`width`, e.g. `w-96`) beside a card taking the rest of the row, for
    a selected step's detail; returns both to fill (marked `list_mark`, `detail_mark`)."""
    with ui.row().classes("w-full gap-4 no-wrap items-start"):
        with ui.card().classes(f"{width} shrink-0 p-0"):
            ui.label("Steps").classes("text-subtitle1 px-4 pt-3")
            steps = ui.list().props("separator dense").classes("w-full").mark(list_mark)
        detail = ui.card().classes("grow min-w-0").mark(detail_mark)
    return steps, detail


def when(seconds: float | None) -> str:
    """A Unix time as local `YYYY-MM-DD HH:MM:SS`; an em dash when unknown."""
    if seconds is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def duration(ms: float | None) -> str:
    """Milliseconds as they read best: `850 ms`, `2.4 s`, `3 min 5 s`."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes} min {seconds} s"
