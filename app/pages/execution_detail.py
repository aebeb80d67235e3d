"""The page of one execution, `/executions/{id}`, over `app.services.executions`.

It shows the execution's status, flow, instance, duration, recovered flag and error; the flow
drawn read-only with each step's status; every step record (loop iterations included) where
selecting one shows its input, output, logs, duration, attempt and error; the request; and
Replay, which queues the request again and opens the new execution; Replay on draft, which opens
the diff view (`app.pages.replay_view`); and Save as test. Executions of a test instance are
labelled so. A run still going is followed until it ends.

`app.pages.executions` registers `execution_page` (with the list), so importing that one module
registers both pages. `Names`, the display names of flows and instances, serves both pages.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from nicegui import ui

from app.pages.layout import (
    duration,
    frame,
    hub,
    show_error,
    status_badge,
    steps_beside_detail,
    when,
)
from app.pages.replay_view import save_as_test_dialog
from app.services import executions, instances, integrations
from app.services.editor import auto_layout
from app.services.errors import NotFound, ServiceError
from designer.canvas import FlowCanvas

__all__ = ["Names", "execution_page", "step_statuses"]

_FINISHED = ("succeeded", "failed", "cancelled", "crashed")


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@dataclass
class Names:
    """Display names of flows (by flow id, across integrations) and instances (by id)."""

    flows: dict[str, str] = field(default_factory=dict)
    instances: dict[str, str] = field(default_factory=dict)
    tests: set[str] = field(default_factory=set)
    """Ids of test instances (they follow the draft)."""

    @classmethod
    async def load(cls) -> Names:
        owners: dict[str, list[str]] = {}
        labels: dict[str, str] = {}
        for item in await integrations.list_integrations(hub()):
            for flow in item.flows:
                owners.setdefault(flow.id, []).append(item.name)
                labels.setdefault(flow.id, flow.name or flow.id)
        flows = {fid: f"{labels[fid]} ({', '.join(names)})" for fid, names in owners.items()}
        listed = await instances.list_instances(hub())
        deployed = {i.id: i.name for i in listed}
        return cls(flows=flows, instances=deployed, tests={i.id for i in listed if i.test})

    def flow(self, flow_id: str) -> str:
        return self.flows.get(flow_id, flow_id)

    def instance(self, instance_id: str | None) -> str:
        if instance_id is None:
            return "—"
        return self.instances.get(instance_id, "(deleted)")

    def instance_label(self, instance_id: str | None) -> str:
        """The instance's name, `(test instance)` after a test instance's."""
        name = self.instance(instance_id)
        return f"{name} (test instance)" if instance_id in self.tests else name


def step_statuses(steps: list[dict[str, Any]]) -> dict[str, str]:
    """One status per step for the drawing: failed if any run failed, else running, else
    succeeded if any run succeeded, else the last run's status (skipped)."""
    runs: dict[str, list[str]] = {}
    for record in steps:
        runs.setdefault(record["step_id"], []).append(record["status"])
    result: dict[str, str] = {}
    for step_id, statuses in runs.items():
        for status in ("failed", "running", "succeeded"):
            if status in statuses:
                result[step_id] = status
                break
        else:
            result[step_id] = statuses[-1]
    return result


def _facts(facts: dict[str, str], columns: int, prefix: str) -> None:
    with ui.grid(columns=columns).classes("gap-x-4 gap-y-0"):
        for key, value in facts.items():
            ui.label(key).classes("text-grey-7")
            ui.label(value).mark(f"{prefix}-{key.lower().replace(' ', '-')}")


def _error_card(error: dict[str, Any], marker: str) -> None:
    with ui.card().classes("w-full bg-red-1 text-negative").mark(marker):
        ui.label(error.get("message", "")).classes("text-bold")
        if error.get("hint"):
            ui.label(error["hint"])


def _iteration(record: dict[str, Any]) -> str:
    path = record.get("iteration_path") or []
    return " ".join(f"#{i + 1}" for i in path)


