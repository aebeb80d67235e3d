"""OAuth 2.0 connections: consent (authorization code with PKCE), client credentials, refresh.

Every exchange with a provider goes through Authlib's httpx client (`AsyncOAuth2Client`). An
`oauth2` credential in the store holds its client settings (`OAuthSettings`) and its tokens
(`access_token`, `refresh_token`, `expires_at`), encrypted like every credential.

- `start_consent` makes the provider's authorization URL (state and a PKCE S256 challenge; the
  state and verifier are kept in `oauth_states` until the callback); `finish_consent` checks the
  state, exchanges the code with the verifier and stores the tokens.
- `connect_client_credentials` fetches a token with the client credentials grant.
- `CredentialTokens` is the `components.api.TokenSource` of one credential: it refreshes a token
  that expires within its leeway, and once after a 401. One refresh at a time per credential: an
  asyncio lock in the process, and the database lease of `app.persistence.credentials` across
  processes (the loser waits for the winner's tokens). A refresh the provider refuses marks the
  credential `needs_reconnect`, and the step fails with "reconnect connection X on the instance
  page".
"""

from __future__ import annotations

import asyncio
import secrets
import time
import weakref
from typing import Any, Literal

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.integrations.httpx_client import OAuthError as AuthlibError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.persistence import credentials as store
from app.persistence.crypto import SecretBox
from app.persistence.db import session_scope
from app.persistence.models import CredentialRow
from app.services.errors import InvalidInput, NotFound
from app.services.hub import Hub
from components.addresses import block_private_addresses, check_url_address
from components.api import RetryableError, StepConfigError, StepError

__all__ = [
    "CALLBACK_PATH",
    "SETTING_FIELDS",
    "CredentialTokens",
    "OAuthSettings",
    "connect_client_credentials",
    "finish_consent",
    "forget_tokens",
    "reconnect_hint",
    "settings_problems",
    "start_consent",
    "tokens_for",
]

CALLBACK_PATH = "/oauth/callback"
_TIMEOUT = httpx.Timeout(15.0)
_REFUSED = {"invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope"}
"""Token endpoint errors that a retry cannot fix: the connection needs a new consent."""
SETTING_FIELDS = ("grant", "client_id", "client_secret", "authorize_url", "token_url", "scope")
TOKEN_FIELDS = ("access_token", "refresh_token", "expires_at", "token_type", "expires_in")


class OAuthSettings(BaseModel):
    """The client side of an OAuth 2.0 connection, as registered with the provider."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    grant: Literal["authorization_code", "client_credentials"] = Field(
        "authorization_code",
        description="authorization_code: a person consents on the provider's page (Connect); "
        "client_credentials: the client id and secret alone.",
    )
    client_id: str = Field(min_length=1, description="The client id the provider gave.")
    client_secret: str = Field("", description="The client secret (empty for a public client).")
    authorize_url: str = Field(
        "", pattern=r"^(https?://\S+)?$", description="The provider's consent page."
    )
    token_url: str = Field(pattern=r"^https?://\S+$", description="The token endpoint.")
    scope: str = Field("", description="Scopes to ask for, separated by spaces.")


def settings_problems(values: dict[str, Any]) -> dict[str, str]:
    """Problems of an oauth2 credential's settings by field (empty: fine)."""
    try:
        settings = OAuthSettings.model_validate(values)
    except ValidationError as exc:
        return {
            ".".join(str(p) for p in e["loc"]) or "settings": e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        }
    if settings.grant == "authorization_code" and not settings.authorize_url:
        return {"authorize_url": "the authorization code grant needs the consent page's URL"}
    return {}


def reconnect_hint(name: str) -> str:
    return f"Reconnect connection {name} on the instance page (Connect), then run the flow again."


def _client(settings: OAuthSettings, **kwargs: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=settings.client_id,
        client_secret=settings.client_secret or None,
        token_endpoint_auth_method="client_secret_post" if settings.client_secret else "none",
        scope=settings.scope or None,
        timeout=_TIMEOUT,
        **kwargs,
    )


