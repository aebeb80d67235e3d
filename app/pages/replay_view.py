"""Replay on draft with its per-step diff, `/executions/{id}/replay-on-draft`, and Save as test.

The page runs `app.services.replay.replay_on_draft` when it opens (nothing is sent: outbound
calls are answered by the execution's recordings; nothing is stored) and shows:

- a summary: original and replay status, the replay's error (e.g. a call with no recording);
- the steps with a marker each: `same`, `changed`, `only in the original`, `only in the replay`;
- for the selected step its status, port, error, input and output side by side (original |
  replay), the changed paths listed and their lines highlighted in both panes; for a step only
  the original ran, the original's error, input and output (a replay keeps no records);
- Config overrides (a JSON object) and Replay again, e.g. for a designer test run, which keeps
  none of the config values it was given.

`save_as_test_dialog(execution_id)` asks for a test name and appends the execution to its draft
flow's `tests:` (`execution_as_test(save=True)`); a taken name is refused with the service's
message; success links to the designer. The execution page uses it too.

`app.pages.executions` registers the page (see there why), so importing that module is enough.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from nicegui import ui
from pydantic import ValidationError

from app.pages.layout import frame, hub, show_error, status_badge, steps_beside_detail, testid
from app.services import executions, replay
from app.services.errors import ServiceError
from app.services.replay import ReplayDiff, SideBySide, StepDiff
from runtime.diffing import join_path

__all__ = ["json_lines", "replay_page", "save_as_test_dialog"]

MARKERS = {
    "same": "grey-6",
    "changed": "orange-8",
    "only in the original": "red-7",
    "only in the replay": "blue-7",
}
"""Each step's marker in the diff, with its badge colour."""

_CHANGED_LINE = "bg-amber-2 text-black"


@dataclass(frozen=True, slots=True)
class _Row:
    """One entry of the step list: a step that ran in both runs, or in one only."""

    label: str
    marker: str
    diff: StepDiff | None = None


def _label(step_id: str, iteration: list[int]) -> str:
    return step_id + "".join(f"[{i}]" for i in iteration)


def _rows(diff: ReplayDiff) -> list[_Row]:
    rows = [
        _Row(_label(s.step_id, s.iteration), "changed" if s.changed else "same", s)
        for s in diff.steps
    ]
    rows += [_Row(label, "only in the original") for label in diff.only_original]
    rows += [_Row(label, "only in the replay") for label in diff.only_replay]
    return rows


def json_lines(value: Any, path: str = "", indent: int = 0) -> list[tuple[str, str]]:
    """`value` pretty-printed as JSON, one (text, path) per line, the path in
    `runtime.diffing.changed_paths`'s syntax (`items[0].qty`, `` for the whole value)."""
    pad = "  " * indent
    if isinstance(value, dict) and value:
        lines = [(pad + "{", path)]
        for n, (key, item) in enumerate(value.items()):
            inner = json_lines(item, join_path(path, str(key)), indent + 1)
            head = f"{'  ' * (indent + 1)}{json.dumps(str(key), ensure_ascii=False)}: "
            lines.append((head + inner[0][0].lstrip(), inner[0][1]))
            lines += inner[1:]
            if n < len(value) - 1:
                lines[-1] = (lines[-1][0] + ",", lines[-1][1])
        return [*lines, (pad + "}", path)]
    if isinstance(value, list) and value:
        lines = [(pad + "[", path)]
        for index, item in enumerate(value):
            inner = json_lines(item, join_path(path, index), indent + 1)
            lines += inner
            if index < len(value) - 1:
                lines[-1] = (lines[-1][0] + ",", lines[-1][1])
        return [*lines, (pad + "]", path)]
    text = json.dumps(value, ensure_ascii=False, default=str)
    return [(pad + text, path)]


def _within(path: str, changed: list[str]) -> bool:
    return any(c in ("", path) or path.startswith((c + ".", c + "[")) for c in changed)


