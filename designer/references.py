"""What a step input can reference, and what a template resolves to: the reference picker's logic.

Pure functions, no NiceGUI. The inspector lists `reference_paths` in its "insert reference" menu and
shows `preview` under every templated input. Both read a *scope* shaped like the engine's (see
`runtime.expressions`)::

    {"trigger": {"body": ..., "headers": ..., "query": ...},
     "steps": {"<id>": {"output": ...}}, "config": {...}, "loop": {"item": ..., "index": 0}}

taken from the last test run or, before any run, from the trigger's sample payload (`build_scope`
makes one). Only the steps that run before the edited step (`upstream`) are offered and previewed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from components.api import Action
from components.registry import Registry
from runtime.errors import FlowyardError
from runtime.expressions import ExpressionLimits, compile_value, render, step_references
from runtime.graph import LOOP_PORTS, loop_bodies, loop_owners, to_graph
from runtime.model import ConfigVariable, Flow, Step
from runtime.redaction import MASK
from runtime.templates import Hole, split

__all__ = [
    "PREVIEW_LIMITS",
    "Preview",
    "Reference",
    "ReferenceSource",
    "build_scope",
    "contains_template",
    "describe",
    "insert_reference",
    "join_path",
    "preview",
    "preview_scope",
    "reference_paths",
    "source_for_step",
    "template_error",
]

PREVIEW_LIMITS = ExpressionLimits(max_depth=100, max_output_bytes=262_144)
"""Previews run on every keystroke: tighter bounds than a run, so a bad expression cannot stall;
the default work budget, so a preview succeeds where a run with the default settings would."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_KEYWORDS = frozenset({"and", "or", "in", "true", "false", "null", "function"})
_SECTIONS = ("trigger", "steps", "config", "loop", "instance", "flow")


@dataclass(frozen=True, slots=True)
class Reference:
    """One value a template can read: `path` goes between `{{ }}`; `sample_value` is from the scope.

    `section` groups the menu ("Trigger", a step's name, "Config", "Loop") and `depth` indents it.
    """

    path: str
    label: str
    sample_value: Any = None
    section: str = ""
    depth: int = 0


@dataclass(frozen=True, slots=True)
class ReferenceSource:
    """What the edited step can read: data from the last run (or sample payload) and its upstream.

    `upstream` lists the ids of the steps that always run before the edited step, in the order to
    show them (not the trigger: it is always offered). `in_loop` is True inside a loop body, where
    `loop.item` and `loop.index` exist. `step_labels` maps step ids to display names. `origin`
    says where `scope` came from, e.g. "last test run" or "sample payload", for the menu header.
    """

    scope: Mapping[str, Any] = field(default_factory=dict)
    upstream: Sequence[str] = ()
    in_loop: bool = False
    step_labels: Mapping[str, str] = field(default_factory=dict)
    origin: str = ""


def build_scope(
    trigger: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    loop_item: Any = None,
    loop_index: int = 0,
) -> dict[str, Any]:
    """A scope from a trigger payload (body/headers/query) and step outputs by step id.

    `loop_item` (when not None) is the sample item a loop body sees as `loop.item`.
    """
    empty: dict[str, Any] = {"body": {}, "headers": {}, "query": {}}
    scope: dict[str, Any] = {
        "trigger": dict(trigger) if trigger is not None else empty,
        "steps": {key: {"output": value} for key, value in (outputs or {}).items()},
        "config": dict(config or {}),
    }
    if loop_item is not None:
        scope["loop"] = {"item": loop_item, "index": loop_index}
    return scope


