"""The component API: the only Flowyard module a component author imports.

A component is a `Component` value listing `Action` and `Trigger` classes. Each action declares a
pydantic `Inputs` model (every field with a title and description; secrets typed `SecretStr`), an
optional `Output` model and its output ports, and implements `async run(inputs, ctx)`. Inputs in a
flow may be templates (`{{ trigger.body.id }}`); the engine resolves them before `Inputs` validates
them, so `run` always receives typed, validated values.

    class Greet(Action[GreetInputs]):
        key = "greet"
        title = "Greet"
        description = "Say hello."
        Inputs = GreetInputs

        async def run(self, inputs: GreetInputs, ctx: StepContext) -> Result:
            ctx.log.info("greeting %s", inputs.name)
            return Result({"text": f"Hello {inputs.name}"})

    component = Component(key="greeter", title="Greeter", category="Demo", actions=[Greet])

`run` returns a `Result` (output and port) or a bare JSON value (taken on the default port), and
raises `StepError` (not retried), `RetryableError` (retried by the step's policy) or
`StepConfigError`. Built-in components use exactly this API.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, Protocol, TypeVar

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr

from components.addresses import (
    BLOCK_PRIVATE_ENV,
    address_refusal,
    block_private_addresses,
    host_refusal,
    literal_address,
)
from components.errors import (
    FlowyardError,
    Refused,
    RetryableError,
    StepConfigError,
    StepError,
    StopFlow,
)
from components.exchange import Fetched, fetch
from components.ingress import (
    Admission,
    IncomingRequest,
    Ingress,
    ReceiveSettings,
    Response,
)
from components.patterns import Pattern, PatternError, compile_pattern
from components.signatures import SignatureSettings, verify_signature

__all__ = [
    "BLOCK_PRIVATE_ENV",
    "DEFAULT_PORT",
    "HEADER_NAME",
    "Action",
    "Admission",
    "Component",
    "Connection",
    "Fetched",
    "FlowyardError",
    "HttpHeaders",
    "IncomingRequest",
    "Ingress",
    "Inputs",
    "LogLine",
    "LoopPlan",
    "NoInputs",
    "Pattern",
    "PatternError",
    "ReceiveSettings",
    "Refused",
    "Response",
    "Result",
    "RetryableError",
    "SignatureSettings",
    "StateScope",
    "StateStore",
    "StepConfigError",
    "StepContext",
    "StepError",
    "StepLogger",
    "StopFlow",
    "TokenSource",
    "Trigger",
    "TriggerContext",
    "TriggerEvent",
    "TriggerKind",
    "address_refusal",
    "block_private_addresses",
    "compile_pattern",
    "fetch",
    "host_refusal",
    "literal_address",
    "verify_signature",
]

DEFAULT_PORT = "out"
"""The port an action takes when it has only one."""

StateScope = Literal["instance", "flow"]
TriggerKind = Literal["webhook", "schedule", "manual", "deploy", "delete", "error"]

InputsT = TypeVar("InputsT", bound=BaseModel)


HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
"""An HTTP header name (RFC 9110 token)."""


def _check_headers(value: dict[str, str]) -> dict[str, str]:
    for name, text in value.items():
        if not HEADER_NAME.match(name):
            raise ValueError(f"'{name}' is not a valid header name")
        if any(c in text for c in "\r\n\0"):
            raise ValueError(f"the value of header '{name}' contains a line break")
    return value


HttpHeaders = Annotated[dict[str, str], AfterValidator(_check_headers)]
"""HTTP headers as an input or output field: names must be tokens, values single-line."""


class Inputs(BaseModel):
    """Base for action and trigger inputs: unknown keys are refused, so typos are caught on save."""

    model_config = ConfigDict(extra="forbid")


class NoInputs(Inputs):
    """Inputs of an action or trigger that takes none."""


@dataclass(frozen=True, slots=True)
class Result:
    """What `run` returns: the step's output and the output port the flow continues on."""

    output: Any = None
    port: str = DEFAULT_PORT


@dataclass(frozen=True, slots=True)
class LoopPlan:
    """What a loop action returns: the engine runs the `body` port once per item, then `done`."""

    items: Sequence[Any]
    concurrency: int = 1


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log line of a step record."""

    ts: float
    level: str
    message: str


class StepLogger:
    """Collects a step's log lines for its record; secret values are masked before they are kept."""

    __slots__ = ("_secrets", "lines")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.lines: list[LogLine] = []
        self._secrets = tuple(s for s in secrets if len(s) >= 4)

    def _add(self, level: str, message: str, args: tuple[Any, ...]) -> None:
        text = message % args if args else message
        for secret in self._secrets:
            text = text.replace(secret, "***")
        self.lines.append(LogLine(time.time(), level, text))

    def debug(self, message: str, *args: Any) -> None:
        self._add("debug", message, args)

    def info(self, message: str, *args: Any) -> None:
        self._add("info", message, args)

    def warning(self, message: str, *args: Any) -> None:
        self._add("warning", message, args)

    def error(self, message: str, *args: Any) -> None:
        self._add("error", message, args)

    def log(self, level: int, message: str, *args: Any) -> None:
        """Log with a `logging` level number, for code written against the stdlib logger."""
        self._add(logging.getLevelName(level).lower(), message, args)


