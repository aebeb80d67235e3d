"""Instance lifecycle triggers: deploy-time flows and tear-down flows.

A deploy-time flow runs when an instance is deployed (e.g. to register its webhook URLs with the
third-party app, which `{{ instance }}` and the trigger's `webhook_urls` make available); a
tear-down flow runs when the instance is deleted (to remove them again). An error flow (named by
the integration's `errors.flow`) runs when an execution of another flow ends failed or crashed.
"""

from __future__ import annotations

from components.api import Component, NoInputs, Trigger

__all__ = ["DeleteTrigger", "DeployTrigger", "ErrorTrigger", "component"]


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


class ErrorTrigger(Trigger[NoInputs]):
    key = "error"
    title = "Execution failed"
    description = (
        "Starts the flow when an execution of another flow of the instance ends failed or "
        "crashed (after its retries). Name this flow in the integration's `errors.flow`."
    )
    kind = "error"
    Inputs = NoInputs
    sample_payload = {
        "body": {
            "event": "error",
            "instance_id": "inst_123",
            "instance_name": "demo",
            "execution_id": "exec_123",
            "flow_id": "order_paid",
            "flow_name": "Order paid",
            "status": "failed",
            "step": "create_shipment",
            "error": {
                "kind": "http_error",
                "message": "Step 'create_shipment' got HTTP 500.",
                "hint": "Check the service.",
                "step": "create_shipment",
            },
            "request": {"method": "POST", "headers": {}, "query": {}, "body": {"id": 1}},
        },
        "headers": {},
        "query": {},
    }


component = Component(
    key="instance",
    title="Instance lifecycle",
    category="Triggers",
    version="1.0.0",
    description="Run flows when an instance is deployed or deleted, or an execution failed.",
    triggers=[DeployTrigger, DeleteTrigger, ErrorTrigger],
)