async def _check_address(url: str) -> None:
    """Refuse a token endpoint the outbound address policy refuses, as every HTTP step's call
    is (metadata addresses always, private ones with FLOWYARD_HTTP_BLOCK_PRIVATE=1)."""
    try:
        await check_url_address(httpx.URL(url), block_private_addresses())
    except RetryableError:
        return  # a name that does not resolve: the token call fails and says so itself
    except StepError as exc:
        raise InvalidInput(
            f"The token endpoint {url} is refused: {exc.message}", hint=exc.hint
        ) from None


def _token_values(settings: OAuthSettings, token: dict[str, Any]) -> dict[str, Any]:
    kept = {k: token[k] for k in TOKEN_FIELDS if token.get(k) is not None}
    return {**settings.model_dump(), **kept}


def _load(hub: Hub, credential_id: str) -> tuple[CredentialRow, dict[str, Any]]:
    with session_scope(hub.db, write=False) as session:
        row = session.get(CredentialRow, credential_id)
        if row is None:
            raise NotFound(f"There is no connection with id '{credential_id}'.")
        if row.type != "oauth2":
            raise InvalidInput(
                f"Connection '{row.name}' is of type {row.type}, not oauth2: it has no consent."
            )
        session.expunge(row)
        return row, hub.box.decrypt(row.encrypted, what=f"Connection '{row.name}'")


# --- consent (authorization code with PKCE) -----------------------------------------------------


async def start_consent(hub: Hub, credential_id: str) -> tuple[str, str]:
    """(the provider's consent URL, the state) for a credential; the verifier is kept until
    `finish_consent`. InvalidInput when it is not an authorization-code oauth2 connection."""
    row, values = await asyncio.to_thread(_load, hub, credential_id)
    if problems := settings_problems(values):
        raise InvalidInput(
            f"Connection '{row.name}' cannot be connected: its OAuth settings are incomplete.",
            details=problems,
            hint="Fix them on the connections page, then Connect again.",
        )
    settings = OAuthSettings.model_validate(values)
    if settings.grant != "authorization_code":
        raise InvalidInput(
            f"Connection '{row.name}' uses the client credentials grant: it needs no consent.",
            hint="Use Connect only for authorization code connections.",
        )
    verifier = secrets.token_urlsafe(48)
    redirect_uri = hub.settings.base_url + CALLBACK_PATH
    async with _client(settings, redirect_uri=redirect_uri, code_challenge_method="S256") as c:
        url, state = c.create_authorization_url(settings.authorize_url, code_verifier=verifier)
    data = {"verifier": verifier, "redirect_uri": redirect_uri}
    await asyncio.to_thread(_put_state, hub, state, credential_id, data)
    return str(url), str(state)


def _put_state(hub: Hub, state: str, credential_id: str, data: dict[str, Any]) -> None:
    with session_scope(hub.db) as session:
        store.put_oauth_state(session, hub.box, state, credential_id, data)


async def finish_consent(hub: Hub, state: str, code: str, error: str = "") -> str:
    """Exchange the code of a consent for tokens and store them; return the connection's name.

    InvalidInput (nothing stored) for a missing, unknown, used or expired state, a refusal at the
    provider, or a code the provider does not accept.
    """
    if not state:
        raise InvalidInput(
            "The sign-in answer has no state, so it cannot be matched to a Connect.",
            hint="Start again with Connect on the instance page.",
        )
    found = await asyncio.to_thread(_pop_state, hub, state)
    if found is None:
        raise InvalidInput(
            "This sign-in answer does not match a Connect in progress (unknown, already used "
            "or expired state).",
            hint="Start again with Connect on the instance page; a consent is good for 10 minutes.",
        )
    credential_id, data = found
    row, values = await asyncio.to_thread(_load, hub, credential_id)
    if error or not code:
        raise InvalidInput(
            f"The provider did not grant access to connection '{row.name}': "
            f"{error or 'no code in its answer'}.",
            hint="Connect again and allow access on the provider's page.",
        )
    settings = OAuthSettings.model_validate(values)
    await _check_address(settings.token_url)
    try:
        async with _client(settings, redirect_uri=data["redirect_uri"]) as client:
            token = await client.fetch_token(
                settings.token_url,
                grant_type="authorization_code",
                code=code,
                code_verifier=data["verifier"],
            )
    except (AuthlibError, httpx.HTTPError, ValueError) as exc:
        raise InvalidInput(
            f"The provider refused the code for connection '{row.name}': {_reason(exc)}.",
            hint="Connect again.",
        ) from None
    await asyncio.to_thread(_save_tokens, hub, credential_id, _token_values(settings, token))
    return row.name


