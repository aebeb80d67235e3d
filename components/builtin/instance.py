"""Instance lifecycle triggers: deploy-time flows and tear-down flows.

A deploy-time flow runs when an instance is deployed (e.g. to register its webhook URLs with the
third-party app, which `{{ instance }}` and the trigger's `webhook_urls` make available); a
tear-down flow runs when the instance is deleted (to remove them again).
"""

from __future__ import annotations

from components.api import Component, NoInputs, Trigger

__all__ = ["DeleteTrigger", "DeployTrigger", "component"]


class DeployTrigger(Trigger[NoInputs]):
    key = "deploy"
    title = "Instance deployed"
    description = (
        "Starts the flow when an instance is deployed, e.g. to register webhooks in the "
        "third-party app."
    )
    kind = "deploy"
    Inputs = NoInputs
    sample_payload = {
        "body": {"event": "deploy", "instance_id": "inst_123"},
        "headers": {},
        "query": {},
    }


class DeleteTrigger(Trigger[NoInputs]):
    key = "delete"
    title = "Instance deleted"
    description = (
        "Starts the flow when an instance is deleted, e.g. to remove the webhooks a deploy-time "
        "flow registered."
    )
    kind = "delete"
    Inputs = NoInputs
    sample_payload = {
        "body": {"event": "delete", "instance_id": "inst_123"},
        "headers": {},
        "query": {},
    }


component = Component(
    key="instance",
    title="Instance lifecycle",
    category="Triggers",
    version="1.0.0",
    description="Run flows when an instance is deployed or deleted.",
    triggers=[DeployTrigger, DeleteTrigger],
)
