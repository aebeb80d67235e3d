"""The deploy page: `/instances/deploy?integration=NAME[&version=N]` (published versions only;
an integration never published is offered a Publish button), or `&test=1` for a test instance
that follows the draft.

The form is drawn from the integration's config variables (string, number, integer, boolean,
JSON, secret: masked with a show toggle) and connection slots (api_key, basic, bearer, oauth2:
their credential fields; custom: a JSON object), with a preview of the deploy runs in the order
they will run with the config values they will see (secrets masked), and Deploy. The service
checks everything; each problem it names is shown on its field. A successful deploy shows the new
instance with its card (`app.pages.instances`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from nicegui import ui
from nicegui.elements.mixins.validation_element import ValidationElement
from nicegui.elements.mixins.value_element import ValueElement

from app.pages.connections import stored_choice
from app.pages.dry_run_view import dry_run_report
from app.pages.instances import CONNECTION_FIELDS, deploy_url, instance_card
from app.pages.layout import frame, hub, show_error, testid
from app.services import credentials, dry_run, instances, integrations
from app.services.credentials import CredentialView
from app.services.errors import NotFound, ServiceError
from runtime.model import ConfigVariable, ConnectionSlot, Integration

__all__ = ["deploy_page"]

Changed = Callable[[], Awaitable[None]]


class _DeployForm:
    """The deploy form of one integration version, its plan preview and its result."""

    def __init__(
        self,
        integration: Integration,
        version: int | None,
        stored: list[CredentialView],
        *,
        test: bool = False,
    ) -> None:
        self.stored = stored
        self.integration = integration
        self.version = version
        self.test = test
        self.fields: dict[str, ui.element] = {}
        """Problem key as the service names it (`name`, `config.x`, ...) -> its input."""
        self.notes: dict[str, ui.label] = {}
        """Problem key -> the label showing it, for inputs without their own error text."""
        self.config: dict[str, Callable[[], Any]] = {}
        self.plan_generation = 0
        self.connections: dict[str, Callable[[], Any]] = {}
        self._draw()

    # drawing

    def _draw(self) -> None:
        with ui.card().classes("w-full"):
            name = ui.input("Instance name", on_change=lambda: self._edited("name"))
            name.props('data-testid="deploy-name"').classes("w-80").mark("deploy-name")
            self.fields["name"] = name
            self.name_input = name
            if self.integration.config:
                ui.label("Config").classes("text-subtitle1")
                for variable in self.integration.config:
                    self._config_input(variable)
            if self.integration.connections:
                ui.label("Connections").classes("text-subtitle1")
                for slot in self.integration.connections:
                    self._connection_inputs(slot)
        self.general = ui.column().classes("w-full text-negative").mark("deploy-errors")
        with ui.card().classes("w-full").mark("deploy-plan"):
            ui.label("What deploying runs").classes("text-subtitle1")
            self.plan = ui.column().classes("w-full gap-1")
        with ui.row():
            self.button = ui.button("Deploy", icon="rocket_launch", on_click=self.deploy)
            self.button.props('data-testid="deploy-button"').mark("deploy-button")
            dry = ui.button("Dry run", icon="science", on_click=self.dry_run).props("outline")
            dry.props('data-testid="dry-run-button"').mark("dry-run-button")
        self.result = ui.column().classes("w-full").mark("deploy-result")

    def _note(self, key: str) -> None:
        self.notes[key] = ui.label().classes("text-negative text-caption").mark(f"error-{key}")
        self.notes[key].set_visibility(False)

    def _config_input(self, variable: ConfigVariable) -> None:
        key = variable.key
        where = f"config.{key}"
        element, read = _config_widget(variable)
        element.classes("w-96").props(f'data-testid="config-{key}"').mark(f"config-{key}")
        if variable.description:
            element.props["hint"] = variable.description
        element.on_value_change(lambda: self._edited(where))
        self.fields[where] = element
        self.config[key] = read
        if not isinstance(element, ValidationElement):
            self._note(where)

    def _connection_inputs(self, slot: ConnectionSlot) -> None:
        where = f"connections.{slot.key}"
        title = f"{slot.key} ({slot.type}){'' if slot.required else ', optional'}"
        with ui.column().classes("gap-1").mark(f"connection-{slot.key}"):
            ui.label(title).classes("text-bold")
            if slot.description:
                ui.label(slot.description).classes("text-grey-7 text-caption")
            if slot.type == "custom":
                area = ui.textarea('Credentials as JSON, e.g. {"client_id": "..."}')
                area.classes("w-96 font-mono").props(f'data-testid="connection-{slot.key}"')
                area.mark(f"connection-{slot.key}-json")
                area.on_value_change(lambda: self._edited(where))
                self.fields[where] = area
                self.connections[slot.key] = lambda: _custom(area.value, slot.required)
                return
            chosen = stored_choice(slot, self.stored, lambda: self._edited(where))
            inputs: dict[str, ui.input] = {}
            for name, label, secret in CONNECTION_FIELDS.get(slot.type, ()):
                field_key = f"{where}.{name}"
                box = ui.input(label, password=secret, password_toggle_button=secret)
                box.classes("w-96").props(f'data-testid="connection-{slot.key}-{name}"')
                box.mark(f"connection-{slot.key}-{name}")
                box.on_value_change(lambda k=field_key: self._edited(k, where))
                self.fields[field_key] = box
                inputs[name] = box
            self._note(where)
            self.connections[slot.key] = lambda: chosen() or _credentials(inputs, slot.required)

    async def draw_plan(self) -> None:
        """Redraw the preview of the deploy runs from the config typed so far."""
        self.plan_generation += 1
        generation = self.plan_generation
        given = {k: v for k, read in self.config.items() if (v := read()) is not None}
        try:
            runs = await instances.deploy_plan(
                hub(), self.integration.name, given, version=self.version
            )
            problem = ""
        except ServiceError as exc:
            runs, problem = [], exc.message
            details = exc.details if isinstance(exc.details, dict) else {}
            problem += "".join(f" {key}: {message}." for key, message in details.items())
        if generation != self.plan_generation:
            return  # a later edit is being previewed
        self.plan.clear()
        with self.plan:
            if problem:
                ui.label(problem).classes("text-negative").mark("plan-problem")
            elif not runs:
                ui.label("No deploy flows or hooks: deploying only creates the webhook URLs.")
            for run in runs:
                what = "deploy flow" if run.kind == "flow" else f"deploy hook of {run.trigger}"
                ui.label(f"{run.order}. {run.flow_name} — {what}").classes("text-bold").mark(
                    f"plan-step-{run.order}"
                )
                reads = ", ".join(f"{k} = {_shown(run.config, k)}" for k in run.reads)
                ui.label(f"reads {reads or 'no config'}").classes("font-mono text-sm ml-4")
            if runs:
                ui.label("Config every run sees:").classes("text-grey-7")
                for variable in self.integration.config:
                    key = variable.key
                    ui.label(f"{key} = {_shown(runs[0].config, key)}").classes(
                        "font-mono text-sm"
                    ).mark(f"plan-config-{key}")

    # errors

    async def _edited(self, *keys: str) -> None:
        for key in keys:
            self._show(key, None)
        if any(key.startswith("config.") for key in keys):
            await self.draw_plan()

    def _show(self, key: str, message: str | None) -> bool:
        """Show `message` on the field of `key`; False when no field has that key."""
        element = self.fields.get(key)
        if isinstance(element, ValidationElement):
            element.error = message
            return True
        note = self.notes.get(key)
        if note is not None:
            note.text = message or ""
            note.set_visibility(bool(message))
            return True
        return False

    def _clear(self) -> None:
        for key in [*self.fields, *self.notes]:
            self._show(key, None)
        self.general.clear()

    def _problems(self, exc: ServiceError) -> None:
        show_error(exc)
        details = exc.details if isinstance(exc.details, dict) else {}
        with self.general:
            ui.label(exc.message).classes("text-bold")
            for key, message in details.items():
                if key == "issues":
                    for issue in message:
                        ui.label(f"{issue.get('message', '')} {issue.get('hint', '')}".strip())
                elif not self._show(key, str(message)):
                    ui.label(f"{key}: {message}")

    # deploy

    def request(self) -> instances.DeployRequest:
        return instances.DeployRequest(
            name=self.name_input.value or "",
            integration=self.integration.name,
            version=self.version,
            test=self.test,
            config={k: v for k, read in self.config.items() if (v := read()) is not None},
            connections={k: v for k, read in self.connections.items() if (v := read()) is not None},
        )

    async def deploy(self) -> None:
        self._clear()
        self.result.clear()
        self.button.disable()
        self.button.props("loading")
        try:
            view = await instances.deploy(hub(), self.request())
        except ServiceError as exc:
            self._problems(exc)
            return
        finally:
            self.button.enable()
            self.button.props(remove="loading")
        if view.status == instances.ACTIVE:
            ui.notify(f"Instance '{view.name}' deployed.", type="positive")
        else:
            why = (view.error or {}).get("message", view.status)
            ui.notify(
                f"Instance '{view.name}' was created, but its deploy failed: {why}",
                type="negative",
                multi_line=True,
            )
        with self.result:
            instance_card(view, self._deleted)
            ui.link("All instances", "/instances")

    async def _deleted(self) -> None:
        self.result.clear()

    async def dry_run(self) -> None:
        """Run the deploy flows with nothing sent or stored, and show what they would do."""
        self._clear()
        self.result.clear()
        request = dry_run.DryRunRequest(**self.request().model_dump())
        try:
            report = await dry_run.dry_run_deploy(hub(), request)
        except ServiceError as exc:
            self._problems(exc)
            return
        with self.result:
            dry_run_report(report)


def _config_widget(variable: ConfigVariable) -> tuple[ValueElement[Any], Callable[[], Any]]:
    """The input for a config variable and how to read what it holds (None: not given)."""
    kind, default = variable.type, variable.default
    label = f"{variable.key} ({kind}){' *' if variable.required else ''}"
    if kind == "boolean":
        if variable.required or default is not None:
            switch = ui.switch(label, value=bool(default))
            return switch, lambda: switch.value
        options: dict[Any, str] = {None: "not set", True: "true", False: "false"}
        select = ui.select(options, label=label, value=None)
        return select, lambda: select.value
    if kind in ("number", "integer"):
        number = ui.number(label, value=default)
        return number, lambda: _number(number.value, kind)
    if kind == "json":
        text = "" if default is None else json.dumps(default, indent=2)
        area = ui.textarea(label, value=text).props("autogrow").classes("font-mono")
        return area, lambda: (area.value or "").strip() or None
    secret = kind == "secret"
    box = ui.input(
        label,
        value="" if default is None or secret else str(default),
        password=secret,
        password_toggle_button=secret,
    )
    return box, lambda: box.value or None


def _shown(config: dict[str, Any], key: str) -> str:
    """A config value as the plan shows it (secret ones come masked from the service)."""
    if key not in config:
        return "(not set)"
    value = config[key]
    return value if isinstance(value, str) else json.dumps(value)


def _number(value: float | None, kind: str) -> float | int | None:
    if value is None:
        return None
    if kind == "integer" and float(value).is_integer():
        return int(value)
    return value


def _credentials(inputs: dict[str, ui.input], required: bool) -> dict[str, str] | None:
    """A slot's fields; an optional slot left empty is not given."""
    values = {name: box.value or "" for name, box in inputs.items()}
    if not required and not any(values.values()):
        return None
    return values


