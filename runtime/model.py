"""The flow and integration models: what a YAML integration file holds, validated by pydantic.

Shape checks (unknown keys, wrong types, id syntax) happen here; graph checks (cycles, ports,
references, components) live in `runtime.validation`. Canvas positions are kept in
`Integration.layout`, apart from the logic, so a logic change never diffs coordinates.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from runtime.recorded import RecordedExchange
from runtime.suite_model import FlowTest, TestingSettings

__all__ = [
    "DEFAULT_PORT",
    "ERROR_TRIGGER",
    "EXPRESSION_BUDGET",
    "AlertSettings",
    "ConfigVariable",
    "ConnectionSlot",
    "Edge",
    "EndpointSettings",
    "ErrorHandling",
    "ErrorPolicy",
    "Flow",
    "FlowSettings",
    "Integration",
    "Position",
    "RetryPolicy",
    "Step",
    "StepId",
]

DEFAULT_PORT = "out"

EXPRESSION_BUDGET = 250_000
"""Evaluation steps one expression may take unless its flow says otherwise: room for a `$sort`
with a comparator over a few thousand items (its CPU cost: docs/performance.md)."""

StepId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        description="Stable id: letters, digits and underscores, so `steps.<id>` reads it.",
    ),
]


class _Strict(BaseModel):
    # Frozen: the engine caches what it derives from a flow by identity; edits make new models.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class RetryPolicy(_Strict):
    """How a step is retried after a retryable error."""

    max_attempts: int = Field(3, ge=1, le=100, description="Attempts in all, the first included.")
    backoff: Literal["fixed", "exponential"] = Field(
        "exponential", description="Fixed waits `delay` each time; exponential doubles it."
    )
    delay: float = Field(1.0, ge=0, le=3600, description="Seconds before the first retry.")
    max_delay: float = Field(60.0, ge=0, le=86400, description="Upper bound of one wait.")
    jitter: bool = Field(True, description="Randomise each wait by up to ±25% to spread load.")


ErrorPolicy = Literal["fail", "continue"]


class Step(_Strict):
    """A node of the flow: one action (or trigger) of one component with its inputs."""

    id: StepId
    name: str = Field("", description="Display name; the id is shown when empty.")
    action: str = Field(description="`component.action`, e.g. `http.request`.")
    inputs: dict[str, Any] = Field(default_factory=dict)
    on_error: ErrorPolicy = Field(
        "fail",
        description="After the last attempt: `fail` ends the flow; `continue` records the error "
        "as the step's output and goes on.",
    )
    retry: RetryPolicy | None = None
    timeout: float | None = Field(None, gt=0, le=86400, description="Seconds per attempt.")
    notes: str = ""

    @property
    def label(self) -> str:
        """The name a user sees in messages."""
        return self.name or self.id


class Edge(_Strict):
    """A connection from one step's output port to another step."""

    source: StepId = Field(alias="from")
    target: StepId = Field(alias="to")
    port: str = DEFAULT_PORT


class FlowSettings(_Strict):
    """Per-execution bounds."""

    timeout: float = Field(300.0, gt=0, le=86400, description="Seconds for one execution.")
    max_steps: int = Field(10_000, ge=1, le=10_000_000, description="Step runs per execution.")
    step_timeout: float = Field(
        60.0, gt=0, le=86400, description="Default seconds per step attempt."
    )
    expression_budget: int = Field(
        EXPRESSION_BUDGET,
        ge=1_000,
        le=5_000_000,
        title="Expression budget",
        description="Evaluation steps one {{ }} expression may take (each value or operation "
        "it evaluates is a step), with CPU time in proportion. Work is counted, not time, so a "
        "busy server does not fail an expression; an expression that needs more fails.",
    )
    concurrency: int = Field(
        8, ge=1, le=256, description="Executions of this flow run at once (per instance)."
    )
    sequential: bool = Field(
        False, description="Run executions one at a time in arrival order (FIFO)."
    )
    dedup_key: str | None = Field(
        None,
        description="Template evaluated against the trigger, e.g. `{{ trigger.body.id }}`: a "
        "request whose key was already accepted for this flow and instance is not run again.",
    )
    execution_retry: RetryPolicy | None = Field(
        None, description="Run a failed execution again from the start (not for invalid flows)."
    )