def _pop_state(hub: Hub, state: str) -> tuple[str, dict[str, Any]] | None:
    with session_scope(hub.db) as session:
        return store.pop_oauth_state(session, hub.box, state)


def _save_tokens(hub: Hub, credential_id: str, values: dict[str, Any]) -> None:
    with session_scope(hub.db) as session:
        row = session.get(CredentialRow, credential_id)
        if row is None:
            raise NotFound("The connection was deleted during the consent.")
        store.write_values(session, hub.box, row, values, store.OK)


def _reason(exc: Exception) -> str:
    if isinstance(exc, AuthlibError):
        return f"{exc.error}" + (f" ({exc.description})" if exc.description else "")
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return str(exc) or type(exc).__name__


# --- client credentials -------------------------------------------------------------------------


async def connect_client_credentials(settings: OAuthSettings) -> dict[str, Any]:
    """The values of a connected client-credentials credential (settings and a first token);
    InvalidInput when the provider refuses."""
    await _check_address(settings.token_url)
    try:
        async with _client(settings) as client:
            token = await client.fetch_token(settings.token_url, grant_type="client_credentials")
    except (AuthlibError, httpx.HTTPError, ValueError) as exc:
        raise InvalidInput(
            f"The provider refused the client credentials: {_reason(exc)}.",
            details={"client_secret": "refused by the token endpoint"},
            hint="Check the client id, secret and token URL.",
        ) from None
    return _token_values(settings, token)


# --- fresh tokens for runs ----------------------------------------------------------------------


_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)
_sources: dict[tuple[int, str], CredentialTokens] = {}
_POLL_SECONDS = 0.1


def _lock(credential_id: str) -> asyncio.Lock:
    per_loop = _locks.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault(credential_id, asyncio.Lock())


def tokens_for(hub: Hub, credential_id: str, name: str, values: dict[str, Any]) -> CredentialTokens:
    """The process's one token source of a credential (shared by every instance using it)."""
    key = (id(hub.db), credential_id)
    source = _sources.get(key)
    if source is None:
        source = _sources[key] = CredentialTokens(hub.db, hub.box, credential_id, name, values)
    return source


def forget_tokens(hub: Hub, credential_id: str) -> None:
    """Drop the process's token source of a credential (its values were replaced)."""
    _sources.pop((id(hub.db), credential_id), None)


