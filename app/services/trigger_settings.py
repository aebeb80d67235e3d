"""Each flow's trigger settings as one instance will use them, checked before it is deployed.

Validation checks the literal settings of a trigger; templates in them (a signing secret read from
`{{ config.signing_secret }}`) are known only once an instance's config is. The webhook path and
the deploy hooks render them with the instance's config and validate them against the trigger's
inputs model: an instance whose settings fail there would answer every webhook with 503. Deploy
calls `trigger_problems` first and refuses such an instance, naming the flow and the field.

Render on the event loop thread, as the webhook path does: compiled templates are shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from app.services.environment import config_values
from components.api import FlowyardError
from components.registry import Registry
from runtime.expressions import ExpressionLimits, render
from runtime.input_problems import problems_of
from runtime.model import Flow, Integration
from runtime.redaction import redact, secret_values

__all__ = ["rendered_trigger_inputs", "trigger_problems"]

_LIMITS = ExpressionLimits()


def rendered_trigger_inputs(
    flow: Flow, config: Mapping[str, Any], instance: Mapping[str, Any]
) -> dict[str, Any]:
    """`flow`'s trigger inputs with their templates rendered for an instance (`config` as flows
    see it, `instance` its `id` and `name`): what the webhook path and deploy validate."""
    scope = {
        "config": config,
        "instance": instance,
        "flow": {"id": flow.id, "name": flow.label},
        "execution": {"id": ""},
    }
    data: dict[str, Any] = render(dict(flow.trigger.inputs), scope, _LIMITS)
    return data


def trigger_problems(
    registry: Registry, integration: Integration, config: Mapping[str, Any], instance_name: str
) -> dict[str, str]:
    """Problems of every flow's rendered trigger settings, by `flows.<flow id>.trigger.<field>`
    (`flows.<flow id>.trigger` when a template fails). Secret config values are masked."""
    seen, secret = config_values(integration.config, config)
    secrets = secret_values(secret)
    problems: dict[str, str] = {}
    for flow in integration.flows:
        try:
            model = registry.trigger(flow.trigger.action).Inputs
        except LookupError:
            continue  # validation already refused the integration
        where = f"flows.{flow.id}.trigger"
        label = f"Flow '{flow.label}', trigger '{flow.trigger.label}'"
        try:
            data = rendered_trigger_inputs(flow, seen, {"id": "", "name": instance_name})
            model.model_validate(data)
        except ValidationError as exc:
            for problem in problems_of(model, exc, data):
                message = f"{label} input '{problem.field}': {problem.message}"
                problems[f"{where}.{problem.field}"] = redact(message, secrets)
        except FlowyardError as exc:
            problems[where] = redact(f"{label}: {exc.message}", secrets)
        except Exception:  # a component's validator crashed: its hooks and runs report it
            continue
    return problems
