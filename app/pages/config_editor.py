"""The config-variables editor: what an integration asks for when it is deployed.

Rows of config variables (key, type, default, required, description) and connection slots (key,
type, required, description), saved together through `editor.save_config`. The service checks
everything at once; each problem is shown on its row's field (`config.<i>.<field>`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, get_args

from nicegui import ui

from app.services import editor as editor_service
from app.services.errors import InvalidInput, ServiceError
from app.services.hub import Hub
from runtime.model import ConfigVariable, ConnectionSlot, Integration

__all__ = ["ConfigEditor"]

CONFIG_TYPES: tuple[str, ...] = get_args(ConfigVariable.model_fields["type"].annotation)
CONNECTION_TYPES: tuple[str, ...] = get_args(ConnectionSlot.model_fields["type"].annotation)


def _default_text(variable: ConfigVariable) -> str:
    if variable.default is None:
        return ""
    if variable.type in ("string", "secret") and isinstance(variable.default, str):
        return variable.default
    return json.dumps(variable.default)


def parse_default(kind: str, text: str) -> Any:
    """The default typed in a row, read for its variable type; raises ValueError naming why."""
    text = text.strip()
    if not text:
        return None
    if kind in ("string", "secret"):
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg}, column {exc.colno})") from None
    return value


class _Row:
    """The input elements of one table row, by field name."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields


