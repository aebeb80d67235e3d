"""The editor's test panel: named test payloads, test runs with live badges, step results.

`TestPanel(hub, integration, on_statuses=..., on_finished=...)` draws itself in the current
container (the editor puts it in a drawer under the canvas) and talks only to services:
`payloads` (create, edit, duplicate, delete), `testruns` (run, run up to a step, listen) and
`executions` (the step records of a finished run). The editor wires it::

    panel = TestPanel(hub, name, on_statuses=canvas.set_statuses, on_finished=...,
                      on_coverage=...)          # Run all's coverage (None: cleared)
    panel.set_flow(flow.id, trigger_sample)      # on every flow tab change
    canvas.on_select(panel.show_step)            # the selected step's records
    await panel.run_upto(step_id)                # the inspector's "Run up to here"
    panel.reference_scope()                      # what the reference picker offers

Badges: while a run goes, `on_statuses` receives the whole `{step id: status}` map each time a
step starts or finishes (a step in a loop shows the worst status over its iterations, `running`
while any runs); after the run, the statuses the execution recorded; `{}` when a run starts.
Service refusals are shown in the panel (`test-error`), never as a traceback.

The rules that need no drawing (badges, payload conversion, the reference scope) are in
`designer.testing`; the payload form, step view and run summary in
`app.pages.testpanel_widgets`; Run all's results in `app.pages.testpanel_suite`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from nicegui import background_tasks, ui

from app.pages.testpanel_data import remembered_splitter
from app.pages.testpanel_suite import (
    CoverageCallback,
    SuiteResults,
    draw_suite_payload,
    suite_index,
    suite_key,
    suite_request,
)
from app.pages.testpanel_widgets import (
    PanelRoot,
    PayloadForm,
    ask_name,
    confirm_delete,
    draw_step,
    draw_summary,
    tid,
)
from app.services import executions, payloads, pins, suites, testruns
from app.services.errors import ServiceError
from app.services.hub import Hub
from app.services.payloads import PayloadInput, PayloadUpdate, TestPayload
from designer.testing import (
    LiveStatuses,
    StatusCallback,
    badges,
    parse_body,
    reference_scope,
    refusal_lines,
    unrecorded_detail,
    worst_status,
)
from runtime.suite_model import FlowTest, PinnedOutput

__all__ = ["TestPanel", "parse_body", "worst_status"]

log = logging.getLogger("flowyard.pages.testpanel")


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
        blockers: Callable[[], list[str]] | None = None,
        saved: Callable[[], Awaitable[None]] | None = None,
        on_coverage: CoverageCallback | None = None,
        on_pins: Callable[[list[str]], None] | None = None,
    ) -> None:
        """`on_scope` is called whenever `reference_scope()` may have changed (a payload chosen
        or saved, a run finished), so the inspector can refresh its references and previews.
        `blockers()` lists what must be fixed before a run (field errors the inspector shows,
        each naming its step and field): while it lists anything, Run refuses and shows it.
        `saved()` returns once the editor's saves in flight have landed: a run waits for it, so
        it runs what the fields show even when the click overtakes a slow save.
        `on_coverage` receives the flow's suite coverage after Run all, None when cleared;
        `on_pins` the ids of the flow's pinned steps whenever they change (Pin output)."""
        self._hub = hub
        self._blockers = blockers
        self._saved = saved
        self._on_scope = on_scope
        self._integration = integration
        self._on_statuses = on_statuses
        self._on_finished = on_finished
        self._on_coverage = on_coverage
        self._on_pins = on_pins
        self._pins: dict[str, PinnedOutput] = {}  # the flow's pinned outputs (in its draft)
        self._flow_id: str | None = None
        self._sample: dict[str, Any] | None = None
        self._payloads: list[TestPayload] = []
        self._chosen: dict[str, int] = {}  # the payload last selected per flow
        self._selected: int | None = None
        self._tests: list[FlowTest] = []  # the flow's suite payloads (its `tests:`)
        self._suite_pick: int | None = None  # the suite payload chosen instead of a saved one
        self._dirty = False
        self._stale = False  # the flow was edited since the results on screen were run
        self._quiet = False  # set while the editor is filled from a payload
        self._detail: dict[str, Any] | None = None
        self._live: LiveStatuses | None = None
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
        self._tests, self._suite_pick = [], None
        self._set_pins({})
        self._detail, self._live = None, None
        self._set_stale(False)
        self._clear_error()
        self._summary.clear()
        self._suite.clear()
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

    async def _run_all(self) -> None:
        await self._settle()
        if self._flow_id is None:
            self._show_error("Open a flow to run its suite.")
            return
        if self._dirty and not await self._save():
            return
        self._clear_error()
        await self._suite.run(self._flow_id)

    def mark_stale(self) -> None:
        """The flow was edited: the results on screen are from before, until the next run."""
        if self._detail is not None and not self._stale:
            self._set_stale(True)

    def _set_stale(self, stale: bool) -> None:
        self._stale = stale
        self._stale_note.set_visibility(stale)
        if stale:
            self._step_view.classes(add="opacity-60")
        else:
            self._step_view.classes(remove="opacity-60")

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
        chosen = self._payload(self._selected)
        request = chosen.model_dump(include={"body", "headers", "query"}) if chosen else None
        if self._suite_pick is not None:
            request = self._tests[self._suite_pick].request.model_dump()
        return reference_scope(self._records(), request, self._sample)

    # ------------------------------------------------------------------------------ drawing

    def _build(self) -> None:
        with PanelRoot().classes("w-full gap-1 p-2") as self._root:
            with ui.row().classes("w-full items-center gap-2"):
                self._select = (
                    tid(
                        ui.select({}, label="Test payload", on_change=self._on_select),
                        "payload-select",
                    )
                    .props("dense outlined options-dense")
                    .classes("min-w-[14rem]")
                )
                flat = "flat dense"
                tid(ui.button("New", icon="add", on_click=self._create), "payload-new").props(flat)
                self._sample_button = tid(
                    ui.button("From sample", icon="auto_awesome", on_click=self._from_sample),
                    "payload-from-sample",
                ).props(flat)
                self._sample_button.disable()
                self._duplicate_button = tid(
                    ui.button(icon="content_copy", on_click=self._duplicate), "payload-duplicate"
                ).props(flat)
                self._duplicate_button.tooltip("Duplicate")
                self._delete_button = tid(
                    ui.button(icon="delete", on_click=self._delete), "payload-delete"
                ).props(flat)
                self._delete_button.tooltip("Delete")
                ui.separator().props("vertical")
                self._listen_button = tid(
                    ui.button("Listen", icon="hearing", on_click=self._toggle_listen),
                    "listen-button",
                ).props(flat)
                self._run_button = tid(
                    ui.button("Run", icon="play_arrow", on_click=self.run), "run-test"
                ).props("dense")
                self._stop_button = tid(
                    ui.button("Stop", icon="stop", on_click=self._stop_run), "stop-test"
                ).props("dense color=negative")
                self._stop_button.set_visibility(False)
                tid(
                    ui.button("Run all", icon="playlist_play", on_click=self._run_all),
                    "run-all",
                ).props("dense outline").tooltip(
                    "Run every suite payload of this flow and show its path coverage"
                )
                self._summary = tid(ui.row().classes("items-center gap-2"), "run-summary")
            self._error = tid(
                ui.column().classes("w-full gap-0 p-2 rounded bg-red-1 text-negative"),
                "test-error",
            )
            self._error.set_visibility(False)
            self._suite = SuiteResults(
                self._hub, self._integration, on_coverage=self._on_coverage, on_error=self._fail
            )
            self._stale_note = tid(
                ui.label(
                    "These results are from before your last edit: run again to see what the "
                    "flow does now."
                ).classes("w-full p-1 rounded bg-amber-2 text-black text-caption"),
                "results-stale",
            )
            self._stale_note.set_visibility(False)
            with ui.row().classes("w-full items-center gap-2") as self._listen_row:
                ui.label("Send a request to").classes("text-caption")
                self._listen_url = tid(
                    ui.label("").classes("font-mono text-sm select-all"), "listen-url"
                )
                tid(ui.button(icon="content_copy", on_click=self._copy_url), "listen-copy").props(
                    "flat dense round"
                ).tooltip("Copy the test URL")
            self._listen_row.set_visibility(False)
            with remembered_splitter("test-payload", value=26, limits=(15, 70)).classes(
                "w-full"
            ) as splitter:
                with splitter.before, ui.column().classes("w-full gap-1 pr-2"):
                    self._form = PayloadForm(self._changed, self._save)
                    self._suite_view = tid(ui.column().classes("w-full gap-1"), "suite-payload")
                    self._suite_view.set_visibility(False)
                with splitter.after:
                    self._step_view = tid(ui.column().classes("w-full gap-1 pl-2"), "step-view")
        self._refresh_payloads()
        self._draw_step()

    def _refresh_payloads(self) -> None:
        self._quiet = True
        try:
            options: dict[int | str, str] = {p.id: p.name for p in self._payloads}
            options.update({suite_key(i): f"{t.name} · suite" for i, t in enumerate(self._tests)})
            pick = self._suite_pick
            self._select.set_options(
                options, value=suite_key(pick) if pick is not None else self._selected
            )
            draw_suite_payload(self._suite_view, self._tests[pick] if pick is not None else None)
            chosen = self._payload(self._selected) if pick is None else None
            self._form.element.set_visibility(chosen is not None)
            self._form.show_empty(
                chosen is None and pick is None and self._flow_id is not None,
                suite=bool(self._tests),
            )
            for button in (self._duplicate_button, self._delete_button):
                button.set_enabled(chosen is not None)
            if chosen is not None:
                self._form.fill(chosen)
            self._form.body_error.set_text("")
            self._dirty = False
            self._form.unsaved.set_visibility(False)
        finally:
            self._quiet = False

    def _draw_step(self) -> None:
        self._iteration = draw_step(
            self._step_view,
            self._step,
            self._records(),
            self._iteration,
            running=self._running is not None and not self._running.done(),
            on_iteration=self._pick_iteration,
            run_upto=self.run_upto if self._flow_id is not None else None,
            pinned=self._step in self._pins,
            on_pin=self._pin if self._flow_id is not None else None,
        )

    async def _pin(self, record: dict[str, Any], pin: bool) -> None:
        """Pin the output of `record`'s step for test runs (or unpin it), in the draft."""
        flow_id, step_id = self._flow_id, str(record["step_id"])
        if flow_id is None:
            return
        try:
            if pin:
                changed = await pins.pin_output(
                    self._hub,
                    self._integration,
                    flow_id,
                    step_id,
                    record.get("output"),
                    record.get("port"),
                )
            else:
                changed = await pins.unpin_output(self._hub, self._integration, flow_id, step_id)
        except ServiceError as exc:
            self._fail(exc)
            return
        if flow_id == self._flow_id:
            self._clear_error()
            self._set_pins(changed)
            self._draw_step()

    def _set_pins(self, pinned: dict[str, PinnedOutput]) -> None:
        self._pins = pinned
        if self._on_pins is not None:
            self._on_pins(sorted(pinned))

    def _pick_iteration(self, event: Any) -> None:
        self._iteration = int(event.value)
        self._draw_step()

    # ------------------------------------------------------------------------------ errors

    def _show_error(self, message: str, lines: Iterable[str] = ()) -> None:
        self._error.clear()
        with self._error:
            ui.label(message).classes("text-bold")
            for line in lines:
                ui.label(line).classes("text-sm")
        self._error.set_visibility(True)

    def _fail(self, exc: ServiceError) -> None:
        hint = [exc.hint] if exc.hint else []
        self._show_error(exc.message, [*refusal_lines(exc.details), *hint])

    def _clear_error(self) -> None:
        self._error.clear()
        self._error.set_visibility(False)

    # ------------------------------------------------------------------------------ loading

    async def _settle(self) -> None:
        """Wait for a flow switch to finish loading (without inheriting its cancellation) and
        for the editor's saves in flight."""
        if self._loading is not None and not self._loading.done():
            await asyncio.wait({self._loading})
        if self._saved is not None:
            await self._saved()

    async def _load_flow(self, flow_id: str) -> None:
        try:
            found = await payloads.list_payloads(self._hub, self._integration, flow_id)
            last = await testruns.last_test_run(self._hub, self._integration, flow_id)
            detail = await executions.get_execution(self._hub, last) if last else None
            pinned = await pins.flow_pins(self._hub, self._integration, flow_id)
            tests = await suites.flow_tests(self._hub, self._integration, flow_id)
        except ServiceError as exc:
            self._fail(exc)
            return
        if flow_id != self._flow_id:
            return
        self._set_pins(pinned)
        self._tests = tests
        self._payloads = found
        remembered = self._chosen.get(flow_id)
        ids = [p.id for p in found]
        self._selected = remembered if remembered in ids else (ids[0] if ids else None)
        self._refresh_payloads()
        self._detail = detail
        self._emit(badges(detail["steps"]) if detail else {})
        draw_summary(self._summary, self._detail, None)
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
            self._suite_pick = None
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
            self._form.unsaved.set_visibility(True)

    async def _on_select(self, event: Any) -> None:
        pick = self._suite_pick
        current = suite_key(pick) if pick is not None else self._selected
        if self._quiet or event.value == current:
            return
        if self._dirty and not await self._save():
            self._quiet = True  # stay on the payload with the unsaved, invalid edits
            self._select.value = current
            self._quiet = False
            return
        self._suite_pick = suite_index(event.value)
        if self._suite_pick is None:
            self._choose(event.value)
        self._refresh_payloads()
        self._scope_changed()

    def _scope_changed(self) -> None:
        if self._on_scope is not None:
            self._on_scope()

    def _edited(self) -> PayloadUpdate | None:
        """The editor's content as changes, or None after showing what is wrong with it."""
        edited = self._form.read()
        if isinstance(edited, list):
            self._show_error("The test payload was not saved.", edited)
            return None
        return edited

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

    async def _add(self, request: Mapping[str, Any], title: str, suggested: str) -> None:
        if self._flow_id is None or (self._dirty and not await self._save()):
            return
        name = await ask_name(title, suggested)
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
        name = await ask_name("Duplicate test payload", f"{chosen.name} copy")
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
        if not await confirm_delete(chosen.name):
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
        blocking = self._blockers() if self._blockers is not None else []
        if blocking:
            self._show_error(
                "The flow was not run: a field shows a value that is not saved. Fix it (or undo "
                "the edit) and run again.",
                blocking,
            )
            return
        if self._dirty and not await self._save():
            return
        self._clear_error()
        # Reports reach the screen only while this run is the panel's (not after a flow switch).
        live: LiveStatuses = LiveStatuses(
            lambda statuses: self._emit(statuses) if live is self._live else None,
            lambda record: (
                self._draw_step() if live is self._live and record.step_id == self._step else None
            ),
        )
        self._live = live
        self._emit({})
        test = self._tests[self._suite_pick] if self._suite_pick is not None else None
        task = asyncio.create_task(
            testruns.run_test(
                self._hub,
                self._integration,
                flow_id,
                suite_request(test) if test is not None else self._selected,
                observer=live,
                upto=upto,
                reuse_from=reuse_from,
                pinned={**self._pins, **test.pinned} if test is not None else self._pins,
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
        self, execution_id: str, run: testruns.TestRun | None, live: LiveStatuses
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
            detail = (
                unrecorded_detail(
                    execution_id,
                    live.records,
                    status=run.status,
                    duration_ms=run.duration_ms,
                    error=run.error,
                )
                if run is not None
                else unrecorded_detail(execution_id, live.records)
            )
        self._detail = detail
        self._set_stale(False)
        self._emit(badges(detail["steps"]))
        draw_summary(self._summary, self._detail, run)
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
