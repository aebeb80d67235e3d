"""Payload suites in the integration file: each flow's `tests:`, what they send and expect.

    flows:
      - id: order_paid
        tests:
          - name: paid order with two lines
            request: {body: {...}, headers: {...}, query: {...}, method: POST}
            config: {...}          # config values for this test only (over `testing: config:`)
            state: {key: value}    # instance state before the run
            responses: [...]       # recorded answers to outbound calls (runtime.recorded form)
            pinned:                # steps not run: their output (and port) stand in
              fetch_rates: {output: {eur: 1.1}}
            expect:
              status: succeeded                     # or failed
              ran: [shipment]                       # steps that must run
              skipped: [refund]                     # steps that must not run
              steps:
                shipment: {output: {weight_grams: 1200}, port: out}   # output: partial match
              reply: {status: 200, body: {ok: true}}
              error: "substring of the execution's error"
        test_responses: [...]      # answers shared by every test of the flow (after the test's)
    testing:
      config: {base_url: http://127.0.0.1:8091}   # config values for every test run
      connections: {crm: {api_key: test-key}}     # credentials for test runs (defaults: dummies)

Steps named in `ran`, `skipped`, `steps` and `pinned` must exist in the flow: validation
(`runtime.validation`, so `validate`, import and `flowyard test`) reports each one that does not
with the test's name, as an error; the file still loads, so a step deleted in the designer does
not make its flow unreadable.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from runtime.recorded import RecordedExchange

__all__ = [
    "Expectation",
    "FlowTest",
    "PinnedOutput",
    "ReplyExpectation",
    "StepExpectation",
    "TestRequest",
    "TestingSettings",
]

_StepRef = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
    keep_set_fields: ClassVar[bool] = False
    """True: `runtime.files` writes fields given in the file even when they hold the default
    (`output: null` is an expectation, not an absent one)."""


class TestRequest(_Strict):
    """The request a test sends, like a payload file: body, headers, query, method."""

    __test__ = False  # not a pytest class, despite its name

    body: Any = None
    headers: dict[str, str | int | float | bool] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    method: str = Field("POST", pattern=r"^[A-Za-z]{1,16}$")


class StepExpectation(_Strict):
    """What one step must have done; only the fields given are checked."""

    keep_set_fields: ClassVar[bool] = True

    status: Literal["succeeded", "failed", "skipped"] | None = None
    port: str | None = None
    output: Any = Field(None, description="Partial match: objects may hold more keys.")
    error: str | None = Field(None, description="A substring of the step's error message.")


class ReplyExpectation(_Strict):
    """The synchronous reply (a respond step's); only the fields given are checked."""

    keep_set_fields: ClassVar[bool] = True

    status: int | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None


class Expectation(_Strict):
    """What a test checks after its run."""

    status: Literal["succeeded", "failed"] = "succeeded"
    ran: list[_StepRef] = Field(default_factory=list)
    skipped: list[_StepRef] = Field(default_factory=list)
    steps: dict[_StepRef, StepExpectation] = Field(default_factory=dict)
    reply: ReplyExpectation | None = None
    error: str | None = Field(None, description="A substring of the execution's error.")


class PinnedOutput(_Strict):
    """A pinned step's stand-in: it is not run; `output` is used, leaving on `port`."""

    output: Any = None
    port: str | None = None


class FlowTest(_Strict):
    """One payload of a flow's suite and what its run must show."""

    __test__ = False

    name: str = Field(min_length=1, max_length=200)
    request: TestRequest = Field(default_factory=TestRequest)
    config: dict[str, Any] = Field(default_factory=dict)
    state: dict[str, Any] = Field(default_factory=dict)
    responses: list[RecordedExchange] = Field(default_factory=list)
    pinned: dict[_StepRef, PinnedOutput] = Field(default_factory=dict)
    expect: Expectation = Field(default_factory=Expectation)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("give the test a name")
        return value.strip()

    def step_refs(self) -> list[tuple[str, str]]:
        """(where, step id) of every step this test names."""
        expect = self.expect
        return [
            *(("expect > ran", s) for s in expect.ran),
            *(("expect > skipped", s) for s in expect.skipped),
            *(("expect > steps", s) for s in expect.steps),
            *(("pinned", s) for s in self.pinned),
        ]


class TestingSettings(_Strict):
    """Values for test runs of every flow (never used by deployed instances)."""

    __test__ = False

    config: dict[str, Any] = Field(
        default_factory=dict, description="Config values for test runs, by key."
    )
    connections: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Credentials for test runs, by connection slot and field; slots left out get "
        "dummy values.",
    )