def _pane(title: str, value: Any, changed: list[str], marker: str) -> None:
    """One side: the JSON with changed lines highlighted (escaped here, so no markup gets in)."""
    rows = []
    for text, path in json_lines(value):
        hit = _within(path, changed) if changed else False
        css = f' class="{_CHANGED_LINE}" data-changed="{html.escape(path, quote=True)}"'
        rows.append(f"<div{css if hit else ''}>{html.escape(text) or '&nbsp;'}</div>")
    with ui.column().classes("w-1/2 min-w-0 gap-1"):
        ui.label(title).classes("text-caption text-grey-7")
        ui.html(
            '<pre class="text-sm m-0 whitespace-pre-wrap break-all">' + "".join(rows) + "</pre>",
            sanitize=False,
        ).classes("w-full p-2 rounded bg-grey-2 text-black overflow-auto").mark(marker)


def _error_line(error: Any, marker: str) -> None:
    if not isinstance(error, dict):
        return
    kind = f"{error.get('kind')}: " if error.get("kind") else ""
    with ui.card().classes("w-full bg-red-1 text-negative p-2").mark(marker):
        ui.label(f"{kind}{error.get('message', '')}").classes("text-bold")
        if error.get("hint"):
            ui.label(str(error["hint"]))


class _DiffView:
    """The step list with markers, and the selected step side by side."""

    def __init__(self, diff: ReplayDiff, original: dict[str, dict[str, Any]]) -> None:
        self.rows = _rows(diff)
        self.original = original
        self.selected = next(
            (i for i, r in enumerate(self.rows) if r.marker != "same"), 0 if self.rows else None
        )
        self.list, self.panel = steps_beside_detail("diff-steps", "diff-detail", "w-80")
        self.select(self.selected)

    def select(self, index: int | None) -> None:
        self.selected = index
        self._draw_list()
        self._draw_panel()

    def _draw_list(self) -> None:
        self.list.clear()
        with self.list:
            for index, row in enumerate(self.rows):
                active = "active" if index == self.selected else ""
                item = ui.item(on_click=lambda i=index: self.select(i)).props(
                    f'clickable data-testid="diff-step" {active}'
                )
                item.mark(f"diff-step diff-step-{row.label}")
                with item:
                    with ui.item_section():
                        name = row.diff.step_name if row.diff else row.label
                        ui.item_label(name)
                        if row.diff and row.diff.iteration:
                            ui.item_label(row.label).props("caption")
                    failed = row.diff.error.replay if row.diff else None
                    if isinstance(failed, dict):  # e.g. no_recording: visible from the list
                        with ui.item_section().props("side"):
                            ui.icon("error", color="negative").mark(
                                f"diff-failed-{row.label}"
                            ).tooltip(str(failed.get("kind", "")))
                    with ui.item_section().props("side"):
                        ui.badge(row.marker, color=MARKERS[row.marker]).props(
                            f'data-testid="marker-{row.marker.replace(" ", "-")}"'
                        )

    def _draw_panel(self) -> None:
        self.panel.clear()
        with self.panel:
            if self.selected is None:
                ui.label("No step ran in either run.").classes("text-grey-7")
                return
            row = self.rows[self.selected]
            with ui.row().classes("items-center gap-2"):
                ui.label(row.diff.step_name if row.diff else row.label).classes("text-h6").mark(
                    "diff-step-title"
                )
                ui.badge(row.marker, color=MARKERS[row.marker])
            if row.diff is None:
                where = "original" if row.marker == "only in the original" else "replay"
                other = "replay" if where == "original" else "original"
                ui.label(
                    f"Step '{row.label}' ran in the {where} only: the {other} did not reach it "
                    "(a branch went the other way, or the run stopped before)."
                ).mark("diff-only")
                record = self.original.get(row.label)
                if record is not None:  # what the original did there (the replay keeps no record)
                    _error_line(record["error"], "diff-error-original")
                    for title in ("Input", "Output"):
                        ui.label(f"{title} in the original").classes("text-subtitle2")
                        with ui.row().classes("w-full no-wrap gap-4"):
                            _pane(
                                "Original",
                                record[title.lower()],
                                [],
                                f"diff-{title.lower()}-original",
                            )
                return
            self._sides(row.diff)

    def _sides(self, step: StepDiff) -> None:
        with ui.row().classes("items-center gap-2"):
            ui.label("Status").classes("text-grey-7")
            status_badge(str(step.status.original))
            ui.label("→")
            status_badge(str(step.status.replay))
            if step.port.changed:
                before, after = (p or "—" for p in (step.port.original, step.port.replay))
                ui.label(f"port {before} → {after}").mark("diff-port")
        changed = [
            f"{part}.{path}" if path else part
            for part, side in (("input", step.input), ("output", step.output))
            for path in side.changed
        ]
        with ui.column().classes("gap-0").mark("diff-paths"):
            ui.label("Changed paths" if changed else "No input or output changed.").classes(
                "text-subtitle2"
            )
            for path in changed:
                ui.label(path).classes("font-mono text-sm").mark(f"diff-path-{path}")
        if step.error.original or step.error.replay:
            with ui.row().classes("w-full no-wrap gap-4"):
                with ui.column().classes("w-1/2 min-w-0"):
                    _error_line(step.error.original, "diff-error-original")
                with ui.column().classes("w-1/2 min-w-0"):
                    _error_line(step.error.replay, "diff-error-replay")
        for title, side in (("Input", step.input), ("Output", step.output)):
            self._pair(title, side)

    @staticmethod
    def _pair(title: str, side: SideBySide) -> None:
        ui.label(title).classes("text-subtitle2")
        with ui.row().classes("w-full no-wrap gap-4"):
            key = title.lower()
            _pane("Original", side.original, side.changed, f"diff-{key}-original")
            _pane("Replay on draft", side.replay, side.changed, f"diff-{key}-replay")


