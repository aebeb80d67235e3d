"""The REST API under `/api`: thin routes over `app.services` (OpenAPI docs at `/api/docs`)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from annotated_types import Ge, Le
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import Route

from app.services import (
    alerts,
    dry_run,
    editor,
    executions,
    instances,
    integrations,
    payloads,
    replay,
    suites,
    testruns,
    upgrades,
)
from app.services.errors import InvalidInput
from app.services.hub import Hub
from runtime.model import Position
from runtime.suite_model import PinnedOutput
from runtime.text import NOT_UNICODE, escaped, lone_surrogate

__all__ = ["router"]


async def _text_is_unicode(request: Request) -> None:
    """Refuse a JSON body holding a lone surrogate (`"\\ud800"`) by field, with 422, before its
    route stores it: neither the database nor the secret box nor an answer can encode it."""
    if getattr(request.scope.get("route"), "body_field", None) is None:
        return  # no JSON body: the import route reads its file itself, and the loader checks it
    try:
        data = await request.json()  # already parsed (and cached) for the route's body
    except ValueError:
        return
    if found := lone_surrogate(data):
        where = escaped(".".join(str(part) for part in found[0])) or "body"
        raise InvalidInput(
            f"The request holds text that is not Unicode ({where}).",
            details={where: f"holds {found[1]}, {NOT_UNICODE}"},
            hint="Fix the text (or the \\u escape that produced it) and send it again; nothing "
            "was stored.",
        )


router = APIRouter(prefix="/api", dependencies=[Depends(_text_is_unicode)])


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(hub_of)]

SqlInt = Annotated[int, Ge(-(2**63)), Le(2**63 - 1)]
"""An integer SQLite can store: a larger id, version or offset is refused (422) by name instead
of failing inside the database."""


@router.get("/health", tags=["health"])
async def health(hub: HubDep) -> dict[str, Any]:
    """Liveness and what this server is: version, base URL, loaded components."""
    return {
        "status": "ok",
        "version": "0.1.0",
        "time": time.time(),
        "base_url": hub.settings.base_url,
        "components": sorted(c.key for c in hub.registry.components()),
        "component_problems": [
            {"source": p.source, "message": p.message} for p in hub.registry.problems
        ],
    }


@router.get("/executions", tags=["executions"])
async def list_executions(
    hub: HubDep,
    status: str | None = None,
    flow: str | None = None,
    instance: str | None = None,
    since: float | None = Query(None, description="Unix seconds: started at or after."),
    until: float | None = Query(None, description="Unix seconds: started at or before."),
    q: str | None = Query(None, description="Text to find in the request body."),
    limit: int = 50,
    offset: SqlInt = 0,
    children: bool = Query(False, description="Include executions of called flows."),
) -> dict[str, Any]:
    """Executions, newest first, with counts by status under the same filters."""
    filters = executions.ExecutionFilter(
        status=status,
        flow_id=flow,
        instance_id=instance,
        since=since,
        until=until,
        text=q,
        limit=limit,
        offset=offset,
        include_children=children,
    )
    return await executions.list_executions(hub, filters)


@router.get("/executions/{execution_id}", tags=["executions"])
async def get_execution(hub: HubDep, execution_id: str) -> dict[str, Any]:
    """One execution with its request and every step record (input, output, logs, error)."""
    return await executions.get_execution(hub, execution_id)


@router.post("/executions/{execution_id}/replay", status_code=202, tags=["executions"])
async def replay_execution(hub: HubDep, execution_id: str) -> dict[str, Any]:
    """Run the execution's original request again as a new execution."""
    new_id = await executions.replay_execution(hub, execution_id)
    return {"execution_id": new_id, "replay_of": execution_id}


@router.post("/executions/{execution_id}/replay-on-draft", tags=["executions"])
async def replay_on_draft(
    hub: HubDep, execution_id: str, options: replay.ReplayOptions | None = None
) -> replay.ReplayDiff:
    """Run the execution's request on the current draft, answered by its recorded responses
    (nothing is sent again, nothing is stored), and diff it step by step."""
    config = options.config if options is not None else {}
    return await replay.replay_on_draft(hub, execution_id, config)


