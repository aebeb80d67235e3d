"""Change a deployed instance from its card: upgrade it to another published version, or edit its
config values and connection credentials in place (`app.services.upgrades`).

Both dialogs send text as typed (the service types it per variable, as the CLI's `--config`
does) and show each refusal on its field; a refused change changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from app.pages.dialogs import titled_dialog
from app.pages.layout import hub, testid
from app.services import integrations, upgrades
from app.services.errors import ServiceError
from app.services.instances import InstanceView
from runtime.model import ConfigVariable, ConnectionSlot, Integration

__all__ = ["change_buttons"]

Changed = Callable[[], Awaitable[None]]


def change_buttons(view: InstanceView, fields: dict[str, Any], on_changed: Changed) -> None:
    """ "Upgrade to version N" (when a newer version is published) and "Edit values" for `view`.

    `fields` is the page's credential fields per connection type; `on_changed` redraws the card.
    """
    newest = view.latest_published
    if not view.test and newest is not None and newest > view.version:
        button = ui.button(
            f"Upgrade to version {newest}",
            icon="upgrade",
            on_click=lambda: _upgrade_dialog(view, fields, on_changed),
        )
        testid(button.props("flat no-caps"), f"upgrade-{view.name}").mark(f"upgrade-{view.name}")
    edit = ui.button(
        "Edit values", icon="edit", on_click=lambda: _edit_dialog(view, fields, on_changed)
    )
    testid(edit.props("flat no-caps"), f"edit-{view.name}").mark(f"edit-{view.name}")


class _Fields:
    """Text inputs by the service's field names (`config.x`, `connections.slot.field`)."""

    def __init__(self) -> None:
        self.inputs: dict[str, ui.input] = {}
        self.start: dict[str, str] = {}
        self.general = ui.column().classes("w-full text-negative gap-1")

    def add(self, key: str, label: str, value: str = "", *, secret: bool = False) -> None:
        box = ui.input(label, value=value, password=secret, password_toggle_button=secret)
        marker = key.replace(".", "-")
        testid(box.classes("w-full"), marker).mark(marker)
        self.inputs[key], self.start[key] = box, value

    def config(self, *, changed_only: bool) -> dict[str, Any]:
        return {
            key.removeprefix("config."): box.value
            for key, box in self.inputs.items()
            if key.startswith("config.") and (box.value != self.start[key] or not changed_only)
        }

    def connections(self) -> dict[str, dict[str, str]]:
        """Slots with any field typed; an untouched slot keeps its credentials."""
        slots: dict[str, dict[str, str]] = {}
        for key, box in self.inputs.items():
            if key.startswith("connections.") and box.value:
                _, slot, name = key.split(".", 2)
                slots.setdefault(slot, {})[name] = box.value
        return slots

    def show(self, exc: ServiceError) -> None:
        for box in self.inputs.values():
            box.error = None
        self.general.clear()
        details = exc.details if isinstance(exc.details, dict) else {}
        with self.general:
            ui.label(exc.message + (f" {exc.hint}" if exc.hint else "")).mark("change-error")
            for key, message in details.items():
                if key in self.inputs:
                    self.inputs[key].error = str(message)
                elif key == "issues":
                    for issue in message:
                        ui.label(str(issue.get("message", "")))
                else:
                    ui.label(f"{key}: {message}")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _variable_label(variable: ConfigVariable) -> str:
    return f"{variable.key} ({variable.type}){' *' if variable.required else ''}"


def _slot_inputs(
    form: _Fields, slot: ConnectionSlot, fields: dict[str, Any], *, keep: bool
) -> None:
    ui.label(f"Connection {slot.key} ({slot.type})" + (": leave empty to keep" if keep else ""))
    for name, label, secret in fields.get(slot.type, ()):
        form.add(f"connections.{slot.key}.{name}", label, secret=secret)


async def _edit_dialog(view: InstanceView, fields: dict[str, Any], on_changed: Changed) -> None:
    detail = await integrations.get_integration(hub(), view.integration, view.version)
    explanation = (
        "The next run uses the new values; webhook URLs and state stay. Empty clears a value; "
        "a secret shown as *** is kept unless you type a new one."
    )
    with titled_dialog(f"Edit instance '{view.name}'", explanation, "edit-dialog") as dialog:
        form = _Fields()
        for variable in detail.integration.config:
            value = _text(view.config[variable.key]) if variable.key in view.config else ""
            form.add(f"config.{variable.key}", _variable_label(variable), value)
        for slot in detail.integration.connections:
            _slot_inputs(form, slot, fields, keep=True)

        async def save() -> None:
            change = upgrades.InstanceChange(
                config=form.config(changed_only=True), connections=form.connections()
            )
            try:
                await upgrades.update_instance(hub(), view.id, change)
            except ServiceError as exc:
                form.show(exc)
                return
            ui.notify(f"Instance '{view.name}' changed: the next run uses the new values.")
            dialog.close()
            await on_changed()

        _actions(dialog, "Save", save, "edit-save")


async def _upgrade_dialog(view: InstanceView, fields: dict[str, Any], on_changed: Changed) -> None:
    detail = await integrations.get_integration(hub(), view.integration)
    newer = [v for v in detail.versions if v.published and v.version != view.version]
    explanation = (
        f"It runs version {view.version}. Upgrading keeps its webhook URLs, config, connections "
        "and state; deploy flows that changed run again; runs in progress finish on the version "
        "they started with."
    )
    with titled_dialog(f"Upgrade instance '{view.name}'", explanation, "upgrade-dialog") as dialog:
        choose = ui.select({v.version: v.label for v in reversed(newer)}, label="Version")
        choose.value = newer[-1].version
        testid(choose.classes("w-full"), "upgrade-version").mark("upgrade-version")
        extra = ui.column().classes("w-full gap-1")
        form = _Fields()

        async def needs() -> None:
            """Inputs for what the chosen version asks and the instance has not: new variables."""
            target: Integration = (
                await integrations.get_integration(hub(), view.integration, choose.value)
            ).integration
            extra.clear()
            form.inputs.clear()
            with extra:
                for variable in target.config:
                    if variable.key not in view.config and variable.default is None:
                        form.add(f"config.{variable.key}", _variable_label(variable))
                known = {c.slot for c in view.connections}
                for slot in target.connections:
                    if slot.key not in known:
                        _slot_inputs(form, slot, fields, keep=False)

        choose.on_value_change(needs)
        await needs()

        async def upgrade() -> None:
            request = upgrades.UpgradeRequest(
                version=int(choose.value),
                config={k: v for k, v in form.config(changed_only=False).items() if v},
                connections=form.connections(),
            )
            try:
                report = await upgrades.upgrade(hub(), view.id, request)
            except ServiceError as exc:
                form.show(exc)
                return
            ran = ", ".join(r.flow_id for r in report.runs) or "none changed"
            ui.notify(f"Instance '{view.name}' runs version {report.version} (deploy runs: {ran}).")
            dialog.close()
            await on_changed()

        _actions(dialog, "Upgrade", upgrade, "upgrade-confirm")


def _actions(
    dialog: ui.dialog, label: str, action: Callable[[], Awaitable[None]], marker: str
) -> None:
    with ui.row().classes("w-full justify-end"):
        ui.button("Cancel", on_click=dialog.close).props("flat")
        testid(ui.button(label, on_click=action), marker).mark(marker)
