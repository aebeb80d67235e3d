"""The designer's keyboard shortcuts: one list that the help dialog shows and the editor handles.

Each `Shortcut` names an `action` (a stable id the editor dispatches on), the key combinations
that trigger it (alternatives; written as `Ctrl+Shift+Z`, with key names as the browser reports
them in `KeyboardEvent.key`) and what it does, as the help dialog shows it. On macOS the editor
treats Cmd like Ctrl.

The canvas element (`designer.canvas.FlowCanvas.set_shortcuts`) listens for the combinations
`keymap` gives it and reports their actions, except while a field (an input, a code editor, a
dialog) has the keys. `delete` is Vue Flow's own key handling, `help` the page frame's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["SHORTCUTS", "Shortcut", "keymap"]


@dataclass(frozen=True, slots=True)
class Shortcut:
    action: str
    keys: tuple[str, ...]
    """Alternative combinations, e.g. `("Ctrl+Shift+Z", "Ctrl+Y")`."""
    description: str


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("delete", ("Delete", "Backspace"), "Delete the selected steps and connections"),
    Shortcut("undo", ("Ctrl+Z",), "Undo"),
    Shortcut("redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Redo"),
    Shortcut("copy", ("Ctrl+C",), "Copy the selection"),
    Shortcut("paste", ("Ctrl+V",), "Paste"),
    Shortcut("select_all", ("Ctrl+A",), "Select all steps"),
    Shortcut("auto_layout", ("L",), "Arrange the flow automatically"),
    Shortcut("fit_view", ("F",), "Fit the whole flow into view"),
    Shortcut("help", ("?",), "Show this help"),
)


def keymap(actions: Iterable[str]) -> dict[str, str]:
    """Key combination -> action for the given actions (what the canvas element listens for).

    Raises `KeyError` naming an action that `SHORTCUTS` does not list.
    """
    wanted = set(actions)
    unknown = wanted - {s.action for s in SHORTCUTS}
    if unknown:
        raise KeyError(f"no shortcut for action(s) {', '.join(sorted(unknown))}")
    return {keys: s.action for s in SHORTCUTS if s.action in wanted for keys in s.keys}
