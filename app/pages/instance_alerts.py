"""The instance card's "Alerts" section: the last failed executions its error handling escalated.

Each line: when, the failed flow and step with the error, a link to the run, what the error flow
did (queued with a link to its run, or not run because it was the error flow that failed) and
the alert's outcome (sent, or failed with why). Data: `InstanceView.alerts`.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from app.pages.layout import status_badge, when
from app.services.instances import InstanceView

__all__ = ["alerts_section"]


def alerts_section(view: InstanceView) -> None:
    """An expansion listing `view.alerts`, newest first."""
    with ui.expansion(f"Alerts ({len(view.alerts)})").classes("w-full").mark(f"alerts-{view.name}"):
        for entry in view.alerts:
            _entry(entry)


def _entry(entry: dict[str, Any]) -> None:
    with ui.column().classes("gap-0 w-full").mark(f"alert-{entry.get('execution_id', '')}"):
        with ui.row().classes("items-center gap-2"):
            status_badge(str(entry.get("status", "failed")))
            ui.label(when(float(entry.get("at", 0))))
            step = f", step {entry['step']}" if entry.get("step") else ""
            ui.label(f"{entry.get('flow_name') or entry.get('flow_id')}{step}").classes("text-bold")
            ui.link("run", f"/executions/{entry.get('execution_id', '')}")
        if entry.get("message"):
            ui.label(str(entry["message"])).classes("text-negative text-sm")
        ui.label(_outcome(entry)).classes("text-grey-8 text-sm")


def _outcome(entry: dict[str, Any]) -> str:
    parts = []
    flow = entry.get("error_flow")
    if isinstance(flow, dict):
        status = flow.get("status")
        if status == "queued":
            parts.append(f"error flow {flow.get('flow_id')} queued")
        elif status == "not_run":
            parts.append("the error flow itself failed: not run again")
        else:
            parts.append(f"error flow {flow.get('flow_id')} is missing")
    alert = entry.get("alert")
    if isinstance(alert, dict):
        if alert.get("status") == "sent":
            parts.append(f"alert sent to {alert.get('url')} (attempt {alert.get('attempts')})")
        else:
            parts.append(f"alert to {alert.get('url')} failed: {alert.get('error')}")
    return "; ".join(parts) or "nothing configured"