class TokenSource(Protocol):
    """Access tokens of an OAuth 2.0 connection, kept fresh by the host.

    Implementations refresh at most once at a time per connection, store what they get, and raise
    `StepConfigError` naming the connection when it needs a new consent ("reconnect ...").
    """

    async def access_token(self) -> str:
        """A current access token, refreshed first when it is about to expire."""
        ...

    async def refreshed(self, rejected: str) -> str:
        """A new access token after the API refused `rejected` (a 401); if another run has
        refreshed meanwhile, its token, without a second refresh."""
        ...


@dataclass(frozen=True, slots=True)
class Connection:
    """Credentials from a connection slot. `values` are secrets; `secret(name)` reveals one.

    An `oauth2` connection the host keeps fresh has `tokens`; `auth()` signs requests with it.
    """

    key: str
    type: str
    values: Mapping[str, SecretStr] = field(default_factory=dict)
    tokens: TokenSource | None = None

    def secret(self, name: str) -> str:
        """The plain value of one credential field; `StepConfigError` if it is unset."""
        value = self.values.get(name)
        if value is None:
            raise StepConfigError(
                f"Connection '{self.key}' has no value '{name}'.",
                hint=f"Set '{name}' on the '{self.key}' connection of this instance.",
            )
        return value.get_secret_value()

    async def bearer_token(self) -> str:
        """The token to send as `Authorization: Bearer`: a fresh OAuth access token, else the
        stored `access_token` (oauth2) or `token` (bearer)."""
        if self.tokens is not None:
            return await self.tokens.access_token()
        return self.secret("token" if self.type == "bearer" else "access_token")

    def auth(self) -> httpx.Auth:
        """httpx auth sending the bearer token; after a 401 it gets a refreshed OAuth token and
        sends the request once more. Pass it to `ctx.http.send(request, auth=...)`."""
        return _BearerAuth(self)


class _BearerAuth(httpx.Auth):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def sync_auth_flow(self, request: httpx.Request) -> Any:
        raise RuntimeError("Connection.auth() works with the async client (ctx.http) only.")

    async def async_auth_flow(self, request: httpx.Request) -> Any:
        token = await self._connection.bearer_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        tokens = self._connection.tokens
        if response.status_code == 401 and tokens is not None:
            await response.aread()
            request.headers["Authorization"] = f"Bearer {await tokens.refreshed(token)}"
            yield request


class StateStore(Protocol):
    """Persisted key/value state of one instance (scope 'instance') or one of its flows ('flow')."""

    async def get(self, key: str, default: Any = None, *, scope: StateScope = "instance") -> Any:
        """Return the stored JSON value of `key`, or `default`."""
        ...

    async def set(self, key: str, value: Any, *, scope: StateScope = "instance") -> None:
        """Store a JSON value under `key`."""
        ...

    async def delete(self, key: str, *, scope: StateScope = "instance") -> None:
        """Remove `key`; no error if it is absent."""
        ...


CallFlow = Callable[[str, Any], Awaitable[Any]]
Respond = Callable[[Response], None]


@dataclass(slots=True, kw_only=True)
class TriggerContext:
    """What a trigger's lifecycle hooks and `run` see."""

    log: StepLogger
    http: httpx.AsyncClient
    config: Mapping[str, Any]
    connections: Mapping[str, Connection]
    state: StateStore
    instance_id: str
    flow_id: str
    webhook_urls: Mapping[str, str]
    """Webhook URL of every flow of the instance, by flow id (empty outside an instance)."""


@dataclass(slots=True, kw_only=True)
class StepContext(TriggerContext):
    """What an action's `run` sees: the run's identity, services and the sibling flows."""

    execution_id: str
    step_id: str
    attempt: int = 1
    iteration: tuple[int, ...] = ()
    call_flow: CallFlow
    """Run a sibling flow (by id or name) with a trigger payload and wait for its result."""
    respond: Respond
    """Set the reply of a synchronous webhook."""
    sleep: Callable[[float], Awaitable[None]]
    """Wait this many seconds on the engine's clock (tests drive it without sleeping)."""

    @property
    def idempotency_key(self) -> str:
        """A key that stays the same when this step (this iteration) is re-run or retried."""
        raw = f"{self.execution_id}/{self.step_id}/{'.'.join(map(str, self.iteration))}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(slots=True)
