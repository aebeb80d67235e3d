"""The editor's test panel: named test payloads, test runs with live badges, step results.

`TestPanel(hub, integration, on_statuses=..., on_finished=...)` draws itself in the current
container (the editor puts it in a drawer under the canvas) and talks only to services:
`payloads` (create, edit, duplicate, delete), `testruns` (run, run up to a step, listen) and
`executions` (the step records of a finished run). The editor wires it::

    panel = TestPanel(hub, name, on_statuses=canvas.set_statuses, on_finished=...)
    panel.set_flow(flow.id, trigger_sample)      # on every flow tab change
    canvas.on_select(panel.show_step)            # the selected step's records
    await panel.run_upto(step_id)                # the inspector's "Run up to here"
    panel.reference_scope()                      # what the reference picker offers

Badges: while a run goes, `on_statuses` receives the whole `{step id: status}` map each time a
step starts or finishes (a step in a loop shows the worst status over its iterations, `running`
while any runs); after the run, the statuses the execution recorded; `{}` when a run starts.
Service refusals are shown in the panel (`test-error`), never as a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from nicegui import background_tasks, ui

from app.pages.layout import duration, status_badge
from app.services import executions, payloads, testruns
from app.services.errors import ServiceError
from app.services.hub import Hub
from app.services.payloads import PayloadInput, PayloadUpdate, TestPayload
from components.api import Response
from runtime.observer import ExecutionInfo, ExecutionResult, StepRecord

__all__ = ["TestPanel", "parse_body", "worst_status"]

log = logging.getLogger("flowyard.pages.testpanel")

E = TypeVar("E", bound=ui.element)
StatusCallback = Callable[[dict[str, str]], None]

_SEVERITY = {"skipped": 0, "succeeded": 1, "queued": 2, "cancelled": 3, "failed": 4, "crashed": 5}
_SHOWN_CHARS = 20_000
"""Longer inputs and outputs are cut in the panel; the executions page shows them whole."""


def _tid(element: E, name: str) -> E:
    """Give an element a `data-testid` (browser tests) and the same marker (`user` tests)."""
    return element.props(f'data-testid="{name}"').mark(name)


def worst_status(statuses: Iterable[str]) -> str:
    """One badge for a step's records: `running` while any runs, else the worst of them."""
    found = list(statuses)
    if "running" in found:
        return "running"
    return max(found, key=lambda s: _SEVERITY.get(s, 4), default="skipped")