class _DetailView:
    """The detail page's step list and the selected step's record."""

    def __init__(self, detail: dict[str, Any]) -> None:
        self.steps: list[dict[str, Any]] = detail["steps"]
        self.selected: int | None = None
        self.list, self.panel = steps_beside_detail("step-list", "step-detail", "w-96")
        self._draw_list()
        self._draw_panel()

    def select_step(self, step_id: str | None) -> None:
        """Select the first record of `step_id` (from the drawing)."""
        index = next((i for i, r in enumerate(self.steps) if r["step_id"] == step_id), None)
        self.select(index)

    def select(self, index: int | None) -> None:
        self.selected = index
        self._draw_list()
        self._draw_panel()

    def _draw_list(self) -> None:
        self.list.clear()
        with self.list:
            if not self.steps:
                ui.item("No step has finished yet.").classes("text-grey-7")
            for index, record in enumerate(self.steps):
                item = ui.item(on_click=lambda i=index: self.select(i)).props(
                    f'clickable data-testid="step-row" {"active" if index == self.selected else ""}'
                )
                item.mark(f"step-row step-{record['step_id']}")
                with item:
                    with ui.item_section():
                        name = record["step_name"] or record["step_id"]
                        ui.item_label(f"{name} {_iteration(record)}".strip())
                        ui.item_label(record["action"]).props("caption")
                    with ui.item_section().props("side"):
                        status_badge(record["status"])
                        ui.item_label(duration(record["duration_ms"])).props("caption")

    def _draw_panel(self) -> None:
        self.panel.clear()
        with self.panel:
            if self.selected is None:
                ui.label("Select a step to see its input, output and logs.").classes("text-grey-7")
                return
            record = self.steps[self.selected]
            name = record["step_name"] or record["step_id"]
            with ui.row().classes("items-center gap-2"):
                ui.label(f"{name} {_iteration(record)}".strip()).classes("text-h6").mark(
                    "step-title"
                )
                status_badge(record["status"])
            facts = {
                "Step id": record["step_id"],
                "Action": record["action"],
                "Attempt": str(record["attempt"]),
                "Duration": duration(record["duration_ms"]),
                "Started": when(record["started_at"]),
                "Port": record["port"] or "—",
            }
            _facts(facts, 2, "step")
            if record["error"]:
                _error_card(record["error"], "step-error")
            for title, value in (("Input", record["input"]), ("Output", record["output"])):
                ui.label(title).classes("text-subtitle2")
                ui.code(_json_text(value), language="json").classes("w-full").mark(
                    f"step-{title.lower()}"
                )
            ui.label("Logs").classes("text-subtitle2")
            with ui.column().classes("w-full gap-0 font-mono text-sm").mark("step-logs"):
                if not record["logs"]:
                    ui.label("No log lines.").classes("text-grey-7")
                for line in record["logs"]:
                    ui.label(
                        f"{when(line.get('ts'))}  {line.get('level', '').upper():7} "
                        f"{line.get('message', '')}"
                    )


async def _replay(execution_id: str) -> None:
    try:
        new_id = await executions.replay_execution(hub(), execution_id)
    except ServiceError as exc:
        show_error(exc)
        return
    ui.notify("Replay queued.", type="positive")
    ui.navigate.to(f"/executions/{new_id}")


def _draft_buttons(detail: dict[str, Any]) -> None:
    """Replay on draft and Save as test: for a finished run that was not called by another."""
    usable = detail["status"] in _FINISHED and detail["parent_execution_id"] is None
    target = f"/executions/{detail['id']}/replay-on-draft"
    ui.button("Replay on draft", icon="difference", on_click=lambda: ui.navigate.to(target)).props(
        'data-testid="replay-on-draft-button"'
    ).tooltip(
        "Run this request on the current draft, answered by this run's recorded calls, and diff"
    ).mark("replay-on-draft-button").set_enabled(usable)
    ui.button(
        "Save as test",
        icon="playlist_add",
        on_click=lambda: save_as_test_dialog(detail["id"]).open(),
    ).props('data-testid="save-as-test-button"').mark("save-as-test-button").set_enabled(usable)


def _header(detail: dict[str, Any], names: Names, flow_name: str) -> None:
    with ui.card().classes("w-full").mark("execution-header"):
        with ui.row().classes("w-full items-center gap-3"):
            status_badge(detail["status"]).classes("text-body1").mark("execution-status")
            ui.label(flow_name).classes("text-h6").mark("execution-flow")
            if detail["recovered"]:
                ui.badge("recovered after a restart", color="warning").mark("recovered")
            if detail["instance_id"] in names.tests:
                ui.badge("test instance", color="purple-7").mark("test-instance")
            ui.space()
            ui.button(
                "Replay",
                icon="replay",
                on_click=lambda: _replay(detail["id"]),
            ).props('data-testid="replay-button"').mark("replay-button").set_enabled(
                detail["request"] is not None
            )
            _draft_buttons(detail)
        facts = {
            "Execution": detail["id"],
            "Instance": names.instance(detail["instance_id"]),
            "Started": when(detail["started_at"]),
            "Finished": when(detail["finished_at"]),
            "Duration": duration(detail["duration_ms"]),
            "Steps run": str(detail["steps_run"]),
            "Source": detail["source"] or "lifecycle (deploy or tear-down)",
            "Recovered": "yes" if detail["recovered"] else "no",
        }
        _facts(facts, 4, "execution")
        links = []
        request = detail["request"] or {}
        if request.get("replay_of"):
            links.append(("Replay of", request["replay_of"]))
        if detail["parent_execution_id"]:
            links.append(("Called by", detail["parent_execution_id"]))
        links += [("Called", child["id"]) for child in detail["children"]]
        for title, target in links:
            with ui.row().classes("gap-2"):
                ui.label(title).classes("text-grey-7")
                ui.link(target, f"/executions/{target}").mark(f"link-{target}")
        if detail["error"]:
            _error_card(detail["error"], "execution-error")