class TriggerEvent:
    """What started a flow: a webhook request, a schedule tick, a manual run, a lifecycle event."""

    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, Any] = field(default_factory=dict)
    raw_body: bytes = b""
    method: str = "POST"

    def as_payload(self) -> dict[str, Any]:
        """The trigger's default output: what `{{ trigger.* }}` expressions read."""
        return {
            "body": self.body,
            "headers": dict(self.headers),
            "query": dict(self.query),
            "method": self.method,
            "raw_body": self.raw_body.decode("utf-8", errors="replace"),
        }


class _Described:
    """Metadata shared by actions and triggers (the palette and inspector read it)."""

    key: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str] = ""
    Inputs: ClassVar[type[BaseModel]] = NoInputs


class Action(_Described, ABC, Generic[InputsT]):
    """One thing a step can do. Subclass it, set the class attributes and implement `run`."""

    Output: ClassVar[type[BaseModel] | None] = None
    ports: ClassVar[tuple[str, ...]] = (DEFAULT_PORT,)

    @classmethod
    def output_ports(cls, inputs: Mapping[str, Any]) -> tuple[str, ...]:
        """Ports of a step with these (unresolved) inputs; override when ports depend on inputs."""
        del inputs
        return cls.ports

    @abstractmethod
    async def run(self, inputs: InputsT, ctx: StepContext) -> Result | LoopPlan | Any:
        """Do the work; return a `Result`, a `LoopPlan` (loops only) or a bare JSON output."""


class Trigger(_Described, Generic[InputsT]):
    """What starts a flow. `run` turns the event into the trigger's output (the default: as is).

    Webhook-kind triggers own their ingress: the server asks `ingress` how to receive requests
    and `admit` whether to take each one before it stores anything (see `components.ingress`).
    Schedule-kind triggers say when they fire with `next_fires`.
    """

    kind: ClassVar[TriggerKind]
    sample_payload: ClassVar[Mapping[str, Any]] = {"body": {}, "headers": {}, "query": {}}
    ports: ClassVar[tuple[str, ...]] = (DEFAULT_PORT,)

    def ingress(self, inputs: InputsT) -> Ingress:
        """How the server receives requests for a flow with these inputs (webhook kind).

        Called once per deployed flow, not per request. The default reads the inputs' fields
        named as `ReceiveSettings`' (methods, max_body_bytes, sync...); raise `ValueError` or a
        pydantic `ValidationError` when the inputs cannot take requests.
        """
        return self._receive_settings(inputs).ingress()

    def admit(self, inputs: InputsT, request: IncomingRequest) -> Admission:
        """Accept a request before it is stored, or raise `Refused(status, message)`.

        Runs on the server's event loop for every request, after the method and body-size
        checks: it must not block. Return the delivery id redeliveries share, and a `reply`
        for a handshake. The default checks `ReceiveSettings`' `signature` and
        `delivery_id_header` fields when the inputs have them.
        """
        return self._receive_settings(inputs).admit(request)

    def next_fires(self, inputs: InputsT, after: datetime, count: int) -> list[datetime]:
        """The next `count` fire times strictly after `after` (schedule kind), aware datetimes.

        Raise `ValueError` with a readable message when the inputs cannot say. The server fires
        each time once: a fire time is the delivery id of its run.
        """
        del inputs, after, count
        return []

    def _receive_settings(self, inputs: InputsT) -> ReceiveSettings:
        # `admit` runs per request: validate the inputs' receive fields once per inputs object.
        held = self.__dict__.get("_receive_held")
        if held is None or held[0] is not inputs:
            held = self.__dict__["_receive_held"] = (inputs, ReceiveSettings.of(inputs))
        settings: ReceiveSettings = held[1]
        return settings

    async def run(self, inputs: InputsT, event: TriggerEvent, ctx: TriggerContext) -> Any:
        """Check or reshape the event; raise `StepError` to refuse it."""
        del inputs, ctx
        return event.as_payload()

    async def on_deploy(self, inputs: InputsT, ctx: TriggerContext) -> None:
        """Called when an instance using this trigger is deployed (register remote webhooks...)."""
        del inputs, ctx

    async def on_delete(self, inputs: InputsT, ctx: TriggerContext) -> None:
        """Called when an instance using this trigger is deleted (remove remote webhooks...)."""
        del inputs, ctx


@dataclass(frozen=True)
class Component:
    """A named bundle of actions and triggers, e.g. `http` or a custom `acme` component."""

    key: str
    title: str
    category: str = "Custom"
    version: str = "1.0.0"
    description: str = ""
    actions: Sequence[type[Action[Any]]] = ()
    triggers: Sequence[type[Trigger[Any]]] = ()

    def action(self, key: str) -> type[Action[Any]] | None:
        """The action class with this key, or None."""
        return next((a for a in self.actions if a.key == key), None)

    def trigger(self, key: str) -> type[Trigger[Any]] | None:
        """The trigger class with this key, or None."""
        return next((t for t in self.triggers if t.key == key), None)
