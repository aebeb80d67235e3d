"""The flow settings form: a flow's `FlowSettings` (timeouts, concurrency, FIFO, dedup key,
execution retry, ...) drawn from their schema by `schema_fields.field_specs`, as step inputs are.

Nothing here knows the settings by name: a field added to `FlowSettings` appears in the form.
`Save` validates the whole form against the model; each problem is shown on its field and named
with the flow (nothing is saved then). A valid form is handed to `on_save`. How a webhook is
answered synchronously (the reply) is a setting of the webhook trigger, edited with the trigger.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui
from pydantic import ValidationError

from designer.schema_fields import UNSET, FieldSpec, field_specs
from runtime.input_problems import problems_of
from runtime.model import Flow, FlowSettings

__all__ = ["FlowSettingsForm", "settings_problems"]

Reader = Callable[[], Any]


def settings_problems(
    flow: Flow, data: dict[str, Any]
) -> tuple[FlowSettings | None, dict[str, str]]:
    """`data` as `FlowSettings`, or the problems by field (`concurrency`,
    `execution_retry.max_attempts`), each message naming the flow and the field."""
    try:
        return FlowSettings.model_validate(data), {}
    except ValidationError as exc:
        return None, {
            p.field: f"Flow '{flow.label}' setting '{p.field}': {p.message}"
            for p in problems_of(FlowSettings, exc, data)
        }


class FlowSettingsForm:
    """The settings of `flow` as a form; `on_save(settings)` receives valid settings."""

    def __init__(self, flow: Flow, on_save: Callable[[FlowSettings], Awaitable[None]]) -> None:
        self.flow, self.on_save = flow, on_save
        self.widgets: dict[str, Any] = {}
        """Field (dotted, as problems name it) -> its input element."""
        values = flow.settings.model_dump(mode="json")
        self.readers: dict[str, Reader] = {}
        with ui.column().classes("w-full gap-2"):
            for spec in field_specs(FlowSettings):
                self.readers[spec.key] = self._field(spec, values.get(spec.key), spec.key)
        self.general = ui.column().classes("w-full text-negative gap-1")
        self.general.mark("flow-settings-errors")

    def data(self) -> dict[str, Any]:
        """The form's values; a field left empty is left out, so its default applies."""
        return {k: v for k, read in self.readers.items() if (v := read()) is not UNSET}

    async def save(self) -> bool:
        """Validate and hand the settings to `on_save`; False (problems shown) when invalid."""
        for widget in self.widgets.values():
            if hasattr(widget, "error"):
                widget.error = None
        self.general.clear()
        settings, problems = settings_problems(self.flow, self.data())
        if settings is None:
            with self.general:
                for field, message in problems.items():
                    widget = self.widgets.get(field)
                    if widget is not None and hasattr(widget, "error"):
                        widget.error = message.split(": ", 1)[-1]
                    ui.label(message)
            return False
        await self.on_save(settings)
        return True

    # drawing

    def _field(self, spec: FieldSpec, value: Any, path: str) -> Reader:
        marker = f"flow-setting-{path.replace('.', '-')}"
        if spec.kind == "object":
            return self._object(spec, value, path, marker)
        element: Any
        if spec.kind == "boolean":
            element = ui.switch(spec.label, value=bool(value))
        elif spec.kind == "enum":
            element = ui.select(list(spec.options), label=spec.label, value=value)
        elif spec.kind in ("integer", "number"):
            element = ui.number(spec.label, value=value)
        else:
            element = ui.input(spec.label, value="" if value is None else str(value))
        element.classes("w-full").props(f'data-testid="{marker}"').mark(marker)
        if spec.description and hasattr(element, "props"):
            element.props["hint"] = spec.description
            if spec.kind == "boolean":
                element.tooltip(spec.description)
        self.widgets[path] = element
        return lambda: _read(spec, element.value)

    def _object(self, spec: FieldSpec, value: Any, path: str, marker: str) -> Reader:
        """An optional group (e.g. execution retry): a switch turns it on, its fields follow."""
        on = ui.switch(spec.title, value=value is not None)
        on.props(f'data-testid="{marker}"').mark(marker)
        if spec.description:
            ui.label(spec.description).classes("text-grey-7 text-caption")
        inner = ui.column().classes("w-full gap-2 q-pl-lg")
        readers: dict[str, Reader] = {}
        with inner:
            for sub in spec.fields:
                current = (value or {}).get(sub.key, None if sub.default is UNSET else sub.default)
                readers[sub.key] = self._field(sub, current, f"{path}.{sub.key}")
        inner.bind_visibility_from(on, "value")

        def read() -> Any:
            if not on.value:
                return None if spec.nullable else UNSET
            return {k: v for k, r in readers.items() if (v := r()) is not UNSET}

        return read


def _read(spec: FieldSpec, value: Any) -> Any:
    if spec.kind in ("integer", "number"):
        if value is None:
            return UNSET
        return int(value) if spec.kind == "integer" and float(value).is_integer() else value
    if spec.kind in ("text", "secret", "json"):
        text = (value or "").strip()
        return text if text else (None if spec.nullable else UNSET)
    return value
