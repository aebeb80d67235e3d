"""The designer's "Add an API" dialog: an OpenAPI document (URL or file) becomes a component.

The component is written to `<data-dir>/apis/` and registered at once (`app.services.apis`);
the page reloads so the palette lists its actions.
"""

from __future__ import annotations

from nicegui import events, ui

from app.services.apis import AddedApi, add_api
from app.services.errors import ServiceError
from app.services.hub import Hub

__all__ = ["add_api_dialog"]

MAX_BYTES = 64 * 1024 * 1024


def _summary(added: AddedApi) -> str:
    text = f"Added '{added.key}': {added.actions} actions"
    if added.tags:
        text += f" in {added.tags} groups"
    if added.connection_types:
        text += f"; add a connection of type {' or '.join(added.connection_types)}"
    if added.skipped:
        text += f"; {len(added.skipped)} operations left out (multipart or binary bodies)"
    return text + "."


def add_api_dialog(hub: Hub) -> ui.dialog:
    """Open a dialog that adds an API from an OpenAPI document's URL or an uploaded file."""
    with ui.dialog() as dialog, ui.card().classes("w-[32rem] max-w-full").mark("add-api-dialog"):
        ui.label("Add an API").classes("text-h6")
        ui.label(
            "Give an OpenAPI 3.0 or 3.1 document (JSON or YAML). Each operation becomes an "
            "action in the palette, with its inputs as a form."
        ).classes("text-caption")
        url_input = (
            ui.input("Document URL", placeholder="https://api.example.com/openapi.json")
            .props('data-testid="add-api-url"')
            .classes("w-full")
            .mark("add-api-url")
        )
        key = (
            ui.input("Name (optional)", placeholder="from the API's title")
            .props('data-testid="add-api-name"')
            .classes("w-full")
            .mark("add-api-name")
        )
        error = (
            ui.label("")
            .classes("text-negative whitespace-pre-line")
            .props('data-testid="add-api-error"')
            .mark("add-api-error")
        )
        error.visible = False

        async def finish(
            url: str | None = None, upload: bytes | None = None, name: str = ""
        ) -> None:
            error.visible = False
            try:
                added = await add_api(
                    hub.registry,
                    hub.settings.data_dir,
                    url=url,
                    upload=upload,
                    name=name,
                    key=(key.value or "").strip(),
                )
            except ServiceError as exc:
                error.text = exc.message + (f"\n{exc.hint}" if exc.hint else "")
                error.visible = True
                return
            dialog.close()
            ui.notify(_summary(added), type="positive", timeout=8000)
            ui.navigate.reload()

        async def from_url() -> None:
            text = (url_input.value or "").strip()
            if not text.startswith(("http://", "https://")):
                error.text = "Enter an http(s) URL, or upload a file below."
                error.visible = True
                return
            await finish(url=text)

        async def uploaded(event: events.UploadEventArguments) -> None:
            data = await event.file.read()
            upload.reset()
            await finish(upload=data, name=event.file.name)

        with ui.row().classes("items-center"):
            ui.button("Add from URL", on_click=from_url).props('data-testid="add-api-go"').mark(
                "add-api-go"
            )
            ui.label("or")
            upload = (
                ui.upload(
                    label="Upload a file",
                    auto_upload=True,
                    on_upload=uploaded,
                    max_file_size=MAX_BYTES,
                )
                .props('accept=".json,.yaml,.yml" flat bordered data-testid="add-api-upload"')
                .classes("w-56")
                .mark("add-api-upload")
            )
        with ui.row().classes("w-full justify-end"):
            ui.button("Close", on_click=dialog.close).props("flat")
    dialog.open()
    return dialog
