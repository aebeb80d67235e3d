"""The flow settings dialog of the designer: `designer.flow_settings.FlowSettingsForm` with Save."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import ui

from app.pages.dialogs import titled_dialog
from designer.flow_settings import FlowSettingsForm
from runtime.model import Flow, FlowSettings

__all__ = ["open_flow_settings"]


def open_flow_settings(flow: Flow, on_save: Callable[[FlowSettings], Awaitable[None]]) -> None:
    """A dialog holding the form of `flow`'s settings; it closes once `on_save` has run."""
    explanation = (
        "How executions of this flow run: bounds, concurrency, order, deduplication and retry. "
        "A saved change is part of the draft; publish it for instances to run it."
    )
    with titled_dialog(
        f"Settings of flow '{flow.label}'", explanation, "flow-settings", "40rem"
    ) as dialog:
        form = FlowSettingsForm(flow, on_save)

        async def save() -> None:
            if await form.save():
                dialog.close()

        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button("Save", on_click=save).props('data-testid="flow-settings-save"').mark(
                "flow-settings-save"
            )
