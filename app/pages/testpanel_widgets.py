"""What the editor's test panel draws: the payload form, a step's result, the run summary.

- `PayloadForm`: the selected test payload's name, body (JSON), headers and query, read back as
  a `PayloadUpdate` (or the problems that keep it from being saved);
- `draw_step`: one step's records from the last test run (a loop iteration at a time), with its
  status, error, input | output side by side (`app.pages.testpanel_data`, also full-window) and
  log lines, and "Run up to here";
- `draw_summary`: the run's status, duration, reused steps, response, error and execution link;
- `ask_name`, `confirm_delete`: the dialogs that name and delete a test payload;
- `PanelRoot`: the panel's container, which stops the panel's work when deleted;
- `tid`: the test id and marker every element the panel's tests look for carries.

`app.pages.testpanel` owns the state and the service calls; these only draw what it passes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from nicegui import ui

from app.pages.layout import duration, status_badge
from app.pages.testpanel_data import data_pane, remembered_splitter
from app.services import testruns
from app.services.payloads import PayloadUpdate, TestPayload
from designer.testing import parse_body, query_pairs, request_parts

__all__ = [
    "PanelRoot",
    "PayloadForm",
    "ask_name",
    "confirm_delete",
    "draw_step",
    "draw_summary",
    "tid",
]

E = TypeVar("E", bound=ui.element)


def tid(element: E, name: str) -> E:
    """Give an element a `data-testid` (browser tests) and the same marker (`user` tests)."""
    return element.props(f'data-testid="{name}"').mark(name)


class PanelRoot(ui.column):
    """The panel's container; deleting it stops the panel's background work."""

    on_delete: Callable[[], None] | None = None

    def _handle_delete(self) -> None:
        if self.on_delete is not None:
            self.on_delete()
        super()._handle_delete()


class _Pairs:
    """Editable name/value rows (headers or query parameters)."""

    def __init__(self, title: str, testid: str, on_change: Callable[[], None]) -> None:
        self._testid = testid
        self._noun = {"Headers": "header", "Query": "query parameter"}.get(title, title.lower())
        self._on_change = on_change
        self._rows: list[tuple[ui.input, ui.input, ui.row]] = []
        with ui.column().classes("w-full gap-0"):
            with ui.row().classes("items-center gap-1"):
                ui.label(title).classes("text-caption text-bold")
                tid(
                    ui.button(icon="add", on_click=self._add_clicked).props("flat dense round"),
                    f"{testid}-add",
                ).tooltip(f"Add a {self._noun}")
            self._column = tid(ui.column().classes("w-full gap-0"), testid)

    def set(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._column.clear()
        self._rows.clear()
        for key, value in pairs:
            self._add(key, value)

    def pairs(self) -> list[tuple[str, str]]:
        return [(k.value.strip(), v.value or "") for k, v, _ in self._rows]

    def _add_clicked(self) -> None:
        self._add("", "")
        self._on_change()

    def _add(self, key: str, value: str) -> None:
        with self._column, ui.row().classes("w-full items-center gap-1 no-wrap") as row:
            name = ui.input(value=key, placeholder="name", on_change=self._on_change)
            tid(name.props("dense").classes("w-1/3"), f"{self._testid}-key")
            text = ui.input(value=value, placeholder="value", on_change=self._on_change)
            tid(text.props("dense").classes("grow"), f"{self._testid}-value")
            remove = ui.button(icon="close", on_click=lambda: self._remove(row))
            remove.props("flat dense round").tooltip(f"Remove this {self._noun}")
        self._rows.append((name, text, row))

    def _remove(self, row: ui.row) -> None:
        self._rows = [entry for entry in self._rows if entry[2] is not row]
        row.delete()
        self._on_change()


class PayloadForm:
    """The selected test payload's editor, drawn in the current container.

    `empty` is the label to show instead when there is no payload. `on_change` is called on every
    edit (filling the form calls it too), `on_save` by the Save button.
    """

    def __init__(
        self, on_change: Callable[[], None], on_save: Callable[[], Awaitable[bool]]
    ) -> None:
        self.empty = ui.label(
            "No test payload yet: create one, start from the trigger's sample, or listen for a "
            "real request."
        ).classes("text-grey-7")
        with ui.column().classes("w-full gap-1") as self.element:
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                self.name = tid(
                    ui.input("Name", on_change=on_change).props("dense").classes("grow"),
                    "payload-name",
                )
                self.unsaved = ui.label("unsaved").classes("text-caption text-warning")
                tid(ui.button("Save", icon="save", on_click=on_save), "payload-save").props(
                    "dense flat"
                )
            ui.label("Body (JSON)").classes("text-caption text-bold")
            self.body = tid(
                ui.codemirror("", language="JSON", indent="  ", on_change=on_change),
                "payload-body",
            ).classes("w-full max-h-64")
            self.body_error = tid(ui.label("").classes("text-negative text-sm"), "body-error")
            self.headers = _Pairs("Headers", "payload-headers", on_change)
            self.query = _Pairs("Query", "payload-query", on_change)

    def fill(self, payload: TestPayload) -> None:
        """Show `payload` in the form."""
        self.name.value = payload.name
        body = payload.body
        self.body.value = "" if body is None else json.dumps(body, indent=2)
        self.headers.set(payload.headers.items())
        self.query.set(query_pairs(payload.query))

    def read(self) -> PayloadUpdate | list[str]:
        """The form as changes to the payload, or the problems (a bad body shows under it too)."""
        try:
            body = parse_body(self.body.value or "")
        except ValueError as exc:
            self.body_error.set_text(str(exc))
            return [str(exc)]
        self.body_error.set_text("")
        headers, query, problems = request_parts(self.headers.pairs(), self.query.pairs())
        if problems:
            return problems
        return PayloadUpdate(name=self.name.value, body=body, headers=headers, query=query)


async def ask_name(title: str, value: str) -> str | None:
    """Ask for a test payload's name in a dialog, `value` filled in; None when cancelled."""
    with ui.dialog() as dialog, ui.card().classes("min-w-[20rem]"):
        ui.label(title).classes("text-h6")
        name = tid(ui.input("Name", value=value), "payload-name-input").classes("w-full")
        name.on("keydown.enter", lambda: dialog.submit(name.value))
        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=lambda: dialog.submit(None)).props("flat")
            tid(ui.button("OK", on_click=lambda: dialog.submit(name.value)), "payload-name-ok")
    result = await dialog
    dialog.delete()
    return result if isinstance(result, str) else None


