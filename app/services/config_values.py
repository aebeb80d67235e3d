"""Config values and connections checked against what an integration declares (CLI and deploy).

`coerce_config` turns one value into its variable's declared type: text (from the command line
or a form) is parsed (`integer` "3", `number` "2.5", `boolean` true/false/yes/no/on/off/1/0,
`json` any JSON text), and values that already have the type (from a JSON request) are taken as
they are. `string` and `secret` variables take text only. `resolve_config` checks a whole set:
unknown keys, values of the wrong type and required variables without a value are collected, one
problem per key, and declared defaults fill in what was not given. A `None` value counts as not
given; text holding a lone surrogate (not Unicode: it can be neither stored nor encrypted) is
invalid. `check_connections` checks credentials given per connection slot. Pure functions: no
I/O, no service imports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from runtime.model import ConfigVariable, ConnectionSlot
from runtime.text import NOT_UNICODE, lone_surrogate

__all__ = [
    "ConfigErrors",
    "ConfigProblem",
    "ConfigValueError",
    "check_connections",
    "coerce_config",
    "resolve_config",
]

_EXPECTED = {
    "integer": "an integer such as 3",
    "number": "a number such as 2.5",
    "boolean": "true or false",
    "json": 'a JSON value such as {"a": 1}',
    "string": "text",
    "secret": "text",
}
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


class ConfigValueError(ValueError):
    """A value is not of its variable's type. `str()` reads "'limit' is of type integer; ..."."""

    def __init__(self, variable: ConfigVariable) -> None:
        self.key, self.type = variable.key, variable.type
        self.expected = _EXPECTED[variable.type]
        super().__init__(f"'{self.key}' is of type {self.type}; expected {self.expected}")


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    key: str
    kind: Literal["unknown", "invalid", "missing"]
    message: str


class ConfigErrors(ValueError):
    """Every problem of a set of config values, by key (`problems`), in a stable order."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.key}: {p.message}" for p in self.problems))

    def by_key(self) -> dict[str, str]:
        return {p.key: p.message for p in self.problems}

    def of_kind(self, kind: str) -> list[ConfigProblem]:
        return [p for p in self.problems if p.kind == kind]


def _from_text(variable: ConfigVariable, raw: str) -> Any:
    kind = variable.type
    if kind == "integer":
        return int(raw.strip())
    if kind == "number":
        number = float(raw)
        if not math.isfinite(number):
            raise ValueError(raw)
        return int(raw) if raw.strip().lstrip("+-").isdigit() else number
    if kind == "boolean":
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(raw)
    if kind == "json":
        return json.loads(raw, parse_constant=_no_constant)
    return raw


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _native(variable: ConfigVariable, value: Any) -> Any:
    kind = variable.type
    if kind == "json":
        json.dumps(value, allow_nan=False)  # must survive storage as JSON
        return value
    if isinstance(value, bool):
        if kind == "boolean":
            return value
        raise ValueError(value)
    if kind == "integer" and isinstance(value, int):
        return value
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "number" and isinstance(value, int | float) and math.isfinite(value):
        return value
    raise ValueError(value)


def coerce_config(variable: ConfigVariable, value: Any) -> Any:
    """`value` as the variable's declared type; `ConfigValueError` when it is not one."""
    try:
        if isinstance(value, str):
            return _from_text(variable, value)
        return _native(variable, value)
    except (ValueError, TypeError, RecursionError):
        raise ConfigValueError(variable) from None


def resolve_config(variables: Sequence[ConfigVariable], given: Mapping[str, Any]) -> dict[str, Any]:
    """Typed values for every variable given or defaulted; `ConfigErrors` lists every problem.

    Problems come in this order: unknown keys (as given), then invalid and missing values (in
    declaration order).
    """
    declared = {v.key: v for v in variables}
    names = ", ".join(declared) or "none"
    problems = [
        ConfigProblem(key, "unknown", f"there is no config variable '{key}' (declared: {names})")
        for key in given
        if key not in declared
    ]
    values: dict[str, Any] = {}
    for variable in variables:
        value = given.get(variable.key)
        if not_text := lone_surrogate(value):
            message = f"'{variable.key}' holds {not_text[1]}, {NOT_UNICODE}"
            problems.append(ConfigProblem(variable.key, "invalid", message))
        elif value is not None:
            try:
                values[variable.key] = coerce_config(variable, value)
            except ConfigValueError as exc:
                problems.append(ConfigProblem(variable.key, "invalid", str(exc)))
        elif variable.default is not None:
            values[variable.key] = variable.default
        elif variable.required:
            problems.append(ConfigProblem(variable.key, "missing", f"'{variable.key}' is required"))
    if problems:
        raise ConfigErrors(problems)
    return values


def check_connections(
    slots: Sequence[ConnectionSlot], given: Mapping[str, Any]
) -> tuple[dict[str, tuple[str, dict[str, str]]], dict[str, str]]:
    """(slot -> (type, {field: value}), problems by `connections.<slot>[.<field>]`).

    Refused: an unknown slot, a required slot not given (`None` counts as not given), a slot
    whose credentials are not a non-empty object, and values that are not non-empty text (or
    hold a lone surrogate, in the value or its name).
    """
    declared = {s.key: s for s in slots}
    names = ", ".join(declared) or "none"
    found: dict[str, tuple[str, dict[str, str]]] = {}
    problems: dict[str, str] = {}
    for key, values in given.items():
        where = f"connections.{key}"
        if key not in declared:
            problems[where] = f"there is no connection '{key}' (declared: {names})"
        elif values is None:
            continue
        elif not isinstance(values, dict) or not values:
            problems[where] = 'give its credentials as an object, e.g. {"api_key": "..."}'
        else:
            for name, value in values.items():
                if not isinstance(value, str) or not value.strip():
                    problems[f"{where}.{name}"] = "must be non-empty text"
                elif not_text := lone_surrogate({name: value}):
                    problems[f"{where}.{name}"] = f"holds {not_text[1]}, {NOT_UNICODE}"
            found[key] = (declared[key].type, dict(values))
    for slot in slots:
        if slot.required and given.get(slot.key) is None:
            problems[f"connections.{slot.key}"] = f"connection '{slot.key}' is required"
    return found, problems