def _summary(diff: ReplayDiff) -> None:
    with ui.card().classes("w-full").mark("replay-summary"):
        with ui.row().classes("w-full items-center gap-3"):
            ui.label("Original").classes("text-grey-7")
            status_badge(diff.original_status)
            ui.label("→ replay on the draft").classes("text-grey-7")
            status_badge(diff.replay_status)
            changed = sum(1 for s in diff.steps if s.changed)
            verdict = (
                "identical"
                if diff.identical
                else f"{changed} changed, {len(diff.only_original)} only in the original, "
                f"{len(diff.only_replay)} only in the replay"
            )
            ui.label(verdict).classes("text-bold").mark("replay-verdict")
            ui.space()
            ui.button(
                "Save as test", icon="playlist_add", on_click=lambda: _open_save(diff.execution_id)
            ).props('data-testid="save-as-test-button"').mark("save-as-test-button")
        ui.label(
            f"Draft version {diff.draft_version} of '{diff.integration}', flow '{diff.flow_id}'. "
            "Outbound calls were answered by the original's recordings: nothing was sent again, "
            "nothing was stored."
        ).classes("text-grey-7")
        if diff.replay_error:
            step = diff.replay_error.get("step")
            where = f"Step '{step}': " if step else ""
            _error_line(
                {**diff.replay_error, "message": where + str(diff.replay_error.get("message"))},
                "replay-error",
            )


def _open_save(execution_id: str) -> None:
    save_as_test_dialog(execution_id).open()