async def confirm_delete(name: str) -> bool:
    """Ask in a dialog whether to delete the test payload `name`."""
    with ui.dialog() as dialog, ui.card():
        ui.label(f"Delete the test payload '{name}'?")
        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat")
            tid(
                ui.button("Delete", on_click=lambda: dialog.submit(True)),
                "payload-delete-confirm",
            ).props("color=negative")
    confirmed = await dialog
    dialog.delete()
    return confirmed is True


def draw_step(
    view: ui.column,
    step_id: str | None,
    records: list[dict[str, Any]],
    iteration: int,
    *,
    running: bool,
    on_iteration: Callable[[Any], None],
    run_upto: Callable[[str], Awaitable[None]] | None,
) -> int:
    """Draw in `view` the records of `step_id` among the last run's `records`, one at a time.

    `iteration` is the index of the record to show (a loop's steps have one per iteration);
    `on_iteration` receives the change event when another is chosen. `running`: the run still
    goes. `run_upto` backs the "Run up to here" button (None: no button). Returns the index shown.
    """
    view.clear()
    with view:
        if step_id is None:
            ui.label("Select a step to see its result from the last test run.").classes(
                "text-grey-7"
            )
            return iteration
        records = [r for r in records if r["step_id"] == step_id]
        if not records:
            note = "has not finished yet" if running else "did not run in the last test run"
            ui.label(f"Step '{step_id}' {note}.").classes("text-grey-7")
            return iteration
        iteration = min(iteration, len(records) - 1)
        record = records[iteration]
        with ui.row().classes("w-full items-center gap-2"):
            ui.label(record.get("step_name") or record["step_id"]).classes("text-bold")
            with tid(ui.row().classes("gap-0"), "step-status"):
                status_badge(record["status"])
            attempt = f"attempt {record['attempt']} · " if record["attempt"] > 1 else ""
            ui.label(f"{attempt}{duration(record['duration_ms'])}").classes("text-caption")
            if record.get("port"):
                ui.label(f"→ {record['port']}").classes("text-caption")
            if len(records) > 1:
                options = {
                    i: f"#{'.'.join(map(str, r['iteration_path'])) or '-'} {r['status']}"
                    for i, r in enumerate(records)
                }
                tid(
                    ui.select(options, value=iteration, on_change=on_iteration),
                    "step-iteration",
                ).props("dense options-dense").classes("min-w-[9rem]")
            ui.space()
            full = tid(ui.button(icon="open_in_full"), "step-full")
            full.on_click(lambda: _open_full(record))
            full.props("flat dense round").tooltip("Open the input and output full-window")
            if run_upto is not None and record["iteration_path"] == []:
                target = record["step_id"]
                tid(
                    ui.button("Run up to here", on_click=lambda: run_upto(target)),
                    "run-upto",
                ).props("flat dense")
        if record.get("error"):
            error = record["error"]
            with tid(ui.column().classes("w-full gap-0 text-negative"), "step-error"):
                ui.label(error.get("message", ""))
                if error.get("hint"):
                    ui.label(error["hint"]).classes("text-caption")
        _input_output(record, "step")
    return iteration


