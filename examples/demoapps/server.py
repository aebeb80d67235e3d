"""One demo app as an aiohttp server: REST CRUD, current user, webhook subscriptions, a page.

Routes (`<kinds>` is `accounts` or `opportunities`, `<subs>` is the app's subscription path):

    GET  /                     HTML page: records, subscriptions, recent deliveries, edit forms
    GET  /health               liveness, no API key needed
    GET  /api/me               the user the API key belongs to
    GET  /api/<kinds>          list, `?external_id=` filters; POST creates (201)
    GET  /api/<kinds>/{id}     one record; PATCH changes the fields given; DELETE removes (204)
    GET  /api/<subs>           subscriptions; POST creates (201); DELETE /api/<subs>/{id} (204)
    GET  /api/deliveries       recent deliveries with every attempt
    /oauth/...                 the CRM only: an OAuth 2.0 provider (`oauth.py`); its API then
                               also takes the access tokens it issued

Everything under `/api` needs the API key. Bad input is answered with a 4xx JSON body
`{"error", "hint"?, "details"?}` and changes nothing.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from examples.demoapps.delivery import DeliveryQueue, RetryPolicy
from examples.demoapps.oauth import UNKNOWN_TOKEN, OAuthProvider
from examples.demoapps.page import render_page
from examples.demoapps.specs import AppSpec, Kind
from examples.demoapps.store import Store, Subscription

__all__ = ["ApiError", "DemoApp"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_META = ("id", "created_at", "updated_at")


class ApiError(Exception):
    """A refused request: answered with `status` and `{"error", "hint"?, "details"?}`."""

    def __init__(self, status: int, error: str, hint: str = "", details: Any = None) -> None:
        super().__init__(error)
        self.status = status
        self.body: dict[str, Any] = {"error": error}
        if hint:
            self.body["hint"] = hint
        if details is not None:
            self.body["details"] = details


class _SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str = Field(pattern=r"^https?://[^\s/]+\S*$", max_length=2000)
    secret: str | None = Field(None, min_length=8, max_length=200)
    description: str = Field("", max_length=500)


def _problems(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {
            "field": ".".join(str(p) for p in e["loc"]) or "(body)",
            "problem": e["msg"].removeprefix("Value error, "),
        }
        for e in exc.errors()
    ]


def _invalid(what: str, exc: ValidationError) -> ApiError:
    details = _problems(exc)
    first = details[0]
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return ApiError(
        422, f"Invalid {what}: {first['field']}: {first['problem']}{more}.", "", details
    )


class DemoApp:
    """A demo app over its SQLite file; `start()` serves it on 127.0.0.1."""

    def __init__(
        self,
        spec: AppSpec,
        data_dir: Path,
        api_key: str,
        policy: RetryPolicy | None = None,
        *,
        token_ttl: float = 300.0,
    ) -> None:
        if not api_key:
            raise ValueError(f"{spec.name} needs a non-empty API key")
        self.spec = spec
        self.api_key = api_key
        self.store = Store(data_dir / f"{spec.slug}.sqlite3")
        self.queue = DeliveryQueue(self.store, spec.header_prefix, policy or RetryPolicy())
        # The CRM is also an OAuth 2.0 provider (as Salesforce is): its API takes access tokens.
        self.oauth = (
            OAuthProvider(
                spec.name,
                str(spec.user.get("email", "")),
                data_dir / f"{spec.slug}-oauth.sqlite3",
                access_ttl=token_ttl,
            )
            if spec.auth == "bearer"
            else None
        )
        self.url = ""
        self._runner: web.AppRunner | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._auth], client_max_size=1_048_576)
        spec = self.spec
        app.router.add_get("/", self._page)
        app.router.add_get("/health", self._health)
        app.router.add_get("/api/me", self._me)
        app.router.add_get("/api/deliveries", self._deliveries)
        if self.oauth is not None:
            self.oauth.routes(app)
        subs = f"/api/{spec.subscriptions_path}"
        app.router.add_get(subs, self._list_subscriptions)
        app.router.add_post(subs, self._create_subscription)
        app.router.add_get(subs + "/{id}", self._get_subscription)
        app.router.add_delete(subs + "/{id}", self._delete_subscription)
        for kind in spec.kinds:
            base = f"/api/{kind.plural}"
            app.router.add_get(base, self._handler(self._list, kind))
            app.router.add_post(base, self._handler(self._create, kind))
            app.router.add_get(base + "/{id}", self._handler(self._get, kind))
            app.router.add_patch(base + "/{id}", self._handler(self._update, kind))
            app.router.add_delete(base + "/{id}", self._handler(self._delete, kind))
            app.router.add_post(f"/ui/{kind.plural}", self._handler(self._form_create, kind))
            app.router.add_post(f"/ui/{kind.plural}/update", self._handler(self._form_update, kind))
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        self.queue.start()

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.queue.stop()
        self.store.close()
        if self.oauth is not None:
            self.oauth.close()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host:port` (0: any free port); return the base URL."""
        self._runner = web.AppRunner(self.application(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- middleware --------------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return web.json_response(exc.body, status=exc.status)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
            reason = {404: "There is nothing at this path.", 405: "Method not allowed here."}
            body = {"error": reason.get(exc.status, exc.reason)}
            return web.json_response(body, status=exc.status, headers=headers)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            self._check_key(self._sent_key(request))
        return await handler(request)

    def _sent_key(self, request: web.Request) -> str | None:
        if self.spec.auth == "x-api-key":
            return request.headers.get("X-API-Key")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def _check_key(self, sent: str | None) -> None:
        if not sent:
            raise ApiError(401, "Missing API key.", self.spec.auth_hint())
        if secrets.compare_digest(sent.encode(), self.api_key.encode()):
            return
        problem = UNKNOWN_TOKEN if self.oauth is None else self.oauth.check_access_token(sent)
        if problem == UNKNOWN_TOKEN:
            raise ApiError(401, "The API key is not valid.", self.spec.auth_hint())
        if problem:
            raise ApiError(401, problem, "Refresh the access token, or send the API key.")

    # --- helpers -----------------------------------------------------------------------------

    def _handler(
        self, method: Callable[[web.Request, Kind], Awaitable[web.StreamResponse]], kind: Kind
    ) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await method(request, kind)

        return handle

    @staticmethod
    async def _json_object(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw.strip():
            raise ApiError(400, "The request has no body.", "Send a JSON object.")
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
            raise ApiError(
                400, f"The body is not valid JSON ({where}).", "Send a JSON object."
            ) from None
        except (ValueError, RecursionError):  # not UTF-8, or nested too deeply
            raise ApiError(400, "The body is not valid JSON.", "Send a JSON object.") from None
        if not isinstance(data, dict):
            raise ApiError(400, "The body must be a JSON object.", 'e.g. {"name": "Globex"}')
        return data

    def _record_or_404(self, kind: Kind, record_id: str) -> dict[str, Any]:
        record = self.store.record(kind.name, record_id)
        if record is None:
            raise ApiError(404, f"There is no {kind.name} with id '{record_id}'.")
        return record

    def _check_links(self, kind: Kind, data: dict[str, Any], record_id: str = "") -> None:
        """Referenced records exist and the external id is not linked to another record."""
        for field, target in (kind.references or {}).items():
            value = data.get(field)
            if value is not None and self.store.record(target, value) is None:
                raise ApiError(
                    422,
                    f"Invalid {kind.name}: {field}: there is no {target} with id '{value}'.",
                    details=[{"field": field, "problem": f"no {target} '{value}'"}],
                )
        external = data.get("external_id")
        if external is not None:
            other = self.store.external_id_taken(kind.name, external, record_id)
            if other is not None:
                raise ApiError(
                    409,
                    f"External id '{external}' is already linked to {kind.name} '{other}'.",
                    "Update that record instead, or use another external id.",
                )

    def _emit(self, event: str, record: dict[str, Any], changed: list[str]) -> None:
        """Queue a signed delivery of `event` for every subscription that covers it."""
        queued = False
        for sub in self.store.subscriptions():
            if event in self.spec.topics.get(sub.topic, ()):
                delivery_id = uuid.uuid4().hex
                body = self.spec.payload(delivery_id, event, record, changed, time.time())
                self.store.enqueue(delivery_id, sub.id, event, json.dumps(body))
                queued = True
        if queued:
            self.queue.wake()

    # --- records -----------------------------------------------------------------------------

    def create_record(self, kind: Kind, data: dict[str, Any]) -> dict[str, Any]:
        """Validate, store and announce a new record (`ApiError` when the input is bad)."""
        try:
            fields = kind.model.model_validate(data).model_dump(mode="json")
        except ValidationError as exc:
            raise _invalid(kind.name, exc) from None
        self._check_links(kind, fields)
        record = self.store.insert_record(kind.name, kind.prefix, fields)
        self._emit(f"{kind.name}.created", record, sorted(k for k, v in fields.items() if v))
        return record

    def update_record(self, kind: Kind, record_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Apply the fields given; announce the update only when a value really changed."""
        current = self._record_or_404(kind, record_id)
        if any(key in _META for key in patch):
            raise ApiError(
                422, f"Invalid {kind.name}: id, created_at and updated_at are read-only."
            )
        old = {k: v for k, v in current.items() if k not in _META}
        try:
            fields = kind.model.model_validate({**old, **patch}).model_dump(mode="json")
        except ValidationError as exc:
            raise _invalid(kind.name, exc) from None
        changed = sorted(k for k in fields if fields[k] != old.get(k))
        if not changed:  # nothing to write and, importantly, nothing to announce (loop guard)
            return current
        self._check_links(kind, fields, record_id)
        record = self.store.update_record(kind.name, record_id, fields)
        self._emit(f"{kind.name}.updated", record, changed)
        return record

    async def _list(self, request: web.Request, kind: Kind) -> web.StreamResponse:
        items = self.store.records(kind.name, request.query.get("external_id"))
        return web.json_response({"items": items, "count": len(items)})

    async def _create(self, request: web.Request, kind: Kind) -> web.StreamResponse:
        record = self.create_record(kind, await self._json_object(request))
        return web.json_response(record, status=201)

    async def _get(self, request: web.Request, kind: Kind) -> web.StreamResponse:
        return web.json_response(self._record_or_404(kind, request.match_info["id"]))

    async def _update(self, request: web.Request, kind: Kind) -> web.StreamResponse:
        patch = await self._json_object(request)
        return web.json_response(self.update_record(kind, request.match_info["id"], patch))

    async def _delete(self, request: web.Request, kind: Kind) -> web.StreamResponse:
        record_id = request.match_info["id"]
        self._record_or_404(kind, record_id)
        for other in self.spec.kinds:
            for field, target in (other.references or {}).items():
                users = [r for r in self.store.records(other.name) if r.get(field) == record_id]
                if target == kind.name and users:
                    raise ApiError(
                        409,
                        f"{kind.name.capitalize()} '{record_id}' is used by {len(users)} "
                        f"{other.plural}.",
                        f"Delete those {other.plural} or change their {field} first.",
                    )
        self.store.delete_record(kind.name, record_id)
        return web.Response(status=204)

    # --- subscriptions -----------------------------------------------------------------------

    def subscription_view(self, sub: Subscription) -> dict[str, Any]:
        """A subscription as the API shows it: never its secret."""
        return {
            "id": sub.id,
            self.spec.topic_field: sub.topic,
            "url": sub.url,
            "description": sub.description,
            "created_at": sub.created_at,
        }

    async def _list_subscriptions(self, request: web.Request) -> web.StreamResponse:
        items = [self.subscription_view(s) for s in self.store.subscriptions()]
        return web.json_response({"items": items, "count": len(items)})

    async def _get_subscription(self, request: web.Request) -> web.StreamResponse:
        sub = self.store.subscription(request.match_info["id"])
        if sub is None:
            word = self.spec.subscription_word
            raise ApiError(404, f"There is no {word} with id '{request.match_info['id']}'.")
        return web.json_response(self.subscription_view(sub))

    async def _create_subscription(self, request: web.Request) -> web.StreamResponse:
        data = await self._json_object(request)
        spec, word = self.spec, self.spec.subscription_word
        topic = data.pop(spec.topic_field, None)
        if topic not in spec.topics:
            choices = ", ".join(spec.topics)
            raise ApiError(
                422,
                f"Invalid {word}: {spec.topic_field} must be one of {choices}.",
                details=[{"field": spec.topic_field, "problem": f"one of {choices}"}],
            )
        try:
            given = _SubscriptionIn.model_validate(data)
        except ValidationError as exc:
            raise _invalid(word, exc) from None
        secret = given.secret or secrets.token_urlsafe(24)
        sub = self.store.add_subscription(
            spec.subscription_prefix, str(topic), given.url, secret, given.description
        )
        view = self.subscription_view(sub)
        if given.secret is None:  # shown once, like most apps do with generated secrets
            view["secret"] = secret
        return web.json_response(view, status=201)

    async def _delete_subscription(self, request: web.Request) -> web.StreamResponse:
        sub_id = request.match_info["id"]
        if not self.store.delete_subscription(sub_id):
            raise ApiError(404, f"There is no {self.spec.subscription_word} with id '{sub_id}'.")
        return web.Response(status=204)

    async def _deliveries(self, request: web.Request) -> web.StreamResponse:
        items = [
            {
                "id": d.id,
                "subscription_id": d.subscription_id,
                "event": d.event,
                "status": d.status,
                "body": json.loads(d.body),
                "created_at": d.created_at,
                "attempts": [a.as_json() for a in self.store.attempts(d.id)],
            }
            for d in self.store.deliveries()
        ]
        return web.json_response({"items": items, "count": len(items)})

    # --- misc and the page -------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok", "app": self.spec.name})

    async def _me(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.spec.user)

    async def _page(self, request: web.Request, error: str = "") -> web.StreamResponse:
        text = render_page(self, error)
        return web.Response(text=text, content_type="text/html", status=400 if error else 200)

    async def _form(self, request: web.Request) -> dict[str, str]:
        form = await request.post()
        self._check_key(str(form.get("api_key", "")).strip() or None)
        return {k: str(v).strip() for k, v in form.items() if k != "api_key" and str(v).strip()}

    async def _form_create(self, request: web.Request, kind: Kind) -> web.StreamResponse:
        try:
            self.create_record(kind, await self._form(request))
        except ApiError as exc:
            return await self._page(request, exc.body["error"])
        return web.Response(status=303, headers={"Location": "/"})

    async def _form_update(self, request: web.Request, kind: Kind) -> web.StreamResponse:
        try:
            fields = await self._form(request)
            record_id = fields.pop("id", "")
            self.update_record(kind, record_id, fields)
        except ApiError as exc:
            return await self._page(request, exc.body["error"])
        return web.Response(status=303, headers={"Location": "/"})
