"""The start page: what is deployed and where its webhooks are. The designer replaces it later.

Pages call the same services as the REST API; they get the `Hub` from `nicegui.app.state.hub`,
which the server's lifespan sets.
"""

from __future__ import annotations

import nicegui
from nicegui import ui

from app.services import instances, integrations
from app.services.hub import Hub

__all__ = ["home"]


def _hub() -> Hub:
    hub: Hub = nicegui.app.state.hub
    return hub


@ui.page("/", title="Flowyard")
async def home() -> None:
    """Integrations with their flows, instances with their status and webhook URLs."""
    hub = _hub()
    known = await integrations.list_integrations(hub)
    deployed = await instances.list_instances(hub)
    with ui.header().classes("items-center"):
        ui.label("Flowyard").classes("text-h6")
        ui.space()
        ui.link("API docs", "/api/docs", new_tab=True).classes("text-white")
    with ui.column().classes("w-full max-w-5xl mx-auto gap-6 p-4"):
        ui.label("Integrations").classes("text-h5")
        if not known:
            ui.label("None yet: flowyard import FILE, or POST a file to /api/integrations.")
        for item in known:
            with ui.card().classes("w-full").props(f'data-testid="integration-{item.name}"'):
                state = "published" if item.published else "draft"
                ui.label(f"{item.name} — version {item.version} ({state})").classes("text-bold")
                if item.description:
                    ui.label(item.description).classes("text-grey-8")
                ui.label(", ".join(f"{f.name or f.id} ({f.trigger})" for f in item.flows))
        ui.label("Instances").classes("text-h5")
        if not deployed:
            ui.label("None deployed: POST /api/instances.")
        for instance in deployed:
            with ui.card().classes("w-full").props(f'data-testid="instance-{instance.name}"'):
                enabled = "" if instance.enabled else ", disabled"
                ui.label(f"{instance.name} — {instance.status}{enabled}").classes("text-bold")
                ui.label(f"{instance.integration} version {instance.version}")
                for flow in instance.flows:
                    with ui.row().classes("items-center gap-2"):
                        ui.label(flow.name or flow.flow_id).classes("w-48")
                        ui.code(flow.webhook_url).classes("text-xs")
