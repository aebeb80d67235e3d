"""The step inspector: a form drawn only from an action's pydantic input schema.

    inspector = Inspector(step, registry.action(step.action), config=integration.config,
                          connections=integration.connections, references=source,
                          on_change=save_step)
    inspector.show(other_step, registry.action(other_step.action), references=other_source)

Every edit is validated: pydantic errors appear under the field they belong to, templates must
compile, and `on_change` receives a new `Step` only when nothing is invalid. A required input that
is still empty is marked but does not hold the step back (validation lists it as a problem).
`show` never calls `on_change`, and showing the step the inspector just reported is a no-op, so
the editor can push every saved step back without echo or lost keystrokes.

How fields are drawn (by schema, never by component):

- string: text input (templates allowed); `format: password` / `writeOnly` (`SecretStr`) or a
  secret-looking name: masked input with a reveal toggle;
- number / integer / boolean / enum / list of enum: number input, switch, select, multi-select;
- `dict[str, str]` or `x-ui: keyvalue`: rows of name and value;
- list of objects: one sub-form per item; an object with properties: a nested sub-form;
- `x-ui: conditions`: the condition builder (groups of value / operator / compare-with rows);
- a connection input: a select of the integration's connection slots. The component API has no
  connection marker, so an input is one when it has `x-ui: connection`, or is a string named
  `connection` or ending in `_connection`;
- anything else (`Any`, unstructured objects and lists): a JSON editor that also takes plain text
  and templates (see `parse_loose`).

Typed inputs (numbers, booleans, selects, lists, objects) switch to *expression* mode with the
`{{ }}` button, since any input may be a template. Each input can insert a reference (the
reference picker, see `designer.references`) and previews its templates against the sample data.
"""

from __future__ import annotations

import copy
import functools
import inspect
import itertools
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from nicegui import background_tasks, ui
from pydantic import BaseModel, ValidationError

from components.api import Action, Trigger
from components.registry import Registry
from designer.references import (
    Reference,
    ReferenceSource,
    contains_template,
    describe,
    insert_reference,
    preview,
    preview_scope,
    reference_paths,
    source_for_step,
    template_error,
)
from runtime.model import ConfigVariable, ConnectionSlot, Flow, Integration, Step

__all__ = [
    "ActionClass",
    "FieldSpec",
    "Inspector",
    "OnChange",
    "ParseError",
    "field_specs",
    "format_loose",
    "parse_loose",
    "step_action",
]

ActionClass = type[Action[Any]] | type[Trigger[Any]]
OnChange = Callable[[Step], Awaitable[None] | None]
Kind = Literal[
    "text",
    "secret",
    "number",
    "integer",
    "boolean",
    "enum",
    "multienum",
    "connection",
    "json",
    "keyvalue",
    "objects",
    "object",
    "conditions",
]
Path = tuple[str | int, ...]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""A value that is not set: the key is left out of the inputs and the default applies."""

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
_LEAVES: frozenset[Kind] = frozenset(
    {"text", "secret", "number", "integer", "boolean", "enum", "multienum", "connection", "json"}
)
_SECRET_NAME = re.compile(
    r"^(?:password|passwd|secret|token|api_key|apikey|client_secret|private_key)$"
    r"|_(?:password|secret|token)$",
    re.IGNORECASE,
)
_UNARY_OPERATORS = frozenset({"exists", "not exists", "is empty", "is not empty"})
_STEP_TITLES = {
    "name": "Name",
    "on_error": "On error",
    "retry": "Retry on transient errors",
    "timeout": "Timeout (s)",
    "notes": "Notes",
}


# --- schema -> field specs ---------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One input as the inspector draws it, derived from its JSON schema."""

    key: str
    title: str
    kind: Kind
    description: str = ""
    required: bool = False
    default: Any = UNSET
    nullable: bool = False
    options: tuple[Any, ...] = ()
    fields: tuple[FieldSpec, ...] = ()
    """Properties of an object, or of each item of a list of objects."""
    text_values: bool = True
    """Key-value lists: values are text (`dict[str, str]`) rather than any JSON value."""
    multiline: bool = False

    @property
    def label(self) -> str:
        return f"{self.title} *" if self.required else self.title