@router.post("/executions/{execution_id}/save-as-test", tags=["executions"])
async def save_as_test(
    hub: HubDep, execution_id: str, options: replay.SaveAsTest | None = None
) -> replay.SavedTest:
    """The execution as a suite payload of its flow (outputs as expectations); with `save`,
    appended to the draft flow's tests."""
    given = options or replay.SaveAsTest()
    return await replay.execution_as_test(hub, execution_id, given.name, save=given.save)


# --- integrations ---------------------------------------------------------------------------

_MAX_IMPORT_BYTES = 5 * 1024 * 1024


async def _read_text(request: Request) -> str:
    """The request body as text: a YAML/JSON file, or JSON `{"text": ...}` from a form."""
    raw = await request.body()
    if len(raw) > _MAX_IMPORT_BYTES:
        raise InvalidInput(f"The file is larger than {_MAX_IMPORT_BYTES // 1024 // 1024} MiB.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"The file is not UTF-8 text ({exc.reason} at byte {exc.start})."
        ) from None
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            wrapped = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply for json
            return text  # a JSON integration file; the file parser names the problem
        if (
            isinstance(wrapped, dict)
            and set(wrapped) == {"text"}
            and isinstance(wrapped["text"], str)
        ):
            return wrapped["text"]
    return text


@router.post("/integrations", status_code=201, tags=["integrations"])
async def import_integration(
    hub: HubDep, request: Request, source: str = "<upload>"
) -> integrations.IntegrationSummary:
    """Import an integration file (YAML or JSON body); a known name gets a new draft."""
    return await integrations.import_integration(hub, await _read_text(request), source=source)


@router.get("/integrations", tags=["integrations"])
async def list_integrations(hub: HubDep) -> list[integrations.IntegrationSummary]:
    return await integrations.list_integrations(hub)


@router.get("/integrations/{name}", tags=["integrations"])
async def get_integration(
    hub: HubDep, name: str, version: SqlInt | None = None
) -> integrations.IntegrationDetail:
    return await integrations.get_integration(hub, name, version)


@router.get("/integrations/{name}/export", tags=["integrations"])
async def export_integration(hub: HubDep, name: str, version: SqlInt | None = None) -> Response:
    """The integration as its YAML file."""
    text = await integrations.export_integration(hub, name, version)
    filename = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.lower())
    return Response(
        text,
        media_type="application/yaml",
        headers={"Content-Disposition": f'attachment; filename="{filename}.yaml"'},
    )


class PublishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, description="What changed, shown in the version history.")


@router.post("/integrations/{name}/publish", tags=["integrations"])
async def publish_integration(
    hub: HubDep, name: str, request: PublishRequest | None = None
) -> dict[str, Any]:
    """Freeze the draft as a published version (optionally with a note); instances run
    published versions. Without a draft, the newest version is returned unchanged."""
    note = request.note if request else None
    return {"name": name, "version": await integrations.publish(hub, name, note)}


@router.delete("/integrations/{name}", status_code=204, tags=["integrations"])
async def delete_integration(hub: HubDep, name: str) -> Response:
    await integrations.delete_integration(hub, name)
    return Response(status_code=204)


# --- test payloads --------------------------------------------------------------------------


@router.get("/integrations/{name}/payloads", tags=["test payloads"])
async def list_payloads(
    hub: HubDep, name: str, flow: str | None = None
) -> list[payloads.TestPayload]:
    return await payloads.list_payloads(hub, name, flow)


@router.post("/integrations/{name}/payloads", status_code=201, tags=["test payloads"])
async def create_payload(
    hub: HubDep, name: str, payload: payloads.PayloadInput
) -> payloads.TestPayload:
    return await payloads.create_payload(hub, name, payload)


@router.get("/integrations/{name}/payloads/{payload_id}", tags=["test payloads"])
async def get_payload(hub: HubDep, name: str, payload_id: SqlInt) -> payloads.TestPayload:
    return await payloads.get_payload(hub, name, payload_id)


@router.patch("/integrations/{name}/payloads/{payload_id}", tags=["test payloads"])
async def update_payload(
    hub: HubDep, name: str, payload_id: SqlInt, update: payloads.PayloadUpdate
) -> payloads.TestPayload:
    return await payloads.update_payload(hub, name, payload_id, update)


@router.post(
    "/integrations/{name}/payloads/{payload_id}/duplicate", status_code=201, tags=["test payloads"]
)
async def duplicate_payload(
    hub: HubDep, name: str, payload_id: SqlInt, new_name: str
) -> payloads.TestPayload:
    return await payloads.duplicate_payload(hub, name, payload_id, new_name)


