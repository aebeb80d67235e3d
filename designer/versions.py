"""What changed between two versions of an integration, as the version history shows it.

`diff_versions(before, after)` compares two `Integration`s by logic only (layout is kept apart,
as in integration files, so dragging a node is no change): flows added or removed; per flow, steps
added, removed, moved (their incoming connections changed: other predecessors or ports) and
changed (each differing input or setting with its value before and after); flow settings; config
variables and connection slots. Pure: no UI, no database.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from runtime.model import Flow, Integration, Step

__all__ = ["FieldChange", "FlowDiff", "StepDiff", "VersionDiff", "diff_versions"]

_MISSING: Any = None


class FieldChange(BaseModel):
    """One value that differs: `field` is `inputs.<name>`, a step setting, or a flow setting."""

    field: str
    before: Any = None
    after: Any = None


class StepDiff(BaseModel):
    step: str
    label: str = Field(description="The step's name (or id) in the newer version.")
    change: Literal["added", "removed", "moved", "changed"]
    moved_from: list[str] = Field(
        default_factory=list, description="Incoming connections before, as `step:port`."
    )
    moved_to: list[str] = Field(default_factory=list, description="... and after.")
    fields: list[FieldChange] = Field(default_factory=list)


class FlowDiff(BaseModel):
    flow: str
    label: str
    change: Literal["added", "removed", "changed"]
    steps: list[StepDiff] = Field(default_factory=list)
    settings: list[FieldChange] = Field(default_factory=list)


class VersionDiff(BaseModel):
    before: int
    after: int
    flows: list[FlowDiff] = Field(default_factory=list)
    config: list[FieldChange] = Field(
        default_factory=list, description="Config variables and connection slots, by key."
    )

    @property
    def empty(self) -> bool:
        return not self.flows and not self.config


def diff_versions(before: Integration, after: Integration) -> VersionDiff:
    """Every logic change from `before` to `after`, flows and steps in the newer file order
    (removed ones after the others)."""
    old = {f.id: f for f in before.flows}
    new = {f.id: f for f in after.flows}
    flows = [
        FlowDiff(flow=f.id, label=f.label, change="added", steps=_all(f, "added"))
        for f in after.flows
        if f.id not in old
    ]
    for flow in after.flows:
        if flow.id in old and (found := _flow_diff(old[flow.id], flow)) is not None:
            flows.append(found)
    flows += [
        FlowDiff(flow=f.id, label=f.label, change="removed", steps=_all(f, "removed"))
        for f in before.flows
        if f.id not in new
    ]
    flows.sort(key=lambda d: _order(after.flows, before.flows, d.flow))
    config = _fields("config", _by_key(before.config), _by_key(after.config))
    config += _fields("connections", _by_key(before.connections), _by_key(after.connections))
    return VersionDiff(before=before.version, after=after.version, flows=flows, config=config)


def _order(newer: list[Flow], older: list[Flow], flow_id: str) -> tuple[int, int]:
    ids = [f.id for f in newer]
    if flow_id in ids:
        return 0, ids.index(flow_id)
    return 1, [f.id for f in older].index(flow_id)


def _all(flow: Flow, change: Literal["added", "removed"]) -> list[StepDiff]:
    return [StepDiff(step=s.id, label=s.label, change=change) for s in flow.all_steps()]


def _flow_diff(before: Flow, after: Flow) -> FlowDiff | None:
    old = {s.id: s for s in before.all_steps()}
    new = {s.id: s for s in after.all_steps()}
    incoming_before, incoming_after = _incoming(before), _incoming(after)
    steps: list[StepDiff] = []
    for step in after.all_steps():
        was = old.get(step.id)
        if was is None:
            steps.append(StepDiff(step=step.id, label=step.label, change="added"))
            continue
        fields = _step_fields(was, step)
        sources_before = incoming_before.get(step.id, [])
        sources_after = incoming_after.get(step.id, [])
        if sources_before != sources_after:
            steps.append(
                StepDiff(
                    step=step.id,
                    label=step.label,
                    change="moved",
                    moved_from=sources_before,
                    moved_to=sources_after,
                    fields=fields,
                )
            )
        elif fields:
            steps.append(StepDiff(step=step.id, label=step.label, change="changed", fields=fields))
    steps += [
        StepDiff(step=s.id, label=s.label, change="removed")
        for s in before.all_steps()
        if s.id not in new
    ]
    settings = _fields(
        "settings",
        before.settings.model_dump(mode="json"),
        after.settings.model_dump(mode="json"),
    )
    settings += _fields(
        "",
        {"name": before.name, "description": before.description},
        {"name": after.name, "description": after.description},
    )
    if not steps and not settings:
        return None
    return FlowDiff(
        flow=after.id, label=after.label, change="changed", steps=steps, settings=settings
    )


def _incoming(flow: Flow) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for edge in flow.edges:
        found.setdefault(edge.target, []).append(f"{edge.source}:{edge.port}")
    return {target: sorted(sources) for target, sources in found.items()}


def _step_fields(before: Step, after: Step) -> list[FieldChange]:
    settings = ("name", "action", "on_error", "retry", "timeout", "notes")
    old = before.model_dump(mode="json", include=set(settings))
    new = after.model_dump(mode="json", include=set(settings))
    return _fields("inputs", before.inputs, after.inputs) + _fields("", old, new)


def _fields(prefix: str, before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    """Top-level keys whose values differ, in the newer order then removed ones."""
    keys = [*after, *(k for k in before if k not in after)]
    return [
        FieldChange(
            field=f"{prefix}.{key}" if prefix else key,
            before=before.get(key, _MISSING),
            after=after.get(key, _MISSING),
        )
        for key in keys
        if before.get(key, _MISSING) != after.get(key, _MISSING)
    ]


def _by_key(items: list[Any]) -> dict[str, Any]:
    return {item.key: item.model_dump(mode="json", exclude={"key"}) for item in items}
