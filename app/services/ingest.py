"""Webhook ingest: resolve the URL, check the request, commit it to the inbox, then acknowledge.

`Ingest(hub)` is created once per app (the route keeps it at `app.state.ingest`). The receive path:

1. **Route** (`routing.py`): a token names (instance, flow); flow "" is the instance-wide URL,
   routed by the integration's pre-process flow. Tokens and instances are cached for
   `CACHE_SECONDS`; an unknown token is never cached, so a fresh deploy answers at once.
   `invalidate()` drops the cache.
2. **Checks**, each refusing with a JSON `{"error", "hint"?}` and storing nothing: unknown 404;
   instance not active or disabled 503 + `Retry-After` (the sender retries later, nothing is lost);
   then the trigger's receive-side contract (`components.ingress`), called on this thread with no
   I/O: method 405 + `Allow` and body over the cap 413 (Content-Length first, then the stream is
   cut at the cap) from its `Trigger.ingress`; then `Trigger.admit` with the raw body refuses
   with the status it names (a bad signature 401), or answers a handshake at once, storing
   nothing; body not parseable as its Content-Type 400 (position named). On the instance-wide
   URL the pre-process flow's trigger admits the request.
3. **Dedup**: the delivery id `admit` names (the built-in trigger's `delivery_id_header`, else
   `webhook-id`, `x-github-delivery`, `idempotency-key`) or the flow's `dedup_key` already in the
   inbox for (instance, flow) answers 200 `{"execution_id": <first>, "duplicate": true}`.
4. **Commit** (`inbox_writer.py`): one core-SQL insert per request, group-committed by
   `InboxWriter` (inserts that arrive while a transaction runs share the next one). The 202
   `{"execution_id"}` is sent only after its transaction committed. When this process's worker
   pool has a free worker (`Dispatcher.try_reserve`), the row is committed already leased to it
   and handed over in memory; else it is stored queued and `hub.runner.notify()` wakes the
   workers. A failed commit answers 503.
5. **Sync** (trigger `sync`, or `X-Flowyard-Sync: true` when `allow_sync_header`): wait up to
   `sync_timeout` for the execution's reply; see `sync_answer`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from app.persistence.db import unavailable
from app.persistence.inbox import claimed_from
from app.services.bodies import BodyError, BodyOptions, parse_body
from app.services.errors import ServiceError
from app.services.hub import Hub, SyncOutcome
from app.services.inbox_writer import InboxWriter, Pending, find_delivery, inbox_values
from app.services.routing import (
    CACHE_SECONDS,
    FlowTarget,
    InstanceInfo,
    RoutingCache,
    load_instance,
)
from app.services.threads import in_ingest_thread
from components.api import Admission, IncomingRequest, Ingress, Refused, StepError, TriggerEvent
from runtime.expressions import ExpressionLimits, render
from runtime.observer import Status

# CACHE_SECONDS, FlowTarget, InstanceInfo, InboxWriter, Pending and load_instance moved to
# `routing` and `inbox_writer`; they stay importable from here.
__all__ = [
    "CACHE_SECONDS",
    "RETRY_AFTER_SECONDS",
    "FlowTarget",
    "InboxWriter",
    "Incoming",
    "Ingest",
    "IngestError",
    "InstanceInfo",
    "Pending",
    "Reply",
    "database_unavailable",
    "load_instance",
    "sync_answer",
]

log = logging.getLogger("flowyard.ingest")

RETRY_AFTER_SECONDS = 30
"""`Retry-After` sent with 503 when the instance is not accepting requests."""

_KEY_LIMIT = 200  # InboxRow.delivery_id / dedup_key column size
_LIMITS = ExpressionLimits()


def database_unavailable(exc: BaseException) -> IngestError | None:
    """The 503 for an unexpected error that says the database cannot be reached now (a
    PostgreSQL restart): nothing was stored, and the sender's retry will succeed."""
    if not unavailable(exc):
        return None
    return IngestError(
        503,
        "The database cannot be reached right now; nothing was stored.",
        hint="Retry later.",
        headers={"Retry-After": "5"},
    )


class IngestError(ServiceError):
    """A refused request: `status` and extra `headers` of the answer; nothing was stored."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        hint: str = "",
        headers: Mapping[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message, hint=hint, details=details)
        self.status = status
        self.headers = dict(headers or {})


# --- keys ---------------------------------------------------------------------------------------


def bounded_key(value: str) -> str:
    """`value`, or its SHA-256 when it does not fit the inbox column."""
    if len(value) <= _KEY_LIMIT:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def dedup_key(template: str | None, payload: Mapping[str, Any], flow_label: str) -> str | None:
    """The flow's dedup key for this payload; None when there is no template or it is empty."""
    if not template:
        return None
    try:
        value = render(template, {"trigger": payload}, _LIMITS)
    except Exception as exc:
        raise IngestError(
            422,
            f"Flow '{flow_label}' could not compute its dedup key from this request: {exc}",
            hint="Send the field the flow's dedup key reads, or fix the flow's dedup key.",
        ) from None
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return bounded_key(text)


