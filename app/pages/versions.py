"""Versions in the designer: the version bar (the last published version, Publish with an
optional note, a link to the history) and the history page (every version with its note, and the
diff of any two, computed by `designer.versions`).

Instances run published versions only, so publishing is the one step from "edited" to
"deployable": it freezes the draft as version N; later edits start a new draft.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from nicegui import ui

from app.pages.dialogs import titled_dialog
from app.pages.layout import frame, hub, testid, when
from app.services import integrations
from app.services.errors import NotFound, ServiceError
from app.services.hub import Hub
from designer.versions import FieldChange, StepDiff, VersionDiff, diff_versions

__all__ = ["VersionBar", "history_url", "show_diff", "versions_page"]


class VersionBar:
    """ "Last published: version N" and the Publish button, for the integration `name`."""

    def __init__(self, hub: Hub, name: str) -> None:
        self.hub, self.name = hub, name
        history = ui.button(
            icon="history", on_click=lambda: ui.navigate.to(history_url(name))
        ).props("flat dense")
        testid(history, "versions").mark("versions").tooltip("Versions: history and diff")
        self.label = testid(ui.label("").classes("text-caption text-grey-7"), "version-label")
        self.label.mark("version-label")
        button = ui.button("Publish", icon="publish", on_click=self.open_dialog)
        testid(button.props("flat dense no-caps"), "publish").mark("publish")
        button.tooltip("Freeze the draft as a new version that instances can run")
        ui.timer(0, self.refresh, once=True)

    async def refresh(self) -> None:
        """Read the versions again and say which one was last published."""
        detail = await integrations.get_integration(self.hub, self.name)
        published = [v for v in detail.versions if v.published]
        if not published:
            self.label.text = "Not published yet"
            return
        self.label.text = f"Last published: {published[-1].label}"

    async def open_dialog(self) -> None:
        detail = await integrations.get_integration(self.hub, self.name)
        if detail.published:  # no draft: nothing was edited since the last publish
            ui.notify(
                f"Nothing to publish: there are no edits since version {detail.version}.",
                type="info",
            )
            return
        explanation = (
            "It becomes a new version: instances can be deployed from it or upgraded to it. "
            "Later edits go to a new draft and reach no instance until published."
        )
        with titled_dialog("Publish the draft", explanation, "publish-dialog") as dialog:
            note = testid(ui.input("Note (optional): what changed"), "publish-note")
            note.classes("w-full").mark("publish-note")
            problems = ui.column().classes("w-full text-negative gap-1").mark("publish-problems")

            async def publish() -> None:
                problems.clear()
                try:
                    version = await integrations.publish(self.hub, self.name, note.value)
                except ServiceError as exc:
                    with problems:
                        ui.label(exc.message + (f" {exc.hint}" if exc.hint else ""))
                        for issue in (exc.details or {}).get("issues", []):
                            ui.label(f"• {issue['message']}")
                        for field, message in (exc.details or {}).items():
                            if field != "issues":
                                ui.label(f"• {field}: {message}")
                    return
                await self.refresh()
                ui.notify(f"Published version {version}: it can be deployed now.")
                dialog.close()

            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                confirm = ui.button("Publish", icon="publish", on_click=publish)
                testid(confirm, "publish-confirm").mark("publish-confirm")


# --- the version history ----------------------------------------------------------------------

_COLORS = {"added": "positive", "removed": "negative", "moved": "primary", "changed": "warning"}


def history_url(name: str) -> str:
    return f"/integrations/{quote(name, safe='')}/versions"


@ui.page("/integrations/{name}/versions", title="Versions · Flowyard")
async def versions_page(name: str, before: str = "", after: str = "") -> None:
    """Every version of integration `name` with its note, and the diff of two
    (`?before=N&after=M`; default: the newest against the one before it)."""
    with frame(f"{name}: versions"):
        try:
            detail = await integrations.get_integration(hub(), name)
        except NotFound as exc:
            ui.label(exc.message).mark("not-found")
            return
        ui.link("Back to the designer", f"/integrations/{quote(name, safe='')}")
        _listing(detail.versions)
        numbers = [v.version for v in detail.versions]
        if len(numbers) < 2:
            ui.label("Only one version so far: nothing to compare yet.").mark("no-diff")
            return
        newer = int(after) if after.isdigit() and int(after) in numbers else numbers[-1]
        older = int(before) if before.isdigit() and int(before) in numbers else None
        if older is None:
            older = max((n for n in numbers if n < newer), default=numbers[0])
        labels = {v.version: v.label for v in reversed(detail.versions)}
        with ui.row().classes("items-center gap-4"):
            ui.label("Compare").classes("text-subtitle1")
            for key, value in (("before", older), ("after", newer)):
                other = "after" if key == "before" else "before"
                kept = newer if key == "before" else older

                def go(event: Any, key: str = key, other: str = other, kept: int = kept) -> None:
                    ui.navigate.to(f"{history_url(name)}?{key}={event.value}&{other}={kept}")

                choose = ui.select(labels, label=key.capitalize(), value=value, on_change=go)
                testid(choose.classes("w-72"), f"diff-{key}").mark(f"diff-{key}")
        old = await integrations.get_integration(hub(), name, older)
        new = await integrations.get_integration(hub(), name, newer)
        show_diff(diff_versions(old.integration, new.integration))


def _listing(versions: list[integrations.VersionInfo]) -> None:
    with ui.card().classes("w-full"):
        ui.label("History").classes("text-subtitle1")
        for info in reversed(versions):
            with testid(ui.row().classes("items-center gap-3"), f"version-row-{info.version}"):
                ui.label(f"version {info.version}").classes("text-bold w-24")
                state = "published" if info.published else "draft"
                ui.badge(state, color="positive" if info.published else "grey-7")
                ui.label(when(info.published_at or info.created_at)).classes("text-grey-7")
                ui.label(info.note or "").classes("text-grey-9")


def show_diff(diff: VersionDiff) -> None:
    """The changes from `diff.before` to `diff.after`: config, then each flow's steps."""
    with testid(ui.column().classes("w-full gap-3"), "version-diff").mark("version-diff"):
        ui.label(f"From version {diff.before} to version {diff.after}").classes("text-h6")
        if diff.empty:
            ui.label("No changes to the flows or config (the layout may differ).")
            return
        if diff.config:
            with ui.card().classes("w-full"):
                ui.label("Config and connections").classes("text-subtitle1")
                _fields_table("config", diff.config)
        for flow in diff.flows:
            with testid(ui.card().classes("w-full"), f"diff-flow-{flow.flow}"):
                with ui.row().classes("items-center gap-2"):
                    ui.label(f"Flow '{flow.label}'").classes("text-subtitle1 text-bold")
                    ui.badge(flow.change, color=_COLORS[flow.change])
                if flow.settings:
                    _fields_table(f"{flow.flow}-settings", flow.settings)
                for step in flow.steps:
                    _step(flow.flow, step)


