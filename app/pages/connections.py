"""The connection store's page and the connection parts of the instance pages.

`/connections`: every stored connection with its status (ok, not connected, needs reconnect), the
instances and slots using it, Connect (OAuth consent) for authorization-code OAuth connections,
Rotate (new values for every instance using it) and Delete (refused, naming where it is used);
and a form for a new one. `connection_rows` draws an instance's slots with the connection each
uses, its status and Connect/Reconnect; `stored_choice` is the deploy form's choice of a stored
connection for a slot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nicegui import ui

from app.pages.layout import frame, hub, show_error, status_badge, testid, when
from app.services import credentials
from app.services.credentials import CHOOSE_KEY, CredentialRequest, CredentialView
from app.services.errors import ServiceError
from app.services.instances import InstanceView
from runtime.model import ConnectionSlot

__all__ = ["connection_rows", "connections_page", "stored_choice"]

FIELDS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "api_key": (("api_key", "API key", True),),
    "basic": (("username", "User name", False), ("password", "Password", True)),
    "bearer": (("token", "Token", True),),
    "oauth2": (
        ("client_id", "Client id", False),
        ("client_secret", "Client secret", True),
        ("authorize_url", "Consent page URL (authorization code)", False),
        ("token_url", "Token endpoint URL", False),
        ("scope", "Scopes (space separated)", False),
    ),
}
"""Fields per connection type: (field, label, secret). `custom` takes a JSON object."""
_TYPES = ("api_key", "basic", "bearer", "oauth2", "custom")
_NEW = "__new__"


def _connect_link(url: str, name: str, again: bool) -> None:
    label = "Reconnect" if again else "Connect"
    link = ui.link(label, url).classes("q-btn q-btn--flat text-primary text-bold")
    testid(link, f"connect-{name}").mark(f"connect-{name}")


def connection_rows(view: InstanceView) -> None:
    """An instance's slots: the stored connection each uses, its status, Connect/Reconnect."""
    for slot in view.connections:
        with ui.row().classes("items-center gap-2").mark(f"slot-{view.name}-{slot.slot}"):
            ui.label(f"connection {slot.slot} ({slot.type})").classes("text-sm")
            if slot.credential:
                ui.label(f"→ {slot.credential}").classes("text-sm text-grey-8")
            if slot.status != "ok":
                status_badge(slot.status)
            if slot.status == "needs_reconnect":
                ui.label(
                    f"Reconnect connection {slot.credential}: {slot.problem or 'refused'}"
                ).classes("text-negative text-sm").mark(f"reconnect-{view.name}-{slot.slot}")
            if slot.connect_url and slot.credential:
                _connect_link(slot.connect_url, slot.credential, slot.status != "not_connected")


def stored_choice(
    slot: ConnectionSlot, stored: list[CredentialView], on_change: Callable[[], Any]
) -> Callable[[], dict[str, str] | None]:
    """A select of the stored connections of the slot's type; what it returns is None for
    "enter new credentials" (the typed fields apply), else `{"credential": name}`."""
    options = {_NEW: "enter new credentials below"}
    options.update({c.name: f"{c.name} ({c.status})" for c in stored if c.type == slot.type})
    # An OAuth slot needs a stored connection (consent happens there); others default to typing.
    default = _NEW
    if slot.type == "oauth2":
        default = next((c.name for c in stored if c.type == slot.type), _NEW)
    select = ui.select(options, label="Stored connection", value=default).classes("w-96")
    testid(select, f"connection-{slot.key}-stored").mark(f"connection-{slot.key}-stored")
    select.on_value_change(on_change)
    return lambda: None if select.value == _NEW else {CHOOSE_KEY: str(select.value)}


# --- /connections -------------------------------------------------------------------------------


def _value_inputs(type_: str) -> Callable[[], dict[str, Any]]:
    """Inputs for a type's values; returns how to read them."""
    if type_ == "custom":
        area = ui.textarea("Values as JSON").classes("w-96 font-mono").mark("values-json")

        def custom() -> dict[str, Any]:
            try:
                data = json.loads(area.value or "{}")
            except ValueError:
                data = None
            return data if isinstance(data, dict) else {"json": area.value or ""}

        return custom
    boxes: dict[str, ui.input] = {}
    grant = None
    if type_ == "oauth2":
        grant = ui.select(
            {
                "authorization_code": "authorization code (consent)",
                "client_credentials": "client credentials",
            },
            label="Grant",
            value="authorization_code",
        ).classes("w-96")
        grant.mark("value-grant")
    for name, label, secret in FIELDS[type_]:
        box = ui.input(label, password=secret, password_toggle_button=secret).classes("w-96")
        boxes[name] = testid(box, f"value-{name}").mark(f"value-{name}")

    def read() -> dict[str, Any]:
        values: dict[str, Any] = {k: (b.value or "").strip() for k, b in boxes.items()}
        if grant is not None:
            values["grant"] = grant.value
        return values

    return read


