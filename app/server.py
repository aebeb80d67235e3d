"""The Flowyard server: our own FastAPI app with the REST API under `/api` and webhooks.

`create_app(settings)` builds it; its lifespan opens the database, the shared HTTP client and the
worker pool, and puts the `Hub` at `app.state.hub`. Security defaults: bind to 127.0.0.1; refuse
requests whose `Host` is not this server (DNS-rebinding protection); when bound beyond loopback,
`/api` requires `Authorization: Bearer <token>` (the token is `FLOWYARD_API_TOKEN` or the
`api-token` file created in the data directory with 0600 permissions). Webhook URLs carry their own
unguessable token and need no login.
"""

from __future__ import annotations

import contextlib
import hmac
import html
import importlib
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import nicegui
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.telemetry import TelemetryConfig
from starlette.middleware.trustedhost import TrustedHostMiddleware

from app.heap import settle_heap
from app.persistence import SecretBox, load_secret_key, open_database
from app.persistence.db import database_url, dispose_when_idle
from app.persistence.lock import server_lock
from app.services.apis import registry_for
from app.services.errors import ServiceError
from app.services.hub import Hub
from app.settings import Settings
from runtime.http import make_http_client

__all__ = ["NO_TELEMETRY", "api_token", "create_app"]

log = logging.getLogger("flowyard.server")


NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""Flowyard exports no OpenTelemetry; FastAPI's check for a configured provider otherwise runs on
every request (~5% of a webhook's cost here)."""


def api_token(data_dir: Path) -> str:
    """The API token for non-loopback binds: the env var, or a 0600 file made on first use."""
    if token := os.environ.get("FLOWYARD_API_TOKEN"):
        return token
    return _install_secret(data_dir, "api-token")


def _install_secret(data_dir: Path, name: str) -> str:
    """A random per-install secret kept in a 0600 file of the data directory."""
    path = data_dir / name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


class _ErrorResponse(JSONResponse):
    """A JSON error answer that can quote what it refuses: a lone surrogate (not Unicode, so not
    encodable as UTF-8) is written as its JSON escape instead of failing the answer with a 500."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")


def _allowed_hosts(settings: Settings) -> list[str]:
    hosts = {"127.0.0.1", "localhost", "::1", "[::1]", settings.host}
    if settings.public_url:
        hosts.add(urlsplit(settings.public_url).hostname or "")
    if settings.host in ("0.0.0.0", "::"):
        hosts.add("*")  # bound to every interface on purpose: the API token guards /api
    return sorted(h for h in hosts if h)


def create_app(settings: Settings) -> FastAPI:
    """The ASGI app for `settings`; serve it with uvicorn (`flowyard serve`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One server per SQLite file: its workers re-run what was left running. A shared
        # database (PostgreSQL) takes any number of servers and workers.
        exclusive = database_url(settings.data_dir).startswith("sqlite")
        with server_lock(settings.data_dir) if exclusive else contextlib.nullcontext():
            db = open_database(settings.data_dir)
            registry = registry_for(settings)
            for problem in registry.problems:
                log.warning("component %s not loaded: %s", problem.source, problem.message)
            box = SecretBox(load_secret_key(settings.data_dir))
            async with make_http_client() as http:
                hub = Hub(settings=settings, db=db, registry=registry, http=http, box=box)
                from app.services.dispatcher import WorkerPool

                pool = WorkerPool(hub)
                hub.dispatcher = pool
                app.state.hub = hub
                if settings.ui:
                    nicegui.app.state.hub = hub
                from app.services.instances import recover_interrupted

                # On a shared database another server may be deploying right now.
                for instance_id in await recover_interrupted(hub) if exclusive else []:
                    log.warning(
                        "instance %s was left deploying by a stop: now deploy_failed", instance_id
                    )
                await pool.start()
                if settings.settle_heap:
                    settle_heap()
                try:
                    yield
                finally:
                    await pool.stop()
                    dispose_when_idle(db)

    app = FastAPI(
        title="Flowyard",
        version="0.1.0",
        description="Event-driven integrations: integrations, instances, executions, webhooks.",
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
        telemetry=NO_TELEMETRY,
    )
    from app.routes import api, oauth, webhooks

    webhooks.install(app)  # first: the host and token checks below wrap its fast path
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=_allowed_hosts(settings))
    if not settings.loopback_only:
        token = api_token(settings.data_dir)

        @app.middleware("http")
        async def require_token(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            path = request.url.path
            if path.startswith("/api") and path != "/api/health":
                sent = request.headers.get("authorization", "")
                if not secrets.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                    return JSONResponse(
                        {"error": "Login required: send 'Authorization: Bearer <api token>'."},
                        status_code=401,
                    )
            return await call_next(request)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return _ErrorResponse(exc.to_json(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"where": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
        ]
        return _ErrorResponse({"error": "Invalid request.", "details": details}, status_code=422)

    app.include_router(oauth.api_router)  # before `api`: its catch-all answers unknown paths
    app.include_router(api.router)
    app.include_router(oauth.router)
    if settings.ui:
        ui_secret = _install_secret(settings.data_dir, "ui-storage-secret")
        if not settings.loopback_only:
            _require_login(app, api_token(settings.data_dir), ui_secret)
        _mount_ui(app, settings, ui_secret)
    return app


_PUBLIC = ("/api", "/webhooks", "/login", "/_nicegui/")
"""Paths the page login does not guard: the API has its token, webhooks their own URLs."""

_LOGIN_PAGE = """<!doctype html><html><head><title>Flowyard · login</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 28rem; margin: 4rem auto">
<h2>Flowyard</h2><p>This server is reachable beyond this machine: enter its API token (the
<code>api-token</code> file in the data directory, or <code>FLOWYARD_API_TOKEN</code>).</p>
<form method="post" action="/login"><input type="hidden" name="next" value="{next}">
<input name="token" type="password" autofocus style="width: 100%" aria-label="API token">
<p style="color: #c62828">{error}</p><button type="submit">Log in</button></form></body></html>"""


def _local(path: str) -> str:
    """`path` when it stays on this server, else `/` (no open redirect after the login)."""
    return path if path.startswith("/") and not path.startswith("//") else "/"


def _require_login(app: FastAPI, token: str, secret: str) -> None:
    """Pages need a login when bound beyond loopback: the API token, once, kept in a cookie."""
    session = hmac.new(secret.encode(), token.encode(), "sha256").hexdigest()

    def logged_in(request: Request) -> bool:
        sent = request.cookies.get("flowyard_session", "")
        return secrets.compare_digest(sent.encode(), session.encode())

    def page(next_path: str, error: str = "") -> HTMLResponse:
        return HTMLResponse(
            _LOGIN_PAGE.format(next=html.escape(_local(next_path)), error=html.escape(error)),
            status_code=401 if error else 200,
        )

    @app.get("/login", include_in_schema=False)
    async def login_form(next: str = "/") -> HTMLResponse:
        return page(next)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        sent, target = form.get("token", [""])[0], form.get("next", ["/"])[0]
        if not secrets.compare_digest(sent.encode(), token.encode()):
            return page(target, "That is not this server's API token.")
        answer = RedirectResponse(_local(target), status_code=303)
        answer.set_cookie("flowyard_session", session, httponly=True, samesite="strict")
        return answer

    @app.middleware("http")
    async def guard_pages(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path.startswith(_PUBLIC) or logged_in(request):
            return await call_next(request)
        return RedirectResponse(f"/login?next={quote(path)}", status_code=303)


def _mount_ui(app: FastAPI, settings: Settings, storage_secret: str) -> None:
    """Mount NiceGUI's pages on our app (after our routes, which therefore match first)."""
    from nicegui import core, ui
    from nicegui.storage import Storage

    importlib.import_module("app.pages.home")  # registers the pages
    importlib.import_module("app.pages.executions")
    importlib.import_module("app.pages.connections")
    importlib.import_module("app.pages.instances")
    importlib.import_module("app.pages.deploy")
    importlib.import_module("app.pages.editor")
    importlib.import_module("app.pages.versions")

    # NiceGUI's socket.io accepts any Origin by default: only this server's own pages may connect.
    core.sio.eio.cors_allowed_origins = _allowed_origins(settings)
    # Per-browser preferences (the theme) live in the data directory, signed with its own secret.
    Storage.path = (settings.data_dir / "ui-storage").resolve()  # not ./.nicegui
    ui.run_with(
        app,
        title="Flowyard",
        storage_secret=storage_secret,
        reconnect_timeout=30.0,  # a brief network drop must not lose an edit (3 s lost one here)
        show_welcome_message=False,
    )


def _allowed_origins(settings: Settings) -> list[str]:
    hosts = {"127.0.0.1", "localhost", "[::1]"}
    if settings.host not in ("0.0.0.0", "::"):
        hosts.add(f"[{settings.host}]" if ":" in settings.host else settings.host)
    origins = {f"http://{host}:{settings.port}" for host in hosts}
    if settings.public_url:
        origins.add(settings.public_url.rstrip("/"))
    return sorted(origins)
