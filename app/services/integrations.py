"""Integrations: import a file, list, get, export, publish a version, delete.

Convention (as in the other services): `async` functions taking the `Hub`; database work runs in a
worker thread (`asyncio.to_thread`, one transaction per call) so the event loop never waits on
SQLite. Failures raise `app.services.errors` (NotFound 404, Conflict 409, InvalidInput 422).

Versions: importing saves the integration as its draft (the newest version, created when the
newest is published); re-importing the same name updates that draft. The `version` written in a
file is ignored on import: the store numbers versions, and export writes the stored number, so an
exported file reads back byte-identical when it was itself written by `dump_integration` (every
exported file is) and its version number matches. `publish` freezes the draft; instances pin a
version.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from app.persistence import repositories as repo
from app.persistence.db import session_scope
from app.persistence.models import InstanceRow, IntegrationRow, IntegrationVersionRow
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.hub import Hub
from components.registry import Registry
from runtime.errors import Issue
from runtime.files import IntegrationFileError, dump_integration, parse_integration
from runtime.model import Flow, Integration
from runtime.text import NOT_UNICODE, lone_surrogate
from runtime.validation import validate_flow

__all__ = [
    "NOTE_MAX",
    "FlowInfo",
    "IntegrationDetail",
    "IntegrationSummary",
    "IssueView",
    "VersionInfo",
    "check_integration",
    "delete_integration",
    "export_integration",
    "get_integration",
    "import_integration",
    "list_integrations",
    "publish",
    "refuse_errors",
]


class IssueView(BaseModel):
    """One validation problem: the flow and step it is in, what is wrong and how to fix it."""

    flow: str
    step: str | None = None
    message: str
    hint: str = ""
    severity: str = "error"

    @classmethod
    def of(cls, flow: Flow, issue: Issue, *, labelled: bool = False) -> IssueView:
        """A validation `Issue` of `flow`; `labelled` prefixes the flow's name to the message
        (for lists spanning several flows)."""
        message = f"Flow '{flow.label}': {issue.message}" if labelled else issue.message
        return cls(
            flow=flow.id,
            step=issue.step,
            message=message,
            hint=issue.hint,
            severity=issue.severity,
        )


class VersionInfo(BaseModel):
    version: int
    published: bool
    created_at: float
    published_at: float | None = None
    note: str | None = Field(None, description="What the publisher wrote about this version.")

    @property
    def label(self) -> str:
        """How lists name it: "version 2 · fixes the body", or "version 3 (draft)"."""
        if not self.published:
            return f"version {self.version} (draft)"
        return f"version {self.version}" + (f" · {self.note}" if self.note else "")


class FlowInfo(BaseModel):
    id: str
    name: str
    trigger: str = Field(description="The trigger's `component.trigger` reference.")


class IntegrationSummary(BaseModel):
    """An integration as listed, or as an import left it (`created`, `warnings`)."""

    name: str
    description: str = ""
    version: int = Field(description="The version the import saved to, or the newest version.")
    published: bool = Field(description="Whether `version` is published (frozen).")
    latest_published: int | None = None
    flows: list[FlowInfo] = Field(default_factory=list)
    instances: int = Field(0, description="Instances deployed from any version.")
    created: bool = Field(False, description="The import created the integration.")
    warnings: list[IssueView] = Field(default_factory=list)


class IntegrationDetail(BaseModel):
    """One version of an integration with its whole document, and every version's state."""

    integration: Integration
    version: int
    published: bool
    versions: list[VersionInfo]
    instances: list[str] = Field(default_factory=list, description="Names of its instances.")


def _not_found(exc: repo.NotFound) -> NotFound:
    return NotFound(str(exc))


def check_integration(integration: Integration, registry: Registry) -> list[IssueView]:
    """Every validation issue of every flow, errors first within each flow, in file order."""
    return [
        IssueView.of(flow, issue, labelled=True)
        for flow in integration.flows
        for issue in validate_flow(flow, registry, integration)
    ]


def refuse_errors(name: str, issues: list[IssueView], what: str) -> None:
    """InvalidInput listing the errors among `issues` (`details={"issues": [...]}`), if any:
    "Integration '<name>' <what>: its flows have N problems."."""
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        count = f"{len(errors)} problem{'s' * (len(errors) > 1)}"
        raise InvalidInput(
            f"Integration '{name}' {what}: its flows have {count}.",
            details={"issues": [i.model_dump() for i in errors]},
            hint="Fix each problem listed (each names its flow and step), then try again.",
        )


def _flows(integration: Integration) -> list[FlowInfo]:
    return [FlowInfo(id=f.id, name=f.label, trigger=f.trigger.action) for f in integration.flows]


def _versions(session: Session, integration_id: int | None) -> list[IntegrationVersionRow]:
    query = select(IntegrationVersionRow).where(
        IntegrationVersionRow.integration_id == integration_id
    )
    return list(session.exec(query.order_by(col(IntegrationVersionRow.version))))


def _instance_names(session: Session, version_ids: list[int | None]) -> list[str]:
    query = select(InstanceRow.name).where(col(InstanceRow.version_id).in_(version_ids))
    return sorted(session.exec(query))


def _summary(
    session: Session, row: IntegrationRow, version: int | None = None
) -> IntegrationSummary:
    versions = _versions(session, row.id)
    chosen = next((v for v in versions if v.version == version), versions[-1])
    published = [v.version for v in versions if v.published]
    integration = repo.load_integration(session, row.name, chosen.version)
    return IntegrationSummary(
        name=row.name,
        description=integration.description,
        version=chosen.version,
        published=chosen.published,
        latest_published=published[-1] if published else None,
        flows=_flows(integration),
        instances=len(_instance_names(session, [v.id for v in versions])),
    )


# --- import -------------------------------------------------------------------------------------