def _custom(text: str | None, required: bool) -> Any:
    """A custom slot's JSON object; text that is not one goes as it is (the service says why)."""
    text = (text or "").strip()
    if not text:
        return {} if required else None
    try:
        return json.loads(text)
    except ValueError:
        return text


@ui.page("/instances/deploy", title="Deploy · Flowyard")
async def deploy_page(integration: str = "", version: str = "", test: str = "") -> None:
    """The deploy form of one integration (`?integration=NAME&version=N`; `&test=1`: a test
    instance, which follows the draft)."""
    with frame("Deploy an instance"):
        known = await integrations.list_integrations(hub())
        choose = ui.select(
            {item.name: item.name for item in known},
            label="Integration",
            value=integration if any(i.name == integration for i in known) else None,
            on_change=lambda e: ui.navigate.to(deploy_url(e.value)),
        ).classes("w-80")
        choose.props('data-testid="deploy-integration"').mark("deploy-integration")
        if not integration:
            ui.label("Choose the integration to deploy.")
            return
        try:
            detail = await integrations.get_integration(
                hub(), integration, int(version) if version.isdigit() else None
            )
        except NotFound as exc:
            ui.label(exc.message).classes("text-negative").mark("not-found")
            return
        if test == "1":
            note = "Test instance: it runs the draft, and each saved edit is live at once."
            testid(ui.label(note).classes("text-orange-9 text-bold"), "deploy-test-note")
            stored = await credentials.list_credentials(hub())
            form = _DeployForm(detail.integration, None, stored, test=True)
            await form.draw_plan()
            return
        published = [v for v in detail.versions if v.published]
        if not published:
            _unpublished(integration)
            return
        chosen = int(version) if version.isdigit() else published[-1].version
        if all(v.version != chosen for v in published):
            chosen = published[-1].version
        if chosen != detail.version:
            detail = await integrations.get_integration(hub(), integration, chosen)
        ui.select(
            {v.version: v.label for v in reversed(published)},
            label="Version",
            value=chosen,
            on_change=lambda e: ui.navigate.to(f"{deploy_url(integration)}&version={e.value}"),
        ).classes("w-80").props('data-testid="deploy-version"').mark("deploy-version")
        _test_link(integration)
        if detail.integration.description:
            ui.label(detail.integration.description).classes("text-grey-8")
        stored = await credentials.list_credentials(hub())
        form = _DeployForm(detail.integration, chosen, stored)
        await form.draw_plan()


def _unpublished(integration: str) -> None:
    """Instances run published versions: say so, and offer to publish the draft."""
    with testid(ui.card().classes("w-full bg-orange-1"), "deploy-unpublished"):
        ui.label(
            f"'{integration}' has no published version yet. Instances run published versions "
            "only, so later edits in the designer never reach them unannounced. Publish the "
            "draft (in the designer, or here) to deploy it."
        )

        async def publish() -> None:
            try:
                number = await integrations.publish(hub(), integration)
            except ServiceError as exc:
                show_error(exc)
                return
            ui.navigate.to(f"{deploy_url(integration)}&version={number}")

        with ui.row().classes("items-center"):
            button = ui.button("Publish the draft", icon="publish", on_click=publish)
            testid(button, "deploy-publish").mark("deploy-publish")
            ui.link("Open the designer", f"/integrations/{quote(integration, safe='')}")
    _test_link(integration)


def _test_link(integration: str) -> None:
    link = ui.link(
        "Or deploy a test instance that follows the draft",
        f"{deploy_url(integration)}&test=1",
    )
    testid(link, "deploy-test-link").mark("deploy-test-link")
