"""The designer's version bar: the last published version, and Publish (with an optional note).

Instances run published versions only, so publishing is the one step from "edited" to
"deployable": it freezes the draft as version N; later edits start a new draft.
"""

from __future__ import annotations

from nicegui import ui

from app.pages.layout import testid
from app.services import integrations
from app.services.errors import ServiceError
from app.services.hub import Hub

__all__ = ["VersionBar"]


class VersionBar:
    """ "Last published: version N" and the Publish button, for the integration `name`."""

    def __init__(self, hub: Hub, name: str) -> None:
        self.hub, self.name = hub, name
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
        with ui.dialog() as dialog, ui.card().classes("w-[32rem] max-w-full"):
            ui.label("Publish the draft").classes("text-h6")
            ui.label(
                "It becomes a new version: instances can be deployed from it or upgraded to it. "
                "Later edits go to a new draft and reach no instance until published."
            ).classes("text-grey-8")
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
        dialog.on_value_change(lambda e: None if e.value else dialog.delete())
        dialog.open()