class Flow(_Strict):
    """One trigger plus a DAG of steps."""

    id: StepId
    name: str = ""
    description: str = ""
    trigger: Step
    steps: list[Step] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    settings: FlowSettings = Field(default_factory=FlowSettings)
    tests: list[FlowTest] = Field(
        default_factory=list, description="Payload suite: test requests and what they expect."
    )
    test_responses: list[RecordedExchange] = Field(
        default_factory=list, description="Recorded answers shared by every test of the flow."
    )

    @property
    def label(self) -> str:
        return self.name or self.id

    def all_steps(self) -> list[Step]:
        """The trigger followed by the steps, in file order."""
        return [self.trigger, *self.steps]

    @model_validator(mode="after")
    def _unique_ids(self) -> Flow:
        seen: set[str] = set()
        for step in self.all_steps():
            if step.id in seen:
                raise ValueError(f"step id '{step.id}' is used twice; step ids must be unique")
            seen.add(step.id)
        names: set[str] = set()
        for index, test in enumerate(self.tests):
            where = f"tests[{index}] ({test.name})"
            if test.name in names:
                raise ValueError(f"{where}: the test name is used twice; names must be unique")
            names.add(test.name)
        return self  # steps a test names are checked by `runtime.validation` (test_unknown_step)


class ConfigVariable(_Strict):
    """A value the integration asks for when it is deployed."""

    key: StepId
    type: Literal["string", "number", "integer", "boolean", "json", "secret"] = "string"
    default: Any = None
    required: bool = False
    description: str = ""


class ConnectionSlot(_Strict):
    """Credentials a flow needs, filled in when an instance is deployed."""

    key: StepId
    type: Literal["api_key", "basic", "bearer", "oauth2", "custom"] = "api_key"
    description: str = ""
    required: bool = True


class EndpointSettings(_Strict):
    """How webhooks reach an instance's flows besides each flow's own URL."""

    preprocess_flow: StepId | None = Field(
        None,
        description="Flow run on requests to the instance-wide URL; its output (or response body) "
        "names the target flow: a flow id string, or an object with a `flow` key.",
    )
    route_header: str | None = Field(
        None,
        description="Shared endpoint for all instances: this request header holds the instance "
        "name to route to.",
    )
    route_field: str | None = Field(
        None,
        description="Shared endpoint: dotted path into the JSON body holding the instance name.",
    )


ERROR_TRIGGER = "instance.error"
"""The trigger action of an integration's error flow (`ErrorHandling.flow`)."""


class AlertSettings(_Strict):
    """Where a failed execution's JSON summary is POSTed, without writing a flow."""

    url: str = Field(
        min_length=1,
        description="HTTP(S) URL, or a template over `config` and `instance`, e.g. "
        "`{{ config.alert_url }}`.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra request headers (templates allowed), e.g. an Authorization header.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if "{{" in value or value.startswith(("http://", "https://")):
            return value
        raise ValueError(
            f"'{value}' is not an http(s) URL; write one like 'https://hooks.example.com/alerts', "
            "or a template such as '{{ config.alert_url }}'"
        )


class ErrorHandling(_Strict):
    """What happens when an execution of the integration ends failed or crashed (after its
    retries): its error flow runs, and an alert is sent."""

    flow: StepId | None = Field(
        None,
        description=f"Id of the error flow (trigger `{ERROR_TRIGGER}`): it runs with the failed "
        "execution's id, flow, step, error and request. Its own failures never run it again.",
    )
    alert: AlertSettings | None = Field(
        None, description="Send a JSON summary of each failed execution to a URL."
    )


class Position(_Strict):
    x: float
    y: float


class Integration(_Strict):
    """A named, versioned bundle of flows plus their config variables and connections."""

    name: str = Field(min_length=1)
    description: str = ""
    version: int = Field(1, ge=1)
    config: list[ConfigVariable] = Field(default_factory=list)
    connections: list[ConnectionSlot] = Field(default_factory=list)
    flows: list[Flow] = Field(default_factory=list)
    endpoint: EndpointSettings = Field(default_factory=EndpointSettings)
    errors: ErrorHandling = Field(default_factory=ErrorHandling)
    testing: TestingSettings = Field(
        default_factory=TestingSettings, description="Config and credentials for test runs."
    )
    layout: dict[str, dict[str, Position]] = Field(
        default_factory=dict, description="Canvas positions: flow id -> step id -> position."
    )

    def flow(self, ref: str) -> Flow | None:
        """The flow whose id or name is `ref`."""
        return next((f for f in self.flows if ref in (f.id, f.name)), None)

    @model_validator(mode="after")
    def _unique(self) -> Integration:
        for what, keys in (
            ("flow id", [f.id for f in self.flows]),
            ("config variable", [c.key for c in self.config]),
            ("connection", [c.key for c in self.connections]),
        ):
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            if dupes:
                raise ValueError(f"{what} '{dupes[0]}' is used twice; it must be unique")
        return self
