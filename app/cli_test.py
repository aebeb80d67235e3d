"""`flowyard test`: run the payload suites of integration files headless, for people and CI.

Exit codes: 0 every test passed (and coverage reached `--min-coverage`); 1 a test failed or
coverage is below the minimum; 2 the input was unusable (a file, an option, a flow that fails
validation, no tests at all).
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli import (
    EXIT_FAILED,
    EXIT_OK,
    UsageProblem,
    _exit_invalid,
    _load,
    _pairs,
    _registry,
    app,
    issue_line,
)
from components.registry import Registry
from runtime.coverage import FlowCoverage
from runtime.http import make_http_client
from runtime.model import Integration
from runtime.suites import SuiteReport, TestOutcome, run_suite, suite_config
from runtime.validation import validate_flow

__all__ = ["junit_xml", "suite_command"]

_HELP = """Run every test payload of every flow in the files, headless, and check it.

\b
Outbound HTTP is answered by each test's `responses:` and its flow's `test_responses:`
(a call with no recording fails the test, naming the call), unless --live. Each test
prints PASS or FAIL with the first mismatch: step, path, expected, got.

\b
Exit codes: 0 every test passed (and coverage reached --min-coverage); 1 a test failed,
or coverage is below the minimum; 2 a file, option or flow is invalid, or there are no tests.
"""


def _parse_connections(items: Sequence[str]) -> dict[str, dict[str, str]]:
    given: dict[str, dict[str, str]] = {}
    for target, value in _pairs(items, "--connection", "slot.field=value"):
        slot, dot, field_name = target.partition(".")
        if not dot or not field_name:
            raise UsageProblem(f"--connection '{target}=...' is not 'slot.field=value'.")
        given.setdefault(slot, {})[field_name] = value
    return given


def _check(file: Path, integration: Integration, registry: Registry, config: dict[str, Any]) -> int:
    """Validate every flow that has tests; return the number of tests. `UsageProblem` if bad."""
    errors = []
    count = 0
    for flow in integration.flows:
        if not flow.tests:
            continue
        count += len(flow.tests)
        for issue in validate_flow(flow, registry, integration):
            if issue.severity == "error":
                errors.append(issue_line(file.name, flow, issue))
    if errors:
        raise UsageProblem(f"{file.name} has invalid flows:", issues=errors)
    known = {v.key for v in integration.config}
    for key in config:
        if key not in known:
            raise UsageProblem(
                f"--config {key}: {file.name} has no config variable '{key}'.",
                f"Its config variables: {', '.join(sorted(known)) or 'none'}.",
            )
    return count


def outcome_lines(outcome: TestOutcome) -> list[str]:
    """`PASS  flow > test (3 ms)`, and for a failure the mismatch and the step's error."""
    label = f"{outcome.flow_id} > {outcome.test}"
    if outcome.passed:
        return [f"  PASS  {label} ({outcome.duration_ms:.0f} ms)"]
    lines = [f"  FAIL  {label}", f"        {outcome.failure}"]
    failed = [r for r in outcome.records if r.error is not None]
    if failed and outcome.failure is not None and failed[-1].error is not None:
        error = failed[-1].error
        if error.message not in str(outcome.failure):
            lines.append(f"        step {failed[-1].step_id} failed: {error.message}")
    return lines


def coverage_lines(coverage: FlowCoverage, outcomes: Sequence[TestOutcome]) -> list[str]:
    """One flow's coverage in total, then per payload."""
    steps = sum(1 for t in coverage.steps.values() if t)
    paths = sum(1 for t in coverage.paths.values() if t)
    lines = [
        f"  {coverage.flow_id}: {coverage.percent:g}% "
        f"(steps {steps}/{len(coverage.steps)}, paths {paths}/{len(coverage.paths)})"
    ]
    uncovered = coverage.uncovered()
    if uncovered:
        lines.append(f"    not covered: {', '.join(uncovered)}")
    for outcome in outcomes:
        if outcome.flow_id == coverage.flow_id:
            paths_text = ", ".join(outcome.covered_paths) or "none"
            lines.append(
                f"    {outcome.test}: {len(outcome.covered_steps)} steps; paths {paths_text}"
            )
    return lines


def junit_xml(reports: Sequence[tuple[str, SuiteReport]]) -> str:
    """JUnit XML: a testsuite per file, a testcase per test (classname `file.flow`)."""
    root = ET.Element("testsuites")
    for name, report in reports:
        failures = sum(not o.passed for o in report.outcomes)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=name,
            tests=str(len(report.outcomes)),
            failures=str(failures),
            errors="0",
            time=f"{sum(o.duration_ms for o in report.outcomes) / 1000:.3f}",
        )
        for outcome in report.outcomes:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{Path(name).stem}.{outcome.flow_id}",
                name=outcome.test,
                time=f"{outcome.duration_ms / 1000:.3f}",
            )
            if outcome.failure is not None:
                failure = ET.SubElement(case, "failure", message=str(outcome.failure))
                failure.text = "\n".join(outcome_lines(outcome))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


