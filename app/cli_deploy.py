"""`flowyard deploy FILE --dry-run`: what deploying (or tearing down) an integration file would do.

Runs the deploy hooks and flows (`--teardown`: the tear-down flows and hooks) headless through
`app.services.dry_run.dry_run`: outbound calls are answered by `--responses` and the flows'
`test_responses`, else by a stub echoing the request; nothing is sent and nothing is stored.
Prints each run, the calls that would be made and the state that would be kept.

Exit codes: 0 every run succeeded; 1 a run failed; 2 the file, an option or a flow is invalid.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import typer
import yaml

from app.cli import (
    EXIT_FAILED,
    EXIT_OK,
    ComponentsDirOption,
    ConfigOption,
    ConnectionEnvOption,
    ConnectionOption,
    UsageProblem,
    _exit_invalid,
    _load,
    _registry,
    app,
    config_values,
    connection_values,
    connections_from_env,
    issue_line,
    summarize,
)
from app.services.dry_run import DryRunReport, StateKey, dry_run
from app.services.environment import InstanceEnvironment
from app.services.environment import config_values as flow_config
from app.services.lifecycle import deploy_sequence, teardown_sequence
from components.registry import Registry
from runtime.model import Integration
from runtime.recorded import RecordedExchange
from runtime.redaction import secret_values
from runtime.validation import validate_flow

__all__ = ["deploy_command", "report_lines"]

_HELP = """Dry-run the deploy (or, with --teardown, the tear-down) of an integration file.

\b
The deploy hooks and flows run headless; every outbound call is answered by --responses
(a JSON or YAML list of {request: {method, url, body?}, response: {status, body}}) or the
flows' test_responses, else by a stub that echoes the request body. Nothing is sent and
nothing is stored. Prints the runs, the calls that would be made (secrets masked) and the
state that would be stored.

\b
Exit codes: 0 every run succeeded; 1 a run failed; 2 the file, an option or a flow is
invalid. Only --dry-run is supported: deploy for real with POST /api/instances or the
Instances page of `flowyard serve`.
"""


@app.command(name="deploy", help=_HELP)
def deploy_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Integration file (YAML or JSON).")],
    dry_run_flag: Annotated[
        bool, typer.Option("--dry-run", help="Run nothing for real (required).")
    ] = False,
    teardown: Annotated[
        bool, typer.Option("--teardown", help="Dry-run the tear-down instead of the deploy.")
    ] = False,
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="Instance name.")] = "dry-run",
    config: ConfigOption = None,
    connection: ConnectionOption = None,
    connection_env: ConnectionEnvOption = None,
    responses: Annotated[
        Path | None,
        typer.Option("--responses", metavar="FILE", help="Recorded responses (JSON or YAML)."),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            metavar="FILE",
            help='Instance state to start from (JSON): {"instance": {key: value}, FLOW: {...}}.',
        ),
    ] = None,
    base_url: Annotated[
        str,
        typer.Option("--base-url", metavar="URL", help="Base of the placeholder webhook URLs."),
    ] = "http://127.0.0.1:8080",
    components_dir: ComponentsDirOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON document.")
    ] = False,
) -> None:
    try:
        if not dry_run_flag:
            raise UsageProblem(
                "flowyard deploy runs only with --dry-run.",
                "Deploy for real with POST /api/instances or the Instances page of flowyard serve.",
            )
        integration = _load(file)
        registry = _registry(components_dir)
        event: Literal["deploy", "delete"] = "delete" if teardown else "deploy"
        _check_flows(file, integration, registry, teardown)
        env = _environment(
            integration,
            name,
            base_url,
            config or [],
            [*(connection or []), *connections_from_env(connection_env or [])],
        )
        recorded = _responses(responses) if responses is not None else []
        start = _state(state) if state is not None else {}
        report = asyncio.run(dry_run(registry, env, event, responses=recorded, state=start))
    except UsageProblem as problem:
        _exit_invalid(problem, json_output)
    if json_output:
        typer.echo(report.model_dump_json(indent=2))
    else:
        for line in report_lines(report, integration.name):
            typer.echo(line)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED)


def report_lines(report: DryRunReport, integration: str) -> list[str]:
    """The report as text: runs, calls, state."""
    what = "deploy" if report.event == "deploy" else "tear-down"
    lines = [
        f"Dry run of the {what} of '{report.instance}' ({integration}): nothing was sent or stored."
    ]
    lines.append(f"Runs ({len(report.runs)}):")
    for run in report.runs:
        failure = f": {run.error['message']}" if run.error else ""
        lines.append(f"  {run.flow_id} ({run.kind}) {run.status}{failure}")
    lines.append(f"Calls that would be made ({len(report.calls)}):")
    for call in report.calls:
        body = f" {summarize(call.body)}" if call.body is not None else ""
        lines.append(
            f"  {call.method} {call.url}{body} -> {call.status} ({call.answered_by}) "
            f"[{call.flow_id}.{call.step_id}]"
        )
    lines.append(f"State that would be stored ({len(report.state)}):")
    for change in report.state:
        value = summarize(change.value) if change.change == "set" else "(deleted)"
        lines.append(f"  {change.scope}.{change.key} = {value}")
    return lines


def _check_flows(file: Path, integration: Integration, registry: Registry, teardown: bool) -> None:
    sequence = (teardown_sequence if teardown else deploy_sequence)(registry, integration)
    errors = [
        issue_line(file.name, flow, issue)
        for flow, hook in sequence
        if hook is None
        for issue in validate_flow(flow, registry, integration)
        if issue.severity == "error"
    ]
    if errors:
        raise UsageProblem(f"{file.name}: the lifecycle flows are invalid:", issues=errors)


def _environment(
    integration: Integration,
    name: str,
    base_url: str,
    config: list[str],
    connections: list[str],
) -> InstanceEnvironment:
    values, secret = flow_config(integration.config, config_values(integration, config))
    creds = connection_values(integration, connections)
    given = [v.get_secret_value() for c in creds.values() for v in c.values.values()]
    base = base_url.rstrip("/")
    return InstanceEnvironment(
        instance_id="dry-run",
        name=name,
        status="deploying",
        enabled=True,
        created_at=time.time(),
        integration=integration,
        flows={f.id: f for f in integration.flows},
        config=values,
        connections=creds,
        webhook_urls={f.id: f"{base}/webhooks/dry-run-{f.id}" for f in integration.flows},
        secrets=secret_values([*secret, *given]),
    )


def _read(path: Path, option: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise UsageProblem(f"{option} {path}: cannot be read: {exc}") from None


def _responses(path: Path) -> list[RecordedExchange]:
    data = _read(path, "--responses")
    if not isinstance(data, list):
        raise UsageProblem(f"--responses {path}: expected a list of {{request, response}}.")
    try:
        return [RecordedExchange.model_validate(item) for item in data]
    except pydantic.ValidationError as exc:
        problem = exc.errors()[0]
        where = " > ".join(str(p) for p in problem["loc"])
        raise UsageProblem(f"--responses {path}: {where}: {problem['msg']}.") from None


def _state(path: Path) -> dict[StateKey, Any]:
    data = _read(path, "--state")
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UsageProblem(
            f"--state {path}: expected an object of scopes, e.g. "
            '{"instance": {"subscription": "sub-1"}}.'
        )
    return {
        (None if scope == "instance" else scope, str(key)): value
        for scope, keys in data.items()
        for key, value in keys.items()
    }
