"""The manual trigger: a flow that runs only when someone starts it (designer, CLI or API)."""

from __future__ import annotations

from components.api import Component, NoInputs, Trigger

__all__ = ["ManualTrigger", "component"]


class ManualTrigger(Trigger[NoInputs]):
    key = "manual"
    title = "Manual"
    description = (
        "Starts the flow only when you run it from the designer, the CLI or the API, with a "
        "payload you choose."
    )
    kind = "manual"
    Inputs = NoInputs
    sample_payload = {"body": {"message": "hello"}, "headers": {}, "query": {}}


component = Component(
    key="manual",
    title="Manual",
    category="Triggers",
    version="1.0.0",
    description="Start a flow by hand.",
    triggers=[ManualTrigger],
)
