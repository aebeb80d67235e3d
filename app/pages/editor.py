"""The integration editor: flows as tabs, the palette, the canvas, the inspector and the test panel.

Every edit goes through `designer.editing.FlowEditor` (undo/redo, checks) and is saved at once
with the flow's revision: a save based on a stale revision is refused by the service and the page
says so, offering a reload, instead of overwriting someone else's edit. Moving steps saves only
their positions. The canvas reports edits it already shows; the page pushes the graph back only
when Python changed it (a drop, undo, paste, auto-layout, a rename in the inspector).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from nicegui import ui

from app.pages.add_api import add_api_dialog
from app.pages.flow_settings import open_flow_settings
from app.pages.layout import frame, hub, show_error
from app.pages.testpanel import TestPanel
from app.pages.testpanel_data import remembered_splitter
from app.pages.versions import VersionBar
from app.services import editor as editor_service
from app.services.errors import Conflict, NotFound, ServiceError
from app.services.hub import Hub
from app.services.integrations import IssueView
from designer.canvas import CanvasEvent, FlowCanvas
from designer.coverage import coverage_marks
from designer.editing import Clipboard, EditError, FlowEditor, is_trigger
from designer.history import histories
from designer.inspector import Inspector, field_problems
from designer.palette import Palette
from designer.references import source_for_step
from designer.shortcuts import keymap
from runtime.model import FlowSettings, Position, Step

__all__ = ["EditorPage", "editor_page", "new_integration_dialog"]

_UNSAVED_HINT = "The step still holds its last saved value: fix the field or undo the edit."

_clipboards: dict[str, Clipboard] = {}
"""Copied steps per browser client id (copy in one tab, paste in another flow)."""


class EditorPage:
    """The editor of one integration's draft, drawn into the current NiceGUI container."""

    def __init__(self, hub: Hub, state: editor_service.EditorState, flow_id: str | None) -> None:
        self.hub = hub
        self.name = state.integration.name
        self.state = state
        self.lock = asyncio.Lock()
        self.editors: dict[str, FlowEditor] = {}
        flows = state.integration.flows
        self.flow_id: str = (
            flow_id if flow_id and state.flow(flow_id) else (flows[0].id if flows else "")
        )
        self.selected: str | None = None
        self.conflict = False
        self.canvas: FlowCanvas
        self.inspector: Inspector | None = None
        self.field_errors: list[str] = []
        """What the inspector shows that the saved step does not hold (a field error)."""
        self.test_panel: TestPanel

    # -- building -------------------------------------------------------------------------------

    def build(self) -> None:
        with ui.row().classes("w-full items-center gap-2 no-wrap"):
            self.tabs = ui.tabs(on_change=self._tab_changed).props("dense no-caps")
            self._fill_tabs()
            ui.button(icon="add", on_click=self._add_flow_dialog).props(
                'flat dense data-testid="add-flow"'
            ).mark("add-flow").tooltip("Add a flow")
            ui.button(icon="drive_file_rename_outline", on_click=self._rename_flow_dialog).props(
                'flat dense data-testid="rename-flow"'
            ).mark("rename-flow").tooltip("Rename this flow")
            ui.space()
            self.save_text = ""
            self.saved_label = (
                ui.label("")
                .classes("text-caption text-grey-7")
                .props('data-testid="save-status"')
                .mark("save-status")
            )
            self.undo_button = ui.button(icon="undo", on_click=self.undo).props("flat dense")
            self.undo_button.mark("undo")
            self.undo_button.tooltip("Undo (Ctrl+Z)")
            self.redo_button = ui.button(icon="redo", on_click=self.redo).props("flat dense")
            self.redo_button.mark("redo")
            self.redo_button.tooltip("Redo (Ctrl+Shift+Z)")
            ui.button(icon="account_tree", on_click=self.auto_layout).props(
                'flat dense data-testid="auto-layout"'
            ).mark("auto-layout").tooltip("Arrange automatically (L)")
            ui.button(icon="fit_screen", on_click=lambda: self.canvas.fit()).props(
                "flat dense"
            ).tooltip("Fit view (F)")
            VersionBar(self.hub, self.name)
            ui.button(icon="settings", on_click=self._flow_settings).props(
                'flat dense data-testid="flow-settings-button"'
            ).mark("flow-settings-button").tooltip("Flow settings")
            ui.button("Config", icon="tune", on_click=self._config_dialog).props(
                'flat dense no-caps data-testid="config-button"'
            ).mark("config-button")
            ui.button("Deploy", icon="rocket_launch").props(
                'flat dense no-caps data-testid="open-deploy"'
            ).mark("open-deploy").on_click(
                lambda: ui.navigate.to(f"/instances/deploy?integration={quote(self.name, safe='')}")
            )
        self.conflict_banner = ui.row().classes(
            "w-full items-center bg-orange-2 text-black q-pa-sm rounded"
        )
        self.conflict_banner.visible = False
        with self.conflict_banner:
            self.conflict_text = (
                ui.label("").props('data-testid="conflict-message"').mark("conflict-message")
            )
            ui.space()
            ui.button("Reload", on_click=self.reload).props("dense no-caps").mark("reload")
        # The editor fills the window below the header; palette, panels and canvas scroll inside.
        # Splitters keep where this browser left them (the inspector's width, the test view's
        # height) across reloads.
        body = remembered_splitter("editor-palette", value=16, limits=(10, 30)).classes("w-full")
        body.style("height: calc(100vh - 170px); min-height: 480px")
        with body as outer:
            with outer.before, ui.scroll_area().classes("w-full h-full"):
                ui.button(
                    "Add an API", icon="add_link", on_click=lambda: add_api_dialog(self.hub)
                ).props('flat dense no-caps data-testid="add-api"').classes("q-mx-xs").mark(
                    "add-api"
                ).tooltip("Make actions from an OpenAPI document")
                Palette(self.hub.registry, self._add_at_default)
            with (
                outer.after,
                remembered_splitter("editor-inspector", value=64, limits=(35, 85)).classes(
                    "w-full h-full"
                ) as inner,
            ):
                with (
                    inner.before,
                    remembered_splitter(
                        "editor-test-view", horizontal=True, value=50, limits=(15, 90)
                    ).classes("w-full h-full") as stack,
                ):
                    with stack.before:
                        self.canvas = FlowCanvas(on_change=self._canvas_changed)
                        self.canvas.props('data-testid="canvas"').mark("canvas")
                    with stack.after, ui.scroll_area().classes("w-full h-full"):
                        self.test_area = ui.column().classes("w-full gap-1")
                with inner.after, ui.scroll_area().classes("w-full h-full"):
                    self.side = ui.column().classes("w-full gap-2 q-pa-sm")
        self._build_side()
        self._build_test_panel()
        self.canvas.set_shortcuts(keymap(self._shortcuts()), self._shortcut)
        self._load_flow(fit=True)

    def _fill_tabs(self) -> None:
        self.tabs.clear()
        with self.tabs:
            for flow in self.state.integration.flows:
                ui.tab(flow.id, label=flow.name or flow.id).props(
                    f'data-testid="tab-{flow.id}"'
                ).mark(f"tab-{flow.id}")
        if self.flow_id:
            self.tabs.value = self.flow_id

    def _build_side(self) -> None:
        self.side.clear()
        with self.side:
            self.inspector_area = ui.column().classes("w-full gap-1")
            ui.separator()
            ui.label("Problems").classes("text-subtitle2")
            self.problems_area = (
                ui.column().classes("w-full gap-1").props('data-testid="problems"').mark("problems")
            )

    def _build_test_panel(self) -> None:
        with self.test_area:
            self.test_panel = TestPanel(
                self.hub,
                self.name,
                on_statuses=self.canvas.set_statuses,
                on_scope=self._rescope,
                blockers=lambda: self.field_errors,
                saved=self._saves_landed,
                on_coverage=self._show_coverage,
                on_pins=self.canvas.set_pins,
            )

    async def _saves_landed(self) -> None:
        """Return once the saves started before this call are stored (they hold `lock` in
        turn, and an asyncio lock is fair)."""
        async with self.lock:
            pass

    def _show_coverage(self, coverage: dict[str, Any] | None) -> None:
        """Overlay Run all's coverage on the canvas (None: remove it)."""
        editor = self.editor
        marks = coverage_marks(editor.flow, coverage) if editor and coverage else {}
        self.canvas.set_coverage(marks)

    # -- state ----------------------------------------------------------------------------------

    @property
    def editor(self) -> FlowEditor | None:
        if not self.flow_id:
            return None
        found = self.editors.get(self.flow_id)
        if found is None:
            flow = self.state.flow(self.flow_id)
            if flow is None:
                return None
            layout = self.state.positions(self.flow_id)
            missing = [s.id for s in flow.all_steps() if s.id not in layout]
            if missing:
                layout = {**editor_service.auto_layout(flow, self.hub.registry), **layout}
            found = FlowEditor(flow, self.hub.registry, layout)
            revision = self.state.revisions.get(self.flow_id, 0)
            histories.restore(self._history_key(), revision, found)
            self.editors[self.flow_id] = found
        return found

    def _load_flow(self, *, fit: bool = False) -> None:
        editor = self.editor
        if editor is None:
            self.canvas.show_empty()
            self._show_problems([])
            return
        self.canvas.set_statuses({})
        self.canvas.set_coverage({})
        self.canvas.show(editor.flow, self.hub.registry, editor.layout, fit=fit)
        self._refresh()
        trigger = editor.flow.trigger
        sample: dict[str, Any] | None = None
        try:
            sample = dict(self.hub.registry.trigger(trigger.action).sample_payload)
        except LookupError:
            sample = None
        self.test_panel.set_flow(self.flow_id, sample)
        self._show_inspector(None)

    def _refresh(self) -> None:
        editor = self.editor
        self.undo_button.enabled = bool(editor and editor.can_undo)
        self.redo_button.enabled = bool(editor and editor.can_redo)
        if editor is not None:
            issues = editor_service.problems(self.hub, self.state.integration, editor.flow)
            unsaved = [
                IssueView(flow=self.flow_id, step=self.selected, message=line, hint=_UNSAVED_HINT)
                for line in self.field_errors
            ]
            self._show_problems([*unsaved, *issues])
        self._show_save_state()

    def _show_save_state(self, text: str | None = None) -> None:
        """The header's save status; a field error overrides it (that edit is not saved)."""
        if text is not None:
            self.save_text = text
        count = len(self.field_errors)
        self.saved_label.text = (
            f"Not saved · {count} field error{'s' if count != 1 else ''}"
            if count
            else self.save_text
        )

    def _field_errors(self, step: Step, errors: dict[str, list[str]]) -> None:
        self.field_errors = field_problems(step, errors)
        self._refresh()

    def _show_problems(self, issues: list[IssueView]) -> None:
        self.problems_area.clear()
        marks: dict[str, str] = {}
        with self.problems_area:
            if not issues:
                ui.label("No problems.").classes("text-positive text-caption")
            for issue in issues:
                if issue.step:
                    marks.setdefault(issue.step, issue.message)
                icon = "error" if issue.severity == "error" else "warning"
                color = "text-negative" if issue.severity == "error" else "text-warning"
                row = ui.row().classes("items-start no-wrap gap-1 cursor-pointer")
                marker = f"problem-{issue.step or 'flow'}"
                row.props(f'data-testid="{marker}"').mark(marker)
                with row:
                    ui.icon(icon).classes(color)
                    with ui.column().classes("gap-0"):
                        ui.label(issue.message).classes("text-caption")
                        if issue.hint:
                            ui.label(issue.hint).classes("text-caption text-grey-7")
                if issue.step:
                    row.on("click", lambda s=issue.step: self.focus(s))
        self.canvas.set_problems(marks)

    def focus(self, step_id: str) -> None:
        """Select a step on the canvas and in the inspector (a click in the problems list)."""
        self.canvas.focus(step_id)
        self._show_inspector(step_id)

    def _show_inspector(self, step_id: str | None) -> None:
        self.selected = step_id
        if self.field_errors:  # the form is redrawn from the saved step: its errors are gone
            self.field_errors = []
            self._refresh()
        self.inspector_area.clear()
        editor = self.editor
        step = editor.step(step_id) if editor and step_id else None
        self.inspector = None
        with self.inspector_area:
            if step is None:
                ui.label("Select a step to edit it.").classes("text-grey-7")
                return
            self._step_header(step)
            self._inspector(step)
        self.test_panel.show_step(step.id)

    def _step_header(self, step: Step) -> None:
        with ui.row().classes("w-full items-center gap-1 no-wrap"):
            step_id = (
                ui.input("Step id", value=step.id)
                .props('dense data-testid="step-id"')
                .mark("step-id")
                .classes("grow")
            )

            async def rename() -> None:
                new = (step_id.value or "").strip()
                if new != step.id:
                    await self._apply(lambda e: e.rename_step(step.id, new), push=True)
                    self._show_inspector(new if self.editor and self.editor.step(new) else step.id)

            step_id.on("blur", rename)
            step_id.on("keydown.enter", rename)
            if self.editor and step.id != self.editor.flow.trigger.id:
                ui.button().props('flat dense icon=play_arrow data-testid="run-upto"').mark(
                    "run-upto"
                ).tooltip("Run up to here").on_click(lambda: self.test_panel.run_upto(step.id))

    def _rescope(self) -> None:
        """New sample data (a payload chosen, a run finished): refresh references and previews."""
        editor = self.editor
        if self.inspector is None or editor is None or self.inspector.step is None:
            return
        scope = self.test_panel.reference_scope()
        source = source_for_step(editor.flow, self.inspector.step.id, self.hub.registry, scope)
        self.inspector.set_references(source)

    def _inspector(self, step: Step) -> None:
        editor = self.editor
        assert editor is not None
        self.inspector = Inspector.for_step(
            step,
            self.hub.registry,
            integration=self.state.integration,
            flow=editor.flow,
            scope=self.test_panel.reference_scope(),
            on_change=self._step_changed,
            on_errors=lambda errors: self._field_errors(step, errors),
        )

    # -- edits ----------------------------------------------------------------------------------

    async def _apply(self, edit: Any, *, push: bool, typing: str | None = None) -> bool:
        """Run `edit(editor)` and save at once (an edit is never only in the browser); push the
        graph when Python changed what the canvas shows. `typing` names an edit in progress
        whose quick successive saves are one revision (see `editor_service.save_flow`)."""
        editor = self.editor
        if editor is None:
            return False
        try:
            edit(editor)
        except EditError as exc:
            ui.notify(str(exc), type="warning", multi_line=True)
            self.canvas.show(editor.flow, self.hub.registry, editor.layout)  # undo the browser's
            return False
        if push:
            self.canvas.show(editor.flow, self.hub.registry, editor.layout)
        self._refresh()
        await self.save(typing=typing)
        return True

    async def save(self, *, layout_only: bool = False, typing: str | None = None) -> None:
        """Save the current flow (or only its positions) with the revision check."""
        editor = self.editor
        if editor is None or self.conflict:
            return
        history_key = self._history_key()
        async with self.lock:
            try:
                if layout_only:
                    await editor_service.save_layout(
                        self.hub, self.name, self.flow_id, editor.layout, replace=True
                    )
                else:
                    saved = await editor_service.save_flow(
                        self.hub,
                        self.name,
                        editor.flow,
                        self.state.revisions.get(self.flow_id, 0),
                        positions=editor.layout,
                        edit=typing,
                    )
                    self.state.revisions[self.flow_id] = saved.revision
            except Conflict as exc:
                self.conflict = True
                self.conflict_text.text = exc.message
                self.conflict_banner.visible = True
                self._show_save_state("Not saved")
                return
            except ServiceError as exc:
                show_error(exc)
                self._show_save_state("Not saved")
                return
        revision = self.state.revisions.get(self.flow_id, 0)
        histories.keep(history_key, revision, editor)
        self._show_save_state(f"Saved · revision {revision}")
        if not layout_only:
            self.test_panel.mark_stale()

    def _history_key(self) -> tuple[str, str, str]:
        """Whose undo history (`designer.history`): this server's, this flow's."""
        return (str(self.hub.settings.data_dir), self.name, self.flow_id)

    async def reload(self) -> None:
        """Drop local edits of every flow and load the stored draft again."""
        self.state = await editor_service.load_editor(self.hub, self.name)
        self.editors.clear()
        self.conflict = False
        self.conflict_banner.visible = False
        if not self.state.flow(self.flow_id):
            flows = self.state.integration.flows
            self.flow_id = flows[0].id if flows else ""
        self._fill_tabs()
        self._load_flow(fit=True)
        self._show_save_state("Reloaded")

    async def _canvas_changed(self, event: CanvasEvent) -> None:
        if event.type == "selection":
            self._show_inspector(event.ids[0] if len(event.ids) == 1 else None)
        elif event.type == "nodes_moved":
            editor = self.editor
            if editor is not None:
                editor.move(event.positions)
                self._refresh()
                await self.save(layout_only=True)
        elif event.type == "nodes_removed":
            await self._apply(lambda e: e.remove(event.ids), push=False)
            if self.selected in event.ids:
                self._show_inspector(None)
        elif event.type == "edge_added":
            edge = event.edges[0]
            await self._apply(
                lambda e: e.connect(edge["source"], edge["port"], edge["target"]), push=False
            )
        elif event.type == "edges_removed":
            doomed = [(e["source"], e["port"], e["target"]) for e in event.edges]
            await self._apply(lambda e: e.disconnect(doomed), push=False)
        elif event.type == "drop" and event.position is not None:
            await self._add(event.action, event.position)

    async def _add(self, action: str, position: Position) -> None:
        if self.editor is None:
            await self._first_flow(action, position)
            return
        added: list[Step] = []
        ok = await self._apply(lambda e: added.append(e.add_step(action, position)), push=True)
        if ok and added:
            self.canvas.focus(added[0].id, center=False)
            self._show_inspector(added[0].id)

    async def _add_at_default(self, action: str) -> None:
        editor = self.editor
        right = max((p.x for p in editor.layout.values()), default=0.0) if editor else -180.0
        await self._add(action, Position(x=right + 260, y=120))

    async def _first_flow(self, action: str, position: Position) -> None:
        """A trigger dropped on an integration without flows starts its first flow."""
        if not is_trigger(action, self.hub.registry):
            ui.notify("Start with a trigger: a flow begins with what starts it.", type="warning")
            return
        taken = {f.id for f in self.state.integration.flows}
        flow_id = next(f"flow_{n}" for n in range(1, len(taken) + 2) if f"flow_{n}" not in taken)
        try:
            await editor_service.add_flow(
                self.hub, self.name, flow_id, flow_id.replace("_", " ").capitalize(), action
            )
            self.state = await editor_service.load_editor(self.hub, self.name)
        except ServiceError as exc:
            show_error(exc)
            return
        self.flow_id = flow_id
        flow = self.state.flow(flow_id)
        if flow is not None:
            self.editors[flow_id] = FlowEditor(flow, self.hub.registry, {flow.trigger.id: position})
            await self.save(layout_only=True)
        self._fill_tabs()
        self._load_flow()

    async def _step_changed(self, step: Step) -> None:
        editor = self.editor
        before = editor.step(step.id) if editor else None
        # Redraw the canvas only when what it shows changed: the name or the output ports.
        redraw = (
            editor is None
            or before is None
            or before.name != step.name
            or editor.ports(before) != editor.ports(step)
        )
        now = time.monotonic()
        await self._apply(
            lambda e: e.replace_step(step, now=now), push=redraw, typing=f"step:{step.id}"
        )

    async def undo(self) -> None:
        await self._history(redo=False)

    async def redo(self) -> None:
        await self._history(redo=True)

    async def _history(self, *, redo: bool) -> None:
        editor = self.editor
        if editor is not None and (editor.redo() if redo else editor.undo()):
            self.canvas.show(editor.flow, self.hub.registry, editor.layout)
            self._refresh()
            self._show_inspector(self.selected)
            await self.save()

    async def auto_layout(self) -> None:
        editor = self.editor
        if editor is None:
            return
        editor.set_layout(editor_service.auto_layout(editor.flow, self.hub.registry))
        self.canvas.show(editor.flow, self.hub.registry, editor.layout, fit=True)
        self._refresh()
        await self.save(layout_only=True)

    def _client_key(self) -> str:
        return str(ui.context.client.id)

    def copy(self) -> None:
        editor = self.editor
        if editor is not None and self.canvas.selected:
            clip = editor.copy(self.canvas.selected)
            if clip.steps:
                _clipboards[self._client_key()] = clip
                ui.notify(f"Copied {len(clip.steps)} step(s).")

    async def paste(self) -> None:
        clip = _clipboards.get(self._client_key())
        if clip is None:
            return
        await self._apply(lambda e: e.paste(clip), push=True)

    def _shortcuts(self) -> dict[str, Callable[[], Awaitable[None] | None]]:
        return {
            "undo": self.undo,
            "redo": self.redo,
            "copy": self.copy,
            "paste": self.paste,
            "select_all": self.canvas.select_all,
            "auto_layout": self.auto_layout,
            "fit_view": self.canvas.fit,
        }

    async def _shortcut(self, action: str) -> None:
        """A canvas shortcut (the canvas ignores keys typed into fields and editors)."""
        outcome = self._shortcuts()[action]()
        if outcome is not None:
            await outcome

    # -- flows and config -----------------------------------------------------------------------

    async def _tab_changed(self, event: Any) -> None:
        flow_id = str(event.value or "")
        if flow_id and flow_id != self.flow_id and self.state.flow(flow_id):
            self.flow_id = flow_id
            self._load_flow(fit=True)

    async def _rename_flow_dialog(self) -> None:
        flow = self.state.flow(self.flow_id)
        if flow is None:
            return
        with ui.dialog() as dialog, ui.card().classes("w-96"):
            ui.label(f"Rename flow '{flow.label}'").classes("text-h6")
            name = (
                ui.input("Name", value=flow.name)
                .props('autofocus data-testid="rename-flow-name"')
                .mark("rename-flow-name")
                .classes("w-full")
            )
            ui.label(f"Its id stays '{flow.id}': webhook URLs and test payloads use it.").classes(
                "text-caption text-grey-7"
            )
            error = (
                ui.label("")
                .classes("text-negative text-caption")
                .props('data-testid="rename-flow-error"')
                .mark("rename-flow-error")
            )

            async def rename() -> None:
                try:
                    saved = await editor_service.rename_flow(
                        self.hub,
                        self.name,
                        flow.id,
                        name.value or "",
                        self.state.revisions.get(flow.id, 0),
                    )
                    self.state = await editor_service.load_editor(self.hub, self.name)
                except ServiceError as exc:
                    error.text = exc.message
                    return
                dialog.close()
                renamed = self.state.flow(flow.id)
                editor = self.editors.get(flow.id)
                if editor is not None and renamed is not None:
                    # Undo must not bring the old name back: the history starts here.
                    editor.replace_flow(renamed, editor.layout)
                self._fill_tabs()
                self._refresh()
                self._show_save_state(f"Saved · revision {saved.revision}")

            name.on("keydown.enter", rename)
            with ui.row():
                ui.button("Rename", on_click=rename).props('data-testid="rename-flow-save"').mark(
                    "rename-flow-save"
                )
                ui.button("Cancel", on_click=dialog.close).props("flat")
        dialog.open()

    def _trigger_options(self) -> dict[str, str]:
        options: dict[str, str] = {}
        for component in self.hub.registry.components():
            for trigger in component.triggers:
                options[f"{component.key}.{trigger.key}"] = f"{trigger.title} ({component.title})"
        return options

    async def _add_flow_dialog(self) -> None:
        with ui.dialog() as dialog, ui.card().classes("w-96"):
            ui.label("New flow").classes("text-h6")
            flow_id = (
                ui.input("Id", placeholder="e.g. account_sync")
                .props('data-testid="new-flow-id"')
                .mark("new-flow-id")
            )
            name = ui.input("Name").props('data-testid="new-flow-name"').mark("new-flow-name")
            options = self._trigger_options()
            trigger = (
                ui.select(options, label="Trigger", value="webhook.webhook")
                .props('data-testid="new-flow-trigger"')
                .mark("new-flow-trigger")
            )
            error = ui.label("").classes("text-negative text-caption")

            async def create() -> None:
                try:
                    await editor_service.add_flow(
                        self.hub,
                        self.name,
                        (flow_id.value or "").strip(),
                        (name.value or "").strip(),
                        str(trigger.value),
                    )
                except ServiceError as exc:
                    error.text = _error_text(exc)
                    return
                dialog.close()
                new_id = (flow_id.value or "").strip()
                self.state = await editor_service.load_editor(self.hub, self.name)
                self.flow_id = new_id
                self._fill_tabs()
                self._load_flow(fit=True)

            with ui.row():
                ui.button("Create", on_click=create).props('data-testid="create-flow"').mark(
                    "create-flow"
                )
                ui.button("Cancel", on_click=dialog.close).props("flat")
        dialog.open()

    def _flow_settings(self) -> None:
        editor = self.editor
        if editor is not None:

            async def saved(settings: FlowSettings) -> None:
                await self._apply(lambda e: e.set_settings(settings), push=False)

            open_flow_settings(editor.flow, saved)

    async def _config_dialog(self) -> None:
        from app.pages.config_editor import ConfigEditor

        async def saved(state: editor_service.EditorState) -> None:
            self.state = state
            editor = self.editor
            if editor is not None:
                self._refresh()

        with ui.dialog() as dialog, ui.card().classes("w-[56rem] max-w-full"):
            ConfigEditor(self.hub, self.state.integration, on_saved=saved, on_close=dialog.close)
        dialog.open()