def _request(detail: dict[str, Any]) -> None:
    request = detail["request"]
    if request is None:
        return
    with ui.expansion("Request", icon="input").classes("w-full").mark("execution-request"):
        ui.label(f"{request['method']} · received {when(request['received_at'])}")
        for title, value in (("Headers", request["headers"]), ("Query", request["query"])):
            ui.label(title).classes("text-subtitle2")
            ui.code(_json_text(value), language="json").classes("w-full")
        ui.label("Body").classes("text-subtitle2")
        body = request["body"]
        with contextlib.suppress(ValueError, RecursionError):
            body = _json_text(json.loads(body))
        ui.code(body).classes("w-full").mark("request-body")


def _drawing(
    detail: dict[str, Any], flow: executions.ExecutionFlow | None, view: _DetailView
) -> None:
    if flow is None:
        ui.label("The flow this execution ran is no longer stored, so it cannot be drawn.").classes(
            "text-grey-7"
        ).mark("no-drawing")
        return
    with ui.card().classes("w-full h-80 p-0").mark("execution-drawing"):
        canvas = FlowCanvas(readonly=True).mark("execution-canvas")
        layout = flow.layout
        if any(step.id not in layout for step in flow.flow.all_steps()):
            layout = auto_layout(flow.flow, hub().registry)  # never laid out in the editor
        canvas.show(flow.flow, hub().registry, layout, fit=True)
        canvas.set_statuses(step_statuses(detail["steps"]))
        canvas.on_select(view.select_step)


class _Detail:
    """The detail page's content, redrawn while the run goes on."""

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        self.container = ui.column().classes("w-full gap-4")
        self.view: _DetailView | None = None
        self.seen: tuple[str, int] = ("", -1)

    async def draw(self) -> str:
        """Draw the execution; its status ("" when there is no such execution)."""
        try:
            try:
                detail = await executions.get_execution(hub(), self.execution_id)
            except NotFound:
                queued = await executions.queued_execution(hub(), self.execution_id)
                if queued is None:
                    raise
                detail = queued
            flow = await executions.execution_flow(hub(), self.execution_id)
        except NotFound as exc:
            self.container.clear()
            with self.container:
                ui.label(exc.message).classes("text-negative").mark("not-found")
                ui.link("All executions", "/executions")
            return ""
        names = await Names.load()
        flow_name = (
            f"{flow.flow.label} ({flow.integration} v{flow.version})"
            if flow is not None
            else names.flow(detail["flow_id"])
        )
        selected = self.view.selected if self.view is not None else None
        self.container.clear()
        with self.container:
            _header(detail, names, flow_name)
            drawing = ui.column().classes("w-full")
            self.view = _DetailView(detail)
            with drawing:
                _drawing(detail, flow, self.view)
            if selected is not None and selected < len(self.view.steps):
                self.view.select(selected)
            _request(detail)
        self.seen = (detail["status"], len(detail["steps"]))
        return self.seen[0]

    async def follow(self, timer: ui.timer) -> None:
        """Redraw when the status or the number of step records changed; stop once finished."""
        try:
            fresh = await executions.get_execution(hub(), self.execution_id)
        except NotFound:
            if await executions.queued_execution(hub(), self.execution_id) is None:
                await self.draw()  # gone (its instance was deleted): say so
                timer.deactivate()
            return  # else still waiting for a worker
        except ServiceError:
            timer.deactivate()
            return
        if (fresh["status"], len(fresh["steps"])) != self.seen:
            await self.draw()
        if fresh["status"] in _FINISHED:
            timer.deactivate()


async def execution_page(execution_id: str) -> None:
    """One execution: header, drawing with per-step status, step records, request, replay."""
    with frame("Execution"):
        detail = _Detail(execution_id)
        status = await detail.draw()
        if status not in ("", *_FINISHED):
            # Step records are stored as steps finish: follow the run until it ends.
            timer = ui.timer(1.0, lambda: detail.follow(timer))