def _input_output(record: dict[str, Any], prefix: str) -> None:
    """A record's input | output side by side (a remembered split), then its log lines."""
    with remembered_splitter("test-io", value=50, limits=(15, 85)).classes("w-full") as split:
        with split.before, ui.column().classes("w-full pr-2"):
            data_pane("Input", record.get("input"), f"{prefix}-input")
        with split.after, ui.column().classes("w-full pl-2"):
            data_pane("Output", record.get("output"), f"{prefix}-output")
    ui.label("Log").classes("text-subtitle2")
    with tid(ui.column().classes("w-full gap-0 font-mono text-xs"), f"{prefix}-logs"):
        for line in record.get("logs") or []:
            ui.label(f"{line.get('level', '').upper():<7} {line.get('message', '')}")
        if not record.get("logs"):
            ui.label("(no log lines)").classes("text-grey-7")


def _open_full(record: dict[str, Any]) -> None:
    """The record's input | output in a dialog as large as the window."""
    with ui.dialog().props("maximized") as dialog, ui.card().classes("w-full h-full"):
        with ui.row().classes("w-full items-center gap-2"):
            ui.label(record.get("step_name") or record["step_id"]).classes("text-h6")
            status_badge(record["status"])
            ui.space()
            close = tid(ui.button(icon="close", on_click=dialog.close), "step-full-close")
            close.props("flat round dense").tooltip("Close (Esc)")
        _input_output(record, "step-full")
    dialog.on("hide", dialog.delete)
    dialog.open()


def draw_summary(
    summary: ui.row, detail: dict[str, Any] | None, run: testruns.TestRun | None
) -> None:
    """Draw in `summary` how the run of `detail` (an execution's detail) went; `run`, when it
    was just run, adds what it ran up to, what it reused and its response."""
    summary.clear()
    if detail is None:
        return
    with summary:
        status_badge(detail["status"])
        ui.label(duration(detail.get("duration_ms"))).classes("text-caption")
        if run is not None and run.upto:
            reused = f", reused {len(run.reused)} step(s)" if run.reused else ""
            ui.label(f"up to '{run.upto}'{reused}").classes("text-caption")
        if run is not None and run.response is not None:
            ui.label(f"responded {run.response.get('status')}").classes("text-caption")
        error = detail.get("error")
        if error:
            tid(ui.label(error.get("message", "")).classes("text-negative"), "run-error")
        tid(ui.link("Execution", f"/executions/{detail['id']}"), "run-link")