def source_for_step(
    flow: Flow,
    step_id: str,
    registry: Registry,
    scope: Mapping[str, Any],
    *,
    origin: str = "",
) -> ReferenceSource:
    """What step `step_id` of `flow` can read, with `scope` as sample data.

    Upstream are the step's ancestors (the trigger and any loop whose body holds the step left
    out: a loop's output exists only once it is done), in run order. Inside a loop body,
    `loop.item` is sampled by evaluating the loop's list input (`items`, else the first input that
    evaluates to a list) against `scope`, unless `scope` already has a `loop`.
    """
    graph = to_graph(flow)
    if step_id not in graph:
        return ReferenceSource(scope=scope, origin=origin)
    steps = {s.id: s for s in flow.steps}

    def is_loop(step: Step) -> bool:
        if step.id == flow.trigger.id:
            return False
        try:
            cls = registry.action(step.action)
        except LookupError:
            return False
        return issubclass(cls, Action) and tuple(cls.ports) == LOOP_PORTS

    bodies = loop_bodies(graph, is_loop, flow.edges)
    enclosing = {loop for loop, body in bodies.items() if step_id in body}
    ancestors = nx.ancestors(graph, step_id) - {flow.trigger.id} - enclosing
    try:
        ordered = [n for n in nx.topological_sort(graph) if n in ancestors]
    except nx.NetworkXUnfeasible:  # a cycle while editing: validation reports it
        ordered = [s.id for s in flow.steps if s.id in ancestors]
    owner = loop_owners(bodies).get(step_id)
    sample = dict(scope)
    if owner is not None and "loop" not in sample:
        items = _loop_items(steps[owner], scope)
        if items:
            sample["loop"] = {"item": items[0], "index": 0, "count": len(items)}
    return ReferenceSource(
        scope=sample,
        upstream=ordered,
        in_loop=owner is not None,
        step_labels={s.id: s.label for s in flow.steps},
        origin=origin,
    )


def _loop_items(loop: Step, scope: Mapping[str, Any]) -> list[Any] | None:
    candidates = [loop.inputs["items"]] if "items" in loop.inputs else list(loop.inputs.values())
    for value in candidates:
        try:
            rendered = render(value, scope, PREVIEW_LIMITS)
        except Exception:  # no sample, or the expression fails on it: no loop.item sample
            continue
        if isinstance(rendered, list):
            return rendered
    return None


# --- paths -------------------------------------------------------------------------------------


def join_path(base: str, key: str | int) -> str | None:
    """`base.key` in JSONata: `[0]` for list indices, backticks for keys that are not names.

    None when the key cannot be written as a JSONata path (it contains a backtick).
    """
    if isinstance(key, int):
        return f"{base}[{key}]"
    if _IDENTIFIER.fullmatch(key) and key not in _KEYWORDS:
        return f"{base}.{key}"
    if "`" in key or not key:
        return None
    return f"{base}.`{key}`"


def describe(value: Any, limit: int = 60) -> str:
    """A one-line rendering of a sample value for menus and previews, cut at `limit` characters."""
    if isinstance(value, dict):
        text = "{…}" if value else "{}"
        if value and len(value) <= 8:
            text = "{" + ", ".join(value) + "}"
    elif isinstance(value, list) and value and all(_scalar(v) for v in value):
        text = json.dumps(value, ensure_ascii=False, default=str)  # e.g. ["bug", "ui"]
        count = f"[{len(value)} item{'s' if len(value) != 1 else ''}]"
        text = text if len(text) <= limit else count
    elif isinstance(value, list):
        text = f"[{len(value)} item{'s' if len(value) != 1 else ''}]"
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


class _Walker:
    """Flattens a JSON value into references, bounded in depth, keys per object and total count."""

    def __init__(self, max_depth: int, max_keys: int, max_references: int) -> None:
        self.max_depth = max_depth
        self.max_keys = max_keys
        self.max_references = max_references
        self.out: list[Reference] = []

    @property
    def full(self) -> bool:
        return len(self.out) >= self.max_references

    def add(self, path: str, label: str, value: Any, section: str, depth: int) -> None:
        if not self.full:
            self.out.append(Reference(path, label, value, section, depth))

    def walk(self, path: str, label: str, value: Any, section: str, depth: int = 0) -> None:
        self.add(path, label, value, section, depth)
        if depth >= self.max_depth or self.full:
            return
        if isinstance(value, dict):
            for key in list(value)[: self.max_keys]:
                child = join_path(path, str(key))
                if child is not None:
                    self.walk(child, str(key), value[key], section, depth + 1)
        elif isinstance(value, list) and value:
            # Each field of the items twice: of every item (`labels.name[]`: JSONata maps the path
            # over the list; `[]` keeps a list of one a list, so the preview's type is the run's)
            # and of the first item (`labels[0].name`).
            self.every(path, value, section, depth + 1)
            child = join_path(path, 0)
            assert child is not None
            self.walk(child, "first item [0]", value[0], section, depth + 1)

    def every(self, path: str, items: list[Any], section: str, depth: int) -> None:
        """The fields of the objects in `items`, each as a path mapped over every item."""
        keys = dict.fromkeys(k for item in items if isinstance(item, dict) for k in item)
        for key in list(keys)[: self.max_keys]:
            child = join_path(path, str(key))
            if child is None or self.full:
                continue
            values = [item[key] for item in items if isinstance(item, dict) and key in item]
            # JSONata flattens the values of a mapped path one level, as the preview shows.
            flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
            self.add(f"{child}[]", f"{key} (every item)", flat, section, depth)
            if depth < self.max_depth and any(isinstance(v, dict) for v in flat):
                self.every(child, flat, section, depth + 1)