class ConfigEditor:
    """Editable tables of config variables and connection slots, drawn in the current container."""

    def __init__(
        self,
        hub: Hub,
        integration: Integration,
        *,
        on_saved: Callable[[editor_service.EditorState], Awaitable[None] | None],
        on_close: Callable[[], Any] | None = None,
    ) -> None:
        self.hub = hub
        self.name = integration.name
        self.on_saved = on_saved
        self.on_close = on_close
        self.variables: list[_Row] = []
        self.connections: list[_Row] = []
        ui.label("Config variables").classes("text-h6")
        ui.label(
            "Values asked for when an instance is deployed; flows read them as {{ config.key }}."
        ).classes("text-caption text-grey-7")
        self.variable_rows = ui.column().classes("w-full gap-1")
        ui.button("Add variable", icon="add", on_click=lambda: self._add_variable(None)).props(
            'flat dense no-caps data-testid="add-variable"'
        ).mark("add-variable")
        ui.label("Connections").classes("text-h6")
        ui.label("Credentials each instance provides; encrypted at rest and never logged.").classes(
            "text-caption text-grey-7"
        )
        self.connection_rows = ui.column().classes("w-full gap-1")
        ui.button("Add connection", icon="add", on_click=lambda: self._add_connection(None)).props(
            'flat dense no-caps data-testid="add-connection"'
        ).mark("add-connection")
        self.error = (
            ui.label("")
            .classes("text-negative")
            .props('data-testid="config-error"')
            .mark("config-error")
        )
        with ui.row():
            ui.button("Save", on_click=self.save).props('data-testid="save-config"').mark(
                "save-config"
            )
            if on_close is not None:
                ui.button("Close", on_click=on_close).props("flat")
        for variable in integration.config:
            self._add_variable(variable)
        for slot in integration.connections:
            self._add_connection(slot)

    def _remove(self, rows: list[_Row], row: _Row, container: ui.row) -> None:
        rows.remove(row)
        container.delete()

    def _add_variable(self, variable: ConfigVariable | None) -> None:
        index = len(self.variables)
        with self.variable_rows, ui.row().classes("w-full items-start gap-1 no-wrap") as line:
            key = (
                ui.input("Key", value=variable.key if variable else "")
                .props(f'dense data-testid="config-{index}-key"')
                .mark(f"config-{index}-key")
            )
            kind = (
                ui.select(
                    list(CONFIG_TYPES), label="Type", value=variable.type if variable else "string"
                )
                .props(f'dense data-testid="config-{index}-type"')
                .mark(f"config-{index}-type")
                .classes("w-28")
            )
            default = (
                ui.input("Default", value=_default_text(variable) if variable else "")
                .props(f'dense data-testid="config-{index}-default"')
                .mark(f"config-{index}-default")
            )
            required = ui.checkbox("Required", value=variable.required if variable else False)
            description = (
                ui.input("Description", value=variable.description if variable else "")
                .classes("grow")
                .props("dense")
            )
            row = _Row(
                {
                    "key": key,
                    "type": kind,
                    "default": default,
                    "required": required,
                    "description": description,
                }
            )
            ui.button(
                icon="delete", on_click=lambda: self._remove(self.variables, row, line)
            ).props("flat dense").tooltip("Remove this variable")
        self.variables.append(row)

    def _add_connection(self, slot: ConnectionSlot | None) -> None:
        index = len(self.connections)
        with self.connection_rows, ui.row().classes("w-full items-start gap-1 no-wrap") as line:
            key = (
                ui.input("Key", value=slot.key if slot else "")
                .props(f'dense data-testid="connection-{index}-key"')
                .mark(f"connection-{index}-key")
            )
            kind = (
                ui.select(
                    list(CONNECTION_TYPES), label="Type", value=slot.type if slot else "api_key"
                )
                .props("dense")
                .classes("w-28")
            )
            required = ui.checkbox("Required", value=slot.required if slot else True)
            description = (
                ui.input("Description", value=slot.description if slot else "")
                .classes("grow")
                .props("dense")
            )
            row = _Row({"key": key, "type": kind, "required": required, "description": description})
            ui.button(
                icon="delete", on_click=lambda: self._remove(self.connections, row, line)
            ).props("flat dense").tooltip("Remove this connection")
        self.connections.append(row)

    def _clear_errors(self) -> None:
        self.error.text = ""
        for row in [*self.variables, *self.connections]:
            for element in row.fields.values():
                if isinstance(element, ui.input):
                    element.error = None

    def _mark(self, where: str, problem: str) -> bool:
        parts = where.split(".")
        if len(parts) < 3 or not parts[1].isdigit():
            return False
        rows = self.variables if parts[0] == "config" else self.connections
        index = int(parts[1])
        if index >= len(rows):
            return False
        element = rows[index].fields.get(parts[2])
        if not isinstance(element, ui.input):
            return False
        element.error = problem
        return True

    async def save(self) -> None:
        self._clear_errors()
        variables: list[dict[str, Any]] = []
        problems: dict[str, str] = {}
        for index, row in enumerate(self.variables):
            f = row.fields
            try:
                default = parse_default(str(f["type"].value), f["default"].value or "")
            except ValueError as exc:
                problems[f"config.{index}.default"] = str(exc)
                default = None
            variables.append(
                {
                    "key": (f["key"].value or "").strip(),
                    "type": f["type"].value,
                    "default": default,
                    "required": bool(f["required"].value),
                    "description": f["description"].value or "",
                }
            )
        connections = [
            {
                "key": (row.fields["key"].value or "").strip(),
                "type": row.fields["type"].value,
                "required": bool(row.fields["required"].value),
                "description": row.fields["description"].value or "",
            }
            for row in self.connections
        ]
        if problems:
            self._show(problems)
            return
        try:
            state = await editor_service.save_config(self.hub, self.name, variables, connections)
        except InvalidInput as exc:
            self._show(exc.details or {"": exc.message})
            return
        except ServiceError as exc:
            self.error.text = exc.message
            return
        ui.notify("Config saved.", type="positive")
        result = self.on_saved(state)
        if result is not None:
            await result
        if self.on_close is not None:
            self.on_close()

    def _show(self, problems: dict[str, str]) -> None:
        unplaced = [f"{k}: {v}" if k else v for k, v in problems.items() if not self._mark(k, v)]
        self.error.text = "; ".join(unplaced) if unplaced else "Fix the marked fields."
