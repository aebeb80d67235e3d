"""How the inspector draws one field: its frame, the simple widgets and the reference picker.

`FieldWidgets` is a base class of `Inspector` (through `CompositeWidgets`, which adds the widgets
built from other fields). `_field` draws a field's label, widget, mode and reference buttons,
description, error and preview lines, and registers it as a `Slot`. The widgets here: text and
secret inputs, numbers, selects (enums, lists of enums, connections), the JSON editor and
expression mode; `_open_menu` is the reference picker.

Everything is drawn over form state the inspector owns and sets in `__init__`: the values being
edited (`_root`, addressed by `ValuePath`), the drawn fields (`_slots`), errors found while
reading a widget's text (`_local`) and the inputs in expression mode (`_expr`). A subclass
implements `_widget` (one field's widget, by kind) and `_refresh` (validate, then show errors
and previews). `tag` and `field_testid` give elements the test ids the page tests look for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nicegui import ui

from designer.references import (
    Reference,
    ReferenceSource,
    contains_template,
    describe,
    insert_reference,
    reference_paths,
)
from designer.schema_fields import (
    UNSET,
    FieldSpec,
    Kind,
    ParseError,
    Unset,
    ValuePath,
    assign_at,
    dotted,
    format_loose,
    parse_loose,
    value_at,
)
from runtime.model import ConfigVariable, ConnectionSlot, Step

__all__ = ["FieldWidgets", "Slot", "field_testid", "tag"]

_TYPED: frozenset[Kind] = frozenset(
    {
        "number",
        "integer",
        "boolean",
        "enum",
        "multienum",
        "connection",
        "keyvalue",
        "objects",
        "object",
        "conditions",
    }
)


def field_testid(kind: str, path: ValuePath) -> str:
    """Test ids: `inspector-input-url`, `inspector-step-timeout`, `ref-button-url`, ..."""
    name = dotted(path)
    if kind == "ref-button":
        return f"ref-button-{name}"
    if path[0] == "step":
        return f"inspector-step-{name}" if kind == "input" else f"inspector-{kind}-step.{name}"
    return f"inspector-{kind}-{name}"


def tag(element: ui.element, testid: str) -> None:
    """Mark an element for tests: `data-testid` for the browser, a marker for the `user` fixture."""
    element.props["data-testid"] = testid
    if not any(c.isspace() for c in testid):
        element.mark(testid)


@dataclass(eq=False)
class Slot:
    """One drawn field: where its value lives, its error and preview lines, how to insert."""

    path: ValuePath
    spec: FieldSpec
    get: Callable[[], Any]
    put: Callable[[Any], None]
    data_path: ValuePath | None
    error: ui.label | None = None
    preview: ui.label | None = None
    insert: Callable[[str], None] | None = None
    caret: int | None = None
    redraw: Callable[[], None] | None = None
    shown: tuple[str, bool, str, bool] = ("", False, "", True)
    """Error text, blocking, preview text, preview ok: as last sent to the browser."""

    def show(self, error: str, blocking: bool, preview: str, ok: bool) -> None:
        """Update the error and preview lines, sending only what changed."""
        if (error, blocking, preview, ok) == self.shown:
            return
        self.shown = (error, blocking, preview, ok)
        lines = (
            (self.error, error, "text-negative" if blocking else "text-orange-9"),
            (self.preview, preview, "text-grey-8" if ok else "text-negative"),
        )
        for label, text, colour in lines:
            if label is None:
                continue
            label.text = text
            label.classes(replace=f"text-caption whitespace-pre-line break-words {colour}")
            label.set_visibility(bool(text))


class FieldWidgets(ABC):
    """Draws and edits the inspector's fields; see the module docstring for what a subclass sets."""

    _root: dict[str, Any]
    """The values being edited: `{"inputs": {...}, "step": {...}}`."""
    _slots: dict[ValuePath, Slot]
    _local: dict[ValuePath, str]
    """Errors found while reading a widget's text (not JSON, not a number), by field."""
    _expr: set[ValuePath]
    """Typed inputs shown in expression mode."""
    _config: tuple[ConfigVariable, ...]
    _connections: tuple[ConnectionSlot, ...]
    _source: ReferenceSource
    _refs: list[Reference] | None

    @abstractmethod
    def _widget(self, slot: Slot, compact: bool) -> None:
        """Draw the widget for `slot`'s kind of field (in the current container)."""

    @abstractmethod
    def _refresh(self, *, emit: bool) -> None:
        """Validate, show each field's errors and previews; with `emit`, report a valid step."""

    # -- drawing --------------------------------------------------------------------------------

    def _field(
        self,
        spec: FieldSpec,
        path: ValuePath,
        *,
        compact: bool = False,
        get: Callable[[], Any] | None = None,
        put: Callable[[Any], None] | None = None,
        data_path: ValuePath | Unset | None = UNSET,
    ) -> Slot:
        """Draw one field (label, widget, tools, hint, error and preview) and register it."""
        store = put or (lambda value: self._set(path, value))

        def put_value(value: Any) -> None:
            self._local.pop(path, None)
            store(value)

        slot = Slot(
            path,
            spec,
            get or (lambda: value_at(self._root, path)),
            put_value,
            path if isinstance(data_path, Unset) else data_path,
        )
        self._slots[path] = slot
        inputs = path[0] == "inputs"
        with ui.column().classes("w-full gap-0") as box:
            tag(box, field_testid("field", path))
            with ui.row().classes("w-full items-start no-wrap gap-1"):
                body = ui.column().classes("grow gap-1 min-w-0")
                tools = ui.row().classes("items-center no-wrap gap-0 pt-2")
            slot.error = ui.label().classes("text-caption whitespace-pre-line")
            tag(slot.error, f"error-{dotted(path)}")
            slot.error.set_visibility(False)
            if inputs:
                slot.preview = ui.label().classes("text-caption break-all")
                tag(slot.preview, f"preview-{dotted(path)}")
                slot.preview.set_visibility(False)
            if spec.description and not compact:
                ui.markdown(spec.description).classes("text-caption text-grey-7")

        def draw() -> None:
            self._forget(path)
            self._slots[path] = slot
            slot.insert = None
            body.clear()
            tools.clear()
            current = slot.get()
            if inputs and spec.kind in _TYPED and isinstance(current, str) and "{{" in current:
                self._expr.add(path)
            with body:
                if path in self._expr:
                    self._expression(slot)
                else:
                    self._widget(slot, compact)
            with tools:
                if spec.kind in _TYPED and inputs:
                    expr = path in self._expr
                    mode = ui.button(
                        icon="edit" if expr else "data_object",
                        on_click=lambda: self._toggle_mode(slot),
                    ).props("flat dense round size=sm")
                    mode.tooltip("Use a fixed value" if expr else "Use an expression {{ }}")
                    tag(mode, field_testid("mode", path))
                if inputs:
                    self._reference_button(slot)

        slot.redraw = draw
        draw()
        return slot

    def _forget(self, path: ValuePath) -> None:
        """Drop the slots and local errors below `path` (before its widgets are drawn again)."""
        n = len(path)
        for key in [k for k in self._slots if len(k) > n and k[:n] == path]:
            del self._slots[key]
        for key in [k for k in self._local if len(k) > n and k[:n] == path]:
            del self._local[key]

    def _text_element(self, slot: Slot, element: ui.input) -> None:
        """Caret tracking and reference insertion for a text element."""
        element.props("dense outlined")
        element.on(
            "blur",
            lambda e: setattr(slot, "caret", e.args if isinstance(e.args, int) else None),
            js_handler="(e) => emit(e.target.selectionStart)",
        )

        def insert(path: str) -> None:
            current = element.value
            if slot.spec.kind == "json":
                # A number, boolean or null is replaced: appending to it makes no sense. Text and
                # JSON objects get the reference at the caret (inside a JSON string, typically).
                try:
                    parsed = parse_loose(current)
                except ParseError:
                    parsed = current
                if parsed is None or isinstance(parsed, bool | int | float):
                    current, slot.caret = "", None
            element.value, slot.caret = insert_reference(current, path, slot.caret)

        slot.insert = insert
        tag(element, field_testid("input", slot.path))

    def _text(self, slot: Slot) -> None:
        spec, value = slot.spec, slot.get()
        if value is UNSET:
            value = spec.default if isinstance(spec.default, str) else ""
        shown = value if isinstance(value, str) else format_loose(value)
        element: ui.input
        if spec.multiline:
            element = ui.textarea(spec.label, value=shown).props("autogrow")
        else:
            secret = spec.kind == "secret"
            element = ui.input(
                spec.label, value=shown, password=secret, password_toggle_button=secret
            )
        element.classes("w-full")

        def changed(text: str | None) -> None:
            if text:
                slot.put(text)
            elif spec.nullable or (spec.required and spec.default is UNSET):
                slot.put(UNSET)
            elif isinstance(spec.default, str):
                slot.put("")
            else:
                slot.put(UNSET)

        element.on_value_change(lambda e: changed(e.value))
        self._text_element(slot, element)

    def _number(self, slot: Slot, value: Any) -> None:
        spec = slot.spec
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        default = spec.default if isinstance(spec.default, int | float) else None
        element = (
            ui.number(
                spec.label,
                value=value if numeric else (default if value in (UNSET, None) else None),
                placeholder=None if default is None else str(default),
            )
            .props("dense outlined")
            .classes("w-full")
        )
        if value is not UNSET and value is not None and not numeric:
            self._local[slot.path] = f"{format_loose(value)} is not a number."

        def changed(number: float | None) -> None:
            if number is None:
                slot.put(UNSET)
            elif spec.kind == "integer" and not float(number).is_integer():
                self._fail(slot.path, "Must be a whole number.")
            else:
                slot.put(int(number) if spec.kind == "integer" else number)

        element.on_value_change(lambda e: changed(e.value))
        tag(element, field_testid("input", slot.path))

    def _select(self, slot: Slot, value: Any) -> None:
        spec = slot.spec
        options: dict[Any, str]
        if spec.kind == "connection":
            options = {c.key: f"{c.key} ({c.type})" for c in self._connections}
        else:
            options = {o: str(o) for o in spec.options}
        shown = spec.default if value is UNSET else value
        multiple = spec.kind == "multienum"
        if multiple:
            shown = [v for v in shown if v in options] if isinstance(shown, list) else []
        elif shown is not None and shown is not UNSET and shown not in options:
            try:
                options[shown] = f"{shown} (not available)"
            except TypeError:  # an unhashable value from a file: show nothing selected
                shown = None
        if shown is UNSET:
            shown = None
        element = (
            ui.select(
                options,
                label=spec.label,
                value=shown,
                multiple=multiple,
                clearable=not multiple and (spec.nullable or spec.default in (UNSET, None)),
            )
            .props("dense outlined" + (" use-chips" if multiple else ""))
            .classes("w-full")
        )
        element.on_value_change(
            lambda e: slot.put(
                list(e.value or []) if multiple else (UNSET if e.value is None else e.value)
            )
        )
        tag(element, field_testid("input", slot.path))
        if spec.kind == "connection" and not self._connections:
            ui.label(
                "This integration has no connections yet: add one in the integration settings."
            ).classes("text-caption text-grey-7")

    def _json(self, slot: Slot, compact: bool) -> None:
        spec, value = slot.spec, slot.get()
        if value is UNSET and spec.default is not UNSET:
            value = spec.default
        element: ui.input
        if compact:
            element = ui.input(spec.label, value=format_loose(value))
        else:
            element = ui.textarea(spec.label, value=format_loose(value, indent=2))
            element.props("autogrow input-class=font-mono")
        element.classes("w-full").props('placeholder="JSON, text or {{ expression }}"')

        def changed(text: str | None) -> None:
            try:
                parsed = parse_loose(text)
            except ParseError as exc:
                self._fail(slot.path, str(exc))
                return
            slot.put(parsed)

        element.on_value_change(lambda e: changed(e.value))
        self._text_element(slot, element)

    def _expression(self, slot: Slot) -> None:
        value = slot.get()
        element = ui.input(
            f"{slot.spec.label} (expression)",
            value=value if isinstance(value, str) else "",
            placeholder="{{ trigger.body.field }}",
        ).classes("w-full")
        element.props("input-class=font-mono")

        def changed(text: str | None) -> None:
            if not text or not text.strip():
                slot.put(UNSET)
            elif "{{" not in text:
                self._fail(
                    slot.path,
                    "Write the expression between {{ and }}, e.g. {{ trigger.body.amount }}, or "
                    "switch back to a fixed value.",
                )
            else:
                slot.put(text)

        element.on_value_change(lambda e: changed(e.value))
        self._text_element(slot, element)

    def _toggle_mode(self, slot: Slot) -> None:
        if slot.path in self._expr:
            self._expr.discard(slot.path)
            if contains_template(slot.get()):
                slot.put(UNSET)
        else:
            self._expr.add(slot.path)
        self._local.pop(slot.path, None)
        assert slot.redraw is not None
        slot.redraw()
        self._refresh(emit=False)

    def _to_expression(self, slot: Slot, path: str) -> None:
        self._expr.add(slot.path)
        assert slot.redraw is not None
        slot.put(f"{{{{ {path} }}}}")
        slot.redraw()
        self._refresh(emit=False)

    # -- references -----------------------------------------------------------------------------

    def _references(self) -> list[Reference]:
        if self._refs is None:
            self._refs = reference_paths(
                self._source.scope,
                self._source.upstream,
                config=self._config,
                in_loop=self._source.in_loop,
                step_labels=self._source.step_labels,
            )
        return self._refs

    def _reference_button(self, slot: Slot) -> None:
        with ui.button(icon="add_link").props("flat dense round size=sm") as button:
            menu = ui.menu().props("no-parent-event")
        button.tooltip("Insert a reference to the trigger, an earlier step or config")
        tag(button, field_testid("ref-button", slot.path))
        button.on_click(lambda: self._open_menu(menu, slot))
        # Items exist only while the menu is open, so a test (or a search) finds one menu's items.
        menu.on_value_change(lambda e: None if e.value else menu.clear())

    def _open_menu(self, menu: ui.menu, slot: Slot) -> None:
        menu.clear()
        refs = self._references()
        with menu, ui.column().classes("q-pa-sm gap-1").style("min-width: 300px; max-width: 460px"):
            ui.label(f"Insert into {slot.spec.title}").classes("text-caption text-weight-medium")
            if self._source.origin:
                ui.label(f"Values from the {self._source.origin}").classes(
                    "text-caption text-grey-7"
                )
            search = ui.input(placeholder="Filter…").props("dense outlined clearable autofocus")
            search.classes("w-full")
            tag(search, f"ref-filter-{dotted(slot.path)}")
            listing = (
                ui.column().classes("w-full gap-0").style("max-height: 360px; overflow-y: auto")
            )

        def pick(ref: Reference) -> None:
            if slot.insert is not None:
                slot.insert(ref.path)
            else:
                self._to_expression(slot, ref.path)

        def fill(query: str) -> None:
            listing.clear()
            needle = query.strip().lower()
            shown = [r for r in refs if needle in r.path.lower()] if needle else refs
            with listing:
                if not shown:
                    ui.label("Nothing to reference yet." if not needle else "No match.").classes(
                        "text-caption text-grey-7 q-pa-sm"
                    )
                section = None
                for ref in shown[:200]:
                    if ref.section != section:
                        section = ref.section
                        ui.label(section).classes("text-overline text-grey-8 q-mt-xs")
                    self._menu_item(ref, pick, flat=bool(needle))
                if len(shown) > 200:
                    ui.label(f"{len(shown) - 200} more: type to filter.").classes(
                        "text-caption text-grey-7"
                    )

        search.on_value_change(lambda e: fill(e.value or ""))
        fill("")
        menu.open()

    @staticmethod
    def _menu_item(ref: Reference, pick: Callable[[Reference], None], *, flat: bool) -> None:
        with ui.menu_item(on_click=lambda: pick(ref)).props("dense") as item:
            with ui.item_section():
                label = ref.path if flat else ref.label
                ui.item_label(label).classes("font-mono text-body2").style(
                    "" if flat else f"padding-left: {ref.depth * 12}px"
                )
            with ui.item_section().props("side"):
                ui.item_label(describe(ref.sample_value, 40)).classes("font-mono text-caption")
        item.props["title"] = ref.path
        tag(item, f"ref-item-{ref.path}")

    # -- editing --------------------------------------------------------------------------------

    def _set(self, path: ValuePath, value: Any) -> None:
        if value is UNSET and path[0] == "step" and len(path) == 2:
            default = Step.model_fields[str(path[1])].default
            value = None if default is None else default
        assign_at(self._root, path, value)
        self._local.pop(path, None)
        self._changed()

    def _fail(self, path: ValuePath, message: str) -> None:
        self._local[path] = message
        self._changed()

    def _changed(self) -> None:
        self._refresh(emit=True)
