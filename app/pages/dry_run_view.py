"""A deploy or tear-down dry run's report, drawn on the deploy form (`app.pages.instances`).

Three parts: the runs in order with their status and error, the calls that would be made
(method, URL, body with secrets masked, and whether a recording or the echo stub answered),
and the state keys that would be set or deleted. Data: `app.services.dry_run.DryRunReport`.
"""

from __future__ import annotations

import json

from nicegui import ui

from app.pages.layout import status_badge
from app.services.dry_run import DryRunReport

__all__ = ["dry_run_report"]


def dry_run_report(report: DryRunReport) -> None:
    """The report in a card marked `dry-run-report`."""
    what = "deploy" if report.event == "deploy" else "tear-down"
    with ui.card().classes("w-full").mark("dry-run-report"):
        ui.label(f"Dry run of the {what}: nothing was sent or stored.").classes("text-subtitle1")
        for run in report.runs:
            with ui.row().classes("items-center gap-2"):
                status_badge(run.status)
                ui.label(f"{run.kind} {run.flow_id}")
                if run.error:
                    ui.label(str(run.error.get("message", ""))).classes("text-negative")
        ui.label(f"Calls that would be made ({len(report.calls)})").classes("text-bold")
        for call in report.calls:
            with ui.column().classes("gap-0").mark(f"dry-run-call-{call.step_id}"):
                ui.label(f"{call.method} {call.url} → {call.status} ({call.answered_by})").classes(
                    "font-mono text-sm"
                )
                if call.body is not None:
                    ui.label(json.dumps(call.body, ensure_ascii=False)).classes(
                        "font-mono text-xs text-grey-8 break-all"
                    )
        ui.label(f"State that would be stored ({len(report.state)})").classes("text-bold")
        for change in report.state:
            value = json.dumps(change.value) if change.change == "set" else "(deleted)"
            ui.label(f"{change.scope}.{change.key} = {value}").classes("font-mono text-sm").mark(
                f"dry-run-state-{change.key}"
            )
