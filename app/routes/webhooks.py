"""Webhook routes: `/webhooks/{token}` and the shared `/webhooks/shared/{integration}[/{flow}]`,
plus the designer's test URLs `/webhooks/test/{token}` (listening mode, `app.services.testruns`:
202 `{"captured", "payload_id", "name", "flow_id"}`, 404 once used, cancelled or expired).

Every answer is JSON except a synchronous reply. Statuses:

- 202 `{"execution_id"}`: stored (committed to the inbox) and queued; also a synchronous request
  whose flow did not reply within the trigger's `sync_timeout` (the flow keeps running);
- 200 `{"execution_id", "duplicate": true}`: a redelivery (same delivery id, or same dedup key)
  of an accepted request; nothing is stored or run again;
- synchronous replies: the respond step's status, headers and body (objects and lists as JSON,
  text as text); without a respond step, 200 with the last step's output as JSON; 502
  `{"error", "execution_id", "status"}` when the execution failed;
- 408 the body did not fully arrive within the server's read timeout, 431 too many or too large
  headers (both answered by the HTTP protocol, `app.http_server`, for every route);
- 400 unparseable body (JSON/XML position named), bad Content-Length, or a body the sender cut
  short by closing the connection (not logged as a failure); 401 signature missing,
  malformed, stale or wrong; 404 unknown URL; 405 method not allowed by the trigger (`Allow` lists
  the allowed ones); 413 body over the trigger's cap; 422 a dedup key that cannot be computed, or a
  pre-process flow that names no webhook flow; 502 the pre-process flow failed;
- 503 + `Retry-After`: the instance is disabled or not active (deploying, failed deploy, being
  deleted), its trigger settings are invalid, or the request could not be stored. Nothing is
  stored, so a sender that retries (as webhook senders do on 5xx) loses nothing.

Any unexpected error is a 500 `{"error"}` without internals; a user's mistake is never a 500.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.services import testruns
from app.services.hub import Hub
from app.services.ingest import Incoming, Ingest, IngestError, Reply, database_unavailable

__all__ = ["WebhookFastPath", "ingest_of", "install", "receive", "receive_test", "router"]

log = logging.getLogger("flowyard.webhooks")

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
"""Routed here so that every method gets a JSON answer; the trigger decides which it accepts."""

_TOKEN_CHARS = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"}


def ingest_of(request: Request) -> Ingest:
    """The app's `Ingest`, created on first use for the app's current `Hub`."""
    hub: Hub = request.app.state.hub
    ingest: Ingest | None = getattr(request.app.state, "ingest", None)
    if ingest is None or ingest.hub is not hub:
        ingest = Ingest(hub)
        request.app.state.ingest = ingest
    return ingest


def _incoming(request: Request) -> Incoming:
    query: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        existing = query.get(key)
        if existing is None:
            query[key] = value
        elif isinstance(existing, list):
            existing.append(value)
        else:
            query[key] = [existing, value]
    headers: dict[str, str] = {}
    for key, value in request.headers.items():  # repeated headers are joined, as RFC 9110 allows
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return Incoming(request.method, headers, query, _body(request))


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:  # the body never fully arrived (the server's read timeout)
        raise IngestError(408, "The request body did not fully arrive.") from None


def _safe_headers(headers: dict[str, Any]) -> dict[str, str]:
    """Headers a flow set that can go on the wire; the rest is dropped rather than failing."""
    safe: dict[str, str] = {}
    for name, value in headers.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if (
            not isinstance(name, str)
            or not _TOKEN_CHARS.match(name)
            or name.lower() in _HOP_BY_HOP
            or any(c in text for c in "\r\n\0")
        ):
            continue
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            continue
        safe[name] = text
    return safe


def render_reply(reply: Reply) -> Response:
    """The HTTP response of a `Reply`: str as text, bytes as is, anything else as JSON."""
    headers = _safe_headers(dict(reply.headers))
    has_type = any(k.lower() == "content-type" for k in headers)
    status = reply.status if 100 <= reply.status <= 599 else 500
    body = reply.body
    if isinstance(body, bytes):
        return Response(body, status, headers)
    if isinstance(body, str):
        media = None if has_type else "text/plain; charset=utf-8"
        return Response(body.encode("utf-8", "replace"), status, headers, media_type=media)
    if body is None and reply.status in (204, 304):
        return Response(b"", status, headers)
    try:
        content = json.dumps(body, ensure_ascii=False, allow_nan=False, default=str)
    except (ValueError, TypeError, RecursionError):
        content = json.dumps({"error": "The flow's reply could not be sent as JSON."})
        status = 502
    media = None if has_type else "application/json"
    return Response(content.encode("utf-8"), status, headers, media_type=media)


def _failed(request: Request, exc: Exception) -> JSONResponse:
    """An unexpected error: 503 + Retry-After when the database cannot be reached (nothing was
    stored; the sender's retry succeeds), else a 500 without internals, logged."""
    down = database_unavailable(exc)
    if down is not None:
        log.warning("webhook %s refused: database unreachable (%s)", request.url.path, exc)
        return _error(down)
    log.exception("webhook %s failed", request.url.path)
    return JSONResponse({"error": "The webhook could not be handled."}, status_code=500)


def _error(exc: IngestError) -> JSONResponse:
    return JSONResponse(exc.to_json(), status_code=exc.status, headers=exc.headers)


def _hung_up() -> JSONResponse:
    """The sender closed the connection before its body was complete: nothing was stored, and
    nobody is left to read an answer. Its own mistake, so not logged as our failure."""
    return JSONResponse({"error": "The request body ended early."}, status_code=400)


async def receive(request: Request) -> Response:
    """A flow's own URL (or an instance-wide URL routed by the pre-process flow).

    Answers 202 `{"execution_id"}` only after the request is committed; see the module docstring
    for every status, including 503 + Retry-After for a disabled or not yet active instance.
    Called by `WebhookFastPath`, not through a route: FastAPI's dependency and validation layer
    cost ~0.3 ms a request here, the router more, and this endpoint needs neither.
    """
    token: str = request.path_params["token"]
    try:
        return render_reply(await ingest_of(request).receive_token(token, _incoming(request)))
    except IngestError as exc:
        return _error(exc)
    except ClientDisconnect:
        return _hung_up()
    except Exception as exc:
        return _failed(request, exc)


@router.api_route(
    "/shared/{integration}", methods=METHODS, summary="Receive a webhook for any instance"
)
async def receive_shared(integration: str, request: Request) -> Response:
    """The shared URL of an integration, routed to an instance by name.

    The integration's `endpoint.route_header` (a header) or `route_field` (a dotted path into the
    body, read within the server's default body cap) names the instance; then the instance's
    pre-process flow routes it, or its only webhook flow takes it.
    """
    return await _shared(integration, None, request)


@router.api_route(
    "/shared/{integration}/{flow}", methods=METHODS, summary="Receive a webhook for one flow"
)
async def receive_shared_flow(integration: str, flow: str, request: Request) -> Response:
    """The shared URL of one flow of an integration, routed to an instance by name."""
    return await _shared(integration, flow, request)


async def _shared(integration: str, flow: str | None, request: Request) -> Response:
    try:
        ingest = ingest_of(request)
        return render_reply(await ingest.receive_shared(integration, _incoming(request), flow))
    except IngestError as exc:
        return _error(exc)
    except ClientDisconnect:
        return _hung_up()
    except Exception as exc:
        return _failed(request, exc)


async def receive_test(request: Request) -> Response:
    """A designer test URL: the request is saved as a test payload of its flow, answered 202."""
    hub: Hub = request.app.state.hub
    try:
        reply = await testruns.capture(hub, request.path_params["token"], _incoming(request))
        return render_reply(reply)
    except IngestError as exc:
        return _error(exc)
    except ClientDisconnect:
        return _hung_up()
    except Exception as exc:
        return _failed(request, exc)


_PREFIX = "/webhooks/"


class WebhookFastPath:
    """ASGI middleware that answers a flow's own URL, `/webhooks/{token}`, itself.

    The hottest path of the server skips the router (which tries every API and page route in
    turn) and the exception and exit-stack layers, none of which `receive` needs: it answers
    every outcome itself. Middleware added to the app after it (the trusted-host check, the
    login guards) wraps it; every other path goes on to `app`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive_: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            token = path[len(_PREFIX) :]
            if path.startswith(_PREFIX) and token and "/" not in token:
                scope["path_params"] = {"token": token}
                response = await receive(Request(scope, receive_))
                await response(scope, receive_, send)
                return
        await self.app(scope, receive_, send)


def install(app: FastAPI) -> None:
    """Add the webhooks to `app`: the per-flow URL as `WebhookFastPath`, the shared URLs and the
    designer's test URL as routes.

    Call it before adding the middleware that must guard webhooks too (the trusted-host check):
    middleware added later wraps the fast path.
    """
    app.add_middleware(WebhookFastPath)
    app.add_route(
        "/webhooks/test/{token}", receive_test, methods=METHODS, name="receive_test_webhook"
    )
    app.include_router(router)
