"""The designer's keyboard shortcuts: one list that the help dialog shows and the editor handles.

Each `Shortcut` names an `action` (a stable id the editor dispatches on), the key combinations
that trigger it (alternatives; written as `Ctrl+Shift+Z`, with key names as the browser reports
them in `KeyboardEvent.key`) and what it does, as the help dialog shows it. On macOS the editor
treats Cmd like Ctrl.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SHORTCUTS", "Shortcut"]


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