def reference_paths(
    scope: Mapping[str, Any],
    upstream: Iterable[str],
    *,
    config: Sequence[ConfigVariable] = (),
    in_loop: bool = False,
    step_labels: Mapping[str, str] | None = None,
    max_depth: int = 6,
    max_keys: int = 100,
    max_references: int = 2000,
) -> list[Reference]:
    """Every path a template in the edited step can read, with a sample value from `scope`.

    In order: the trigger's fields, each upstream step's output fields (only the steps listed in
    `upstream`, in that order), config variables (declared ones; secret values masked) and, inside
    a loop body, `loop.item...` and `loop.index`. Objects are flattened up to `max_depth` levels
    below each root and `max_keys` keys each; a list contributes the list itself, the fields of
    every item (`labels.name[]`: the list of each item's name, a list even of one) and its first
    item (`labels[0]`, then `labels[0].name`). A step without data in `scope` still appears as
    `steps.<id>.output`.
    """
    walker = _Walker(max_depth, max_keys, max_references)
    labels = step_labels or {}
    trigger = scope.get("trigger")
    if isinstance(trigger, dict) and trigger:
        for key, value in trigger.items():
            path = join_path("trigger", str(key))
            if path is not None:
                walker.walk(path, str(key), value, "Trigger")
    else:
        for key in ("body", "headers", "query"):
            walker.add(f"trigger.{key}", key, None, "Trigger", 0)
    steps = scope.get("steps")
    steps = steps if isinstance(steps, dict) else {}
    for step_id in upstream:
        base = join_path("steps", step_id)
        if base is None:
            continue
        section = labels.get(step_id) or step_id
        record = steps.get(step_id)
        if isinstance(record, dict) and "output" in record:
            walker.walk(f"{base}.output", "output", record["output"], section)
        else:
            walker.add(f"{base}.output", "output (not run yet)", None, section, 0)
    config_values = scope.get("config")
    config_values = config_values if isinstance(config_values, dict) else {}
    for variable in config:
        value = config_values.get(variable.key, variable.default)
        if variable.type == "secret":
            walker.add(f"config.{variable.key}", variable.key, MASK, "Config", 0)
        else:
            walker.walk(f"config.{variable.key}", variable.key, value, "Config")
    if in_loop:
        loop = scope.get("loop")
        loop = loop if isinstance(loop, dict) else {}
        walker.walk("loop.item", "item", loop.get("item"), "Loop")
        walker.add("loop.index", "index", loop.get("index", 0), "Loop", 0)
    return walker.out


def insert_reference(text: str | None, path: str, caret: int | None = None) -> tuple[str, int]:
    """`text` with `{{ path }}` inserted at `caret` (appended when None); returns text and caret."""
    current = text or ""
    token = f"{{{{ {path} }}}}"
    at = len(current) if caret is None else max(0, min(caret, len(current)))
    return current[:at] + token + current[at:], at + len(token)


# --- previews ----------------------------------------------------------------------------------


