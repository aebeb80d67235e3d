"""OAuth consent routes and the connection store's REST API.

- `GET /oauth/connect/{credential}`: starts a consent: remembers the state in an HttpOnly cookie
  and redirects to the provider's consent page.
- `GET /oauth/callback`: the provider's answer. The state must match a consent in progress and
  this browser's cookie; the code is exchanged (with the PKCE verifier) and the tokens stored.
  Anything wrong is a 400 page saying what and how to start again, and nothing is stored.
- `/api/credentials`: list, create, get, `PUT` (rotate the values), `DELETE` (409 naming the
  instances and slots while in use).
"""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from app.services import credentials, oauth
from app.services.errors import ServiceError
from app.services.hub import Hub

__all__ = ["api_router", "router"]

STATE_COOKIE = "flowyard_oauth_state"

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/credentials", tags=["credentials"])


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(_hub)]

_PAGE = """<!doctype html><html><head><title>Flowyard · {title}</title>
<link rel="icon" href="data:,"></head>
<body style="font-family:sans-serif;max-width:40em;margin:4em auto">
<h1 data-testid="oauth-result">{title}</h1><p data-testid="oauth-message">{message}</p>
<p>{hint}</p><p><a href="/connections">Connections</a> · <a href="/instances">Instances</a></p>
</body></html>"""


def _page(title: str, message: str, hint: str = "", status: int = 200) -> HTMLResponse:
    text = {"title": title, "message": message, "hint": hint}
    return HTMLResponse(
        _PAGE.format(**{k: html.escape(v) for k, v in text.items()}), status_code=status
    )


@router.get("/oauth/connect/{credential}")
async def connect(hub: HubDep, credential: str) -> Response:
    """Open the provider's consent page for a stored OAuth connection."""
    try:
        view = await credentials.get_credential(hub, credential)
        url, state = await oauth.start_consent(hub, view.id)
    except ServiceError as exc:
        return _page("The connection cannot be connected", exc.message, exc.hint, exc.status)
    answer = RedirectResponse(url, status_code=303)
    answer.set_cookie(
        STATE_COOKIE, state, max_age=600, path="/oauth", httponly=True, samesite="lax"
    )
    return answer


@router.get(oauth.CALLBACK_PATH)
async def callback(
    hub: HubDep,
    request: Request,
    state: str = "",
    code: str = "",
    error: str = "",
    error_description: str = "",
) -> Response:
    """The provider's answer to a consent: store the tokens, or say what went wrong (400)."""
    if state and request.cookies.get(STATE_COOKIE) != state:
        return _page(
            "Sign-in not accepted",
            "This sign-in answer was not started from this browser (its state does not match).",
            "Start again with Connect on the instance or connections page.",
            400,
        )
    refusal = f"{error}: {error_description}" if error_description else error
    try:
        name = await oauth.finish_consent(hub, state, code, refusal)
    except ServiceError as exc:
        answer = _page("Sign-in not accepted", exc.message, exc.hint, 400)
    else:
        answer = _page(
            "Connected",
            f"Connection '{name}' is connected: its tokens are stored encrypted and refreshed "
            "before they expire.",
        )
    answer.delete_cookie(STATE_COOKIE, path="/oauth")
    return answer


# --- the REST API -------------------------------------------------------------------------------


@api_router.get("")
async def list_credentials(hub: HubDep) -> list[credentials.CredentialView]:
    """Every stored connection (never its values) and where it is used."""
    return await credentials.list_credentials(hub)


@api_router.post("", status_code=201)
async def create_credential(
    hub: HubDep, request: credentials.CredentialRequest
) -> credentials.CredentialView:
    """Store a connection; instances choose it with `connections: {slot: {credential: name}}`."""
    return await credentials.create_credential(hub, request)


@api_router.get("/{credential}")
async def get_credential(hub: HubDep, credential: str) -> credentials.CredentialView:
    return await credentials.get_credential(hub, credential)


@api_router.put("/{credential}")
async def rotate_credential(
    hub: HubDep, credential: str, values: dict[str, Any]
) -> credentials.CredentialView:
    """Replace the values (rotate): every instance using the connection uses them at once."""
    return await credentials.update_credential(hub, credential, values)


@api_router.delete("/{credential}", status_code=204)
async def delete_credential(hub: HubDep, credential: str) -> Response:
    """Delete an unused connection; 409 naming each instance and slot using it."""
    await credentials.delete_credential(hub, credential)
    return Response(status_code=204)
