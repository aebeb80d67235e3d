"""The instances pages, over `app.services.instances` (the same calls as `/api/instances`).

`/instances`: every instance with its status, an enabled switch, its integration version, each
flow's webhook URL with a copy button, its connections (status, Connect/Reconnect for OAuth), its
deploy runs, and Delete (confirmed first; the tear-down runs are shown after). Each integration
has a Deploy button.

The deploy page (`/instances/deploy`) is `app.pages.deploy`; a card's Upgrade and Edit values
dialogs are `app.pages.instance_edit`. A test instance carries a badge saying it follows the draft.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from nicegui import ui

from app.pages.connections import connection_rows
from app.pages.instance_alerts import alerts_section
from app.pages.instance_edit import change_buttons
from app.pages.layout import frame, hub, show_error, status_badge, testid, when
from app.services import instances, integrations
from app.services.errors import ServiceError

__all__ = [
    "CONNECTION_FIELDS",
    "deploy_url",
    "instance_card",
    "instances_page",
]


CONNECTION_FIELDS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "api_key": (("api_key", "API key", True),),
    "basic": (("username", "User name", False), ("password", "Password", True)),
    "bearer": (("token", "Token", True),),
    "oauth2": (("access_token", "Access token", True),),
}
"""Credential fields per connection type: (field, label, secret). `custom` takes a JSON object.
The field names are what the built-in components read (`components/builtin/http.py`)."""

_TRIGGER_WORDS = {
    "deploy": "runs when an instance is deployed",
    "delete": "runs when an instance is deleted",
    "error": "runs when an execution fails",
    "schedule": "runs on its schedule",
    "manual": "runs when started by hand",
}

Changed = Callable[[], Awaitable[None]]


def deploy_url(integration: str) -> str:
    return f"/instances/deploy?integration={quote(integration, safe='')}"


def _copy(text: str) -> None:
    ui.clipboard.write(text)
    ui.notify("Copied to the clipboard.")


# --- the instance card --------------------------------------------------------------------------


def instance_card(view: instances.InstanceView, on_changed: Changed) -> None:
    """One instance: status, enabled switch, webhook URLs with copy buttons, deploy runs, delete.

    `on_changed` is awaited after a delete so the caller can redraw its list.
    """
    with testid(ui.card().classes("w-full").mark(f"instance-{view.name}"), f"instance-{view.name}"):
        with ui.row().classes("w-full items-center gap-3"):
            ui.label(view.name).classes("text-h6")
            status_badge(view.status).mark(f"status-{view.name}")
            if view.test:
                badge = ui.badge("test instance: follows the draft", color="orange-8")
                testid(badge, f"test-badge-{view.name}").mark(f"test-badge-{view.name}")
            ui.space()
            change_buttons(view, CONNECTION_FIELDS, on_changed)
            _enabled_switch(view)
            ui.link("Executions", f"/executions?instance={view.id}&period=all").mark(
                f"executions-{view.name}"
            )
            delete = ui.button(
                "Delete", icon="delete", on_click=lambda: _confirm_delete(view, on_changed)
            )
            delete.props("flat color=negative").mark(f"delete-{view.name}")
            testid(delete, f"delete-{view.name}")
        runs = (
            f"test instance: follows the draft (now version {view.version})"
            if view.test
            else f"version {view.version}"
            + (f" · {view.version_note}" if view.version_note else "")
        )
        about = ui.label(f"{view.integration} · {runs} · deployed {when(view.created_at)}")
        testid(about.classes("text-grey-8"), f"instance-version-{view.name}")
        about.mark(f"instance-version-{view.name}")
        if view.error:
            with ui.card().classes("w-full bg-red-1 text-negative").mark(f"error-{view.name}"):
                ui.label(view.error.get("message", "The deploy failed.")).classes("text-bold")
                if view.error.get("hint"):
                    ui.label(view.error["hint"])
                if view.failed_execution_id:
                    ui.link("Open the failed run", f"/executions/{view.failed_execution_id}")
        _flows(view)
        connection_rows(view)
        if view.config:
            _settings(view)
        if view.lifecycle:
            _deploy_runs(view)
        if view.alerts:
            alerts_section(view)


def _enabled_switch(view: instances.InstanceView) -> None:
    switch = testid(ui.switch("Enabled", value=view.enabled), f"enabled-{view.name}")
    switch.mark(f"enabled-{view.name}")
    switch.set_enabled(view.status not in (instances.DELETING, instances.DEPLOYING))
    reverting = False

    async def changed(event: Any) -> None:
        nonlocal reverting
        if reverting:
            return
        try:
            await instances.set_enabled(hub(), view.id, bool(event.value))
        except ServiceError as exc:
            show_error(exc)
            reverting = True
            switch.value = not event.value
            reverting = False
            return
        if event.value:
            ui.notify(f"Instance '{view.name}' enabled: its webhooks run again.")
        else:
            ui.notify(
                f"Instance '{view.name}' disabled: its webhooks answer 503 (senders retry later)."
            )

    switch.on_value_change(changed)


def _flows(view: instances.InstanceView) -> None:
    with ui.grid(columns="auto auto 1fr auto").classes("w-full items-center gap-x-3 gap-y-1"):
        for flow in view.flows:
            ui.label(flow.name or flow.flow_id).classes("text-bold")
            ui.label(flow.kind or flow.trigger).classes("text-grey-7")
            if flow.kind in _TRIGGER_WORDS or not flow.webhook_url:
                ui.label(_TRIGGER_WORDS.get(flow.kind or "", "no webhook URL")).classes(
                    "text-grey-7"
                )
                ui.label()
                continue
            ui.label(flow.webhook_url).classes("font-mono text-sm break-all").props(
                f'data-testid="webhook-url-{flow.flow_id}"'
            ).mark(f"webhook-url-{flow.flow_id}")
            ui.button(icon="content_copy", on_click=lambda url=flow.webhook_url: _copy(url)).props(
                f'flat dense data-testid="copy-{flow.flow_id}"'
            ).mark(f"copy-{flow.flow_id}").tooltip("Copy the URL")


def _settings(view: instances.InstanceView) -> None:
    with ui.expansion("Config").classes("w-full"):
        for key, value in view.config.items():
            text = value if isinstance(value, str) else json.dumps(value)
            ui.label(f"{key} = {text}").classes("font-mono text-sm").mark(f"setting-{key}")


def _runs(runs: list[instances.LifecycleRun]) -> None:
    for run in runs:
        with ui.row().classes("items-center gap-2"):
            status_badge(run.status)
            what = "hook of" if run.kind == "hook" else "flow"
            ui.label(f"{what} {run.flow_id or '(secret key)'}")
            if run.execution_id:
                ui.link("run", f"/executions/{run.execution_id}")
            if run.error:
                ui.label(run.error.get("message", "")).classes("text-negative")


def _deploy_runs(view: instances.InstanceView) -> None:
    with ui.expansion(f"Deploy runs ({len(view.lifecycle)})").classes("w-full"):
        _runs(view.lifecycle)


async def _confirm_delete(view: instances.InstanceView, on_changed: Changed) -> None:
    with ui.dialog() as dialog, ui.card().mark("confirm-dialog"):
        ui.label(f"Delete instance '{view.name}'?").classes("text-h6")
        ui.label(
            "Its tear-down flows run first (e.g. to remove webhooks registered in other apps); "
            "then its webhook URLs, config and connections are removed. Its executions are kept."
        ).classes("max-w-md")
        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat").mark(
                "cancel-delete"
            )
            ui.button("Delete", color="negative", on_click=lambda: dialog.submit(True)).props(
                'data-testid="confirm-delete"'
            ).mark("confirm-delete")
    confirmed = await dialog
    dialog.delete()
    if not confirmed:
        return
    try:
        report = await instances.delete_instance(hub(), view.id)
    except ServiceError as exc:
        show_error(exc)
        return
    ui.notify(f"Instance '{report.name}' deleted.")
    client = ui.context.client
    await on_changed()  # may redraw the card this ran from: draw the report outside it
    with client.content, ui.dialog() as result, ui.card().mark("teardown-result"):
        ui.label(f"Instance '{report.name}' was deleted.").classes("text-h6")
        if not report.runs:
            ui.label("It had no tear-down flows or hooks.")
        elif report.ok:
            ui.label("Every tear-down run succeeded:").classes("text-positive")
        else:
            ui.label(
                "Some tear-down runs failed; check what they left behind in the other apps:"
            ).classes("text-negative")
        _runs(report.runs)
        with ui.row().classes("w-full justify-end"):
            ui.button("Close", on_click=result.close).mark("close-result")
    result.on_value_change(lambda e: None if e.value else result.delete())
    result.open()


# --- the list -----------------------------------------------------------------------------------


@ui.page("/instances", title="Instances · Flowyard")
async def instances_page() -> None:
    """Every instance, and a Deploy button per integration."""
    with frame("Instances"):
        with ui.row().classes("items-center gap-2"):
            ui.label("Deploy:").classes("text-subtitle1")
            known = await integrations.list_integrations(hub())
            if not known:
                ui.label("import an integration first (flowyard import FILE).")
            for item in known:
                button = ui.button(
                    item.name,
                    icon="rocket_launch",
                    on_click=lambda name=item.name: ui.navigate.to(deploy_url(name)),
                )
                testid(button.props("outline").mark(f"deploy-{item.name}"), f"deploy-{item.name}")
        listing = ui.column().classes("w-full gap-4")

        async def draw() -> None:
            listing.clear()
            deployed = await instances.list_instances(hub())
            with listing:
                if not deployed:
                    ui.label("No instances yet.").mark("no-instances")
                for view in deployed:
                    instance_card(view, draw)

        await draw()