class CredentialTokens:
    """Fresh access tokens of one oauth2 credential (a `components.api.TokenSource`)."""

    def __init__(
        self, db: Any, box: SecretBox, credential_id: str, name: str, values: dict[str, Any]
    ) -> None:
        self._db, self._box = db, box
        self.credential_id, self.name = credential_id, name
        self._values = dict(values)
        self.refreshes = 0
        """Refreshes this process made (tests and logs read it)."""

    def _expiring(self, values: dict[str, Any]) -> bool:
        expires_at = values.get("expires_at")
        if not isinstance(expires_at, int | float):
            return False
        lifetime = values.get("expires_in")
        # A short-lived token must not count as expiring for its whole life.
        leeway = min(30.0, float(lifetime) / 4) if isinstance(lifetime, int | float) else 30.0
        return bool(expires_at - leeway <= time.time())

    async def access_token(self) -> str:
        current = self._values.get("access_token")
        if isinstance(current, str) and current and not self._expiring(self._values):
            return current
        return await self._refresh(current if isinstance(current, str) else "")

    async def refreshed(self, rejected: str) -> str:
        return await self._refresh(rejected)

    async def _refresh(self, stale: str) -> str:
        async with _lock(self.credential_id):
            current = self._values.get("access_token")
            if current and current != stale and not self._expiring(self._values):
                return str(current)  # another run of this process refreshed meanwhile
            deadline = time.monotonic() + store.REFRESH_LEASE_SECONDS + 5
            while True:
                found = await asyncio.to_thread(
                    store.read_credential, self._db, self._box, self.credential_id
                )
                if found is None:
                    raise StepConfigError(
                        f"Connection '{self.name}' was deleted from the connection store.",
                        hint="Choose another connection for this instance's slot.",
                    )
                self._values, self.name = dict(found.values), found.name
                self._check_status(found)
                token = found.values.get("access_token")
                fresh = token and token != stale and not self._expiring(found.values)
                if fresh:
                    return str(token)  # another process refreshed
                if await asyncio.to_thread(
                    store.claim_refresh, self._db, self.credential_id, found.version
                ):
                    break
                if time.monotonic() > deadline:
                    raise RetryableError(
                        f"Connection '{self.name}': another process has been refreshing its "
                        "token for too long."
                    )
                await asyncio.sleep(_POLL_SECONDS)
            return await self._call_provider(found)

    def _check_status(self, found: store.StoredCredential) -> None:
        if found.status == store.NEEDS_RECONNECT:
            raise StepConfigError(
                f"Connection '{self.name}' needs to be reconnected: {found.problem or ''}".rstrip(),
                hint=reconnect_hint(self.name),
            )
        if found.status == store.NOT_CONNECTED:
            raise StepConfigError(
                f"Connection '{self.name}' is not connected yet.",
                hint=f"Connect connection {self.name} on the instance page first.",
            )

    async def _call_provider(self, found: store.StoredCredential) -> str:
        settings = OAuthSettings.model_validate(found.values)
        refresh_token = found.values.get("refresh_token")
        try:
            await _check_address(settings.token_url)
            async with _client(settings) as client:
                if settings.grant == "client_credentials" or not refresh_token:
                    if settings.grant != "client_credentials":
                        raise AuthlibError(error="invalid_grant", description="no refresh token")
                    token = await client.fetch_token(
                        settings.token_url, grant_type="client_credentials"
                    )
                else:
                    token = await client.refresh_token(
                        settings.token_url, refresh_token=refresh_token
                    )
        except (AuthlibError, InvalidInput) as exc:
            error = getattr(exc, "error", "")
            if isinstance(exc, InvalidInput) or error in _REFUSED:
                problem = f"the provider refused to refresh its token: {_reason(exc)}."
                await asyncio.to_thread(
                    store.mark_needs_reconnect, self._db, found.id, found.version, problem
                )
                raise StepConfigError(
                    f"Connection '{self.name}' needs to be reconnected: {problem}",
                    hint=reconnect_hint(self.name),
                ) from None
            await asyncio.to_thread(store.release_refresh, self._db, found.id, found.version)
            raise RetryableError(
                f"Connection '{self.name}': the token refresh failed: {_reason(exc)}."
            ) from None
        except (httpx.HTTPError, ValueError) as exc:
            await asyncio.to_thread(store.release_refresh, self._db, found.id, found.version)
            raise RetryableError(
                f"Connection '{self.name}': the token endpoint could not refresh the token: "
                f"{_reason(exc)}.",
                hint="The step retries by its policy.",
            ) from None
        values = _token_values(settings, dict(token))
        if "refresh_token" not in values and refresh_token:
            values["refresh_token"] = refresh_token  # the provider does not rotate them
        stored = await asyncio.to_thread(
            store.store_refreshed, self._db, self._box, found.id, found.version, values
        )
        if not stored:
            raise RetryableError(f"Connection '{self.name}' changed while its token was refreshed.")
        self.refreshes += 1
        self._values = values
        return str(values["access_token"])
