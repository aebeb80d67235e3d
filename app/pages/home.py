"""The start page: the integrations, what is deployed, and where to go next.

Pages call the same services as the REST API; they get the `Hub` from `nicegui.app.state.hub`,
which the server's lifespan sets (`app.pages.layout.hub`).
"""

from __future__ import annotations

from urllib.parse import quote

from nicegui import events, ui

from app.pages.editor import new_integration_dialog
from app.pages.layout import frame, hub, status_badge
from app.services import examples, instances, integrations
from app.services.errors import ServiceError

__all__ = ["MAX", "home", "import_file", "import_upload"]

MAX = 5 * 1024 * 1024
"""Largest integration file the page imports (bytes)."""


@ui.page("/", title="Flowyard")
async def home() -> None:
    """Integrations with their flows and a Deploy button; instances with their status."""
    known = await integrations.list_integrations(hub())
    deployed = await instances.list_instances(hub())
    with frame("Integrations"):
        dialog = new_integration_dialog()
        with ui.row().classes("items-center gap-2"):
            ui.button("New integration", icon="add", on_click=dialog.open).props(
                'data-testid="new-integration"'
            )
            import_upload()
        if not known:
            await start_from_examples()
        for item in known:
            with ui.card().classes("w-full").props(f'data-testid="integration-{item.name}"'):
                with ui.row().classes("w-full items-center"):
                    state = "published" if item.published else "draft"
                    ui.link(
                        f"{item.name} — version {item.version} ({state})",
                        f"/integrations/{quote(item.name, safe='')}",
                    ).classes("text-bold").props(f'data-testid="open-{item.name}"')
                    ui.space()
                    ui.link(
                        "Deploy", f"/instances/deploy?integration={quote(item.name, safe='')}"
                    ).mark(f"deploy-{item.name}")
                if item.description:
                    ui.label(item.description).classes("text-grey-8")
                with ui.row().classes("gap-3"):
                    for flow in item.flows:
                        ui.link(
                            f"{flow.name or flow.id} ({flow.trigger})",
                            f"/integrations/{quote(item.name, safe='')}?flow={quote(flow.id)}",
                        )
        with ui.row().classes("items-center gap-4"):
            ui.label("Instances").classes("text-h5")
            ui.link("Manage instances", "/instances")
            ui.link("Executions", "/executions")
        if not deployed:
            ui.label("None deployed yet.")
        for instance in deployed:
            with (
                ui.row()
                .classes("items-center gap-2")
                .props(f'data-testid="instance-{instance.name}"')
            ):
                ui.link(instance.name, "/instances").classes("text-bold")
                status_badge(instance.status)
                if not instance.enabled:
                    ui.badge("disabled", color="grey-7")
                ui.label(f"{instance.integration} version {instance.version}")


async def import_file(name: str, data: bytes) -> str | None:
    """Import an uploaded integration file; None on success, else what is wrong with it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"{name} is not a text file: integration files are YAML or JSON in UTF-8."
    try:
        summary = await integrations.import_integration(hub(), text, source=name)
    except ServiceError as exc:
        details = exc.to_json().get("details") or {}
        lines = [str(e) for e in details.get("errors", [])]
        lines += [str(i.get("message", i)) for i in details.get("issues", [])]
        return "\n".join([exc.message, *lines])
    ui.notify(f"Imported {summary.name} (version {summary.version}).", type="positive")
    return None


async def start_from_examples() -> None:
    """An empty start page: the bundled examples, each imported and opened with one click."""
    offered = await examples.bundled_examples(hub())
    ui.label("No integrations yet. Start from an example, create one, or import a file.").classes(
        "text-body1"
    )
    if not offered:
        return
    error = ui.label("").classes("text-negative whitespace-pre-line").mark("example-error")
    error.visible = False

    async def open_example(example: examples.Example) -> None:
        try:
            summary = await examples.import_example(hub(), example.file)
        except ServiceError as exc:
            error.text = "\n".join([exc.message, *([exc.hint] if exc.hint else [])])
            error.visible = True
            return
        ui.navigate.to(f"/integrations/{quote(summary.name, safe='')}")

    with ui.row().classes("w-full gap-3 items-stretch"):
        for example in offered:
            with ui.card().classes("w-80").props(f'data-testid="example-{example.file}"'):
                ui.label(example.name).classes("text-subtitle1 text-weight-medium")
                ui.label(example.description.strip()).classes(
                    "text-caption text-grey-8 ellipsis-3-lines"
                )
                ui.space()
                ui.button(
                    "Open this example",
                    icon="play_circle",
                    on_click=lambda e=example: open_example(e),
                ).props("flat no-caps").mark(f"example-{example.file}")


def import_upload() -> ui.upload:
    """An "Import a file" button for integration files (the uploader itself stays hidden; big
    files travel over HTTP, not the websocket)."""

    async def received(event: events.UploadEventArguments) -> None:
        problem = await import_file(event.file.name, await event.file.read())
        upload.reset()
        if problem is None:
            ui.navigate.reload()
        else:
            error.text = problem
            error.visible = True

    upload = (
        ui.upload(label="Import a file", auto_upload=True, on_upload=received, max_file_size=MAX)
        .props('accept=".yaml,.yml,.json" data-testid="import-upload"')
        .classes("hidden")
        .mark("import-upload")
    )
    button = ui.button(
        "Import a file", icon="upload_file", on_click=lambda: upload.run_method("pickFiles")
    )
    button.props('outline data-testid="import-button"').mark("import-button")
    button.tooltip("Import an integration file (YAML or JSON)")
    error = ui.label("").classes("text-negative whitespace-pre-line").mark("import-error")
    error.visible = False
    return upload
