"""Store and connect the CRM's OAuth 2.0 connection of the CRM <-> Acme example, as a person would.

`connect_crm` makes sure Flowyard's connection store holds an `oauth2` connection (authorization
code with PKCE) to the demo CRM, and, unless it is connected, goes through the consent exactly as
a browser does: Connect on Flowyard (which sets the state cookie and redirects), Allow on the
CRM's consent page, back to Flowyard's `/oauth/callback`. `make run` (examples/launch.py) and the
end-to-end tests use it; in the app, the Connect button does the same in a real browser.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from examples.demoapps.oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

__all__ = ["ConnectError", "connect_crm", "crm_oauth_settings"]


class ConnectError(Exception):
    """The connection could not be stored or connected; the message says which step failed."""


def crm_oauth_settings(crm_url: str) -> dict[str, Any]:
    """The OAuth settings of the demo CRM's client `flowyard-demo`."""
    return {
        "grant": "authorization_code",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "authorize_url": f"{crm_url}/oauth/authorize",
        "token_url": f"{crm_url}/oauth/token",
        "scope": "api",
    }


def _checked(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 400:
        raise ConnectError(f"{what}: HTTP {response.status_code}: {response.text[:300]}")
    return response


def connect_crm(http: httpx.Client, flowyard_url: str, crm_url: str, name: str) -> dict[str, Any]:
    """The stored connection `name`, created or pointed at `crm_url` and connected."""
    settings = crm_oauth_settings(crm_url)
    found = http.get(f"{flowyard_url}/api/credentials/{name}")
    if found.status_code == 404:
        created = http.post(
            f"{flowyard_url}/api/credentials",
            json={"name": name, "type": "oauth2", "values": settings},
        )
        view: dict[str, Any] = _checked(created, f"storing connection '{name}'").json()
    else:
        view = _checked(found, f"reading connection '{name}'").json()
        # Rotating to other URLs (the CRM moved) drops the tokens: they need a new consent.
        view = _checked(
            http.put(f"{flowyard_url}/api/credentials/{view['id']}", json=settings),
            f"updating connection '{name}'",
        ).json()
    if view["status"] == "ok":
        return view
    started = _checked(
        http.get(f"{flowyard_url}{view['connect_url']}", follow_redirects=False), "Connect"
    )
    authorize = started.headers["location"]
    _checked(http.get(authorize), "the CRM's consent page")
    answer = dict(parse_qsl(urlsplit(authorize).query)) | {"decision": "allow"}
    allowed = _checked(
        http.post(f"{crm_url}/oauth/authorize", data=answer, follow_redirects=False), "Allow"
    )
    back = allowed.headers.get("location", "")
    if not back.startswith(flowyard_url):
        raise ConnectError(f"the CRM did not send the consent back to Flowyard: {back!r}")
    _checked(http.get(back), "Flowyard's OAuth callback")
    view = _checked(http.get(f"{flowyard_url}/api/credentials/{view['id']}"), "reading").json()
    if view["status"] != "ok":
        raise ConnectError(f"connection '{name}' is {view['status']} after the consent")
    return view
