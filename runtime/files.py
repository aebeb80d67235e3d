"""Integration files: one YAML (or JSON) file per integration, read strictly and written stably.

`load_integration` / `parse_integration` refuse what the model does not know (unknown keys, wrong
types) with one `IntegrationFileError` listing every problem by where it is in the file, in the
file's own words: `warehouse.yaml: flows[0] (warehouse_update) > steps[2] (route) > retry >
max_attempts: Input should be greater than or equal to 1`. The YAML reader is the safe one with
three more guards: no aliases (so no "billion laughs"), no duplicate keys (YAML keeps the last one
silently), and YAML 1.2 scalars (`no` and `2024-01-01` stay strings; only `true`/`false` are
booleans). Files are bounded by `MAX_FILE_BYTES`.

`dump_integration` writes keys in model order, leaves out defaults, and puts `layout` last with
one line per node, so a logic change never diffs coordinates and moving a node diffs one line.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, to_jsonable_python

from runtime.errors import FlowError
from runtime.input_problems import closest_key, model_at
from runtime.model import ConfigVariable, ConnectionSlot, Integration
from runtime.text import NOT_UNICODE, escaped, lone_surrogate

__all__ = [
    "MAX_FILE_BYTES",
    "IntegrationFileError",
    "dump_integration",
    "integration_schema",
    "load_integration",
    "parse_document",
    "parse_integration",
]

MAX_FILE_BYTES = 5 * 1024 * 1024
"""Larger files are refused before they are parsed."""

_HINT = "Fix the file and load it again; `flowyard schema` prints every key the file may hold."


class IntegrationFileError(FlowError):
    """A file could not be read as an integration. `errors` holds one line per problem."""

    kind = "invalid_file"

    def __init__(self, source: str, errors: list[str], *, hint: str = _HINT) -> None:
        self.source = source
        self.errors = [f"{source}: {e}" for e in errors]
        super().__init__("\n".join(self.errors), hint=hint)


# --- reading ------------------------------------------------------------------------------------

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BOOL_TAG = "tag:yaml.org,2002:bool"
_DROPPED_TAGS = ("binary", "timestamp", "set", "omap", "pairs")


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """The safe loader with YAML 1.2 booleans, no timestamps or exotic types, no duplicate keys."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG and "timestamp" not in tag]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }
    yaml_constructors = {
        tag: constructor
        for tag, constructor in _BaseLoader.yaml_constructors.items()
        if tag is None or not tag.endswith(_DROPPED_TAGS)
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    f"in the mapping starting at {_mark(node.start_mark)}",
                    None,
                    f"key '{key}' appears twice (first at {_mark(seen[key])}); keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _mark(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _refuse_aliases(root: yaml.Node) -> None:
    """Raise if a node is reachable twice: that is what an alias is, and how alias bombs grow."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise yaml.composer.ComposerError(
                None,
                None,
                "the value anchored here (&name) is reused through an alias (*name); "
                "aliases are not allowed in integration files, write the value out instead",
                node.start_mark,
            )
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):
                stack.extend((value, key))


def _parse_yaml(text: str) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_aliases(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        where = f"{_mark(mark)}: " if mark is not None else ""
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        return f"{where}{problem}{context}"
    return f"invalid YAML: {exc}"


def _no_duplicate_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key '{key}' appears twice in one object; keep one")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _looks_like_json(text: str, source: str) -> bool:
    suffix = Path(source).suffix.lower()
    if suffix == ".json":
        return True
    return suffix not in (".yaml", ".yml") and text.lstrip()[:1] in ("{", "[")


def parse_document(text: str, source: str = "<text>") -> Any:
    """Parse YAML or JSON text with the integration file's guards; `IntegrationFileError` if bad.

    JSON is used for `.json` sources (and for text starting with `{` or `[` unless the source is
    `.yaml`/`.yml`), YAML otherwise. Also used for payload files.
    """
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise IntegrationFileError(source, [f"the file is larger than {MAX_FILE_BYTES} bytes"])
    if found := lone_surrogate(text):
        at = next(i for i, char in enumerate(text) if "\ud800" <= char <= "\udfff")
        line = text.count("\n", 0, at) + 1
        raise IntegrationFileError(source, [f"line {line}: holds {found[1]}, {NOT_UNICODE}"])
    try:
        if _looks_like_json(text, source):
            try:
                data = json.loads(
                    text, object_pairs_hook=_no_duplicate_pairs, parse_constant=_refuse_constant
                )
            except json.JSONDecodeError as exc:
                raise IntegrationFileError(
                    source, [f"line {exc.lineno}, column {exc.colno}: {exc.msg} (invalid JSON)"]
                ) from None
            except ValueError as exc:
                raise IntegrationFileError(
                    source, [f"{escaped(str(exc))} (invalid JSON)"]
                ) from None
            # JSON spells surrogates as escapes (YAML refuses them): refuse them here, by place.
            if found := lone_surrogate(data):
                where = escaped(" > ".join(_where(found[0], data))) or "the document"
                raise IntegrationFileError(source, [f"{where}: holds {found[1]}, {NOT_UNICODE}"])
            return data
        try:
            return _parse_yaml(text)
        except yaml.YAMLError as exc:
            raise IntegrationFileError(source, [_yaml_error(exc)]) from None
    except RecursionError:
        raise IntegrationFileError(source, ["the document is nested too deeply"]) from None


def parse_integration(text: str, source: str = "<text>") -> Integration:
    """Read an integration from YAML or JSON text; `source` names it in error messages."""
    data = parse_document(text, source)
    if data is None:
        raise IntegrationFileError(source, ["the file is empty; write at least `name: ...`"])
    if not isinstance(data, dict):
        raise IntegrationFileError(
            source,
            [
                f"the file holds {_type_name(data)}; an integration file is a mapping with at "
                "least `name` and `flows`"
            ],
        )
    try:
        return Integration.model_validate(data)
    except ValidationError as exc:
        lines = {} if _looks_like_json(text, source) else _line_index(text)
        found = [_describe(err, data, lines) for err in exc.errors()]
        found.sort(key=lambda item: item[0] or math.inf)  # file order; stable for JSON
        raise IntegrationFileError(source, [message for _, message in found]) from None
    except RecursionError:
        raise IntegrationFileError(source, ["the document is nested too deeply"]) from None


def load_integration(path: Path) -> Integration:
    """Read an integration file; `IntegrationFileError` names the file and every problem in it."""
    source = path.name
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise IntegrationFileError(
                source, [f"the file is {size} bytes; the limit is {MAX_FILE_BYTES}"]
            )
        text = path.read_text(encoding="utf-8")
    except IntegrationFileError:
        raise
    except FileNotFoundError:
        raise IntegrationFileError(
            str(path), ["no such file"], hint="Check the path and try again."
        ) from None
    except UnicodeDecodeError as exc:
        raise IntegrationFileError(
            source, [f"not UTF-8 text (byte {exc.start})"], hint="Save the file as UTF-8."
        ) from None
    except OSError as exc:
        raise IntegrationFileError(
            str(path), [exc.strerror or str(exc)], hint="Check the path and try again."
        ) from None
    return parse_integration(text, source)


# --- describing validation errors in the file's own words ---------------------------------------


def _type_name(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number"}
    if value is None:
        return "nothing (null)"
    return next((n for t, n in names.items() if isinstance(value, t)), "a number")


def _where(loc: tuple[int | str, ...], data: Any) -> list[str]:
    """Path parts like `flows[0] (warehouse_update)`, following the raw data for item ids."""
    parts: list[str] = []
    node = data
    for segment in loc:
        if isinstance(segment, int) and parts:
            item = node[segment] if isinstance(node, list) and segment < len(node) else None
            label = f"[{segment}]"
            if isinstance(item, dict):
                ident = item.get("id", item.get("key", item.get("name")))
                if isinstance(ident, str) and ident:
                    label += f" ({ident})"
            parts[-1] += label
            node = item
        else:
            parts.append(str(segment))
            node = node.get(segment) if isinstance(node, dict) else None
    return parts


def _problem(err: ErrorDetails) -> str:
    kind, loc, value = err["type"], err["loc"], err.get("input")
    if kind == "extra_forbidden":
        model = model_at(Integration, loc)
        if model is None:
            return "unknown key"
        allowed, close = closest_key(model, loc[-1])
        guess = f"did you mean '{close}'? " if close else ""
        return f"unknown key; {guess}allowed here: {', '.join(allowed)}"
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"should be a mapping (key: value), not {_type_name(value)}"
    if kind == "list_type":
        return f"should be a list, not {_type_name(value)}"
    message = err["msg"].removeprefix("Value error, ")
    if isinstance(value, str | int | float | bool) and kind != "value_error":
        shown = json.dumps(value, ensure_ascii=False)
        message += f" (got {shown if len(shown) <= 40 else shown[:37] + '...'})"
    return message


def _line_index(text: str) -> dict[tuple[int | str, ...], int]:
    """Line number of every key and list item, by its path; only computed when reporting."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return {}
    index: dict[tuple[int | str, ...], int] = {}
    stack: list[tuple[tuple[int | str, ...], yaml.Node | None]] = [((), root)]
    while stack:
        loc, node = stack.pop()
        if node is None:
            continue
        index.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.SequenceNode):
            stack.extend(((*loc, i), child) for i, child in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    index.setdefault((*loc, key.value), key.start_mark.line + 1)
                    stack.append(((*loc, key.value), value))
    return index


def _describe(
    err: ErrorDetails, data: Any, lines: dict[tuple[int | str, ...], int]
) -> tuple[int | None, str]:
    """(line, `place > in > file: problem (line n)`) of one validation error."""
    loc = tuple(err["loc"])
    line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)
    where = " > ".join(_where(loc, data))
    text = f"{where}: {_problem(err)}" if where else _problem(err)
    return line, text if line is None else f"{text} (line {line})"


