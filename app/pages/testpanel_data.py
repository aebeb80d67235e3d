"""The test view's data panes: a step's input | output side by side, as a tree or raw JSON.

- `data_pane(title, value, testid)`: one pane with its title, a Tree / Raw switch (the choice is
  remembered per browser), a copy button and the value; the pane carries `testid` (`step-input`,
  `step-output`) and holds the raw text whichever view is shown, so tests read it there;
- `remembered_splitter(key, value=...)`: a splitter with a visible grip whose position this
  browser keeps across reloads (under `key`).

Both draw in the current container; `app.pages.testpanel_widgets` uses them for the step view.
"""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui

from app.pages.layout import preferences

__all__ = ["SHOWN_CHARS", "data_pane", "remembered_splitter", "shown_text"]

SHOWN_CHARS = 20_000
"""Longer inputs and outputs are cut in the panel; the executions page shows them whole."""

_MODE_KEY = "flowyard.test-view.mode"
_MODES = {"tree": "Tree", "raw": "Raw"}


def shown_text(value: Any) -> str:
    """`value` as indented JSON (a string as itself), cut at `SHOWN_CHARS`."""
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    if len(text) > SHOWN_CHARS:
        return text[:SHOWN_CHARS] + f"\n… ({len(text) - SHOWN_CHARS} more characters)"
    return text


def _full_json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


def data_pane(title: str, value: Any, testid: str) -> ui.column:
    """One titled pane showing `value` as a collapsible tree or raw JSON, with a copy button."""
    prefs = preferences()
    stored = prefs.get(_MODE_KEY) if prefs is not None else None
    text = shown_text(value)
    # A tree needs structure, and a huge one would cost the browser more than it shows.
    treeable = isinstance(value, dict | list) and len(text) < SHOWN_CHARS
    mode = stored if stored in _MODES and treeable else ("tree" if treeable else "raw")
    with ui.column().classes("w-full h-full gap-1 min-w-0") as pane:
        pane.props(f'data-testid="{testid}"').mark(testid)
        with ui.row().classes("w-full items-center gap-1 no-wrap"):
            ui.label(title).classes("text-subtitle2")
            ui.space()
            toggle = (
                ui.toggle(_MODES, value=mode)
                .props(f'dense no-caps size=sm data-testid="{testid}-mode"')
                .mark(f"{testid}-mode")
            )
            toggle.set_enabled(treeable)
            copy = ui.button(icon="content_copy").props(
                f'flat dense round size=sm data-testid="{testid}-copy"'
            )
            copy.mark(f"{testid}-copy").tooltip(f"Copy the {title.lower()} as JSON")

            def copied() -> None:
                ui.clipboard.write(_full_json(value))
                ui.notify(f"{title} copied.")

            copy.on_click(copied)
        with ui.column().classes("w-full grow gap-0 overflow-auto").style("max-height: 70vh"):
            tree = None
            if treeable:
                tree = ui.json_editor(
                    {
                        "content": {"json": value},
                        "readOnly": True,
                        "mode": "tree",
                        "mainMenuBar": False,
                        "navigationBar": False,
                    }
                ).classes("w-full")
                tree.props(f'data-testid="{testid}-tree"').mark(f"{testid}-tree")
            raw = (
                ui.label(text)
                .classes("w-full font-mono text-xs whitespace-pre-wrap break-all")
                .props(f'data-testid="{testid}-raw"')
                .mark(f"{testid}-raw")
            )

        def show(chosen: str) -> None:
            if tree is not None:
                tree.set_visibility(chosen == "tree")
            raw.set_visibility(chosen == "raw" or tree is None)

        def switched(event: Any) -> None:
            show(str(event.value))
            if prefs is not None:
                prefs[_MODE_KEY] = event.value

        toggle.on_value_change(switched)
        show(mode)
    return pane


def remembered_splitter(
    key: str,
    *,
    value: float,
    limits: tuple[float, float] = (0, 100),
    horizontal: bool = False,
) -> ui.splitter:
    """A splitter with a visible grip; its position is kept for this browser under `key`."""
    prefs = preferences()
    stored = prefs.get(key) if prefs is not None else None
    known = isinstance(stored, int | float) and limits[0] <= stored <= limits[1]
    start = stored if known else value
    splitter = ui.splitter(horizontal=horizontal, value=start, limits=limits)
    grip = "h-2 cursor-row-resize" if horizontal else "w-2 cursor-col-resize"
    splitter.props(f'separator-class="bg-grey-4 {grip}" data-testid="splitter-{key}"')
    splitter.mark(f"splitter-{key}")

    def moved(event: Any) -> None:
        if prefs is not None:
            prefs[key] = event.value

    splitter.on_value_change(moved)
    return splitter