async def _run_all(
    loaded: Sequence[tuple[Path, Integration]],
    registry: Registry,
    config: dict[str, Any],
    connections: dict[str, dict[str, str]],
    live: bool,
) -> list[tuple[str, SuiteReport]]:
    reports = []
    if live:
        async with make_http_client() as http:
            for file, integration in loaded:
                report = await run_suite(
                    integration, registry, config=config, connections=connections, live=http
                )
                reports.append((file.name, report))
        return reports
    for file, integration in loaded:
        report = await run_suite(integration, registry, config=config, connections=connections)
        reports.append((file.name, report))
    return reports


def suite_command(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE", help="Integration files (YAML or JSON).")
    ],
    components_dir: Annotated[
        Path | None,
        typer.Option("--components-dir", metavar="DIR", help="Folder of custom components."),
    ] = None,
    live: Annotated[
        bool, typer.Option("--live", help="Call the real services instead of recordings.")
    ] = False,
    junit: Annotated[
        Path | None, typer.Option("--junit", metavar="FILE", help="Also write JUnit XML here.")
    ] = None,
    coverage: Annotated[
        bool, typer.Option("--coverage", help="Print path coverage per flow and per payload.")
    ] = False,
    min_coverage: Annotated[
        float | None,
        typer.Option(
            "--min-coverage",
            metavar="PERCENT",
            min=0,
            max=100,
            help="Fail (exit 1) when a flow with tests is covered less than this.",
        ),
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config", "-c", metavar="KEY=VALUE", help="Config value for every test; repeatable."
        ),
    ] = None,
    connection: Annotated[
        list[str] | None,
        typer.Option("--connection", metavar="SLOT.FIELD=VALUE", help="A credential; repeatable."),
    ] = None,
) -> None:
    try:
        registry = _registry(components_dir)
        given = dict(_pairs(config or [], "--config", "key=value"))
        creds = _parse_connections(connection or [])
        loaded = [(file, _load(file)) for file in files]
        count = sum(_check(file, i, registry, given) for file, i in loaded)
        if count == 0:
            raise UsageProblem(
                "No tests found in " + ", ".join(f.name for f in files) + ".",
                "Add a `tests:` list to a flow; `flowyard schema` shows its shape.",
            )
        for file, integration in loaded:
            if any(f.tests for f in integration.flows):
                _, missing = suite_config(integration, None, given)
                tested = [t for f in integration.flows for t in f.tests]
                if missing and any(set(missing) - set(t.config) for t in tested):
                    raise UsageProblem(
                        f"{file.name}: config {', '.join(missing)} has no value for tests.",
                        "Set it under `testing: config:` in the file, or pass --config KEY=VALUE.",
                    )
        reports = asyncio.run(_run_all(loaded, registry, given, creds, live))
    except UsageProblem as problem:
        _exit_invalid(problem, json_output=False)
    failed = below = 0
    for name, report in reports:
        typer.echo(name)
        for outcome in report.outcomes:
            for line in outcome_lines(outcome):
                typer.echo(line)
        failed += sum(not o.passed for o in report.outcomes)
    passed = sum(len(r.outcomes) for _, r in reports) - failed
    typer.echo(f"{passed} passed, {failed} failed")
    if coverage or min_coverage is not None:
        typer.echo("Coverage:")
        for name, report in reports:
            for flow_coverage in report.coverage:
                if not any(o.flow_id == flow_coverage.flow_id for o in report.outcomes):
                    continue
                lines = coverage_lines(flow_coverage, report.outcomes)
                typer.echo(f"{name} {lines[0].strip()}")
                for line in lines[1:] if coverage else []:
                    typer.echo(line)
                if min_coverage is not None and flow_coverage.percent < min_coverage:
                    below += 1
        if below:
            typer.echo(f"{below} flow{'s' * (below > 1)} below {min_coverage:g}% coverage")
    if junit is not None:
        try:
            junit.write_text(junit_xml(reports), encoding="utf-8")
        except OSError as exc:
            _exit_invalid(UsageProblem(f"--junit {junit}: {exc.strerror or exc}"), False)
    raise typer.Exit(EXIT_FAILED if failed or below else EXIT_OK)


app.command("test", help=_HELP)(suite_command)
