"""The inspector's widgets built from other fields, and the choice of widget by kind.

`CompositeWidgets` extends `FieldWidgets` (see `designer.inspector_widgets`) with the key-value
editor (rows of name and value), lists of objects (one sub-form per item), nested objects (a
sub-form, switched on and off when optional) and the condition builder (groups of value /
operator / compare-with rows); `_widget` picks a field's widget by its kind. `Inspector` is its
subclass.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from typing import Any

from nicegui import ui

from designer.inspector_widgets import FieldWidgets, Slot, field_testid, tag
from designer.schema_fields import UNSET, FieldSpec, Kind, ValuePath, assign_at, value_at

__all__ = ["CompositeWidgets"]

_UNARY_OPERATORS = frozenset({"exists", "not exists", "is empty", "is not empty"})


class CompositeWidgets(FieldWidgets):
    """Adds the composite widgets to `FieldWidgets` and draws each field by its kind."""

    def _widget(self, slot: Slot, compact: bool) -> None:
        spec, value = slot.spec, slot.get()
        kind = spec.kind
        if kind in ("text", "secret"):
            self._text(slot)
        elif kind in ("number", "integer"):
            self._number(slot, value)
        elif kind == "boolean":
            shown = spec.default if value is UNSET else value
            switch = ui.switch(spec.label, value=bool(shown))
            switch.on_value_change(lambda e: slot.put(bool(e.value)))
            tag(switch, field_testid("input", slot.path))
        elif kind in ("enum", "multienum", "connection"):
            self._select(slot, value)
        elif kind == "json":
            self._json(slot, compact)
        elif kind == "keyvalue":
            self._keyvalue(slot, value)
        elif kind == "objects":
            self._objects(slot)
        elif kind == "object":
            self._object(slot, value)
        else:
            self._conditions(slot)

    # -- composite widgets ----------------------------------------------------------------------

    def _add_button(self, text: str, path: ValuePath, on_click: Callable[[], None]) -> None:
        button = ui.button(text, icon="add", on_click=on_click).props("flat dense no-caps")
        tag(button, field_testid("add", path))

    def _remove_button(self, path: ValuePath, on_click: Callable[[], None]) -> None:
        button = ui.button(icon="delete_outline", on_click=on_click)
        button.props("flat dense round size=sm color=grey-7").tooltip("Remove")
        tag(button, field_testid("remove", path))

    def _keyvalue(self, slot: Slot, value: Any) -> None:
        spec, path = slot.spec, slot.path
        rows: list[list[Any]] = (
            [[k, v] for k, v in value.items()] if isinstance(value, dict) else []
        )
        ui.label(spec.label).classes("text-caption text-grey-8")
        container = ui.column().classes("w-full gap-1")
        tag(container, field_testid("input", path))

        def commit() -> None:
            result: dict[str, Any] = {}
            problems: list[str] = []
            for i, (key, item) in enumerate(rows, start=1):
                if not key and item in ("", None):
                    continue
                if not key:
                    problems.append(f"Row {i} has a value but no name.")
                elif key in result:
                    problems.append(f"The name '{key}' is used twice.")
                else:
                    result[key] = item
            if problems:
                self._fail(path, " ".join(problems))
            else:
                slot.put(UNSET if not result and spec.default == {} else result)

        def draw_rows() -> None:
            self._forget(path)
            container.clear()
            with container:
                for i, row in enumerate(rows):
                    self._keyvalue_row(slot, rows, i, row, commit, draw_rows)
                self._add_button("Add", path, add)

        def add() -> None:
            rows.append(["", ""])  # an empty row changes nothing until it is filled in
            draw_rows()
            self._refresh(emit=False)

        draw_rows()

    def _keyvalue_row(
        self,
        slot: Slot,
        rows: list[list[Any]],
        i: int,
        row: list[Any],
        commit: Callable[[], None],
        redraw: Callable[[], None],
    ) -> None:
        path, text_values = slot.path, slot.spec.text_values

        def set_key(text: str | None) -> None:
            row[0] = (text or "").strip()
            commit()

        def set_value(value: Any) -> None:
            row[1] = "" if value is UNSET else value
            commit()

        def remove() -> None:
            rows.pop(i)
            redraw()
            commit()

        with ui.row().classes("w-full items-start no-wrap gap-1"):
            key = ui.input(placeholder="Name", value=row[0]).props("dense outlined")
            key.classes("w-1/3").on_value_change(lambda e: set_key(e.value))
            tag(key, field_testid("input", (*path, i, "key")))
            with ui.column().classes("grow gap-0 min-w-0"):
                kind: Kind = "text" if text_values else "json"
                value_spec = FieldSpec(key="value", title="Value", kind=kind)
                self._field(
                    value_spec,
                    (*path, i, "value"),
                    compact=True,
                    get=lambda: row[1],
                    put=set_value,
                    data_path=(*path, row[0]) if row[0] else None,
                )
            self._remove_button((*path, i), remove)

    def _new_item(self, fields: Sequence[FieldSpec]) -> dict[str, Any]:
        item: dict[str, Any] = {}
        for sub in fields:
            if sub.default not in (UNSET, None):
                item[sub.key] = copy.deepcopy(sub.default)
            elif sub.kind == "conditions" or (sub.kind == "objects" and sub.required):
                item[sub.key] = [self._new_item(sub.fields)]
        return item

    def _list_at(self, path: ValuePath) -> list[Any]:
        current = value_at(self._root, path)
        if not isinstance(current, list):
            current = []
            assign_at(self._root, path, current)
        return current

    def _objects(self, slot: Slot) -> None:
        spec, path = slot.spec, slot.path
        ui.label(spec.label).classes("text-caption text-grey-8")
        container = ui.column().classes("w-full gap-2")
        tag(container, field_testid("input", path))
        singular = spec.title.removesuffix("s") or "item"

        def draw_items() -> None:
            self._forget(path)
            container.clear()
            items = slot.get()
            with container:
                for i in range(len(items) if isinstance(items, list) else 0):
                    with ui.card().classes("w-full q-pa-sm gap-1").props("flat bordered"):
                        with ui.row().classes("w-full items-center no-wrap"):
                            ui.label(f"{singular} {i + 1}").classes("text-caption grow")
                            self._remove_button((*path, i), functools.partial(remove, i))
                        for sub in spec.fields:
                            self._field(sub, (*path, i, sub.key))
                self._add_button(f"Add {singular.lower()}", path, add)

        def add() -> None:
            self._list_at(path).append(self._new_item(spec.fields))
            draw_items()
            self._changed()

        def remove(i: int) -> None:
            del self._list_at(path)[i]
            draw_items()
            self._changed()

        draw_items()

    def _object(self, slot: Slot, value: Any) -> None:
        spec, path = slot.spec, slot.path
        container = ui.column().classes("w-full gap-1")
        tag(container, field_testid("input", path))

        def draw_fields() -> None:
            self._forget(path)
            container.clear()
            with container:
                enabled = isinstance(slot.get(), dict) or not spec.nullable
                if spec.nullable:
                    switch = ui.switch(spec.label, value=enabled)
                    switch.on_value_change(lambda e: toggle(bool(e.value)))
                    tag(switch, field_testid("enable", path))
                else:
                    ui.label(spec.label).classes("text-caption text-grey-8")
                if enabled:
                    current = spec.with_defaults(slot.get())
                    controls = {key for sub in spec.fields for key, _ in sub.shown_when}
                    with ui.column().classes("w-full gap-1 q-pl-md"):
                        for sub in spec.fields:
                            if sub.shown(current):
                                redraw = sub.key in controls  # others depend on its value
                                self._sub_field(
                                    sub, (*path, sub.key), draw_fields if redraw else None
                                )

        def toggle(on: bool) -> None:
            slot.put(self._new_item(spec.fields) if on else None)
            draw_fields()
            self._refresh(emit=False)

        draw_fields()

    def _sub_field(self, spec: FieldSpec, path: ValuePath, then: Callable[[], None] | None) -> None:
        """One field of an object; `then` runs after its value changes (to show or hide the
        fields that depend on it)."""
        if then is None:
            self._field(spec, path, compact=False)
            return

        def put(value: Any) -> None:
            self._set(path, value)
            then()

        self._field(spec, path, compact=False, put=put)

    def _conditions(self, slot: Slot) -> None:
        spec, path = slot.spec, slot.path
        keys = {f.key: f for f in spec.fields}
        grouped = "conditions" in keys
        condition_fields = keys["conditions"].fields if grouped else spec.fields
        ui.label(spec.label).classes("text-caption text-grey-8")
        container = ui.column().classes("w-full gap-2")
        tag(container, field_testid("input", path))

        def draw() -> None:
            self._forget(path)
            container.clear()
            items = slot.get()
            with container:
                for g in range(len(items) if isinstance(items, list) else 0):
                    if grouped:
                        self._condition_group(path, g, keys, condition_fields, draw)
                    else:
                        self._condition_row(path, g, condition_fields, draw)
                label = "Add group" if grouped else "Add condition"
                new = keys if grouped else {f.key: f for f in condition_fields}
                self._add_button(label, path, lambda: add(new))

        def add(fields: dict[str, FieldSpec]) -> None:
            self._list_at(path).append(self._new_item(tuple(fields.values())))
            draw()
            self._changed()

        draw()

    def _condition_group(
        self,
        path: ValuePath,
        g: int,
        keys: dict[str, FieldSpec],
        condition_fields: tuple[FieldSpec, ...],
        redraw: Callable[[], None],
    ) -> None:
        group_path: ValuePath = (*path, g)
        conditions_path: ValuePath = (*group_path, "conditions")
        conditions = value_at(self._root, conditions_path)
        match = value_at(self._root, (*group_path, "match"))
        joiner = "any" if match == "any" else "all"

        def remove_group() -> None:
            del self._list_at(path)[g]
            redraw()
            self._changed()

        def add_condition() -> None:
            self._list_at(conditions_path).append(self._new_item(condition_fields))
            redraw()
            self._changed()

        with ui.card().classes("w-full q-pa-sm gap-1").props("flat bordered"):
            with ui.row().classes("w-full items-center no-wrap gap-1"):
                ui.label(f"Group {g + 1}").classes("text-caption")
                with ui.column().classes("grow gap-0"):
                    if "match" in keys:
                        self._field(keys["match"], (*group_path, "match"), compact=True)
                self._remove_button(group_path, remove_group)
            for c in range(len(conditions) if isinstance(conditions, list) else 0):
                if c:
                    ui.label("and" if joiner == "all" else "or").classes("text-caption q-px-sm")
                self._condition_row(conditions_path, c, condition_fields, redraw)
            self._add_button("Add condition", conditions_path, add_condition)

    def _condition_row(
        self,
        path: ValuePath,
        c: int,
        fields: tuple[FieldSpec, ...],
        redraw: Callable[[], None],
    ) -> None:
        row_path: ValuePath = (*path, c)
        by_key = {f.key: f for f in fields}

        def set_operator(value: Any) -> None:
            # The right-hand side comes and goes with unary operators: redraw the builder.
            assign_at(self._root, (*row_path, "operator"), value)
            redraw()
            self._changed()

        def remove() -> None:
            items = self._list_at(path)
            del items[c]
            redraw()
            self._changed()

        with (
            ui.column()
            .classes("w-full gap-0 q-pa-xs rounded-borders")
            .style("border: 1px dashed rgba(0,0,0,.15)")
        ):
            if "left" in by_key:
                self._field(by_key["left"], (*row_path, "left"), compact=True)
            with ui.row().classes("w-full items-start no-wrap gap-1"):
                with ui.column().classes("grow gap-0"):
                    if "operator" in by_key:
                        self._field(
                            by_key["operator"],
                            (*row_path, "operator"),
                            compact=True,
                            put=set_operator,
                        )
                self._remove_button(row_path, remove)
            operator = value_at(self._root, (*row_path, "operator"))
            if "right" in by_key and operator not in _UNARY_OPERATORS:
                self._field(by_key["right"], (*row_path, "right"), compact=True)
            for other in fields:
                if other.key not in ("left", "operator", "right"):
                    self._field(other, (*row_path, other.key), compact=True)