def _error_text(exc: ServiceError) -> str:
    data = exc.to_json()
    details = data.get("details")
    if isinstance(details, dict) and details:
        return "; ".join(f"{k}: {v}" for k, v in details.items())
    return str(data.get("error", exc))


@ui.page("/integrations/{name}", title="Flowyard · editor")
async def editor_page(name: str, flow: str | None = None) -> None:
    """The editor of integration `name`, on flow `flow` (default: the first)."""
    the_hub = hub()
    try:
        state = await editor_service.load_editor(the_hub, name)
    except NotFound as exc:
        with frame("Not found"):
            ui.label(exc.message).props('data-testid="not-found"').mark("not-found")
            ui.link("Back to the integrations", "/")
        return
    with frame(name, wide=True):
        EditorPage(the_hub, state, flow).build()


def new_integration_dialog() -> ui.dialog:
    """A dialog asking for a name, creating the integration and opening its editor."""
    with ui.dialog() as dialog, ui.card().classes("w-96"):
        ui.label("New integration").classes("text-h6")
        name = (
            ui.input("Name")
            .props('data-testid="new-integration-name"')
            .mark("new-integration-name")
        )
        description = ui.input("Description")
        error = (
            ui.label("")
            .classes("text-negative text-caption")
            .props('data-testid="new-integration-error"')
            .mark("new-integration-error")
        )

        async def create() -> None:
            text = (name.value or "").strip()
            try:
                await editor_service.create_integration(hub(), text, description.value or "")
            except ServiceError as exc:
                error.text = _error_text(exc)
                return
            dialog.close()
            ui.navigate.to(f"/integrations/{quote(text, safe='')}")

        with ui.row():
            ui.button("Create", on_click=create).props('data-testid="create-integration"').mark(
                "create-integration"
            )
            ui.button("Cancel", on_click=dialog.close).props("flat")
    return dialog