def _step(flow: str, step: StepDiff) -> None:
    with testid(ui.column().classes("w-full gap-1 q-pl-md"), f"diff-step-{flow}-{step.step}"):
        with ui.row().classes("items-center gap-2"):
            ui.badge(step.change, color=_COLORS[step.change])
            ui.label(step.label).classes("text-bold")
            if step.label != step.step:
                ui.label(f"({step.step})").classes("text-grey-7 font-mono text-sm")
        if step.change == "moved":
            was = ", ".join(step.moved_from) or "nothing"
            now = ", ".join(step.moved_to) or "nothing"
            ui.label(f"connected from {was}; now from {now}").classes("text-sm")
        if step.fields:
            _fields_table(step.step, step.fields)


def _fields_table(owner: str, fields: list[FieldChange]) -> None:
    with ui.grid(columns="auto 1fr 1fr").classes("w-full gap-x-3 gap-y-1 items-start text-sm"):
        for label in ("", "before", "after"):
            ui.label(label).classes("text-grey-7")
        for change in fields:
            ui.label(change.field).classes("font-mono")
            for side, value, color in (
                ("before", change.before, "bg-red-1"),
                ("after", change.after, "bg-green-1"),
            ):
                text = "(not set)" if value is None else json.dumps(value, indent=1)
                cell = ui.label(text).classes(f"font-mono whitespace-pre-wrap break-all {color}")
                testid(cell, f"diff-{side}-{owner}-{change.field}")