# --- writing ------------------------------------------------------------------------------------

_ALWAYS_WRITTEN: dict[type[BaseModel], frozenset[str]] = {
    Integration: frozenset({"version"}),
    ConfigVariable: frozenset({"type"}),
    ConnectionSlot: frozenset({"type"}),
}


class _FlowMap(dict[str, Any]):
    """A mapping written on one line (`{x: 10, y: 20}`)."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent list items under their key: the style people write by hand.
        super().increase_indent(flow, False)


_UNICODE_BREAKS = re.compile("[\x85\u2028\u2029\ufeff]")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style: str | None = None
    if _UNICODE_BREAKS.search(value):
        # PyYAML writes these raw in plain, quoted and block scalars, and reads them back as
        # line breaks; only double quotes escape them.
        style = '"'
    elif "\n" in value:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_flow_map(dumper: yaml.SafeDumper, value: _FlowMap) -> yaml.MappingNode:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value, flow_style=True)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_FlowMap, _represent_flow_map)


def _plain(value: Any, *, full: bool = False) -> Any:
    """JSON-like data for YAML, leaving out fields that hold their default unless `full`.

    An optional section that is switched on (`retry`, whose default is None) is written in full:
    `retry: {}` would say "retry with defaults" too quietly.
    """
    if isinstance(value, BaseModel):
        keep = _ALWAYS_WRITTEN.get(type(value), frozenset())
        out: dict[str, Any] = {}
        for name, info in type(value).model_fields.items():
            field_value = getattr(value, name)
            default = info.get_default(call_default_factory=True)
            given = getattr(value, "keep_set_fields", False) and name in value.model_fields_set
            if not full and name not in keep and field_value == default and not given:
                continue
            out[info.alias or name] = _plain(field_value, full=full or default is None)
        return out
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return to_jsonable_python(value)


def _number(value: float) -> float | int:
    return int(value) if value.is_integer() else value


def _layout(integration: Integration) -> dict[str, Any]:
    """Positions ordered like the flows and their steps, one flow-style line per node."""
    order = {f.id: [s.id for s in f.all_steps()] for f in integration.flows}
    flow_ids = [f for f in order if f in integration.layout]
    flow_ids += sorted(f for f in integration.layout if f not in order)
    out: dict[str, Any] = {}
    for flow_id in flow_ids:
        positions = integration.layout[flow_id]
        known = order.get(flow_id, [])
        step_ids = [s for s in known if s in positions]
        step_ids += sorted(s for s in positions if s not in known)
        out[flow_id] = {
            s: _FlowMap(x=_number(positions[s].x), y=_number(positions[s].y)) for s in step_ids
        }
    return out


def dump_integration(integration: Integration) -> str:
    """The integration as stable, readable YAML; `load_integration` reads it back equal."""
    data = _plain(integration)
    data.pop("layout", None)
    layout = _layout(integration)
    if layout:
        data["layout"] = layout
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=4096,
    )


def integration_schema() -> dict[str, Any]:
    """The JSON Schema of an integration file, generated from `runtime.model.Integration`."""
    schema = Integration.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
