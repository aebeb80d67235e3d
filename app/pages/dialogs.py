"""A dialog with a title and a line saying what it does: the frame of the version workflow's
dialogs (publish, edit values, upgrade, flow settings)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import ui

__all__ = ["titled_dialog"]


@contextmanager
def titled_dialog(
    title: str, explanation: str, marker: str, width: str = "36rem"
) -> Iterator[ui.dialog]:
    """Open a dialog (deleted once closed) whose card holds `title`, `explanation` and what the
    `with` block draws; `marker` names the card for tests."""
    with ui.dialog() as dialog, ui.card().classes(f"w-[{width}] max-w-full").mark(marker):
        ui.label(title).classes("text-h6")
        ui.label(explanation).classes("text-grey-8")
        yield dialog
    dialog.on_value_change(lambda e: None if e.value else dialog.delete())
    dialog.open()