# --- the receive path ---------------------------------------------------------------------------


class Incoming:
    """A request as the ingest path needs it; the body is read once, up to a cap."""

    def __init__(
        self,
        method: str,
        headers: Mapping[str, str],
        query: Mapping[str, Any],
        chunks: AsyncIterator[bytes],
    ) -> None:
        self.method = method.upper()
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.query = dict(query)
        self._chunks = chunks
        self._raw: bytes | None = None

    async def body(self, cap: int) -> bytes:
        """The raw body; 413 when it is longer than `cap` (nothing beyond the cap is buffered)."""
        if self._raw is None:
            declared = self.headers.get("content-length", "").strip()
            if declared:
                if not declared.isdigit():
                    raise IngestError(400, "The Content-Length header is not a number.")
                if int(declared) > cap:
                    raise _too_large(cap)
            buffer = bytearray()
            async for chunk in self._chunks:
                buffer += chunk
                if len(buffer) > cap:
                    raise _too_large(cap)
            self._raw = bytes(buffer)
        if len(self._raw) > cap:
            raise _too_large(cap)
        return self._raw


def _too_large(cap: int) -> IngestError:
    return IngestError(
        413,
        f"The request body is larger than this webhook accepts ({cap} bytes).",
        hint="Send a smaller body, or raise the trigger's maximum body size.",
    )


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer: `body` is sent as JSON unless it is `str` (text) or `bytes`."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


def sync_answer(execution_id: str, outcome: SyncOutcome | None) -> Reply:
    """The answer of a synchronous webhook.

    The respond step's status, headers and body when it ran; else, when the execution ended, 200
    with its last output (502 `{"error", "execution_id", "status"}` when it failed or crashed);
    else (timeout) 202 `{"execution_id"}` and the flow keeps running.
    """
    if outcome is not None and outcome.response is not None:
        r = outcome.response
        return Reply(r.status, r.body, dict(r.headers))
    if outcome is None or outcome.result is None:
        return Reply(202, {"execution_id": execution_id})
    result = outcome.result
    if result.status == Status.SUCCEEDED:
        return Reply(200, result.output)
    message = result.error.message if result.error else f"The execution ended {result.status}."
    return Reply(
        502, {"error": message, "execution_id": execution_id, "status": str(result.status)}
    )


def _wants_sync(trigger: Ingress, headers: Mapping[str, str]) -> bool:
    return trigger.sync or (
        trigger.allow_sync_header
        and headers.get("x-flowyard-sync", "").strip().lower() in ("true", "1", "yes")
    )