def _deref(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref` (and a lone `allOf`), keeping the referring schema's own keys on top."""
    for _ in range(32):
        if "$ref" in schema:
            target = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        elif isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            schema = {**schema["allOf"][0], **{k: v for k, v in schema.items() if k != "allOf"}}
        else:
            break
    return schema


def _unwrap(schema: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The schema without a `null` alternative, and whether null is allowed."""
    schema = _deref(schema, defs)
    types = schema.get("type")
    if isinstance(types, list) and "null" in types:
        rest = [t for t in types if t != "null"]
        schema = {**schema, "type": rest[0] if len(rest) == 1 else rest}
        return schema, True
    options = schema.get("anyOf") or schema.get("oneOf")
    if not isinstance(options, list):
        return schema, False
    real = [_deref(o, defs) for o in options if _deref(o, defs).get("type") != "null"]
    nullable = len(real) < len(options)
    if len(real) == 1:
        outer = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        return {**real[0], **outer}, nullable
    return schema, nullable


def _spec(
    key: str, raw: dict[str, Any], defs: dict[str, Any], required: bool, default: Any = UNSET
) -> FieldSpec:
    schema, nullable = _unwrap(raw, defs)
    ui_hint = schema.get("x-ui")
    kind: Kind = "json"
    options: tuple[Any, ...] = ()
    fields: tuple[FieldSpec, ...] = ()
    text_values = True
    kind_type = schema.get("type")
    if "default" in schema:
        default = schema["default"]
    if "enum" in schema or "const" in schema:
        kind = "enum"
        options = tuple(schema["enum"]) if "enum" in schema else (schema["const"],)
    elif ui_hint == "connection" or (
        kind_type == "string" and (key == "connection" or key.endswith("_connection"))
    ):
        kind = "connection"
    elif kind_type == "string":
        secret = schema.get("format") == "password" or schema.get("writeOnly") is True
        kind = "secret" if secret or _SECRET_NAME.search(key) else "text"
    elif kind_type == "boolean":
        kind = "boolean"
    elif kind_type == "integer":
        kind = "integer"
    elif kind_type == "number":
        kind = "number"
    elif kind_type == "array":
        items, _ = _unwrap(schema.get("items", {}), defs)
        if ui_hint == "conditions" and items.get("type") == "object":
            kind, fields = "conditions", _object_fields(items, defs)
        elif "enum" in items:
            kind, options = "multienum", tuple(items["enum"])
        elif items.get("type") == "object" and items.get("properties"):
            kind, fields = "objects", _object_fields(items, defs)
    elif kind_type == "object":
        extra = schema.get("additionalProperties")
        if schema.get("properties"):
            kind, fields = "object", _object_fields(schema, defs)
        elif ui_hint == "keyvalue" or (isinstance(extra, dict) and extra.get("type") == "string"):
            kind = "keyvalue"
            text_values = isinstance(extra, dict) and extra.get("type") == "string"
    return FieldSpec(
        key=key,
        title=str(schema.get("title") or key.replace("_", " ").capitalize()),
        kind=kind,
        description=str(schema.get("description") or ""),
        required=required,
        default=default,
        nullable=nullable,
        options=options,
        fields=fields,
        text_values=text_values,
        multiline=ui_hint in ("textarea", "multiline"),
    )


def _object_fields(schema: dict[str, Any], defs: dict[str, Any]) -> tuple[FieldSpec, ...]:
    required = set(schema.get("required", ()))
    return tuple(
        _spec(name, sub, defs, name in required)
        for name, sub in schema.get("properties", {}).items()
    )


def field_specs(model: type[BaseModel]) -> list[FieldSpec]:
    """The fields of an `Inputs` model, from `model_json_schema()` (defaults from factories too)."""
    return list(_field_specs(model))


@functools.lru_cache(maxsize=256)
def _field_specs(model: type[BaseModel]) -> tuple[FieldSpec, ...]:
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", ()))
    specs: list[FieldSpec] = []
    for name, sub in schema.get("properties", {}).items():
        default: Any = UNSET
        info = model.model_fields.get(name)
        if info is not None and not info.is_required():
            try:
                default = info.get_default(call_default_factory=True, validated_data={})
            except Exception:  # a factory that needs other fields: no default to show
                default = UNSET
        specs.append(_spec(name, sub, defs, name in required, _jsonable(default)))
    return tuple(specs)


def _jsonable(value: Any) -> Any:
    if value is UNSET:
        return UNSET
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return UNSET


def _step_specs(trigger: bool) -> list[FieldSpec]:
    schema = Step.model_json_schema()
    defs = schema.get("$defs", {})
    keys = ("name", "notes") if trigger else ("name", "on_error", "retry", "timeout", "notes")
    specs: list[FieldSpec] = []
    for key in keys:
        spec = _spec(key, schema["properties"][key], defs, False)
        extra: dict[str, Any] = {"title": _STEP_TITLES[key], "multiline": key == "notes"}
        if key == "name":
            extra["description"] = "Shown on the canvas and in messages; the id when empty."
        specs.append(replace(spec, **extra))
    return specs


# --- loose JSON --------------------------------------------------------------------------------


class ParseError(ValueError):
    """Text that cannot be read as a value; the message says where and how to fix it."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_loose(text: str | None) -> Any:
    """Read a value typed into a free-form input: JSON where it is JSON, text otherwise.

    Empty text is `UNSET`. A template (`{{ ... }}`) stays text. Text starting with `{`, `[` or `"`
    must be valid JSON (a typo in an object is an error, not a string). Numbers, `true`, `false`
    and `null` are those values; anything else is the text itself.
    """
    if text is None or not text.strip():
        return UNSET
    stripped = text.strip()
    if stripped.startswith("{{"):
        return stripped
    if stripped[0] in '{["':
        try:
            return json.loads(stripped, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise ParseError(
                f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}). "
                'Text in quotes like "this" is a string; an expression goes in {{ }}.'
            ) from None
        except ValueError as exc:
            raise ParseError(f"Not valid JSON: {exc}.") from None
    try:
        value = json.loads(stripped, parse_constant=_no_constant)
    except ValueError:
        return text
    return text if isinstance(value, str) else value


def format_loose(value: Any, *, indent: int | None = None) -> str:
    """The text `parse_loose` reads back as `value` (strings shown bare when that round-trips)."""
    if value is UNSET or value is None:
        return ""
    if isinstance(value, str):
        try:
            same = parse_loose(value) == value
        except ParseError:
            same = False
        return value if same else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, indent=indent)


# --- paths -------------------------------------------------------------------------------------


def _dotted(path: Path) -> str:
    return ".".join(str(p) for p in path[1:])


def _testid(kind: str, path: Path) -> str:
    """Test ids: `inspector-input-url`, `inspector-step-timeout`, `ref-button-url`, ..."""
    name = _dotted(path)
    if kind == "ref-button":
        return f"ref-button-{name}"
    if path[0] == "step":
        return f"inspector-step-{name}" if kind == "input" else f"inspector-{kind}-step.{name}"
    return f"inspector-{kind}-{name}"


def _key(path: Path) -> str:
    return _dotted(path) if path[0] == "inputs" else f"step.{_dotted(path)}"


def _tag(element: ui.element, testid: str) -> None:
    """Mark an element for tests: `data-testid` for the browser, a marker for the `user` fixture."""
    element.props["data-testid"] = testid
    if not any(c.isspace() for c in testid):
        element.mark(testid)


def _get(root: Any, path: Path) -> Any:
    value = root
    for key in path:
        in_dict = isinstance(value, dict) and isinstance(key, str) and key in value
        in_list = isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value)
        if not (in_dict or in_list):
            return UNSET
        value = value[key]
    return value


def _assign(root: dict[str, Any], path: Path, value: Any) -> None:
    """Set (or with `UNSET` remove) the value at `path`, creating the objects on the way."""
    parent: Any = root
    for key, nxt in itertools.pairwise(path):
        child = _get(parent, (key,))
        if not isinstance(child, dict | list):
            if value is UNSET:
                return
            child = [] if isinstance(nxt, int) else {}
            parent[key] = child
        parent = child
    last = path[-1]
    if isinstance(parent, list) and isinstance(last, int):
        if 0 <= last < len(parent):
            parent[last] = None if value is UNSET else value
    elif value is UNSET:
        parent.pop(last, None)
    else:
        parent[last] = value


def _templated_on(root: Any, path: Path) -> bool:
    """Whether a template string sits at `path` or above it (then its type is checked at run)."""
    value = root
    for key in path:
        if isinstance(value, str):
            return "{{" in value
        value = _get(value, (key,))
        if value is UNSET:
            return False
    return isinstance(value, str) and "{{" in value


def _message(error: Any) -> str:
    text = str(error.get("msg", "Invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


# --- the inspector -----------------------------------------------------------------------------


@dataclass(eq=False)
class _Slot:
    """One drawn field: where its value lives, its error and preview lines, how to insert."""

    path: Path
    spec: FieldSpec
    get: Callable[[], Any]
    put: Callable[[Any], None]
    data_path: Path | None
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
            label.classes(replace=f"text-caption whitespace-pre-line break-all {colour}")
            label.set_visibility(bool(text))


@dataclass
class _Problem:
    message: str
    blocking: bool = True
    unknown: bool = False
    """An input the action does not have: the form offers to remove it."""


@dataclass
class _Outcome:
    problems: dict[Path, list[_Problem]] = field(default_factory=dict)
    step: Step | None = None

    def add(
        self, path: Path, message: str, *, blocking: bool = True, unknown: bool = False
    ) -> None:
        self.problems.setdefault(path, []).append(_Problem(message, blocking, unknown))

    @property
    def blocking(self) -> bool:
        return any(p.blocking for ps in self.problems.values() for p in ps)


class Inspector:
    """The right-hand panel of the editor: edits one step's name, inputs and error handling.

    `action` is the step's action (or trigger) class from the registry; `config` and
    `connections` are the integration's; `references` says what the step can read (see
    `ReferenceSource`). `on_change(step)` (sync or async) receives each valid edit as a new,
    frozen `Step`; it is never called by `show`.
    """

    def __init__(
        self,
        step: Step | None,
        action: ActionClass | None,
        *,
        on_change: OnChange,
        config: Sequence[ConfigVariable] = (),
        connections: Sequence[ConnectionSlot] = (),
        references: ReferenceSource | None = None,
    ) -> None:
        self._on_change = on_change
        self._config = tuple(config)
        self._connections = tuple(connections)
        self._source = references or ReferenceSource()
        self._scope = preview_scope(self._source, self._config)
        self._refs: list[Reference] | None = None
        self._step: Step | None = None
        self._action: ActionClass | None = None
        self._root: dict[str, Any] = {"inputs": {}, "step": {}}
        self._slots: dict[Path, _Slot] = {}
        self._local: dict[Path, str] = {}
        self._expr: set[Path] = set()
        self._outcome = _Outcome()
        self._general: ui.column | None = None
        self._general_shown: list[tuple[Path, str]] = []
        self.element = ui.column().classes("w-full gap-2 flowyard-inspector")
        _tag(self.element, "inspector")
        self.show(step, action)

    # -- public ---------------------------------------------------------------------------------

    @classmethod
    def for_step(
        cls,
        step: Step,
        registry: Registry,
        *,
        integration: Integration,
        flow: Flow,
        scope: Mapping[str, Any] | None = None,
        on_change: OnChange,
        origin: str = "",
    ) -> Inspector:
        """An inspector for a step of `flow`: its action from `registry`, the integration's config
        and connections, and references from `scope` (see `designer.references.source_for_step`).
        """
        return cls(
            step,
            step_action(step, flow, registry),
            on_change=on_change,
            config=integration.config,
            connections=integration.connections,
            references=source_for_step(flow, step.id, registry, scope or {}, origin=origin),
        )

    @property
    def step(self) -> Step | None:
        """The step as last shown or reported through `on_change`."""
        return self._step

    @property
    def errors(self) -> dict[str, list[str]]:
        """Blocking problems by field (dotted path, `step.` for step settings); empty when valid."""
        return {
            _key(path): [p.message for p in problems if p.blocking]
            for path, problems in self._outcome.problems.items()
            if any(p.blocking for p in problems)
        }

    @property
    def valid(self) -> bool:
        """True when nothing on the form is invalid (a missing required input is allowed)."""
        return not self._outcome.blocking

    def show(
        self,
        step: Step | None,
        action: ActionClass | None = None,
        *,
        references: ReferenceSource | None = None,
        config: Sequence[ConfigVariable] | None = None,
        connections: Sequence[ConnectionSlot] | None = None,
    ) -> None:
        """Show `step` (None: nothing selected). Never calls `on_change`.

        `action` is needed when the step's action changes; omitted, the current one is kept.
        Showing the step last shown or reported (an echo of `on_change`) keeps the form as is,
        including text still being typed; any other step redraws it.
        """
        rebuild = False
        if config is not None:
            self._config, rebuild = tuple(config), True
        if connections is not None:
            self._connections, rebuild = tuple(connections), True
        if action is not None and action is not self._action:
            self._action, rebuild = action, True
        if references is not None or config is not None:
            self._set_source(references or self._source)
        if step is None:
            self._step = None
            self._draw_empty()
            return
        if not rebuild and self._step is not None and step == self._step and self._slots:
            self._refresh(emit=False)
            return
        self._step = step
        self._draw()

    def set_references(self, references: ReferenceSource) -> None:
        """New sample data or upstream steps (e.g. after a test run): previews update in place."""
        self._set_source(references)
        self._refresh(emit=False)

    # -- drawing --------------------------------------------------------------------------------

    def _set_source(self, source: ReferenceSource) -> None:
        self._source = source
        self._scope = preview_scope(source, self._config)
        self._refs = None

    def _draw_empty(self) -> None:
        self._slots.clear()
        self._local.clear()
        self._general, self._general_shown = None, []
        self._outcome = _Outcome()
        self.element.clear()
        with self.element:
            ui.label("Select a step on the canvas to edit it.").classes("text-grey-7")

    def _draw(self) -> None:
        step, action = self._step, self._action
        assert step is not None
        self._root = {"inputs": copy.deepcopy(step.inputs), "step": self._settings_of(step)}
        self._slots.clear()
        self._local.clear()
        self._expr.clear()
        self._general, self._general_shown = None, []
        self.element.clear()
        is_trigger = action is not None and issubclass(action, Trigger)
        specs = {s.key: s for s in _step_specs(is_trigger)}
        with self.element:
            with ui.column().classes("w-full gap-0"):
                title = action.title if action is not None else step.action
                ui.label(title).classes("text-subtitle1 text-weight-medium")
                ui.label(f"{step.action} · id {step.id}").classes("text-caption text-grey-7")
                if action is not None and action.description:
                    ui.markdown(action.description).classes("text-body2 text-grey-8")
            self._field(specs["name"], ("step", "name"))
            if action is None:
                ui.label(
                    f"Unknown action '{step.action}': its inputs cannot be edited. Install the "
                    "component or change the step's action."
                ).classes("text-negative")
            else:
                with ui.column().classes("w-full gap-2"):
                    for spec in field_specs(action.Inputs):
                        self._field(spec, ("inputs", spec.key))
                self._general = ui.column().classes("w-full gap-1")
            if not is_trigger:
                # Open when something is set, so a value in there is never out of sight.
                custom = step.on_error != "fail" or step.retry is not None or step.timeout
                with ui.expansion("Error handling", icon="replay", value=bool(custom)).classes(
                    "w-full"
                ):
                    for key in ("on_error", "retry", "timeout"):
                        self._field(specs[key], ("step", key))
            self._field(specs["notes"], ("step", "notes"))
        self._refresh(emit=False)

    @staticmethod
    def _settings_of(step: Step) -> dict[str, Any]:
        return {
            "name": step.name,
            "on_error": step.on_error,
            "retry": step.retry.model_dump() if step.retry is not None else None,
            "timeout": step.timeout,
            "notes": step.notes,
        }

    def _field(
        self,
        spec: FieldSpec,
        path: Path,
        *,
        compact: bool = False,
        get: Callable[[], Any] | None = None,
        put: Callable[[Any], None] | None = None,
        data_path: Path | _Unset | None = UNSET,
    ) -> _Slot:
        """Draw one field (label, widget, tools, hint, error and preview) and register it."""
        store = put or (lambda value: self._set(path, value))

        def put_value(value: Any) -> None:
            self._local.pop(path, None)
            store(value)

        slot = _Slot(
            path,
            spec,
            get or (lambda: _get(self._root, path)),
            put_value,
            path if isinstance(data_path, _Unset) else data_path,
        )
        self._slots[path] = slot
        inputs = path[0] == "inputs"
        with ui.column().classes("w-full gap-0") as box:
            _tag(box, _testid("field", path))
            with ui.row().classes("w-full items-start no-wrap gap-1"):
                body = ui.column().classes("grow gap-1 min-w-0")
                tools = ui.row().classes("items-center no-wrap gap-0 pt-2")
            slot.error = ui.label().classes("text-caption whitespace-pre-line")
            slot.error.set_visibility(False)
            if inputs:
                slot.preview = ui.label().classes("text-caption break-all")
                _tag(slot.preview, f"preview-{_dotted(path)}")
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
                    _tag(mode, _testid("mode", path))
                if inputs:
                    self._reference_button(slot)

        slot.redraw = draw
        draw()
        return slot

    def _forget(self, path: Path) -> None:
        """Drop the slots and local errors below `path` (before its widgets are drawn again)."""
        n = len(path)
        for key in [k for k in self._slots if len(k) > n and k[:n] == path]:
            del self._slots[key]
        for key in [k for k in self._local if len(k) > n and k[:n] == path]:
            del self._local[key]

    def _widget(self, slot: _Slot, compact: bool) -> None:
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
            _tag(switch, _testid("input", slot.path))
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

    def _text_element(self, slot: _Slot, element: ui.input) -> None:
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
        _tag(element, _testid("input", slot.path))

    def _text(self, slot: _Slot) -> None:
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

    def _number(self, slot: _Slot, value: Any) -> None:
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
        _tag(element, _testid("input", slot.path))

    def _select(self, slot: _Slot, value: Any) -> None:
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
        _tag(element, _testid("input", slot.path))
        if spec.kind == "connection" and not self._connections:
            ui.label(
                "This integration has no connections yet: add one in the integration settings."
            ).classes("text-caption text-grey-7")

    def _json(self, slot: _Slot, compact: bool) -> None:
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

    def _expression(self, slot: _Slot) -> None:
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

    def _toggle_mode(self, slot: _Slot) -> None:
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

    def _to_expression(self, slot: _Slot, path: str) -> None:
        self._expr.add(slot.path)
        assert slot.redraw is not None
        slot.put(f"{{{{ {path} }}}}")
        slot.redraw()
        self._refresh(emit=False)

    # -- composite widgets ----------------------------------------------------------------------

    def _add_button(self, text: str, path: Path, on_click: Callable[[], None]) -> None:
        button = ui.button(text, icon="add", on_click=on_click).props("flat dense no-caps")
        _tag(button, _testid("add", path))

    def _remove_button(self, path: Path, on_click: Callable[[], None]) -> None:
        button = ui.button(icon="delete_outline", on_click=on_click)
        button.props("flat dense round size=sm color=grey-7").tooltip("Remove")
        _tag(button, _testid("remove", path))

    def _keyvalue(self, slot: _Slot, value: Any) -> None:
        spec, path = slot.spec, slot.path
        rows: list[list[Any]] = (
            [[k, v] for k, v in value.items()] if isinstance(value, dict) else []
        )
        ui.label(spec.label).classes("text-caption text-grey-8")
        container = ui.column().classes("w-full gap-1")
        _tag(container, _testid("input", path))

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
        slot: _Slot,
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
            _tag(key, _testid("input", (*path, i, "key")))
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

    def _list_at(self, path: Path) -> list[Any]:
        current = _get(self._root, path)
        if not isinstance(current, list):
            current = []
            _assign(self._root, path, current)
        return current

    def _objects(self, slot: _Slot) -> None:
        spec, path = slot.spec, slot.path
        ui.label(spec.label).classes("text-caption text-grey-8")
        container = ui.column().classes("w-full gap-2")
        _tag(container, _testid("input", path))
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

    def _object(self, slot: _Slot, value: Any) -> None:
        spec, path = slot.spec, slot.path
        container = ui.column().classes("w-full gap-1")
        _tag(container, _testid("input", path))

        def draw_fields() -> None:
            self._forget(path)
            container.clear()
            with container:
                enabled = isinstance(slot.get(), dict) or not spec.nullable
                if spec.nullable:
                    switch = ui.switch(spec.label, value=enabled)
                    switch.on_value_change(lambda e: toggle(bool(e.value)))
                    _tag(switch, _testid("enable", path))
                else:
                    ui.label(spec.label).classes("text-caption text-grey-8")
                if enabled:
                    with ui.column().classes("w-full gap-1 q-pl-md"):
                        for sub in spec.fields:
                            self._field(sub, (*path, sub.key), compact=False)

        def toggle(on: bool) -> None:
            slot.put(self._new_item(spec.fields) if on else None)
            draw_fields()
            self._refresh(emit=False)

        draw_fields()

    def _conditions(self, slot: _Slot) -> None:
        spec, path = slot.spec, slot.path
        keys = {f.key: f for f in spec.fields}
        grouped = "conditions" in keys
        condition_fields = keys["conditions"].fields if grouped else spec.fields
        ui.label(spec.label).classes("text-caption text-grey-8")
        container = ui.column().classes("w-full gap-2")
        _tag(container, _testid("input", path))

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
        path: Path,
        g: int,
        keys: dict[str, FieldSpec],
        condition_fields: tuple[FieldSpec, ...],
        redraw: Callable[[], None],
    ) -> None:
        group_path: Path = (*path, g)
        conditions_path: Path = (*group_path, "conditions")
        conditions = _get(self._root, conditions_path)
        match = _get(self._root, (*group_path, "match"))
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
        path: Path,
        c: int,
        fields: tuple[FieldSpec, ...],
        redraw: Callable[[], None],
    ) -> None:
        row_path: Path = (*path, c)
        by_key = {f.key: f for f in fields}

        def set_operator(value: Any) -> None:
            # The right-hand side comes and goes with unary operators: redraw the builder.
            _assign(self._root, (*row_path, "operator"), value)
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
            operator = _get(self._root, (*row_path, "operator"))
            if "right" in by_key and operator not in _UNARY_OPERATORS:
                self._field(by_key["right"], (*row_path, "right"), compact=True)
            for other in fields:
                if other.key not in ("left", "operator", "right"):
                    self._field(other, (*row_path, other.key), compact=True)

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

    def _reference_button(self, slot: _Slot) -> None:
        with ui.button(icon="add_link").props("flat dense round size=sm") as button:
            menu = ui.menu().props("no-parent-event")
        button.tooltip("Insert a reference to the trigger, an earlier step or config")
        _tag(button, _testid("ref-button", slot.path))
        button.on_click(lambda: self._open_menu(menu, slot))
        # Items exist only while the menu is open, so a test (or a search) finds one menu's items.
        menu.on_value_change(lambda e: None if e.value else menu.clear())

    def _open_menu(self, menu: ui.menu, slot: _Slot) -> None:
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
            _tag(search, f"ref-filter-{_dotted(slot.path)}")
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
        _tag(item, f"ref-item-{ref.path}")

    # -- editing and validation -----------------------------------------------------------------

    def _set(self, path: Path, value: Any) -> None:
        if value is UNSET and path[0] == "step" and len(path) == 2:
            default = Step.model_fields[str(path[1])].default
            value = None if default is None else default
        _assign(self._root, path, value)
        self._local.pop(path, None)
        self._changed()

    def _fail(self, path: Path, message: str) -> None:
        self._local[path] = message
        self._changed()

    def _changed(self) -> None:
        self._refresh(emit=True)

    def _validate(self) -> _Outcome:
        outcome = _Outcome()
        step, action = self._step, self._action
        if step is None:
            return outcome
        inputs: dict[str, Any] = self._root["inputs"]
        if action is not None:
            try:
                action.Inputs.model_validate(inputs)
            except ValidationError as exc:
                for error in exc.errors():
                    loc: Path = ("inputs", *error["loc"])
                    if _templated_on(self._root, loc):
                        continue
                    if error["type"] == "missing":
                        outcome.add(loc, "Required.", blocking=len(loc) > 2)
                    elif error["type"] == "extra_forbidden" and len(loc) == 2:
                        message = f"'{loc[1]}' is not an input of this action."
                        outcome.add(loc, message, unknown=True)
                    else:
                        outcome.add(loc, _message(error))
            except Exception as exc:  # a validator that raised something else
                outcome.add(("inputs",), f"The inputs cannot be checked: {exc}")
        self._template_problems(("inputs",), inputs, outcome)
        for path, message in self._local.items():
            outcome.add(path, message)
        settings = self._root["step"]
        try:
            candidate = Step.model_validate(
                {"id": step.id, "action": step.action, "inputs": inputs, **settings}
            )
        except ValidationError as exc:
            for error in exc.errors():
                outcome.add(("step", *error["loc"]), _message(error))
        else:
            if not outcome.blocking:
                outcome.step = candidate.model_copy(update={"inputs": copy.deepcopy(inputs)})
        return outcome

    def _template_problems(self, path: Path, value: Any, outcome: _Outcome) -> None:
        if isinstance(value, str):
            if "{{" in value and (message := template_error(value)) is not None:
                outcome.add(path, message)
        elif isinstance(value, dict):
            for key, item in value.items():
                self._template_problems((*path, str(key)), item, outcome)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._template_problems((*path, i), item, outcome)

    def _owner(self, loc: Path, by_data: dict[Path, _Slot]) -> _Slot | None:
        """The slot whose data path is the longest prefix of `loc` (local errors: exact slot)."""
        exact = self._slots.get(loc)
        if exact is not None and loc in self._local:
            return exact
        for n in range(len(loc), 0, -1):
            slot = by_data.get(loc[:n])
            if slot is not None:
                return slot
        return None

    def _refresh(self, *, emit: bool) -> None:
        outcome = self._validate()
        self._outcome = outcome
        shown: dict[int, list[_Problem]] = {}
        general: list[tuple[Path, _Problem]] = []
        by_data = {s.data_path: s for s in self._slots.values() if s.data_path is not None}
        for loc, problems in outcome.problems.items():
            slot = self._owner(loc, by_data)
            if slot is None:
                general.extend((loc, p) for p in problems)
            else:
                shown.setdefault(id(slot), []).extend(problems)
        for slot in self._slots.values():
            problems = shown.get(id(slot), [])
            text = "\n".join(dict.fromkeys(p.message for p in problems))
            slot.show(text, any(p.blocking for p in problems), *self._preview_text(slot))
        self._show_general(general)
        if emit and outcome.step is not None and outcome.step != self._step:
            self._step = outcome.step
            result = self._on_change(outcome.step)
            if inspect.isawaitable(result):
                background_tasks.create(_wait(result), name="inspector on_change")

    def _preview_text(self, slot: _Slot) -> tuple[str, bool]:
        if slot.preview is None:
            return "", True
        if slot.spec.kind not in _LEAVES and slot.path not in self._expr:
            return "", True
        result = preview(slot.get(), self._scope, self._source.upstream)
        if result is None:
            return "", True
        text = result.text
        if result.ok and result.value is None:
            where = self._source.origin or "sample data"
            text = f"null (nothing at this path in the {where})"
        return (f"= {text}", True) if result.ok else (f"⚠ {text}", False)

    def _show_general(self, problems: list[tuple[Path, _Problem]]) -> None:
        """Problems no field owns (unknown inputs, model-wide checks), above the settings."""
        area = self._general
        shown = [(loc, p.message) for loc, p in problems]
        if area is None or area.is_deleted or shown == self._general_shown:
            return
        self._general_shown = shown
        area.clear()
        with area:
            for loc, problem in problems:
                with ui.row().classes("items-center no-wrap gap-1"):
                    where = ".".join(str(p) for p in loc[1:])
                    text = f"{where}: {problem.message}" if where else problem.message
                    ui.label(text).classes("text-caption text-negative")
                    if problem.unknown:
                        button = ui.button(
                            "Remove", on_click=lambda k=loc: self._set(k, UNSET)
                        ).props("flat dense no-caps size=sm")
                        _tag(button, f"inspector-remove-unknown-{loc[1]}")


def step_action(step: Step, flow: Flow, registry: Registry) -> ActionClass | None:
    """The action (or, for the flow's trigger, the trigger) class of `step`; None if unknown."""
    try:
        if step.id == flow.trigger.id:
            return registry.trigger(step.action)
        return registry.action(step.action)
    except LookupError:
        return None


async def _wait(result: Awaitable[None]) -> None:
    await result
