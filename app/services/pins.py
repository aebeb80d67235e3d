"""Pinned step outputs for the designer's test runs (n8n's "pin data"), kept in the draft.

Convention (as in the other services): `async` functions taking the `Hub`; database work runs
in a worker thread. A pin is stored in the draft's `testing: pinned: {flow id: {step id:
{output, port}}}` (`runtime.suite_model.TestingSettings`), so it is versioned and exported with
the integration and never used by deployed instances. The test panel passes `flow_pins(...)` to
`testruns.run_test(pinned=...)`: a pinned step is not run, its pinned output is used.

Pins of steps the flow no longer has are left out of `flow_pins` (a deleted step does not make
test runs fail); the trigger cannot be pinned (it always runs on the payload).
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.persistence import repositories as repo
from app.persistence.db import session_scope
from app.services.errors import InvalidInput, NotFound
from app.services.hub import Hub
from runtime.model import Flow, Integration
from runtime.suite_model import PinnedOutput

__all__ = ["flow_pins", "pin_output", "unpin_output"]


def _load(session: Any, name: str) -> Integration:
    try:
        return repo.load_integration(session, name)
    except repo.NotFound:
        raise NotFound(f"There is no integration named '{name}'.") from None


def _flow(integration: Integration, flow_id: str) -> Flow:
    flow = next((f for f in integration.flows if f.id == flow_id), None)
    if flow is None:
        raise NotFound(f"Integration '{integration.name}' has no flow '{flow_id}'.")
    return flow


def _live(flow: Flow, pins: dict[str, PinnedOutput]) -> dict[str, PinnedOutput]:
    steps = {s.id for s in flow.steps}
    return {s: p for s, p in pins.items() if s in steps}


async def flow_pins(hub: Hub, name: str, flow_id: str) -> dict[str, PinnedOutput]:
    """The pinned outputs of `flow_id`'s steps in the draft (steps it still has only)."""
    return await asyncio.to_thread(_change, hub, name, flow_id, None, None)


async def pin_output(
    hub: Hub, name: str, flow_id: str, step_id: str, output: Any, port: str | None = None
) -> dict[str, PinnedOutput]:
    """Pin `output` (leaving on `port`) for `step_id`; returns the flow's pins. InvalidInput
    (field `step`) for the trigger or a step the flow does not have; nothing is saved then."""
    pin = PinnedOutput(output=output, port=port)
    return await asyncio.to_thread(_change, hub, name, flow_id, step_id, pin)


async def unpin_output(hub: Hub, name: str, flow_id: str, step_id: str) -> dict[str, PinnedOutput]:
    """Remove `step_id`'s pin (nothing to do if it has none); returns the flow's pins."""
    return await asyncio.to_thread(_change, hub, name, flow_id, step_id, None)


def _change(
    hub: Hub, name: str, flow_id: str, step_id: str | None, pin: PinnedOutput | None
) -> dict[str, PinnedOutput]:
    """Read (no `step_id`), set (`pin`) or remove (no `pin`) one pin of the draft."""
    with session_scope(hub.db, write=step_id is not None) as session:
        integration = _load(session, name)
        flow = _flow(integration, flow_id)
        testing = integration.testing
        pins = dict(testing.pinned.get(flow_id, {}))
        if step_id is None:
            return _live(flow, pins)
        if pin is not None and step_id not in {s.id for s in flow.steps}:
            what = "the trigger always runs" if step_id == flow.trigger.id else "no such step"
            raise InvalidInput(
                f"Step '{step_id}' of flow '{flow.label}' cannot be pinned: {what}.",
                details={"step": what},
                hint="Pin a step of this flow that ran in a test run.",
            )
        if pin is None and pins.pop(step_id, None) is None:
            return _live(flow, pins)
        if pin is not None:
            pins[step_id] = pin
        every = {**testing.pinned, flow_id: pins}
        if not pins:
            del every[flow_id]
        changed = testing.model_copy(update={"pinned": every})
        repo.save_document(
            session, name, {"testing": changed.model_dump(mode="json", by_alias=True)}
        )
        return _live(flow, pins)
