"""The test panel's rules, without drawing anything: badges, payload conversion, scope.

- `worst_status`, `badges`: one canvas badge per step from its records (a step in a loop shows
  the worst status over its iterations, `running` while any runs);
- `LiveStatuses`: the observer of one test run, passing on the badges each time a step starts or
  finishes and each finished step record;
- `parse_body`, `request_parts`, `query_pairs`: a test payload's body, headers and query, between
  the panel's editor and the payloads service;
- `reference_scope`: what templates would see, for the inspector's reference picker;
- `unrecorded_detail`: a run's detail from what it reported, when it has no record;
- `refusal_lines`: the details of a service's refusal, as lines to show.

`app.pages.testpanel` draws the panel with these and hands them plain data: the designer imports
nothing from `app` (a test pins it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from components.api import Response
from runtime.observer import ExecutionInfo, ExecutionResult, StepRecord

__all__ = [
    "LiveStatuses",
    "StatusCallback",
    "badges",
    "parse_body",
    "query_pairs",
    "reference_scope",
    "refusal_lines",
    "request_parts",
    "unrecorded_detail",
    "worst_status",
]

StatusCallback = Callable[[dict[str, str]], None]

_SEVERITY = {"skipped": 0, "succeeded": 1, "queued": 2, "cancelled": 3, "failed": 4, "crashed": 5}


def worst_status(statuses: Iterable[str]) -> str:
    """One badge for a step's records: `running` while any runs, else the worst of them."""
    found = list(statuses)
    if "running" in found:
        return "running"
    return max(found, key=lambda s: _SEVERITY.get(s, 4), default="skipped")


def badges(records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The badges of a recorded run: per step, the worst status of its records."""
    by_step: dict[str, list[str]] = {}
    for record in records:
        by_step.setdefault(record["step_id"], []).append(record["status"])
    return {step: worst_status(found) for step, found in by_step.items()}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_body(text: str) -> Any:
    """The JSON in a body editor (None when empty); ValueError naming line and column if bad."""
    if not text.strip():
        return None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    except ValueError as exc:  # NaN / Infinity, which JSON does not have
        raise ValueError(f"The body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise ValueError("The body is not valid JSON: it is nested too deeply.") from None


def request_parts(
    header_rows: Iterable[tuple[str, str]], query_rows: Iterable[tuple[str, str]]
) -> tuple[dict[str, str], dict[str, Any], list[str]]:
    """Name/value rows from the editor as a payload's `headers` and `query`, and the problems.

    Empty rows are left out. Header names are lower-cased and may not repeat; a query name that
    repeats collects its values in a list. A value needs a name.
    """
    problems: list[str] = []
    headers: dict[str, str] = {}
    for key, value in header_rows:
        if not key and not value:
            continue
        if not key:
            problems.append(f"headers: the value '{value}' has no name")
        elif key.lower() in headers:
            problems.append(f"headers: '{key}' is given twice")
        headers[key.lower()] = value
    query: dict[str, Any] = {}
    for key, value in query_rows:
        if not key and not value:
            continue
        if not key:
            problems.append(f"query: the value '{value}' has no name")
        elif key in query:
            earlier = query[key]
            query[key] = [*earlier, value] if isinstance(earlier, list) else [earlier, value]
        else:
            query[key] = value
    return headers, query, problems


def query_pairs(query: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """A payload's query as the editor's rows: one row per value of a repeated name."""
    return (
        (key, item)
        for key, value in query.items()
        for item in (value if isinstance(value, list) else [value])
    )


def reference_scope(
    records: Iterable[Mapping[str, Any]],
    payload: Mapping[str, Any] | None,
    sample: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """What templates would see, for the reference picker: `trigger` (the trigger's output in
    the last run's `records`, else the selected `payload`, else the trigger's `sample` request;
    both `{body, headers, query}`) and `steps` (outputs of the run's succeeded steps; inside
    loops the first iteration's)."""
    steps: dict[str, Any] = {}
    trigger: Any = None
    for record in records:
        if trigger is None and not record["iteration_path"]:
            trigger = record["output"]  # the trigger always finishes first
        if record["status"] == "succeeded" and record["step_id"] not in steps:
            steps[record["step_id"]] = {"output": record["output"]}
    if trigger is None:
        source: Mapping[str, Any] = payload if payload is not None else sample or {}
        trigger = {
            "body": source.get("body"),
            "headers": dict(source.get("headers") or {}),
            "query": dict(source.get("query") or {}),
            "method": "POST",
        }
    return {"trigger": trigger, "steps": steps}


def unrecorded_detail(
    execution_id: str,
    records: Iterable[StepRecord],
    *,
    status: str = "cancelled",
    duration_ms: float | None = None,
    error: Any = None,
) -> dict[str, Any]:
    """What a run reported (the defaults: it was stopped), shaped like the detail of a recorded
    execution, for a run whose record cannot be read."""
    return {
        "id": execution_id,
        "status": status,
        "duration_ms": duration_ms,
        "error": error,
        "steps": [record.to_json() for record in records],
    }


def refusal_lines(details: Any) -> list[str]:
    """A service refusal's `details` as sentences: `field: problem`, or each listed problem
    (a validation issue as its message and hint, which name the step and input), never as the
    raw data."""
    if isinstance(details, Mapping):
        lines: list[str] = []
        for key, value in details.items():
            if isinstance(value, list | Mapping):
                lines.extend(refusal_lines(value))
            else:
                lines.append(f"{key}: {value}")
        return lines
    if isinstance(details, list):
        return [_problem_line(item) for item in details]
    return [] if details is None else [str(details)]


def _problem_line(item: Any) -> str:
    if not isinstance(item, Mapping):
        return str(item)
    if "message" not in item:
        return "; ".join(refusal_lines(item))
    hint = str(item.get("hint") or "")
    return f"{item['message']} {hint}".strip()


class LiveStatuses:
    """The observer of one test run: badges as steps start and finish, records as they end."""

    def __init__(self, emit: StatusCallback, on_record: Callable[[StepRecord], None]) -> None:
        self._emit = emit
        self._on_record = on_record
        self.execution_id: str | None = None
        self.records: list[StepRecord] = []
        self._runs: dict[str, dict[tuple[int, ...], str]] = {}

    def statuses(self) -> dict[str, str]:
        return {step: worst_status(runs.values()) for step, runs in self._runs.items()}

    def _set(self, record: StepRecord) -> bool:
        if record.execution_id != self.execution_id:
            return False  # a called flow's steps are not on this canvas
        self._runs.setdefault(record.step_id, {})[record.iteration] = record.status.value
        self._emit(self.statuses())
        return True

    def execution_started(self, info: ExecutionInfo) -> None:
        if self.execution_id is None and info.parent_execution_id is None:
            self.execution_id = info.execution_id

    def step_started(self, record: StepRecord) -> None:
        self._set(record)

    def step_finished(self, record: StepRecord) -> None:
        if self._set(record):
            self.records.append(record)
            self._on_record(record)

    def response_ready(self, execution_id: str, response: Response) -> None:
        pass

    def execution_finished(self, result: ExecutionResult) -> None:
        pass