async def import_integration(hub: Hub, text: str, source: str = "<upload>") -> IntegrationSummary:
    """Parse, validate and save an integration file (YAML or JSON) as its integration's draft.

    A file that cannot be read raises InvalidInput with `details={"errors": [line, ...]}`; a flow
    with validation errors raises InvalidInput with `details={"issues": [IssueView, ...]}`. Nothing
    is saved then. Warnings are saved and returned in the summary.
    """
    try:
        integration = parse_integration(text, source)
    except IntegrationFileError as exc:
        raise InvalidInput(
            f"{source} is not a valid integration file.",
            details={"errors": exc.errors},
            hint=exc.hint,
        ) from None
    issues = check_integration(integration, hub.registry)
    refuse_errors(integration.name, issues, "was not imported")
    return await asyncio.to_thread(_save, hub, integration, issues)


def _save(hub: Hub, integration: Integration, issues: list[IssueView]) -> IntegrationSummary:
    with session_scope(hub.db) as session:
        existed = session.exec(
            select(IntegrationRow.id).where(IntegrationRow.name == integration.name)
        ).first()
        version = repo.save_integration(session, integration)
        row = session.exec(
            select(IntegrationRow).where(IntegrationRow.name == integration.name)
        ).one()
        summary = _summary(session, row, version)
    summary.created = existed is None
    summary.warnings = issues
    return summary


# --- read ---------------------------------------------------------------------------------------


async def list_integrations(hub: Hub) -> list[IntegrationSummary]:
    """Every integration by name, each described by its newest version."""
    return await asyncio.to_thread(_list, hub)


def _list(hub: Hub) -> list[IntegrationSummary]:
    with session_scope(hub.db, write=False) as session:
        rows = session.exec(select(IntegrationRow).order_by(col(IntegrationRow.name)))
        return [_summary(session, row) for row in rows]


async def get_integration(hub: Hub, name: str, version: int | None = None) -> IntegrationDetail:
    """One version (default: the newest, which is the draft if there is one) and all versions."""
    return await asyncio.to_thread(_get, hub, name, version)


def _get(hub: Hub, name: str, version: int | None) -> IntegrationDetail:
    with session_scope(hub.db, write=False) as session:
        try:
            integration = repo.load_integration(session, name, version)
        except repo.NotFound as exc:
            raise _not_found(exc) from None
        row = session.exec(select(IntegrationRow).where(IntegrationRow.name == name)).one()
        versions = _versions(session, row.id)
        instances = _instance_names(session, [v.id for v in versions])
    chosen = next(v for v in versions if v.version == integration.version)
    return IntegrationDetail(
        integration=integration,
        version=chosen.version,
        published=chosen.published,
        versions=[
            VersionInfo(
                version=v.version,
                published=v.published,
                created_at=v.created_at,
                published_at=v.published_at,
                note=v.note,
            )
            for v in versions
        ],
        instances=instances,
    )


async def _load(hub: Hub, name: str, version: int | None = None) -> Integration:
    """The integration model of one version (default: the newest)."""
    return (await get_integration(hub, name, version)).integration


async def export_integration(hub: Hub, name: str, version: int | None = None) -> str:
    """The integration file (YAML) of one version (default: the newest)."""
    return dump_integration(await _load(hub, name, version))


# --- change -------------------------------------------------------------------------------------


NOTE_MAX = 500


async def publish(hub: Hub, name: str, note: str | None = None) -> int:
    """Freeze the draft as a published version, with an optional `note`, and return its number.

    Instances run published versions only (a test instance follows the draft). Idempotent:
    without a draft, the newest (already published) version is returned and keeps its note. A
    draft whose flows have validation errors is refused with InvalidInput listing them; a note
    over `NOTE_MAX` characters (or not Unicode) with InvalidInput by `note`. Nothing is changed
    then.
    """
    note = (note or "").strip() or None
    wrong = ""
    if note is not None and len(note) > NOTE_MAX:
        wrong = f"at most {NOTE_MAX} characters (it has {len(note)})"
    elif found := lone_surrogate(note):
        wrong = f"holds {found[1]}, {NOT_UNICODE}"
    if wrong:
        raise InvalidInput(
            f"The note cannot be kept: {wrong}.",
            details={"note": wrong},
            hint="Fix the note and publish again; nothing was published.",
        )
    integration = await _load(hub, name)
    refuse_errors(name, check_integration(integration, hub.registry), "cannot be published")
    return await asyncio.to_thread(_publish, hub, name, integration.version, note)


def _publish(hub: Hub, name: str, version: int, note: str | None) -> int:
    with session_scope(hub.db) as session:
        try:
            return repo.publish_version(session, name, version, note)
        except repo.NotFound as exc:
            raise _not_found(exc) from None


async def delete_integration(hub: Hub, name: str) -> None:
    """Delete the integration with every version, flow and test payload.

    Refused with Conflict (naming them in the message and `details={"instances": [...]}`) while
    any instance uses one of its versions: delete those instances first (which tears them down).
    """
    await asyncio.to_thread(_delete, hub, name)


def _delete(hub: Hub, name: str) -> None:
    with session_scope(hub.db) as session:
        row = session.exec(select(IntegrationRow).where(IntegrationRow.name == name)).first()
        if row is None:
            raise NotFound(f"There is no integration named '{name}'.")
        used = _instance_names(session, [v.id for v in _versions(session, row.id)])
        if used:
            listed = ", ".join(f"'{n}'" for n in used)
            raise Conflict(
                f"Integration '{name}' is used by instance{'s' * (len(used) > 1)} {listed}.",
                details={"instances": used},
                hint="Delete those instances first; deleting an instance runs its tear-down flows.",
            )
        session.delete(row)  # versions, flows and test payloads cascade in the database