def _values_dialog(view: CredentialView, redraw: Callable[[], Any]) -> None:
    with ui.dialog() as dialog, ui.card().mark("rotate-dialog"):
        ui.label(f"New values for '{view.name}'").classes("text-h6")
        ui.label(
            f"Every instance using it ({len(view.used_by)}) uses them from its next run."
        ).classes("text-grey-8")
        read = _value_inputs(view.type)

        async def save() -> None:
            try:
                await credentials.update_credential(hub(), view.id, read())
            except ServiceError as exc:
                show_error(exc)
                return
            ui.notify(f"Connection '{view.name}' updated.", type="positive")
            dialog.close()
            await redraw()

        with ui.row():
            ui.button("Save", on_click=save).mark("rotate-save")
            ui.button("Cancel", on_click=dialog.close).props("flat")
    dialog.open()


def _card(view: CredentialView, redraw: Callable[[], Any]) -> None:
    with ui.card().classes("w-full").mark(f"credential-{view.name}"):
        with ui.row().classes("w-full items-center gap-3"):
            ui.label(view.name).classes("text-h6")
            ui.label(view.type + (f" · {view.grant}" if view.grant else "")).classes("text-grey-8")
            status_badge(view.status).mark(f"credential-status-{view.name}")
            ui.space()
            if view.connect_url:
                _connect_link(view.connect_url, view.name, view.status != "not_connected")
            ui.button("Rotate", on_click=lambda: _values_dialog(view, redraw)).props("flat").mark(
                f"rotate-{view.name}"
            )

            async def delete() -> None:
                try:
                    await credentials.delete_credential(hub(), view.id)
                except ServiceError as exc:
                    show_error(exc)
                    return
                ui.notify(f"Connection '{view.name}' deleted.")
                await redraw()

            ui.button("Delete", on_click=delete).props("flat color=negative").mark(
                f"delete-{view.name}"
            )
        if view.problem:
            ui.label(view.problem).classes("text-negative")
        used = ", ".join(f"{u.instance} ({u.slot})" for u in view.used_by) or "no instance"
        ui.label(f"Used by: {used} · changed {when(view.updated_at)}").classes("text-sm").mark(
            f"used-by-{view.name}"
        )


@ui.page("/connections", title="Connections · Flowyard")
async def connections_page() -> None:
    """Stored connections, shared by instances; and a form for a new one."""
    with frame("Connections"):
        listing = ui.column().classes("w-full gap-3")

        async def draw() -> None:
            listing.clear()
            stored = await credentials.list_credentials(hub())
            with listing:
                if not stored:
                    ui.label("No stored connections yet.").mark("no-connections")
                for view in stored:
                    _card(view, draw)

        await draw()
        with ui.card().classes("w-full").mark("new-connection"):
            ui.label("New connection").classes("text-subtitle1")
            name = testid(ui.input("Name").classes("w-96"), "new-name").mark("new-name")
            kind = ui.select(list(_TYPES), label="Type", value="oauth2").classes("w-96")
            kind.mark("new-type")
            fields = ui.column()
            reader: dict[str, Callable[[], dict[str, Any]]] = {}

            def draw_fields() -> None:
                fields.clear()
                with fields:
                    reader["read"] = _value_inputs(str(kind.value))

            kind.on_value_change(draw_fields)
            draw_fields()

            async def create() -> None:
                request = CredentialRequest(
                    name=name.value or "", type=kind.value, values=reader["read"]()
                )
                try:
                    view = await credentials.create_credential(hub(), request)
                except ServiceError as exc:
                    show_error(exc)
                    return
                ui.notify(f"Connection '{view.name}' saved ({view.status}).", type="positive")
                name.value = ""
                await draw()

            testid(ui.button("Save connection", on_click=create), "new-save").mark("new-save")