def contains_template(value: Any) -> bool:
    """True when a `{{` template occurs anywhere inside `value`."""
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, dict):
        return any(contains_template(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_template(v) for v in value)
    return False


def template_error(value: Any) -> str | None:
    """Why the templates inside `value` do not compile (message and hint), or None if they do."""
    try:
        compile_value(value)
    except FlowyardError as exc:
        return f"{exc.message}. {exc.hint}".strip() if exc.hint else exc.message
    return None


def preview_scope(source: ReferenceSource, config: Sequence[ConfigVariable] = ()) -> dict[str, Any]:
    """The scope previews evaluate against: upstream steps only, config defaults, secrets masked."""
    scope = dict(source.scope)
    steps = scope.get("steps")
    steps = steps if isinstance(steps, dict) else {}
    scope["steps"] = {k: steps[k] for k in source.upstream if k in steps}
    values = scope.get("config")
    values = dict(values) if isinstance(values, dict) else {}
    for variable in config:
        if variable.type == "secret":
            values[variable.key] = MASK
        else:
            values.setdefault(variable.key, variable.default)
    scope["config"] = values
    if not source.in_loop:
        scope.pop("loop", None)
    return {k: v for k, v in scope.items() if k in _SECTIONS or k == "execution"}


@dataclass(frozen=True, slots=True)
class Preview:
    """What a templated input resolves to: `text` to show, `ok` False for an error or warning."""

    text: str
    ok: bool = True
    value: Any = None
    empty: tuple[str, ...] = ()
    """Paths the template reads that hold nothing in the scope (a typo, or absent here)."""


def preview(
    value: Any,
    scope: Mapping[str, Any],
    upstream: Iterable[str] | None = None,
    *,
    limits: ExpressionLimits = PREVIEW_LIMITS,
    max_chars: int = 300,
) -> Preview | None:
    """Evaluate the templates in `value` against `scope`; None when `value` holds no template.

    With `upstream` given, reading a step that does not run before this one is reported instead
    of evaluated (it would read nothing). Errors never raise: they become the preview's text.
    """
    if not contains_template(value):
        return None
    if upstream is not None:
        allowed = set(upstream)
        try:
            missing = sorted(step_references(value) - allowed)
        except FlowyardError:
            missing = []
        if missing:
            names = ", ".join(f"steps.{m}" for m in missing)
            return Preview(
                f"Reads {names}, which does not run before this step. Connect it upstream or "
                "pick another reference.",
                ok=False,
            )
    try:
        result = render(value, scope, limits)
    except FlowyardError as exc:
        return Preview(exc.message, ok=False)
    except Exception as exc:  # a preview must never break the form
        return Preview(f"Cannot preview: {exc}", ok=False)
    try:
        text = json.dumps(result, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = str(result)
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return Preview(text, ok=True, value=result, empty=tuple(_empty_paths(value, scope, limits)))


_PLAIN_PATH = re.compile(
    r"(?:trigger|steps|config|loop)(?:\.(?:[A-Za-z_]\w*|`[^`]+`)|\[\d*\])+", re.ASCII
)


def _empty_paths(value: Any, scope: Mapping[str, Any], limits: ExpressionLimits) -> list[str]:
    """The plain paths (`{{ trigger.body.issue.tittle }}`) in `value` that read nothing from
    `scope`; a step's output is checked only once the step has run."""
    found: list[str] = []
    if isinstance(value, dict):
        for item in value.values():
            found.extend(_empty_paths(item, scope, limits))
    elif isinstance(value, list):
        for item in value:
            found.extend(_empty_paths(item, scope, limits))
    elif isinstance(value, str) and "{{" in value:
        found_steps = scope.get("steps")
        steps = found_steps if isinstance(found_steps, dict) else {}
        for part in split(value, lenient=True):
            if not isinstance(part, Hole) or not _PLAIN_PATH.fullmatch(part.expression):
                continue
            root = part.expression.split(".")[:2]
            if root[0] == "steps" and (len(root) < 2 or root[1] not in steps):
                continue  # not run yet: the preview says so where it matters
            if _misses(part.expression, scope, limits) and part.expression not in found:
                found.append(part.expression)
    return found


_LAST_SEGMENT = re.compile(r"(?:\.(?:[A-Za-z_]\w*|`[^`]+`)|\[\d*\])$", re.ASCII)


def _misses(path: str, scope: Mapping[str, Any], limits: ExpressionLimits) -> bool:
    """Whether `path` reads nothing where the data has something: the nearest part of it that
    holds a value is not an empty object or list (no sample data at all is not a typo)."""
    current = path
    while True:
        try:
            value = render("{{ " + current + " }}", scope, limits)
        except Exception:  # not a reading problem: the preview shows any error
            return False
        if value is not None:
            return current != path and value not in ({}, [])
        shorter = _LAST_SEGMENT.sub("", current)
        if shorter == current or "." not in shorter:
            return False
        current = shorter