def _dig(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _admit(target: FlowTarget, request: Incoming, raw: bytes) -> Admission:
    """The trigger's verdict on a request (`Trigger.admit`), on this thread: a refusal becomes
    the answer it names, and a trigger that crashes refuses rather than answering 500."""
    assert target.admit is not None
    incoming = IncomingRequest(request.method, request.headers, request.query, raw, time.time())
    try:
        return target.admit(incoming)
    except Refused as exc:
        # A refusal is the sender's problem (4xx) or "retry later" (503), never a 500 or a 2xx.
        status = exc.status if 400 <= exc.status <= 499 or exc.status == 503 else 400
        raise IngestError(status, exc.message, hint=exc.hint, headers=exc.headers) from None
    except StepError as exc:
        raise IngestError(401, exc.message, hint=exc.hint) from None
    except Exception:  # malformed input must never become a 500
        log.exception("the trigger of flow '%s' failed to check a request", target.label)
        raise IngestError(401, "The webhook trigger could not check this request.") from None


_INLINE_PARSE_BYTES = 65_536
"""Bodies up to this size are parsed on the event loop; larger ones in a worker thread."""


class Ingest:
    """The webhook receive path of one app (see the module docstring)."""

    def __init__(self, hub: Hub, *, group_commit: bool = True) -> None:
        self.hub = hub
        self.writer = InboxWriter(hub.db, group=group_commit)
        self.routing = RoutingCache(hub)
        hub.route_caches.append(self.routing.invalidate)

    def invalidate(self, instance_id: str | None = None) -> None:
        """Forget cached routing (of one instance, or all)."""
        self.routing.invalidate(instance_id)

    async def receive_token(self, token: str, request: Incoming) -> Reply:
        """A request to `/webhooks/{token}`."""
        target = await self.routing.token(token)
        info = None if target is None else await self.routing.instance(target[0])
        if target is None or info is None:
            raise IngestError(
                404,
                "There is no webhook at this URL.",
                hint="Check the URL; an instance's URLs change when it is redeployed.",
            )
        return await self._receive(info, target[1], token, request)

    async def receive_shared(self, integration: str, request: Incoming, flow: str | None) -> Reply:
        """A request to the shared endpoint of `integration`, routed to one of its instances."""
        endpoint = await self.routing.endpoint(integration)
        if endpoint is None or not (endpoint.route_header or endpoint.route_field):
            raise IngestError(
                404,
                f"Integration '{integration}' has no shared webhook endpoint.",
                hint="Set the integration's endpoint route_header or route_field.",
            )
        if endpoint.route_header:
            name: Any = request.headers.get(endpoint.route_header.lower())
            where = f"header '{endpoint.route_header}'"
        else:
            assert endpoint.route_field is not None
            raw = await request.body(self.hub.settings.max_body_bytes)
            name = _dig(await self._parse(request.headers, raw), endpoint.route_field)
            where = f"body field '{endpoint.route_field}'"
        if isinstance(name, int | float) and not isinstance(name, bool):
            name = str(name)
        if not isinstance(name, str) or not name.strip():
            raise IngestError(
                400,
                f"The request does not name an instance: {where} is missing or not text.",
                hint=f"Send the instance name in the {where}.",
            )
        info = await self.routing.instance_by_name(integration, name.strip())
        if info is None:
            raise IngestError(
                404, f"Integration '{integration}' has no instance named '{name.strip()}'."
            )
        if flow is None:
            if info.endpoint.preprocess_flow:
                flow = ""
            else:
                hooks = [f.flow_id for f in info.flows.values() if f.trigger is not None]
                if len(hooks) != 1:
                    raise IngestError(
                        404,
                        f"Instance '{info.name}' has {len(hooks)} webhook flows; name one in the "
                        f"URL: /webhooks/shared/{integration}/<flow id>.",
                    )
                flow = hooks[0]
        return await self._receive(info, flow, f"shared:{integration}", request)

    async def _parse(
        self, headers: Mapping[str, str], raw: bytes, options: BodyOptions | None = None
    ) -> Any:
        try:
            if len(raw) <= _INLINE_PARSE_BYTES:
                return parse_body(headers, raw, options=options)
            return await in_ingest_thread(parse_body, headers, raw, options=options)
        except BodyError as exc:
            raise IngestError(400, str(exc)) from None

    def _gate(self, info: InstanceInfo, flow_id: str) -> FlowTarget:
        if not info.accepting:
            state = "disabled" if not info.enabled else info.status
            raise IngestError(
                503,
                f"Instance '{info.name}' is not accepting webhooks now ({state}).",
                hint="Nothing was stored; retry later. Enable or redeploy the instance.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        target = info.flows.get(flow_id)
        if target is None:
            raise IngestError(404, "There is no webhook at this URL (its flow was removed).")
        if target.trigger is None:
            status = 404 if "not started by a webhook" in target.problem else 503
            raise IngestError(
                status,
                f"Flow '{target.label}' cannot take this request: {target.problem}.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None,
            )
        return target

    async def _receive(
        self, info: InstanceInfo, flow_id: str, token: str, request: Incoming
    ) -> Reply:
        if flow_id == "":
            pre = info.endpoint.preprocess_flow
            if not pre:
                raise IngestError(
                    404,
                    f"Instance '{info.name}' has no instance-wide routing.",
                    hint="Set the integration's endpoint preprocess_flow.",
                )
            gate = self._gate(info, pre)
        else:
            gate = self._gate(info, flow_id)
        trigger = gate.trigger
        assert trigger is not None
        if request.method not in trigger.methods:
            raise IngestError(
                405,
                f"This webhook does not accept {request.method} requests.",
                hint=f"Use {', '.join(trigger.methods)}, or allow the method on the trigger.",
                headers={"Allow": ", ".join(trigger.methods)},
            )
        raw = await request.body(trigger.max_body_bytes)
        headers = request.headers
        admission = _admit(gate, request, raw)
        if admission.reply is not None:  # a handshake: answered, nothing stored or run
            answer = admission.reply
            return Reply(answer.status, answer.body, dict(answer.headers))
        delivery = bounded_key(admission.delivery_id) if admission.delivery_id else None
        options = BodyOptions.of(trigger)
        body = await self._parse(headers, raw, options)
        event = TriggerEvent(
            body=body, headers=headers, query=request.query, raw_body=raw, method=request.method
        )
        target = gate
        if flow_id == "":
            first = await self._seen_instance_wide(info, token, delivery)
            if first is not None:
                return Reply(200, {"execution_id": first, "duplicate": True})
            target = await self._preprocess(info, gate, event)
        assert target.trigger is not None
        if target is not gate and BodyOptions.of(target.trigger) != options:
            # The workers parse the stored body as the target flow says: refuse it here if that
            # fails, and compute the dedup key from what the target flow will see.
            body = await self._parse(headers, raw, BodyOptions.of(target.trigger))
            event = replace(event, body=body)
        dispatcher = self.hub.dispatcher
        sync = _wants_sync(target.trigger, headers) and dispatcher is not None
        values = inbox_values(
            token=token,
            instance_id=info.instance_id,
            flow_id=target.flow_id,
            method=request.method,
            headers=headers,
            query=request.query,
            body=raw,
            delivery=delivery,
            dedup=dedup_key(target.dedup_key, event.as_payload(), target.label)
            if target.dedup_key
            else None,
        )
        reservation = None
        if dispatcher is not None and not sync:  # a free worker here runs it at once
            reservation = dispatcher.try_reserve(info.instance_id, target.flow_id)
        if sync or reservation is not None:  # runs here at once: leased to us as it is stored
            values["status"] = "running"
            values["lease_until"] = values["received_at"] + self.hub.settings.lease_seconds
        try:
            if reservation is None:
                execution_id, duplicate = await self.writer.submit(values)
            else:
                stored = asyncio.ensure_future(self.writer.submit(values, limit=reservation.limit))
                reservation.hand_over(stored, values)
                # shielded: a request cancelled now must not cancel the hand-over of a stored row
                execution_id, duplicate = await asyncio.shield(stored)
        except Exception:
            log.exception("webhook for instance %s could not be stored", info.instance_id)
            raise IngestError(
                503,
                "The request could not be stored; nothing was accepted.",
                hint="Retry later.",
                headers={"Retry-After": "5"},
            ) from None
        if duplicate:
            return Reply(200, {"execution_id": execution_id, "duplicate": True})
        if dispatcher is None:
            return Reply(202, {"execution_id": execution_id})
        if not sync:
            if reservation is None:
                dispatcher.notify()
            return Reply(202, {"execution_id": execution_id})
        # Start waiting before the run starts, so a fast execution cannot finish unobserved.
        waiter = asyncio.ensure_future(
            dispatcher.wait_for_reply(execution_id, target.trigger.sync_timeout)
        )
        dispatcher.start_now(claimed_from(values))
        try:
            outcome = await waiter
        except Exception:
            log.exception("waiting for the reply of %s failed", execution_id)
            outcome = None
        return sync_answer(execution_id, outcome)

    async def _seen_instance_wide(
        self, info: InstanceInfo, token: str, delivery: str | None
    ) -> str | None:
        """A redelivery to the instance-wide URL is answered before the pre-process flow runs."""
        if delivery is None:
            return None
        return await in_ingest_thread(find_delivery, self.hub.db, info.instance_id, token, delivery)

    async def _preprocess(
        self, info: InstanceInfo, pre: FlowTarget, event: TriggerEvent
    ) -> FlowTarget:
        """Run the pre-process flow now; its response body or output names the target flow."""
        dispatcher = self.hub.dispatcher
        if dispatcher is None:
            raise IngestError(
                503,
                "Webhooks to instance-wide URLs need the worker pool, which is not running.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        result = await dispatcher.run_lifecycle(info.instance_id, pre.flow_id, event)
        if result.status != Status.SUCCEEDED:
            message = result.error.message if result.error else str(result.status)
            raise IngestError(
                502,
                f"Pre-process flow '{pre.label}' failed: {message}",
                details={"execution_id": result.execution_id},
            )
        named = result.response.body if result.response is not None else result.output
        if isinstance(named, Mapping):
            named = named.get("flow")
        found = None
        if isinstance(named, str):
            found = info.flows.get(named) or next(
                (f for f in info.flows.values() if f.label == named), None
            )
        if found is None or found.trigger is None:
            shown = json.dumps(named, default=str)[:200]
            raise IngestError(
                422,
                f"Pre-process flow '{pre.label}' routed the request to {shown}, which is not a "
                "webhook flow of this instance.",
                hint="Return a flow id (or an object with a `flow` key) naming a webhook flow.",
            )
        return found
