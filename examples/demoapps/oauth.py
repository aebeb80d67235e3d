"""The demo CRM as an OAuth 2.0 provider, the way Salesforce's connected apps work.

    GET  /oauth/authorize    the consent page (authorization code with PKCE S256 required)
    POST /oauth/authorize    Allow or Deny: back to the client's redirect URI with a code or error
    POST /oauth/token        grants: authorization_code (+ code_verifier), refresh_token (rotated:
                             a used refresh token is refused afterwards), client_credentials
    POST /oauth/revoke       RFC 7009: revoke an access or refresh token (a refresh token takes
                             the access tokens issued from it along)
    GET  /api/oauth/grants   (API key) the token requests answered, oldest first
    DELETE /api/oauth/grants (API key) revoke every token of every client ("remove the app")

Access tokens live `access_ttl` seconds (short, so refreshing is the normal case). Codes live 60
seconds and are good once. A client may redirect to any http(s) URL whose path ends with
`/oauth/callback` (a demo simplification of registered redirect URIs). Tokens are kept in the
app's data directory, so a restart does not log clients out.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from examples.demoapps.store import open_sqlite

__all__ = ["DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "UNKNOWN_TOKEN", "OAuthProvider"]

DEFAULT_CLIENT_ID = "flowyard-demo"
DEFAULT_CLIENT_SECRET = "crm-demo-client-secret"
_CODE_TTL = 60.0
UNKNOWN_TOKEN = "The access token is not valid."

_SCHEMA = """
CREATE TABLE IF NOT EXISTS oauth_tokens (
    token TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    client_id TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at REAL,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_grants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    grant_type TEXT NOT NULL,
    client_id TEXT NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT NOT NULL,
    at REAL NOT NULL
);
"""

_PAGE = """<!doctype html><html><head><title>{app} · Allow access?</title>
<link rel="icon" href="data:,">
<style>body{{font-family:sans-serif;max-width:32em;margin:4em auto}}
button{{font-size:1.1em;margin-right:1em}}</style></head><body>
<h1>Allow access to {app}?</h1>
<p><b>{client}</b> asks to read and change your {app} records as
<b>{user}</b>{scope}.</p>
<form method="post" action="/oauth/authorize">{fields}
<button type="submit" name="decision" value="allow" data-testid="oauth-allow">Allow</button>
<button type="submit" name="decision" value="deny" data-testid="oauth-deny">Deny</button>
</form></body></html>"""


class _Refused(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def response(self) -> web.Response:
        body = {"error": self.error, "error_description": self.description}
        headers = {"WWW-Authenticate": "Basic"} if self.status == 401 else {}
        return web.json_response(body, status=self.status, headers=headers)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OAuthProvider:
    """Consent, tokens and revocation for one demo app; `check_access_token` guards its API."""

    def __init__(
        self,
        app_name: str,
        user: str,
        path: Path,
        *,
        clients: dict[str, str] | None = None,
        access_ttl: float = 300.0,
    ) -> None:
        self.app_name, self.user, self.access_ttl = app_name, user, access_ttl
        self.token_delay = 0.0
        """Seconds the token endpoint takes to answer (a slow provider, for tests)."""
        default = {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
        self.clients = clients if clients is not None else default
        self._db = open_sqlite(path, _SCHEMA)

    def close(self) -> None:
        self._db.close()

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/oauth/authorize", self._authorize_page)
        app.router.add_post("/oauth/authorize", self._authorize_decision)
        app.router.add_post("/oauth/token", self._token)
        app.router.add_post("/oauth/revoke", self._revoke)
        app.router.add_get("/api/oauth/grants", self._grants)
        app.router.add_delete("/api/oauth/grants", self._revoke_all)

    # --- the API's side ----------------------------------------------------------------------

    def check_access_token(self, token: str) -> str | None:
        """None when `token` is a live access token, else why not."""
        row = self._db.execute(
            "SELECT expires_at, revoked FROM oauth_tokens WHERE token = ? AND kind = 'access'",
            (token,),
        ).fetchone()
        if row is None:
            return UNKNOWN_TOKEN
        if row[1]:
            return "The access token was revoked."
        if row[0] is not None and row[0] <= time.time():
            return "The access token has expired."
        return None

    # --- consent -----------------------------------------------------------------------------

    def _consent_params(self, params: Any) -> dict[str, str]:
        """The authorize request's parameters, checked; `web.HTTPBadRequest` for what cannot be
        sent back to the client (unknown client, bad redirect URI)."""
        given = {k: str(params.get(k, "")) for k in _AUTHORIZE_FIELDS}
        if given["client_id"] not in self.clients:
            raise web.HTTPBadRequest(text=f"Unknown client '{given['client_id']}'.")
        redirect = urlsplit(given["redirect_uri"])
        if redirect.scheme not in ("http", "https") or not redirect.path.endswith(
            "/oauth/callback"
        ):
            raise web.HTTPBadRequest(text="The redirect_uri is not one this client may use.")
        return given

    def _back(self, given: dict[str, str], **answer: str) -> web.Response:
        query = urlencode({**answer, "state": given["state"]} if given["state"] else answer)
        sep = "&" if "?" in given["redirect_uri"] else "?"
        location = f"{given['redirect_uri']}{sep}{query}"
        return web.Response(status=302, headers={"Location": location})

    async def _authorize_page(self, request: web.Request) -> web.StreamResponse:
        given = self._consent_params(request.query)
        if problem := _pkce_problem(given):
            return self._back(given, error="invalid_request", error_description=problem)
        if given["response_type"] != "code":
            return self._back(given, error="unsupported_response_type")
        fields = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in given.items()
        )
        scope = f" (scope: {html.escape(given['scope'])})" if given["scope"] else ""
        page = _PAGE.format(
            app=html.escape(self.app_name),
            client=html.escape(given["client_id"]),
            user=html.escape(self.user),
            scope=scope,
            fields=fields,
        )
        return web.Response(text=page, content_type="text/html")

    async def _authorize_decision(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        given = self._consent_params(form)
        if problem := _pkce_problem(given):
            return self._back(given, error="invalid_request", error_description=problem)
        if form.get("decision") != "allow":
            return self._back(given, error="access_denied")
        code = secrets.token_urlsafe(24)
        data = {k: given[k] for k in ("redirect_uri", "code_challenge", "scope")}
        self._insert(code, "code", given["client_id"], data, time.time() + _CODE_TTL)
        return self._back(given, code=code)

    # --- tokens ------------------------------------------------------------------------------

    def _client(self, request: web.Request, form: Any) -> str:
        """The authenticated client id (client_secret_post, basic, or a public client + PKCE)."""
        client_id, secret = str(form.get("client_id", "")), form.get("client_secret")
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise _Refused("invalid_client", "Malformed Basic credentials.", 401) from None
        if client_id not in self.clients:
            raise _Refused("invalid_client", f"Unknown client '{client_id}'.", 401)
        if secret is not None and not secrets.compare_digest(
            str(secret).encode(), self.clients[client_id].encode()
        ):
            raise _Refused("invalid_client", "The client secret is wrong.", 401)
        if secret is None and form.get("grant_type") != "authorization_code":
            raise _Refused("invalid_client", "This grant needs the client secret.", 401)
        return client_id

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        grant = str(form.get("grant_type", ""))
        client_id = str(form.get("client_id", ""))
        try:
            client_id = self._client(request, form)
            if grant == "authorization_code":
                answer = self._grant_code(client_id, form)
            elif grant == "refresh_token":
                answer = self._grant_refresh(client_id, form)
            elif grant == "client_credentials":
                answer = self._issue(client_id, str(form.get("scope", "")), refresh=False)
            else:
                raise _Refused("unsupported_grant_type", f"Grant type '{grant}' is not supported.")
        except _Refused as refused:
            self._log(grant, client_id, refused.error)
            return refused.response()
        self._log(grant, client_id, "")
        return web.json_response(answer, headers={"Cache-Control": "no-store"})

    def _grant_code(self, client_id: str, form: Any) -> dict[str, Any]:
        code = str(form.get("code", ""))
        row = self._take(code, "code", client_id)
        data = json.loads(row[0])
        if data["redirect_uri"] != form.get("redirect_uri"):
            raise _Refused("invalid_grant", "The redirect_uri differs from the authorize request.")
        verifier = str(form.get("code_verifier", ""))
        if not verifier or not secrets.compare_digest(_s256(verifier), data["code_challenge"]):
            raise _Refused("invalid_grant", "The code_verifier does not match the challenge.")
        return self._issue(client_id, data.get("scope", ""), refresh=True)

    def _grant_refresh(self, client_id: str, form: Any) -> dict[str, Any]:
        row = self._take(str(form.get("refresh_token", "")), "refresh", client_id)
        return self._issue(client_id, json.loads(row[0]).get("scope", ""), refresh=True)

    def _take(self, token: str, kind: str, client_id: str) -> tuple[str]:
        """Use a code or refresh token once: it is revoked as it is used."""
        row = self._db.execute(
            "SELECT data, expires_at, revoked, client_id FROM oauth_tokens "
            "WHERE token = ? AND kind = ?",
            (token, kind),
        ).fetchone()
        what = "code" if kind == "code" else "refresh token"
        if row is None or row[3] != client_id:
            raise _Refused("invalid_grant", f"The {what} is not valid.")
        if row[2]:
            raise _Refused("invalid_grant", f"The {what} was revoked or already used.")
        if row[1] is not None and row[1] <= time.time():
            raise _Refused("invalid_grant", f"The {what} has expired.")
        self._db.execute("UPDATE oauth_tokens SET revoked = 1 WHERE token = ?", (token,))
        return (row[0],)

    def _issue(self, client_id: str, scope: str, *, refresh: bool) -> dict[str, Any]:
        access = secrets.token_urlsafe(24)
        self._insert(access, "access", client_id, {"scope": scope}, time.time() + self.access_ttl)
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.access_ttl),
        }
        if refresh:
            answer["refresh_token"] = secrets.token_urlsafe(32)
            self._insert(answer["refresh_token"], "refresh", client_id, {"scope": scope}, None)
        if scope:
            answer["scope"] = scope
        return answer

    def _insert(
        self, token: str, kind: str, client_id: str, data: dict[str, Any], expires: float | None
    ) -> None:
        self._db.execute(
            "INSERT INTO oauth_tokens (token, kind, client_id, data, expires_at, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (token, kind, client_id, json.dumps(data), expires, time.time()),
        )

    def _log(self, grant: str, client_id: str, error: str) -> None:
        self._db.execute(
            "INSERT INTO oauth_grants (grant_type, client_id, ok, error, at) "
            "VALUES (?, ?, ?, ?, ?)",
            (grant[:50], client_id[:200], int(not error), error, time.time()),
        )

    # --- revocation and the log --------------------------------------------------------------

    async def _revoke(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        try:
            client_id = self._client(request, {**form, "grant_type": "revoke"})
        except _Refused as refused:
            return refused.response()
        self._db.execute(
            "UPDATE oauth_tokens SET revoked = 1 WHERE token = ? AND client_id = ?",
            (str(form.get("token", "")), client_id),
        )
        return web.Response(status=200)

    async def _grants(self, request: web.Request) -> web.StreamResponse:
        rows = self._db.execute(
            "SELECT grant_type, client_id, ok, error, at FROM oauth_grants ORDER BY id"
        ).fetchall()
        items = [
            {"grant_type": g, "client_id": c, "ok": bool(ok), "error": e, "at": at}
            for g, c, ok, e, at in rows
        ]
        return web.json_response({"items": items, "count": len(items)})

    async def _revoke_all(self, request: web.Request) -> web.StreamResponse:
        self._db.execute("UPDATE oauth_tokens SET revoked = 1")
        return web.Response(status=204)


_AUTHORIZE_FIELDS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)


def _pkce_problem(given: dict[str, str]) -> str:
    if not given["code_challenge"]:
        return "PKCE is required: send code_challenge."
    if given["code_challenge_method"] != "S256":
        return "Only the S256 code_challenge_method is accepted."
    return ""