@router.delete(
    "/integrations/{name}/payloads/{payload_id}", status_code=204, tags=["test payloads"]
)
async def delete_payload(hub: HubDep, name: str, payload_id: SqlInt) -> Response:
    await payloads.delete_payload(hub, name, payload_id)
    return Response(status_code=204)


# --- editing and test runs ------------------------------------------------------------------


class FlowSave(BaseModel):
    """A flow edit: the whole flow, the revision it was based on, and optionally positions."""

    model_config = ConfigDict(extra="forbid")

    flow: dict[str, Any] = Field(description="The flow as in an integration file (id optional).")
    revision: SqlInt = Field(description="The revision the edit was based on (0 for a new flow).")
    positions: dict[str, Position] | None = None


@router.put("/integrations/{name}/flows/{flow_id}", tags=["editor"])
async def save_flow(hub: HubDep, name: str, flow_id: str, edit: FlowSave) -> editor.FlowSaved:
    """Save one flow of the draft; 409 when it changed since `revision` (reload, then redo)."""
    if edit.flow.get("id", flow_id) != flow_id:
        raise InvalidInput(
            f"The flow's id '{edit.flow['id']}' is not '{flow_id}' from the URL.",
            details={"flow.id": f"must be '{flow_id}'"},
        )
    return await editor.save_flow(
        hub, name, {**edit.flow, "id": flow_id}, edit.revision, edit.positions
    )


class TestRunRequest(BaseModel):
    """What to run a test on: a saved payload's id or a request; optionally up to a step."""

    __test__ = False  # not a pytest test class, despite the name
    model_config = ConfigDict(extra="forbid")

    payload_id: SqlInt | None = None
    request: testruns.TestRequest | None = None
    upto: str | None = None
    reuse_from: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    pinned: dict[str, PinnedOutput] = Field(
        default_factory=dict, description="Steps not run: their output (and port) stand in."
    )


@router.post("/integrations/{name}/flows/{flow_id}/test", tags=["editor"])
async def run_test(hub: HubDep, name: str, flow_id: str, run: TestRunRequest) -> testruns.TestRun:
    """Run the draft flow on a test payload, recorded as an execution (source `test`)."""
    payload = run.payload_id if run.payload_id is not None else run.request
    return await testruns.run_test(
        hub,
        name,
        flow_id,
        payload,
        upto=run.upto,
        reuse_from=run.reuse_from,
        config=run.config,
        pinned=run.pinned,
    )


class SuiteRunRequest(BaseModel):
    """Which flows' suites to run (all when left out)."""

    model_config = ConfigDict(extra="forbid")

    flows: list[str] | None = None


@router.post("/integrations/{name}/suites/run", tags=["test suites"])
async def run_suites(hub: HubDep, name: str, run: SuiteRunRequest | None = None) -> dict[str, Any]:
    """Run all: every test payload of the draft's suites, answered by recorded responses,
    each with its first mismatch, and path coverage per flow (steps and ports, with the tests
    covering each)."""
    return await suites.run_suites(hub, name, run.flows if run else None)


@router.get("/integrations/{name}/suites/payloads", tags=["test suites"])
async def list_suite_payloads(
    hub: HubDep, name: str, flow: str | None = None
) -> list[payloads.SuitePayload]:
    """The test payloads of the draft's suites (read-only; they change with the file)."""
    return await payloads.list_suite_payloads(hub, name, flow)


# --- instances ------------------------------------------------------------------------------


@router.post("/instances", status_code=201, tags=["instances"])
async def deploy_instance(hub: HubDep, request: instances.DeployRequest) -> instances.InstanceView:
    """Deploy: validate config and connections, allocate webhook URLs, run the deploy flows.

    The answer is 201 with the instance even when a deploy flow failed: its `status` is then
    `deploy_failed` and `error` / `failed_execution_id` say why (see the instances service).
    """
    return await instances.deploy(hub, request)


@router.post("/instances/dry-run", tags=["instances"])
async def dry_run_deploy(hub: HubDep, request: dry_run.DryRunRequest) -> dry_run.DryRunReport:
    """What deploying would do: the deploy hooks and flows run with outbound calls answered by
    `responses`, the flows' declared test_responses, or an echoing stub; nothing is sent or
    stored. The request is checked as a deploy checks it."""
    return await dry_run.dry_run_deploy(hub, request)


