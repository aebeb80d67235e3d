"""The `flowyard` command line: run a flow headless, validate integration files, print the schema.

Exit codes: 0 success; 1 the flow ran and failed (or crashed); 2 the input was unusable (file,
flow name, payload, option, or a flow that fails validation). User mistakes are reported on
stderr in one or two lines, never with a traceback.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import SecretStr

from app.services.config_values import ConfigErrors, resolve_config
from components.api import Connection, TriggerEvent
from components.registry import Registry, default_registry
from runtime.context import RunContext
from runtime.engine import run_flow
from runtime.errors import FlowValidationError, Issue
from runtime.files import (
    IntegrationFileError,
    integration_schema,
    load_integration,
    parse_document,
)
from runtime.http import make_http_client
from runtime.model import Flow, Integration
from runtime.observer import ExecutionResult, MemoryRecorder, Status, StepRecord
from runtime.validation import validate_flow

__all__ = ["app", "main"]

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
_ENVELOPE_KEYS = frozenset({"body", "headers", "query", "method"})
_SUMMARY_CHARS = 80

app = typer.Typer(
    name="flowyard",
    help="Flowyard: design, run and deploy event-driven integrations.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


class UsageProblem(Exception):
    """Something the user gave cannot be used: exit 2 with `message`, `hint` and any `issues`."""

    def __init__(self, message: str, hint: str = "", issues: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.issues = list(issues)


def main() -> None:
    """Entry point of the `flowyard` script."""
    importlib.import_module("app.cli_server")  # registers serve, import and export on `app`
    importlib.import_module("app.cli_components")  # registers `component ...`
    importlib.import_module("app.cli_test")  # registers test
    importlib.import_module("app.cli_deploy")  # registers deploy (--dry-run)
    importlib.import_module("app.cli_replay")  # registers replay (--draft)
    app(prog_name="flowyard")


def _err(text: str) -> None:
    typer.echo(text, err=True)


# --- flowyard run -------------------------------------------------------------------------------

_RUN_HELP = """Run one flow of an integration file headless, printing every step.

\b
The payload file is JSON (YAML when it ends in .yaml or .yml). If its top level is an
object whose keys are among body, headers, query and method, and include "body", it is the
whole request: {"body": ..., "headers": {...}, "query": {...}, "method": "POST"}.
Otherwise the whole document is the request body. --header and --query add to (and
override) the file's; header names are lower-cased, as the webhook server passes them.

