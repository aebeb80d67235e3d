"""Input schemas read as the inspector's fields, and the values those fields edit. No UI here.

`field_specs(model)` turns an `Inputs` model's `model_json_schema()` into `FieldSpec`s (one per
input: the kind of widget, label, default, options, sub-fields); `step_specs` does the same for
a step's own settings (name, error handling, notes). `parse_loose` and `format_loose` read and
write the text of a free-form (JSON) input.

The inspector keeps the values it edits in one dict, `{"inputs": {...}, "step": {...}}`, where a
`ValuePath` such as `("inputs", "headers", 0, "value")` names one value (`value_at`,
`assign_at`; `dotted` is its display form). `UNSET` is a value left out, so its default applies.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel

from runtime.model import Step

__all__ = [
    "UNSET",
    "FieldSpec",
    "Kind",
    "ParseError",
    "Unset",
    "ValuePath",
    "assign_at",
    "dotted",
    "field_specs",
    "format_loose",
    "parse_loose",
    "step_specs",
    "value_at",
]

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
ValuePath = tuple[str | int, ...]
"""Where a value sits in the inspector's values: `("inputs", key, ...)` or `("step", key)`."""


class Unset:
    """The type of `UNSET`."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = Unset()
"""A value that is not set: the key is left out of the inputs and the default applies."""

_SECRET_NAME = re.compile(
    r"^(?:password|passwd|secret|token|api_key|apikey|client_secret|private_key)$"
    r"|_(?:password|secret|token)$",
    re.IGNORECASE,
)
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
    shown_when: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    """Sub-fields of an object: drawn only while each named sibling holds one of its values
    (`x-shown-when` in the schema, e.g. `{"scheme": ["hmac"]}`)."""

    def shown(self, siblings: dict[str, Any]) -> bool:
        """Whether to draw this field beside `siblings`: its object's values, defaults filled in
        (`with_defaults`)."""
        return all(siblings.get(key) in values for key, values in self.shown_when)

    def with_defaults(self, value: Any) -> dict[str, Any]:
        """An object field's value with its sub-fields' defaults where a value is left out."""
        given = value if isinstance(value, dict) else {}
        return {f.key: given.get(f.key, f.default) for f in self.fields}

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
        shown_when=tuple(
            (str(key), tuple(values))
            for key, values in (raw.get("x-shown-when") or schema.get("x-shown-when") or {}).items()
        ),
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


def step_specs(trigger: bool) -> list[FieldSpec]:
    """A step's own settings as fields: name, error handling (not for a trigger) and notes."""
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


def dotted(path: ValuePath) -> str:
    """The path without its `inputs` / `step` root, dotted: `headers.0.value`."""
    return ".".join(str(p) for p in path[1:])


def value_at(root: Any, path: ValuePath) -> Any:
    """The value at `path` under `root`; `UNSET` where there is none."""
    value = root
    for key in path:
        in_dict = isinstance(value, dict) and isinstance(key, str) and key in value
        in_list = isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value)
        if not (in_dict or in_list):
            return UNSET
        value = value[key]
    return value


def assign_at(root: dict[str, Any], path: ValuePath, value: Any) -> None:
    """Set (or with `UNSET` remove) the value at `path`, creating the objects on the way."""
    parent: Any = root
    for key, nxt in itertools.pairwise(path):
        child = value_at(parent, (key,))
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