@router.post("/instances/{instance_id}/teardown/dry-run", tags=["instances"])
async def dry_run_teardown(
    hub: HubDep, instance_id: str, request: dry_run.TeardownDryRun | None = None
) -> dry_run.DryRunReport:
    """What deleting the instance would do, from its config, connections and state; nothing is
    sent, stored or removed."""
    responses = request.responses if request is not None else []
    return await dry_run.dry_run_teardown(hub, instance_id, responses)


@router.get("/instances", tags=["instances"])
async def list_instances(
    hub: HubDep, integration: str | None = None
) -> list[instances.InstanceView]:
    return await instances.list_instances(hub, integration)


@router.get("/instances/{instance_id}", tags=["instances"])
async def get_instance(hub: HubDep, instance_id: str) -> instances.InstanceView:
    return await instances.get_instance(hub, instance_id)


@router.get("/instances/{instance_id}/alerts", tags=["instances"])
async def instance_alerts(hub: HubDep, instance_id: str) -> list[dict[str, Any]]:
    """The instance's last failed executions escalated (its error flow run, its alert sent or
    failed), newest first."""
    return await alerts.recent_alerts(hub, instance_id)


@router.patch("/instances/{instance_id}", tags=["instances"])
async def update_instance(
    hub: HubDep, instance_id: str, change: upgrades.InstanceChange
) -> instances.InstanceView:
    """Change config values and connection credentials in place; what is not named is kept.
    422 names each wrong field (`config.<key>`, `connections.<slot>.<field>`); nothing changes."""
    return await upgrades.update_instance(hub, instance_id, change)


@router.post("/instances/{instance_id}/upgrade", tags=["instances"])
async def upgrade_instance(
    hub: HubDep, instance_id: str, request: upgrades.UpgradeRequest
) -> upgrades.UpgradeReport:
    """Run another published version in place: same webhook URLs, config, connections and
    state; deploy hooks and flows that changed run again. 422 names each wrong field."""
    return await upgrades.upgrade(hub, instance_id, request)


@router.post("/instances/{instance_id}/enable", tags=["instances"])
async def enable_instance(hub: HubDep, instance_id: str) -> instances.InstanceView:
    return await instances.set_enabled(hub, instance_id, True)


@router.post("/instances/{instance_id}/disable", tags=["instances"])
async def disable_instance(hub: HubDep, instance_id: str) -> instances.InstanceView:
    """Stop running its webhooks; new requests get 503 (senders retry) until it is enabled."""
    return await instances.set_enabled(hub, instance_id, False)


@router.delete("/instances/{instance_id}", tags=["instances"])
async def delete_instance(hub: HubDep, instance_id: str) -> instances.TeardownReport:
    """Tear down: stop routing, run the tear-down flows, remove the instance."""
    return await instances.delete_instance(hub, instance_id)


# --- what no route takes ----------------------------------------------------------------------

_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


# Registered last, so every route above matches first. Without it a request no route takes falls
# through to the pages mounted at `/`, which answer with their HTML 404 page.
@router.api_route("", methods=_ANY_METHOD, include_in_schema=False)
@router.api_route("/{rest:path}", methods=_ANY_METHOD, include_in_schema=False)
async def no_such_endpoint(request: Request) -> JSONResponse:
    """405 with `Allow` when the path takes other methods, else 404; JSON either way."""
    path: str = request.scope["path"]
    # This router's routes and the app's own (the OpenAPI docs); FastAPI keeps an included
    # router as one opaque entry of the app's routes.
    routes = [*router.routes, *request.app.router.routes]
    allowed = sorted(
        {
            method
            for route in routes
            if isinstance(route, Route)
            and route.endpoint is not no_such_endpoint
            and route.path_regex.match(path)
            for method in route.methods or ()
        }
    )
    if allowed:
        return JSONResponse(
            {"error": f"{request.method} is not allowed on {path}; use {', '.join(allowed)}."},
            status_code=405,
            headers={"Allow": ", ".join(allowed)},
        )
    return JSONResponse(
        {"error": f"There is no API endpoint {path}.", "hint": "See /api/docs for the endpoints."},
        status_code=404,
    )