def _badges(records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
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


def _pretty(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    if len(text) > _SHOWN_CHARS:
        return text[:_SHOWN_CHARS] + f"\n… ({len(text) - _SHOWN_CHARS} more characters)"
    return text


def _problems(exc: ServiceError) -> list[str]:
    """A refusal's details as lines: `field: problem`, or each listed problem."""
    details = exc.details
    if isinstance(details, Mapping):
        return [f"{key}: {value}" for key, value in details.items()]
    if isinstance(details, list):
        return [
            str(item.get("message", item)) if isinstance(item, Mapping) else str(item)
            for item in details
        ]
    return [] if details is None else [str(details)]


class _LiveStatuses:
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


class _Pairs:
    """Editable name/value rows (headers or query parameters)."""

    def __init__(self, title: str, testid: str, on_change: Callable[[], None]) -> None:
        self._testid = testid
        self._on_change = on_change
        self._rows: list[tuple[ui.input, ui.input, ui.row]] = []
        with ui.column().classes("w-full gap-0"):
            with ui.row().classes("items-center gap-1"):
                ui.label(title).classes("text-caption text-bold")
                _tid(
                    ui.button(icon="add", on_click=self._add_clicked).props("flat dense round"),
                    f"{testid}-add",
                ).tooltip(f"Add a {title.lower().rstrip('s')}")
            self._column = _tid(ui.column().classes("w-full gap-0"), testid)

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
            _tid(name.props("dense").classes("w-1/3"), f"{self._testid}-key")
            text = ui.input(value=value, placeholder="value", on_change=self._on_change)
            _tid(text.props("dense").classes("grow"), f"{self._testid}-value")
            ui.button(icon="close", on_click=lambda: self._remove(row)).props("flat dense round")
        self._rows.append((name, text, row))

    def _remove(self, row: ui.row) -> None:
        self._rows = [entry for entry in self._rows if entry[2] is not row]
        row.delete()
        self._on_change()


class _Root(ui.column):
    """The panel's container; deleting it stops the panel's background work."""

    on_delete: Callable[[], None] | None = None

    def _handle_delete(self) -> None:
        if self.on_delete is not None:
            self.on_delete()
        super()._handle_delete()


class TestPanel:
    """Test payloads, runs and step results of one integration; see the module docstring."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        hub: Hub,
        integration: str,
        *,
        on_statuses: StatusCallback,
        on_finished: Callable[[dict[str, Any]], None] | None = None,
        on_scope: Callable[[], None] | None = None,
    ) -> None:
        """`on_scope` is called whenever `reference_scope()` may have changed (a payload chosen
        or saved, a run finished), so the inspector can refresh its references and previews."""
        self._hub = hub
        self._on_scope = on_scope
        self._integration = integration
        self._on_statuses = on_statuses
        self._on_finished = on_finished
        self._flow_id: str | None = None
        self._sample: dict[str, Any] | None = None
        self._payloads: list[TestPayload] = []
        self._chosen: dict[str, int] = {}  # the payload last selected per flow
        self._selected: int | None = None
        self._dirty = False
        self._quiet = False  # set while the editor is filled from a payload
        self._detail: dict[str, Any] | None = None
        self._live: _LiveStatuses | None = None
        self._step: str | None = None
        self._iteration = 0
        self._loading: asyncio.Task[None] | None = None
        self._running: asyncio.Task[testruns.TestRun] | None = None
        self._listener: testruns.Listener | None = None
        self._listening: asyncio.Task[None] | None = None
        self._build()
        self._root.on_delete = self._dispose
        self._root.client.on_delete(self._dispose)

    # ------------------------------------------------------------------------------ public API

    def set_flow(self, flow_id: str, sample_payload: Mapping[str, Any] | None = None) -> None:
        """Show `flow_id`'s payloads and last test run; `sample_payload` is its trigger's sample
        request ({body, headers, query}) for "From sample". Loads in the background."""
        self._sample = dict(sample_payload) if sample_payload is not None else None
        self._sample_button.set_enabled(self._sample is not None)
        if flow_id == self._flow_id:
            return
        self._stop_listening()
        if self._loading is not None:
            self._loading.cancel()
        self._flow_id = flow_id
        self._payloads, self._selected, self._dirty = [], None, False
        self._detail, self._live = None, None
        self._clear_error()
        self._summary.clear()
        self._refresh_payloads()
        self.show_step(self._step)
        self._loading = background_tasks.create(
            self._load_flow(flow_id), name="flowyard-testpanel-load", context=self._root
        )

    async def run(self) -> None:
        """Run the flow on the selected test payload (saving unsaved edits first)."""
        await self._execute(upto=None)

    async def run_upto(self, step_id: str) -> None:
        """Run `step_id` and what it depends on, reusing upstream outputs of the last test run."""
        await self._settle()
        if self._flow_id is None:
            self._show_error("Open a flow to run it.")
            return
        try:
            reuse = await testruns.last_test_run(self._hub, self._integration, self._flow_id)
        except ServiceError as exc:
            self._fail(exc)
            return
        await self._execute(upto=step_id, reuse_from=reuse)

    def show_step(self, step_id: str | None) -> None:
        """Show the records of `step_id` in the last run (one per loop iteration, selectable)."""
        if step_id != self._step:
            self._iteration = 0
        self._step = step_id
        self._draw_step()

    @property
    def last_execution(self) -> dict[str, Any] | None:
        """The last test run of the current flow (`executions.get_execution` detail), if any."""
        return self._detail

    def reference_scope(self) -> dict[str, Any]:
        """What templates would see, for the reference picker: `trigger` (the last run's trigger
        output, else the selected payload, else the sample) and `steps` (outputs of the last
        run's succeeded steps; inside loops the first iteration's)."""
        steps: dict[str, Any] = {}
        trigger: Any = None
        for record in self._records():
            if trigger is None and not record["iteration_path"]:
                trigger = record["output"]  # the trigger always finishes first
            if record["status"] == "succeeded" and record["step_id"] not in steps:
                steps[record["step_id"]] = {"output": record["output"]}
        if trigger is None:
            chosen = self._payload(self._selected)
            source: Mapping[str, Any] = (
                chosen.model_dump(include={"body", "headers", "query"})
                if chosen is not None
                else self._sample or {}
            )
            trigger = {
                "body": source.get("body"),
                "headers": dict(source.get("headers") or {}),
                "query": dict(source.get("query") or {}),
                "method": "POST",
            }
        return {"trigger": trigger, "steps": steps}

    # ------------------------------------------------------------------------------ drawing

    def _build(self) -> None:
        with _Root().classes("w-full gap-1 p-2") as self._root:
            with ui.row().classes("w-full items-center gap-2"):
                self._select = (
                    _tid(
                        ui.select({}, label="Test payload", on_change=self._on_select),
                        "payload-select",
                    )
                    .props("dense outlined options-dense")
                    .classes("min-w-[14rem]")
                )
                flat = "flat dense"
                _tid(ui.button("New", icon="add", on_click=self._create), "payload-new").props(flat)
                self._sample_button = _tid(
                    ui.button("From sample", icon="auto_awesome", on_click=self._from_sample),
                    "payload-from-sample",
                ).props(flat)
                self._sample_button.disable()
                self._duplicate_button = _tid(
                    ui.button(icon="content_copy", on_click=self._duplicate), "payload-duplicate"
                ).props(flat)
                self._duplicate_button.tooltip("Duplicate")
                self._delete_button = _tid(
                    ui.button(icon="delete", on_click=self._delete), "payload-delete"
                ).props(flat)
                self._delete_button.tooltip("Delete")
                ui.separator().props("vertical")
                self._listen_button = _tid(
                    ui.button("Listen", icon="hearing", on_click=self._toggle_listen),
                    "listen-button",
                ).props(flat)
                self._run_button = _tid(
                    ui.button("Run", icon="play_arrow", on_click=self.run), "run-test"
                ).props("dense")
                self._stop_button = _tid(
                    ui.button("Stop", icon="stop", on_click=self._stop_run), "stop-test"
                ).props("dense color=negative")
                self._stop_button.set_visibility(False)
                self._summary = _tid(ui.row().classes("items-center gap-2"), "run-summary")
            self._error = _tid(
                ui.column().classes("w-full gap-0 p-2 rounded bg-red-1 text-negative"),
                "test-error",
            )
            self._error.set_visibility(False)
            with ui.row().classes("w-full items-center gap-2") as self._listen_row:
                ui.label("Send a request to").classes("text-caption")
                self._listen_url = _tid(
                    ui.label("").classes("font-mono text-sm select-all"), "listen-url"
                )
                _tid(ui.button(icon="content_copy", on_click=self._copy_url), "listen-copy").props(
                    "flat dense round"
                ).tooltip("Copy the test URL")
            self._listen_row.set_visibility(False)
            with ui.splitter(value=45).classes("w-full") as splitter:
                with splitter.before, ui.column().classes("w-full gap-1 pr-2"):
                    self._build_editor()
                with splitter.after:
                    self._step_view = _tid(ui.column().classes("w-full gap-1 pl-2"), "step-view")
        self._refresh_payloads()
        self._draw_step()

    def _build_editor(self) -> None:
        self._empty = ui.label(
            "No test payload yet: create one, start from the trigger's sample, or listen for a "
            "real request."
        ).classes("text-grey-7")
        with ui.column().classes("w-full gap-1") as self._editor:
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                self._name = _tid(
                    ui.input("Name", on_change=self._changed).props("dense").classes("grow"),
                    "payload-name",
                )
                self._unsaved = ui.label("unsaved").classes("text-caption text-warning")
                _tid(ui.button("Save", icon="save", on_click=self._save), "payload-save").props(
                    "dense flat"
                )
            ui.label("Body (JSON)").classes("text-caption text-bold")
            self._body = _tid(
                ui.codemirror("", language="JSON", indent="  ", on_change=self._changed),
                "payload-body",
            ).classes("w-full max-h-64")
            self._body_error = _tid(ui.label("").classes("text-negative text-sm"), "body-error")
            self._headers = _Pairs("Headers", "payload-headers", self._changed)
            self._query = _Pairs("Query", "payload-query", self._changed)

    def _refresh_payloads(self) -> None:
        self._quiet = True
        try:
            self._select.set_options({p.id: p.name for p in self._payloads}, value=self._selected)
            chosen = self._payload(self._selected)
            self._editor.set_visibility(chosen is not None)
            self._empty.set_visibility(chosen is None and self._flow_id is not None)
            for button in (self._duplicate_button, self._delete_button):
                button.set_enabled(chosen is not None)
            if chosen is not None:
                self._name.value = chosen.name
                body = chosen.body
                self._body.value = "" if body is None else json.dumps(body, indent=2)
                self._headers.set(chosen.headers.items())
                self._query.set(
                    (key, item)
                    for key, value in chosen.query.items()
                    for item in (value if isinstance(value, list) else [value])
                )
            self._body_error.set_text("")
            self._dirty = False
            self._unsaved.set_visibility(False)
        finally:
            self._quiet = False

    def _draw_step(self) -> None:
        view = self._step_view
        view.clear()
        with view:
            if self._step is None:
                ui.label("Select a step to see its result from the last test run.").classes(
                    "text-grey-7"
                )
                return
            records = [r for r in self._records() if r["step_id"] == self._step]
            if not records:
                running = self._running is not None and not self._running.done()
                note = "has not finished yet" if running else "did not run in the last test run"
                ui.label(f"Step '{self._step}' {note}.").classes("text-grey-7")
                return
            self._iteration = min(self._iteration, len(records) - 1)
            record = records[self._iteration]
            with ui.row().classes("w-full items-center gap-2"):
                ui.label(record.get("step_name") or record["step_id"]).classes("text-bold")
                with _tid(ui.row().classes("gap-0"), "step-status"):
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
                    _tid(
                        ui.select(options, value=self._iteration, on_change=self._pick_iteration),
                        "step-iteration",
                    ).props("dense options-dense").classes("min-w-[9rem]")
                if self._flow_id is not None and record["iteration_path"] == []:
                    step_id = record["step_id"]
                    _tid(
                        ui.button("Run up to here", on_click=lambda: self.run_upto(step_id)),
                        "run-upto",
                    ).props("flat dense")
            if record.get("error"):
                error = record["error"]
                with _tid(ui.column().classes("w-full gap-0 text-negative"), "step-error"):
                    ui.label(error.get("message", ""))
                    if error.get("hint"):
                        ui.label(error["hint"]).classes("text-caption")
            for title, key in (("Input", "input"), ("Output", "output")):
                ui.label(title).classes("text-caption text-bold")
                _tid(
                    ui.label(_pretty(record.get(key))).classes(
                        "w-full font-mono text-xs whitespace-pre-wrap max-h-48 overflow-auto"
                    ),
                    f"step-{key}",
                )
            ui.label("Log").classes("text-caption text-bold")
            with _tid(ui.column().classes("w-full gap-0 font-mono text-xs"), "step-logs"):
                for line in record.get("logs") or []:
                    ui.label(f"{line.get('level', '').upper():<7} {line.get('message', '')}")
                if not record.get("logs"):
                    ui.label("(no log lines)").classes("text-grey-7")

    def _pick_iteration(self, event: Any) -> None:
        self._iteration = int(event.value)
        self._draw_step()

    def _draw_summary(self, run: testruns.TestRun | None) -> None:
        self._summary.clear()
        detail = self._detail
        if detail is None:
            return
        with self._summary:
            status_badge(detail["status"])
            ui.label(duration(detail.get("duration_ms"))).classes("text-caption")
            if run is not None and run.upto:
                reused = f", reused {len(run.reused)} step(s)" if run.reused else ""
                ui.label(f"up to '{run.upto}'{reused}").classes("text-caption")
            if run is not None and run.response is not None:
                ui.label(f"responded {run.response.get('status')}").classes("text-caption")
            error = detail.get("error")
            if error:
                _tid(ui.label(error.get("message", "")).classes("text-negative"), "run-error")
            _tid(ui.link("Execution", f"/executions/{detail['id']}"), "run-link")

    # ------------------------------------------------------------------------------ errors

    def _show_error(self, message: str, lines: Iterable[str] = ()) -> None:
        self._error.clear()
        with self._error:
            ui.label(message).classes("text-bold")
            for line in lines:
                ui.label(line).classes("text-sm")
        self._error.set_visibility(True)

    def _fail(self, exc: ServiceError) -> None:
        self._show_error(exc.message, [*_problems(exc), *([exc.hint] if exc.hint else [])])

    def _clear_error(self) -> None:
        self._error.clear()
        self._error.set_visibility(False)

    # ------------------------------------------------------------------------------ loading

    async def _settle(self) -> None:
        """Wait for a flow switch to finish loading (without inheriting its cancellation)."""
        if self._loading is not None and not self._loading.done():
            await asyncio.wait({self._loading})

    async def _load_flow(self, flow_id: str) -> None:
        try:
            found = await payloads.list_payloads(self._hub, self._integration, flow_id)
            last = await testruns.last_test_run(self._hub, self._integration, flow_id)
            detail = await executions.get_execution(self._hub, last) if last else None
        except ServiceError as exc:
            self._fail(exc)
            return
        if flow_id != self._flow_id:
            return
        self._payloads = found
        remembered = self._chosen.get(flow_id)
        ids = [p.id for p in found]
        self._selected = remembered if remembered in ids else (ids[0] if ids else None)
        self._refresh_payloads()
        self._detail = detail
        self._emit(_badges(detail["steps"]) if detail else {})
        self._draw_summary(None)
        self._draw_step()

    async def _reload_payloads(self, select: int | None) -> None:
        if self._flow_id is None:
            return
        flow_id = self._flow_id
        try:
            found = await payloads.list_payloads(self._hub, self._integration, flow_id)
        except ServiceError as exc:
            self._fail(exc)
            return
        if flow_id == self._flow_id:
            self._payloads = found
            self._choose(select if select in {p.id for p in found} else None)
            self._refresh_payloads()

    def _payload(self, payload_id: int | None) -> TestPayload | None:
        return next((p for p in self._payloads if p.id == payload_id), None)

    def _choose(self, payload_id: int | None) -> None:
        self._selected = payload_id
        if self._flow_id is not None and payload_id is not None:
            self._chosen[self._flow_id] = payload_id

    # ------------------------------------------------------------------------------ payloads

    def _changed(self) -> None:
        if not self._quiet:
            self._dirty = True
            self._unsaved.set_visibility(True)

    async def _on_select(self, event: Any) -> None:
        if self._quiet or event.value == self._selected:
            return
        if self._dirty and not await self._save():
            self._quiet = True  # stay on the payload with the unsaved, invalid edits
            self._select.value = self._selected
            self._quiet = False
            return
        self._choose(event.value)
        self._refresh_payloads()
        self._scope_changed()

    def _scope_changed(self) -> None:
        if self._on_scope is not None:
            self._on_scope()

    def _edited(self) -> PayloadUpdate | None:
        """The editor's content as changes, or None after showing what is wrong with it."""
        try:
            body = parse_body(self._body.value or "")
        except ValueError as exc:
            self._body_error.set_text(str(exc))
            self._show_error("The test payload was not saved.", [str(exc)])
            return None
        self._body_error.set_text("")
        problems: list[str] = []
        headers: dict[str, str] = {}
        for key, value in self._headers.pairs():
            if not key and not value:
                continue
            if not key:
                problems.append(f"headers: the value '{value}' has no name")
            elif key.lower() in headers:
                problems.append(f"headers: '{key}' is given twice")
            headers[key.lower()] = value
        query: dict[str, Any] = {}
        for key, value in self._query.pairs():
            if not key and not value:
                continue
            if not key:
                problems.append(f"query: the value '{value}' has no name")
            elif key in query:
                earlier = query[key]
                query[key] = [*earlier, value] if isinstance(earlier, list) else [earlier, value]
            else:
                query[key] = value
        if problems:
            self._show_error("The test payload was not saved.", problems)
            return None
        return PayloadUpdate(name=self._name.value, body=body, headers=headers, query=query)

    async def _save(self) -> bool:
        """Save the editor into the selected payload; False (and the reason shown) if refused."""
        if self._selected is None:
            return True
        changes = self._edited()
        if changes is None:
            return False
        try:
            saved = await payloads.update_payload(
                self._hub, self._integration, self._selected, changes
            )
        except ServiceError as exc:
            self._fail(exc)
            return False
        self._clear_error()
        self._payloads = [saved if p.id == saved.id else p for p in self._payloads]
        self._payloads.sort(key=lambda p: p.name)
        self._refresh_payloads()
        self._scope_changed()
        return True

    async def _ask_name(self, title: str, value: str) -> str | None:
        with ui.dialog() as dialog, ui.card().classes("min-w-[20rem]"):
            ui.label(title).classes("text-h6")
            name = _tid(ui.input("Name", value=value), "payload-name-input").classes("w-full")
            name.on("keydown.enter", lambda: dialog.submit(name.value))
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=lambda: dialog.submit(None)).props("flat")
                _tid(ui.button("OK", on_click=lambda: dialog.submit(name.value)), "payload-name-ok")
        result = await dialog
        dialog.delete()
        return result if isinstance(result, str) else None

    async def _add(self, request: Mapping[str, Any], title: str, suggested: str) -> None:
        if self._flow_id is None or (self._dirty and not await self._save()):
            return
        name = await self._ask_name(title, suggested)
        if name is None:
            return
        entry = PayloadInput(
            flow_id=self._flow_id,
            name=name,
            body=request.get("body"),
            headers=dict(request.get("headers") or {}),
            query=dict(request.get("query") or {}),
        )
        try:
            created = await payloads.create_payload(self._hub, self._integration, entry)
        except ServiceError as exc:
            self._fail(exc)
            return
        self._clear_error()
        await self._reload_payloads(select=created.id)

    async def _create(self) -> None:
        await self._add({"body": {}}, "New test payload", "")

    async def _from_sample(self) -> None:
        await self._add(self._sample or {}, "Test payload from the trigger's sample", "Sample")

    async def _duplicate(self) -> None:
        chosen = self._payload(self._selected)
        if chosen is None or (self._dirty and not await self._save()):
            return
        name = await self._ask_name("Duplicate test payload", f"{chosen.name} copy")
        if name is None:
            return
        try:
            copy = await payloads.duplicate_payload(self._hub, self._integration, chosen.id, name)
        except ServiceError as exc:
            self._fail(exc)
            return
        self._clear_error()
        await self._reload_payloads(select=copy.id)

    async def _delete(self) -> None:
        chosen = self._payload(self._selected)
        if chosen is None:
            return
        with ui.dialog() as dialog, ui.card():
            ui.label(f"Delete the test payload '{chosen.name}'?")
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat")
                _tid(
                    ui.button("Delete", on_click=lambda: dialog.submit(True)),
                    "payload-delete-confirm",
                ).props("color=negative")
        confirmed = await dialog
        dialog.delete()
        if confirmed is not True:
            return
        try:
            await payloads.delete_payload(self._hub, self._integration, chosen.id)
        except ServiceError as exc:
            self._fail(exc)
            return
        self._clear_error()
        self._dirty = False
        remaining = [p.id for p in self._payloads if p.id != chosen.id]
        await self._reload_payloads(select=remaining[0] if remaining else None)

    # ------------------------------------------------------------------------------ runs

    def _emit(self, statuses: dict[str, str]) -> None:
        try:
            self._on_statuses(statuses)
        except Exception:  # the engine calls this: a broken badge must not break the run
            log.exception("on_statuses failed")

    def _records(self) -> list[dict[str, Any]]:
        if self._live is not None and self._running is not None and not self._running.done():
            return [record.to_json() for record in self._live.records]
        return list(self._detail["steps"]) if self._detail else []

    async def _execute(self, *, upto: str | None, reuse_from: str | None = None) -> None:
        await self._settle()
        if self._running is not None and not self._running.done():
            ui.notify("A test run is still going.", type="warning")
            return
        flow_id = self._flow_id
        if flow_id is None:
            self._show_error("Open a flow to run it.")
            return
        if self._dirty and not await self._save():
            return
        self._clear_error()
        # Reports reach the screen only while this run is the panel's (not after a flow switch).
        live: _LiveStatuses = _LiveStatuses(
            lambda statuses: self._emit(statuses) if live is self._live else None,
            lambda record: (
                self._draw_step() if live is self._live and record.step_id == self._step else None
            ),
        )
        self._live = live
        self._emit({})
        task = asyncio.create_task(
            testruns.run_test(
                self._hub,
                self._integration,
                flow_id,
                self._selected,
                observer=live,
                upto=upto,
                reuse_from=reuse_from,
            ),
            name="flowyard-test-run",
        )
        self._running = task
        self._set_running(True)
        run: testruns.TestRun | None = None
        try:
            run = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                task.cancel()
                raise
        except ServiceError as exc:
            self._fail(exc)
        except Exception as exc:  # our bug: say so in the panel, keep the traceback in the log
            log.exception("test run of %s/%s failed", self._integration, flow_id)
            self._show_error(f"The test run could not be completed: {type(exc).__name__}: {exc}")
        finally:
            self._set_running(False)
        if flow_id != self._flow_id:
            return  # another flow is on screen now; this run is recorded all the same
        execution_id = run.execution_id if run is not None else live.execution_id
        if execution_id is None:  # refused before it started
            self._emit({})
            self._draw_step()
            return
        await self._finish(execution_id, run, live)

    async def _finish(
        self, execution_id: str, run: testruns.TestRun | None, live: _LiveStatuses
    ) -> None:
        detail: dict[str, Any] | None = None
        try:
            detail = await executions.get_execution(self._hub, execution_id)
        except ServiceError as exc:
            if run is not None:  # a stopped run may not have been recorded
                self._fail(exc)
        if live is not self._live:
            return  # the flow changed while the record was read
        if detail is None:  # not recorded: keep what the run reported
            detail = {
                "id": execution_id,
                "status": run.status if run is not None else "cancelled",
                "duration_ms": run.duration_ms if run is not None else None,
                "error": run.error if run is not None else None,
                "steps": [record.to_json() for record in live.records],
            }
        self._detail = detail
        self._emit(_badges(detail["steps"]))
        self._draw_summary(run)
        self._draw_step()
        if self._on_finished is not None:
            self._on_finished(detail)
        self._scope_changed()

    def _set_running(self, running: bool) -> None:
        self._run_button.set_enabled(not running)
        self._stop_button.set_visibility(running)

    def _stop_run(self) -> None:
        if self._running is not None and not self._running.done():
            self._running.cancel()

    # ------------------------------------------------------------------------------ listening

    async def _toggle_listen(self) -> None:
        if self._listener is not None:
            self._stop_listening()
            return
        if self._flow_id is None:
            self._show_error("Open a flow to listen for its requests.")
            return
        try:
            listener = await testruns.start_listening(self._hub, self._integration, self._flow_id)
        except ServiceError as exc:
            self._fail(exc)
            return
        self._clear_error()
        self._listener = listener
        self._listen_url.set_text(listener.url)
        self._listen_row.set_visibility(True)
        self._listen_button.set_text("Stop listening")
        self._listening = background_tasks.create(
            self._await_capture(listener), name="flowyard-testpanel-listen", context=self._root
        )

    async def _await_capture(self, listener: testruns.Listener) -> None:
        try:
            captured = await listener.wait()
        except asyncio.CancelledError:
            listener.cancel()
            raise
        if listener is not self._listener:
            return  # stopped, or the flow changed
        self._end_listening()
        if captured is None:
            self._show_error("The test URL expired before a request arrived. Listen again.")
            return
        await self._reload_payloads(select=captured.id)
        ui.notify(f"Captured a request: saved as '{captured.name}'.", type="positive")

    def _copy_url(self) -> None:
        ui.clipboard.write(self._listen_url.text)
        ui.notify("Test URL copied.")

    def _stop_listening(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
        if self._listening is not None:
            self._listening.cancel()
        self._end_listening()

    def _end_listening(self) -> None:
        self._listener, self._listening = None, None
        if not self._root.is_deleted:
            self._listen_row.set_visibility(False)
            self._listen_button.set_text("Listen")

    def _dispose(self) -> None:
        """The panel or its page is gone: stop listening, loading and a running test."""
        if self._listener is not None:
            self._listener.cancel()
        for task in (self._listening, self._loading, self._running):
            if task is not None and not task.done():
                task.cancel()
        self._listener = None