\b
Exit codes: 0 the flow succeeded; 1 it failed or crashed; 2 the file, flow name,
payload or an option is invalid, or the flow fails validation.
"""


ConfigOption = Annotated[
    list[str] | None,
    typer.Option(
        "--config",
        "-c",
        metavar="KEY=VALUE",
        help="Config variable, typed as declared; repeatable.",
    ),
]
ConnectionOption = Annotated[
    list[str] | None,
    typer.Option(
        "--connection", metavar="SLOT.FIELD=VALUE", help="A connection's credential; repeatable."
    ),
]
ConnectionEnvOption = Annotated[
    list[str] | None,
    typer.Option(
        "--connection-env",
        metavar="SLOT.FIELD=VAR",
        help="A connection's credential read from environment variable VAR (kept out of "
        "shell history); repeatable.",
    ),
]
ComponentsDirOption = Annotated[
    Path | None,
    typer.Option("--components-dir", metavar="DIR", help="Folder of custom components."),
]
"""Options `run` shares with other commands (`deploy --dry-run`, `replay`)."""


@dataclass(slots=True)
class RunRequest:
    """Everything `flowyard run` needs, parsed and checked."""

    integration: Integration
    flow: Flow
    event: TriggerEvent
    registry: Registry
    config: dict[str, Any] = field(default_factory=dict)
    connections: dict[str, Connection] = field(default_factory=dict)


@app.command(help=_RUN_HELP)
def run(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Integration file (YAML or JSON).")],
    flow: Annotated[str, typer.Option("--flow", "-f", metavar="NAME", help="Flow id or name.")],
    payload: Annotated[
        Path,
        typer.Option(
            "--payload", "-p", metavar="FILE", help="Request file: the body, or a whole request."
        ),
    ],
    header: Annotated[
        list[str] | None,
        typer.Option("--header", "-H", metavar="'NAME: VALUE'", help="Request header; repeatable."),
    ] = None,
    query: Annotated[
        list[str] | None,
        typer.Option("--query", "-q", metavar="KEY=VALUE", help="Query parameter; repeatable."),
    ] = None,
    config: ConfigOption = None,
    connection: ConnectionOption = None,
    connection_env: ConnectionEnvOption = None,
    components_dir: ComponentsDirOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of text.")
    ] = False,
) -> None:
    try:
        request = prepare_run(
            file,
            flow,
            payload,
            headers=header or [],
            query=query or [],
            config=config or [],
            connections=[*(connection or []), *connections_from_env(connection_env or [])],
            components_dir=components_dir,
        )
        result, records = asyncio.run(execute(request))
    except UsageProblem as problem:
        _exit_invalid(problem, json_output)
    except KeyboardInterrupt:
        _err("Interrupted.")
        raise typer.Exit(130) from None
    if json_output:
        typer.echo(json.dumps(result_document(result, records), indent=2, default=str))
    else:
        for record in records:
            typer.echo(step_line(record))
        typer.echo(final_line(request.flow, result))
        if result.error is not None:
            _err(f"Error: {result.error.message}")
            if result.error.hint:
                _err(f"Hint: {result.error.hint}")
    raise typer.Exit(EXIT_OK if result.status == Status.SUCCEEDED else EXIT_FAILED)


def _exit_invalid(problem: UsageProblem, json_output: bool) -> NoReturn:
    _err(f"Error: {problem.message}")
    for issue in problem.issues:
        _err(f"  {issue}")
    if problem.hint:
        _err(f"Hint: {problem.hint}")
    if json_output:
        document = {
            "status": "invalid",
            "execution_id": None,
            "steps": [],
            "response": None,
            "error": {"kind": "invalid_input", "message": problem.message, "hint": problem.hint},
            "issues": problem.issues,
        }
        typer.echo(json.dumps(document, indent=2))
    raise typer.Exit(EXIT_INVALID)


def prepare_run(
    file: Path,
    flow_ref: str,
    payload: Path,
    *,
    headers: Sequence[str] = (),
    query: Sequence[str] = (),
    config: Sequence[str] = (),
    connections: Sequence[str] = (),
    components_dir: Path | None = None,
) -> RunRequest:
    """Load and check everything a run needs; raise `UsageProblem` for anything unusable."""
    integration = _load(file)
    flow = integration.flow(flow_ref)
    if flow is None:
        available = ", ".join(
            f"{f.id} ({f.name})" if f.name and f.name != f.id else f.id for f in integration.flows
        )
        raise UsageProblem(
            f"{file.name} has no flow '{flow_ref}'.",
            f"Available flows: {available or 'none'}. Pass --flow with an id or a name.",
        )
    event = read_payload(payload)
    event = _with_request_options(event, headers, query)
    values = config_values(integration, config)
    creds = connection_values(integration, connections)
    registry = _registry(components_dir)
    issues = validate_flow(flow, registry, integration)
    for issue in issues:
        if issue.severity != "error":
            _err(f"Warning: {issue_line(file.name, flow, issue)}")
    errors = [issue_line(file.name, flow, i) for i in issues if i.severity == "error"]
    if errors:
        raise UsageProblem(
            f"Flow '{flow.label}' is invalid ({len(errors)} problem{'s' * (len(errors) > 1)}):",
            issues=errors,
        )
    return RunRequest(integration, flow, event, registry, values, creds)


async def execute(request: RunRequest) -> tuple[ExecutionResult, list[StepRecord]]:
    """Run the flow with the shared HTTP client; return the result and its step records."""
    recorder = MemoryRecorder()
    async with make_http_client() as http:
        context = RunContext(
            registry=request.registry,
            http=http,
            config=request.config,
            connections=request.connections,
            flows={f.id: f for f in request.integration.flows},
        )
        try:
            result = await run_flow(request.flow, request.event, context, recorder)
        except FlowValidationError as exc:
            raise UsageProblem(
                f"Flow '{request.flow.label}' is invalid:",
                issues=[issue_line("", request.flow, i) for i in exc.issues],
            ) from None
    return result, recorder.for_execution(result.execution_id)


def _load(file: Path) -> Integration:
    try:
        return load_integration(file)
    except IntegrationFileError as exc:
        raise UsageProblem(
            f"{file} is not a valid integration file:", exc.hint, list(exc.errors)
        ) from None


def _registry(components_dir: Path | None) -> Registry:
    if components_dir is not None and not components_dir.is_dir():
        raise UsageProblem(f"--components-dir {components_dir} is not a folder.")
    registry = default_registry(components_dir)
    for problem in registry.problems:
        _err(f"Warning: components: {problem.source}: {problem.message}")
    return registry


def read_payload(path: Path) -> TriggerEvent:
    """The request a payload file describes (see `flowyard run --help`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageProblem(f"Payload file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageProblem(f"Payload file {path} cannot be read: {exc}") from None
    try:
        data = parse_document(text, str(path))
    except IntegrationFileError as exc:
        raise UsageProblem(
            f"Payload file {exc.message}", "Fix the file; it must be valid JSON (or YAML)."
        ) from None
    if not (isinstance(data, dict) and "body" in data and data.keys() <= _ENVELOPE_KEYS):
        return _event(data, {}, {}, "POST")
    headers, query, method = data.get("headers") or {}, data.get("query") or {}, data.get("method")
    if not isinstance(headers, dict) or not all(
        isinstance(v, str | int | float | bool) for v in headers.values()
    ):
        raise UsageProblem(f"Payload file {path}: 'headers' must map header names to text.")
    if not isinstance(query, dict):
        raise UsageProblem(f"Payload file {path}: 'query' must map parameter names to values.")
    if method is not None and not (isinstance(method, str) and method.isalpha()):
        raise UsageProblem(f"Payload file {path}: 'method' must be an HTTP method such as POST.")
    header_text = {str(k).lower(): _text(v) for k, v in headers.items()}
    return _event(data["body"], header_text, dict(query), (method or "POST").upper())


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _event(body: Any, headers: dict[str, str], query: dict[str, Any], method: str) -> TriggerEvent:
    if body is None:
        raw = b""
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = json.dumps(body, ensure_ascii=False).encode()
        headers.setdefault("content-type", "application/json")
    return TriggerEvent(body=body, headers=headers, query=query, raw_body=raw, method=method)


def _with_request_options(
    event: TriggerEvent, headers: Sequence[str], query: Sequence[str]
) -> TriggerEvent:
    merged_headers = dict(event.headers)
    for item in headers:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageProblem(f"--header '{item}' is not 'Name: value'.")
        merged_headers[name.strip().lower()] = value.strip()
    merged_query = dict(event.query)
    given: dict[str, list[str]] = {}
    for item in query:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageProblem(f"--query '{item}' is not 'key=value'.")
        given.setdefault(key, []).append(value)
    for key, values in given.items():
        merged_query[key] = values[0] if len(values) == 1 else values
    event.headers, event.query = merged_headers, merged_query
    return event


def _pairs(items: Sequence[str], option: str, example: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageProblem(f"{option} '{item}' is not '{example}'.")
        pairs.append((key, value))
    return pairs


def config_values(integration: Integration, items: Sequence[str]) -> dict[str, Any]:
    """Config values: declared defaults, overridden by `key=value` items coerced to their type."""
    given = dict(_pairs(items, "--config", "key=value"))
    try:
        return resolve_config(integration.config, given)
    except ConfigErrors as exc:
        unknown, invalid = exc.of_kind("unknown"), exc.of_kind("invalid")
        if unknown:
            key = unknown[0].key
            raise UsageProblem(
                f"--config {key}: the integration has no config variable '{key}'.",
                f"Its config variables: {', '.join(v.key for v in integration.config) or 'none'}.",
            ) from None
        if invalid:
            key = invalid[0].key
            raise UsageProblem(f"--config {key}={given[key]}: {invalid[0].message}.") from None
        missing = [p.key for p in exc.of_kind("missing")]
        raise UsageProblem(
            f"Config variable{'s' * (len(missing) > 1)} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} required.",
            "Pass " + " ".join(f"--config {k}=VALUE" for k in missing) + ".",
        ) from None


def connections_from_env(items: Sequence[str]) -> list[str]:
    """`slot.field=VAR` items as `slot.field=value` items, each value read from `VAR`."""
    resolved = []
    for target, variable in _pairs(items, "--connection-env", "slot.field=VAR"):
        value = os.environ.get(variable)
        if value is None:
            raise UsageProblem(
                f"--connection-env {target}={variable}: the environment variable '{variable}' "
                "is not set.",
                f"Export it first, e.g. read -rs {variable} && export {variable}.",
            )
        resolved.append(f"{target}={value}")
    return resolved


def connection_values(integration: Integration, items: Sequence[str]) -> dict[str, Connection]:
    """Connections from `slot.field=value` items, one `Connection` per declared slot."""
    slots = {s.key: s for s in integration.connections}
    fields: dict[str, dict[str, SecretStr]] = {}
    for target, value in _pairs(items, "--connection", "slot.field=value"):
        slot_key, dot, field_name = target.partition(".")
        if not dot or not field_name:
            raise UsageProblem(f"--connection '{target}=...' is not 'slot.field=value'.")
        if slot_key not in slots:
            names = ", ".join(slots) or "none"
            raise UsageProblem(
                f"--connection {target}: the integration has no connection '{slot_key}'.",
                f"Its connections: {names}.",
            )
        fields.setdefault(slot_key, {})[field_name] = SecretStr(value)
    missing = [s.key for s in integration.connections if s.required and s.key not in fields]
    if missing:
        raise UsageProblem(
            f"Connection{'s' * (len(missing) > 1)} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} required.",
            "Pass " + " ".join(f"--connection {k}.FIELD=VALUE" for k in missing) + ".",
        )
    return {key: Connection(key, slots[key].type, values) for key, values in fields.items()}


# --- output -------------------------------------------------------------------------------------

_STATUS_LABEL = {
    Status.SUCCEEDED: "ok",
    Status.FAILED: "FAILED",
    Status.SKIPPED: "skipped",
    Status.CANCELLED: "cancelled",
    Status.CRASHED: "CRASHED",
}


def summarize(value: Any, limit: int = _SUMMARY_CHARS) -> str:
    """One-line JSON of `value`, cut to `limit` characters."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def step_line(record: StepRecord) -> str:
    """`ok       route [0]             0.4 ms  -> remove  "remove"`: one step record."""
    status = _STATUS_LABEL.get(record.status, record.status.value)
    name = record.step_name or record.step_id
    if record.iteration:
        name += f" [{'.'.join(map(str, record.iteration))}]"
    if record.status == Status.SKIPPED:
        return f"{status:<9} {name}"
    duration = f"{record.duration_ms:.1f} ms"
    if record.attempt > 1:
        duration += f", attempt {record.attempt}"
    text = f"{status:<9} {name:<28} {duration:>10}  "
    if record.error is not None:
        text += record.error.message
        if record.error.hint:
            text += f"\n{'':<10}hint: {record.error.hint}"
        return text
    if record.port and record.port != "out":
        text += f"-> {record.port}  "
    return text + summarize(record.output)


def final_line(flow: Flow, result: ExecutionResult) -> str:
    """The last line of a human-readable run."""
    return (
        f"Flow '{flow.label}' {result.status.value} in {result.duration_ms:.0f} ms "
        f"(execution {result.execution_id})"
    )


def result_document(result: ExecutionResult, records: Sequence[StepRecord]) -> dict[str, Any]:
    """The `--json` document of a run."""
    steps = []
    for record in records:
        data = record.to_json()
        steps.append(
            {
                "id": record.step_id,
                "name": record.step_name,
                "status": data["status"],
                "attempt": record.attempt,
                "iteration": data["iteration"],
                "iteration_path": data["iteration_path"],
                "duration_ms": round(record.duration_ms, 3),
                "port": record.port,
                "input": record.input,
                "output": record.output,
                "error": data["error"],
                "logs": [{"level": line.level, "message": line.message} for line in record.logs],
            }
        )
    response = result.response
    return {
        "status": result.status.value,
        "execution_id": result.execution_id,
        "flow": result.flow_id,
        "duration_ms": round(result.duration_ms, 3),
        "steps": steps,
        "response": None
        if response is None
        else {"status": response.status, "headers": dict(response.headers), "body": response.body},
        "error": None
        if result.error is None
        else {
            "kind": result.error.kind,
            "message": result.error.message,
            "hint": result.error.hint,
            "step": result.error.step,
        },
    }


def issue_line(source: str, flow: Flow, issue: Issue) -> str:
    """`file: flow > step: message hint` (file and step left out when unknown)."""
    where = " > ".join(p for p in (flow.id, issue.step) if p)
    prefix = f"{source}: " if source else ""
    return f"{prefix}{where}: {issue}"


# --- flowyard validate / schema -------------------------------------------------------------------


@app.command()
def validate(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE", help="Integration files (YAML or JSON).")
    ],
    components_dir: Annotated[
        Path | None,
        typer.Option("--components-dir", metavar="DIR", help="Folder of custom components."),
    ] = None,
) -> None:
    """Check integration files: shape, then every flow's graph, components and inputs.

    Prints every problem as `file: flow > step: message hint`. Warnings are printed but do
    not fail. Exit 0 when every file is valid, 2 otherwise.
    """
    try:
        registry = _registry(components_dir)
    except UsageProblem as problem:
        _exit_invalid(problem, json_output=False)
    invalid = 0
    for file in files:
        try:
            integration = load_integration(file)
        except IntegrationFileError as exc:
            invalid += 1
            for error in exc.errors:
                typer.echo(f"{error}")
            continue
        errors = warnings = 0
        for flow in integration.flows:
            for issue in validate_flow(flow, registry, integration):
                is_error = issue.severity == "error"
                errors += is_error
                warnings += not is_error
                label = "" if is_error else "warning: "
                typer.echo(f"{label}{issue_line(file.name, flow, issue)}")
        invalid += errors > 0
        verdict = "invalid" if errors else "valid"
        typer.echo(
            f"{file.name}: {verdict} ({len(integration.flows)} flow"
            f"{'s' * (len(integration.flows) != 1)}, {errors} error{'s' * (errors != 1)}, "
            f"{warnings} warning{'s' * (warnings != 1)})"
        )
    raise typer.Exit(EXIT_INVALID if invalid else EXIT_OK)


@app.command()
def schema() -> None:
    """Print the JSON Schema of an integration file."""
    typer.echo(json.dumps(integration_schema(), indent=2))