def save_as_test_dialog(execution_id: str) -> ui.dialog:
    """A dialog asking for a test name, then saving the execution as a test of its draft flow."""
    with ui.dialog() as dialog, ui.card().classes("w-[28rem]") as card:
        testid(card, "save-as-test-dialog").mark("save-as-test-dialog")
        ui.label("Save as test").classes("text-h6")
        ui.label(
            "Adds this execution's request, recorded responses and outputs (as expectations) "
            "to the draft flow's tests."
        ).classes("text-grey-7")
        name = (
            ui.input("Test name", value=f"Execution {execution_id}")
            .props('data-testid="save-as-test-name" autofocus')
            .classes("w-full")
            .mark("save-as-test-name")
        )
        result = ui.column().classes("w-full gap-1")

        async def save() -> None:
            result.clear()
            try:
                options = replay.SaveAsTest(name=name.value.strip(), save=True)
            except ValidationError:
                name.props('error error-message="Give the test a name of 1 to 200 characters."')
                return
            name.props(remove="error error-message")
            try:
                saved = await replay.execution_as_test(hub(), execution_id, options.name, save=True)
            except ServiceError as exc:
                show_error(exc)
                with result:
                    ui.label(exc.message).classes("text-negative").mark("save-as-test-error")
                return
            flow = quote(saved.flow_id, safe="")
            target = f"/integrations/{quote(saved.integration, safe='')}?flow={flow}"
            with result:
                ui.label(
                    f"Saved test '{saved.test['name']}' in flow '{saved.flow_id}' of "
                    f"'{saved.integration}'."
                ).classes("text-positive").mark("save-as-test-saved")
                ui.link("Open it in the designer", target).props(
                    'data-testid="save-as-test-link"'
                ).mark("save-as-test-link")
            ui.notify("Test saved.", type="positive")

        with ui.row().classes("w-full justify-end"):
            ui.button("Close", on_click=dialog.close).props("flat")
            ui.button("Save", on_click=save).props('data-testid="save-as-test-save"').mark(
                "save-as-test-save"
            )
    return dialog


def _config_values(text: str) -> dict[str, Any]:
    """The overrides typed in: a JSON object, checked as the API checks `ReplayOptions`."""
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ValueError(f"Config overrides are not JSON ({exc.args[0]}).") from None
    if not isinstance(value, dict):
        raise ValueError(
            'Config overrides must be a JSON object, e.g. {"base_url": "https://..."}.'
        )
    return replay.ReplayOptions(config=value).config


class _Replay:
    """The page's body: the overrides, then the summary and the diff, redrawn per replay."""

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        with ui.expansion("Config overrides", icon="tune").classes("w-full").mark("replay-config"):
            ui.label(
                "Values used instead of the instance's (a designer test run keeps none of the "
                "values it was given), as a JSON object."
            ).classes("text-grey-7")
            self.config = (
                ui.textarea(placeholder='{"base_url": "https://api.example.com"}')
                .props('outlined autogrow data-testid="replay-config-input"')
                .classes("w-full font-mono")
                .mark("replay-config-input")
            )
            ui.button("Replay again", icon="replay", on_click=self.again).props(
                'data-testid="replay-again"'
            ).mark("replay-again")
        self.body = ui.column().classes("w-full gap-4")

    async def again(self) -> None:
        try:
            config = _config_values(self.config.value or "")
        except (ValueError, ValidationError) as exc:
            self.config.props["error"] = True
            self.config.props["error-message"] = str(exc)
            self.config.update()
            return
        self.config.props(remove="error error-message")
        await self.run(config)

    async def run(self, config: dict[str, Any] | None = None) -> None:
        self.body.clear()
        try:
            diff = await replay.replay_on_draft(hub(), self.execution_id, config)
        except ServiceError as exc:
            with (
                self.body,
                ui.card().classes("w-full bg-red-1 text-negative").mark("replay-refused"),
            ):
                ui.label(exc.message).classes("text-bold")
                if exc.hint:
                    ui.label(exc.hint)
            return
        try:
            detail = await executions.get_execution(hub(), self.execution_id)
        except ServiceError:
            detail = {"steps": []}  # deleted meanwhile: the diff still stands
        original = {  # keyed as the diff keys them: skipped records are not runs
            _label(r["step_id"], r["iteration_path"] or []): r
            for r in detail["steps"]
            if r["status"] != "skipped"
        }
        with self.body:
            _summary(diff)
            _DiffView(diff, original)


async def replay_page(execution_id: str) -> None:
    """Replay the execution on the draft and show the diff (see the module)."""
    with frame("Replay on draft", wide=True):
        with ui.row().classes("items-center gap-2"):
            ui.link("← Execution " + execution_id, f"/executions/{execution_id}").mark(
                "back-to-execution"
            )
        await _Replay(execution_id).run()
