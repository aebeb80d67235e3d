"""OAuth 2.0 connections against a loopback provider (the demo CRM, in this process).

Consent (authorization code with PKCE) through the real routes, tokens stored encrypted, a token
refreshed after it expires and once after a 401, concurrent runs (and two "processes": two event
loops with their own locks, sharing only the database) refreshing once, a refused refresh
marking the connection "reconnect", and the client credentials grant.
"""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import select

from app.persistence import SecretBox, load_secret_key, open_database, session_scope
from app.persistence import credentials as store
from app.persistence.models import CredentialRow, OAuthStateRow
from app.persistence.recording import SqlRecorder, SqlStateBackend
from app.routes import oauth as oauth_routes
from app.services import credentials, instances, integrations, oauth
from app.services.credentials import CredentialRequest
from app.services.environment import load_environment
from app.services.errors import InvalidInput
from app.services.hub import Hub
from app.services.instances import DeployRequest
from app.settings import Settings
from components.api import TriggerEvent
from components.registry import Registry, default_registry
from examples.demoapps import CRM, DemoApp
from examples.demoapps.oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from runtime.engine import run_flow
from runtime.http import make_http_client
from runtime.observer import ExecutionResult
from tests.server.test_instances_service import FakeDispatcher

ROOT = Path(__file__).resolve().parent.parent.parent

INTEGRATION = textwrap.dedent("""\
    name: CRM reader
    config:
      - {key: crm_url, type: string, required: true}
    connections:
      - {key: crm, type: oauth2}
    flows:
      - id: me
        trigger: {id: start, action: manual.manual}
        steps:
          - id: who
            name: Who am I
            action: crm.get_current_user
            inputs: {base_url: '{{ config.crm_url }}'}
        edges:
          - {from: start, to: who}
      - id: me_http
        trigger: {id: start, action: manual.manual}
        steps:
          - id: get
            name: GET /api/me
            action: http.request
            inputs: {url: '{{ config.crm_url }}/api/me', connection: crm}
        edges:
          - {from: start, to: get}
    """)


class Runner(FakeDispatcher):
    """Runs a flow of an instance as the dispatcher does: from `load_environment`."""

    async def run_lifecycle(
        self, instance_id: str, flow_id: str, event: TriggerEvent
    ) -> ExecutionResult:
        hub = self.hub
        assert hub is not None
        env = await asyncio.to_thread(load_environment, hub, instance_id)
        execution_id = uuid.uuid4().hex
        context = env.run_context(hub.registry, hub.http, SqlStateBackend(hub.db), execution_id)
        return await run_flow(env.flows[flow_id], event, context, SqlRecorder(hub.db))


@asynccontextmanager
async def open_hub(tmp_path: Path, registry: Registry, integration: str) -> AsyncIterator[Hub]:
    """A hub over a fresh database with `integration` imported, running flows with `Runner`."""
    runner = Runner()
    engine = open_database(tmp_path)
    async with make_http_client() as http:
        hub = Hub(
            settings=Settings(data_dir=tmp_path, public_url="http://127.0.0.1:9"),
            db=engine,
            registry=registry,
            http=http,
            box=SecretBox(load_secret_key(tmp_path)),
            dispatcher=runner,
        )
        runner.hub = hub
        await integrations.import_integration(hub, integration, "test.yaml")
        yield hub
    engine.dispose()


@pytest.fixture
async def crm(tmp_path: Path) -> AsyncIterator[DemoApp]:
    app = DemoApp(CRM, tmp_path / "crm", "crm-key")
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    registry = default_registry(ROOT / "examples" / "components")
    async with open_hub(tmp_path, registry, INTEGRATION) as hub:
        yield hub


@pytest.fixture
def web(hub: Hub) -> httpx.AsyncClient:
    """The OAuth routes in an app of their own, served in this process."""
    app = FastAPI()
    app.state.hub = hub
    app.include_router(oauth_routes.router)
    app.include_router(oauth_routes.api_router)
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:9")


def settings(crm: DemoApp, grant: str = "authorization_code") -> dict[str, Any]:
    return {
        "grant": grant,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "authorize_url": f"{crm.url}/oauth/authorize",
        "token_url": f"{crm.url}/oauth/token",
        "scope": "api",
    }


async def consent(web: httpx.AsyncClient, crm: DemoApp, credential_id: str) -> httpx.Response:
    """Press Connect, Allow on the CRM's consent page, and follow the answer to the callback."""
    started = await web.get(f"/oauth/connect/{credential_id}")
    assert started.status_code == 303, started.text
    authorize = started.headers["location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["redirect_uri"] == ["http://127.0.0.1:9/oauth/callback"]
    async with httpx.AsyncClient() as browser:
        page = await browser.get(authorize)
        assert page.status_code == 200 and "Allow access to Demo CRM?" in page.text
        form = {k: v[0] for k, v in query.items()} | {"decision": "allow"}
        allowed = await browser.post(f"{crm.url}/oauth/authorize", data=form)
    assert allowed.status_code == 302
    back = urlsplit(allowed.headers["location"])
    return await web.get(f"{back.path}?{back.query}")


async def new_credential(hub: Hub, crm: DemoApp) -> credentials.CredentialView:
    """A stored authorization-code OAuth connection `crm-oauth` to the CRM, not connected."""
    return await credentials.create_credential(
        hub, CredentialRequest(name="crm-oauth", type="oauth2", values=settings(crm))
    )


async def connected(hub: Hub, web: httpx.AsyncClient, crm: DemoApp) -> str:
    view = await new_credential(hub, crm)
    assert view.status == "not_connected" and view.connect_url == f"/oauth/connect/{view.id}"
    answer = await consent(web, crm, view.id)
    assert answer.status_code == 200, answer.text
    return view.id


async def deploy(hub: Hub, crm: DemoApp, name: str = "acme-corp") -> instances.InstanceView:
    return await instances.deploy(
        hub,
        DeployRequest(
            name=name,
            integration="CRM reader",
            config={"crm_url": crm.url},
            connections={"crm": {"credential": "crm-oauth"}},
        ),
    )


async def run(hub: Hub, instance_id: str, flow: str = "me") -> ExecutionResult:
    await hub.instance_changed(instance_id)
    return await hub.runner.run_lifecycle(instance_id, flow, TriggerEvent())


def grants(crm: DemoApp) -> list[str]:
    """The grant types the CRM's token endpoint answered successfully, in order."""
    assert crm.oauth is not None
    rows = crm.oauth._db.execute("SELECT grant_type FROM oauth_grants WHERE ok = 1 ORDER BY id")
    return [row[0] for row in rows]


def stored(hub: Hub, credential_id: str) -> store.StoredCredential:
    found = store.read_credential(hub.db, hub.box, credential_id)
    assert found is not None
    return found


def expire(hub: Hub, credential_id: str, at: float = 1) -> None:
    """Make the stored access token look as if it expired (or expires) at `at`."""
    with session_scope(hub.db) as session:
        row = session.get(CredentialRow, credential_id)
        assert row is not None
        values = hub.box.decrypt(row.encrypted)
        store.write_values(session, hub.box, row, {**values, "expires_at": int(at)}, row.status)
    oauth.forget_tokens(hub, credential_id)


# --- consent ------------------------------------------------------------------------------------


async def test_consent_with_pkce_stores_the_tokens_encrypted(
    hub: Hub, web: httpx.AsyncClient, crm: DemoApp
) -> None:
    credential_id = await connected(hub, web, crm)
    found = stored(hub, credential_id)
    assert found.status == "ok"
    access, refresh = found.values["access_token"], found.values["refresh_token"]
    assert crm.oauth is not None and crm.oauth.check_access_token(access) is None
    with session_scope(hub.db, write=False) as session:
        row = session.get(CredentialRow, credential_id)
        assert row is not None
        assert access.encode() not in row.encrypted and refresh.encode() not in row.encrypted
        assert list(session.exec(select(OAuthStateRow))) == []  # the state was used up
    assert grants(crm) == ["authorization_code"]
    view = await deploy(hub, crm)
    assert view.status == "active"
    assert [(c.slot, c.credential, c.status) for c in view.connections] == [
        ("crm", "crm-oauth", "ok")
    ]
    result = await run(hub, view.id)
    assert result.status.value == "succeeded", result.error
    assert result.output["email"] == "ada.admin@crm.example"


@pytest.mark.parametrize(
    "query",
    ["", "?code=abc", "?code=abc&state=forged"],
    ids=["nothing", "no-state", "unknown-state"],
)
async def test_a_callback_without_a_matching_state_is_a_400_page_and_stores_nothing(
    hub: Hub, web: httpx.AsyncClient, crm: DemoApp, query: str
) -> None:
    view = await new_credential(hub, crm)
    web.cookies.set(oauth_routes.STATE_COOKIE, "forged", path="/oauth")
    answer = await web.get(f"/oauth/callback{query}")
    assert answer.status_code == 400
    assert "Sign-in not accepted" in answer.text
    assert "Connect" in answer.text  # says how to start again
    after = stored(hub, view.id)
    assert after.status == "not_connected" and "access_token" not in after.values
    assert grants(crm) == []


async def test_a_state_from_another_browser_or_used_twice_is_refused(
    hub: Hub, web: httpx.AsyncClient, crm: DemoApp
) -> None:
    view = await new_credential(hub, crm)
    started = await web.get(f"/oauth/connect/{view.id}")
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    web.cookies.clear()  # the callback arrives in a browser that did not press Connect
    answer = await web.get(f"/oauth/callback?code=abc&state={state}")
    assert answer.status_code == 400 and "not started from this browser" in answer.text
    assert stored(hub, view.id).status == "not_connected"
    first = await consent(web, crm, view.id)
    assert first.status_code == 200
    used = parse_qs(first.request.url.query.decode())
    with pytest.raises(InvalidInput, match="does not match a Connect in progress"):
        await oauth.finish_consent(hub, used["state"][0], used["code"][0])
    replayed = await web.get(str(first.request.url))
    assert replayed.status_code == 400
    assert grants(crm) == ["authorization_code"]


async def test_a_denied_consent_stores_nothing(
    hub: Hub, web: httpx.AsyncClient, crm: DemoApp
) -> None:
    view = await new_credential(hub, crm)
    started = await web.get(f"/oauth/connect/{view.id}")
    query = {k: v[0] for k, v in parse_qs(urlsplit(started.headers["location"]).query).items()}
    async with httpx.AsyncClient() as browser:
        denied = await browser.post(f"{crm.url}/oauth/authorize", data=query | {"decision": "deny"})
    back = urlsplit(denied.headers["location"])
    answer = await web.get(f"{back.path}?{back.query}")
    assert answer.status_code == 400 and "did not grant access" in answer.text
    assert "access_denied" in answer.text
    assert stored(hub, view.id).status == "not_connected"


# --- refresh ------------------------------------------------------------------------------------


async def test_an_expired_token_is_refreshed_before_the_call_and_the_new_one_stored(
    hub: Hub, web: httpx.AsyncClient, crm: DemoApp
) -> None:
    assert crm.oauth is not None
    crm.oauth.access_ttl = 2.0
    credential_id = await connected(hub, web, crm)
    view = await deploy(hub, crm)
    first = stored(hub, credential_id)
    await asyncio.sleep(2.1)  # the provider's token is now expired
    assert crm.oauth.check_access_token(first.values["access_token"]) is not None
    result = await run(hub, view.id)
    assert result.status.value == "succeeded", result.error
    assert grants(crm) == ["authorization_code", "refresh_token"]
    second = stored(hub, credential_id)
    assert second.version > first.version
    assert second.values["access_token"] != first.values["access_token"]
    assert second.values["refresh_token"] != first.values["refresh_token"]  # rotated


async def test_a_token_about_to_expire_is_refreshed_before_it_does(
    hub: Hub, web: httpx.AsyncClient, crm: DemoApp
) -> None:
    credential_id = await connected(hub, web, crm)
    view = await deploy(hub, crm)
    first = stored(hub, credential_id).values["access_token"]
    expire(hub, credential_id, time.time() + 10)  # 300 s tokens: refreshed 30 s ahead
    result = await run(hub, view.id)
    assert result.status.value == "succeeded", result.error
    assert grants(crm) == ["authorization_code", "refresh_token"]
    assert stored(hub, credential_id).values["access_token"] != first
    assert crm.oauth is not None and crm.oauth.check_access_token(first) is None  # still valid


@pytest.mark.parametrize("flow", ["me", "me_http"], ids=["crm-component", "http-request"])
async def test_a_401_refreshes_once_and_the_call_is_sent_again(
    hub: Hub, web: httpx.AsyncClient, crm: DemoApp, flow: str
) -> None:
    credential_id = await connected(hub, web, crm)
    view = await deploy(hub, crm)
    token = stored(hub, credential_id).values["access_token"]
    async with httpx.AsyncClient() as client:  # the provider drops the token before it expires
        revoked = await client.post(
            f"{crm.url}/oauth/revoke",
            data={
                "token": token,
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
            },
        )
    assert revoked.status_code == 200
    result = await run(hub, view.id, flow)
    assert result.status.value == "succeeded", result.error
    assert grants(crm) == ["authorization_code", "refresh_token"]
    answer = result.output if flow == "me" else result.output["body"]
    assert answer["email"] == "ada.admin@crm.example"


async def test_concurrent_runs_refresh_once(hub: Hub, web: httpx.AsyncClient, crm: DemoApp) -> None:
    assert crm.oauth is not None
    credential_id = await connected(hub, web, crm)
    view = await deploy(hub, crm)
    expire(hub, credential_id)
    crm.oauth.token_delay = 0.3  # the refresh is in flight while the other runs ask for a token
    await hub.instance_changed(view.id)
    results = await asyncio.gather(
        *(hub.runner.run_lifecycle(view.id, "me", TriggerEvent()) for _ in range(8))
    )
    assert [r.status.value for r in results] == ["succeeded"] * 8
    assert grants(crm) == ["authorization_code", "refresh_token"]


def test_two_processes_refresh_once_through_the_database_lease(
    tmp_path: Path, crm_thread: DemoApp
) -> None:
    """Two event loops in two threads, each with its own engine, lock and token source, share
    only the database, as two `flowyard` processes on one PostgreSQL do."""
    crm = crm_thread
    assert crm.oauth is not None
    engine = open_database(tmp_path / "shared")
    box = SecretBox(load_secret_key(tmp_path / "shared"))
    values = {**settings(crm), "expires_at": 1}
    token = asyncio.run(_first_token(crm))
    values.update(token)
    values["expires_at"] = 1  # expired: both processes want to refresh
    with session_scope(engine) as session:
        credential_id = store.create_credential(session, box, "crm-oauth", "oauth2", values)
    crm.oauth.token_delay = 0.3
    got: list[str] = []
    errors: list[BaseException] = []

    def process() -> None:
        own = open_database(tmp_path / "shared")
        try:
            source = oauth.CredentialTokens(own, box, credential_id, "crm-oauth", values)
            got.append(asyncio.run(source.access_token()))
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=process) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert errors == []
    assert len(got) == 2 and got[0] == got[1]
    assert grants(crm).count("refresh_token") == 1
    assert crm.oauth.check_access_token(got[0]) is None


async def _first_token(crm: DemoApp) -> dict[str, Any]:
    async with oauth._client(oauth.OAuthSettings.model_validate(settings(crm))) as client:
        # a token as a consent would give, taken with the password-less code flow's result
        token = await client.fetch_token(f"{crm.url}/oauth/token", grant_type="client_credentials")
    assert crm.oauth is not None
    refresh = "seed-" + uuid.uuid4().hex
    crm.oauth._insert(refresh, "refresh", DEFAULT_CLIENT_ID, {"scope": "api"}, None)
    return {"access_token": token["access_token"], "refresh_token": refresh}


@pytest.fixture
def crm_thread(tmp_path: Path) -> Any:
    """The CRM served from a thread of its own (the test's threads run their own loops)."""
    app = DemoApp(CRM, tmp_path / "crm", "crm-key")
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(app.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield app
    asyncio.run_coroutine_threadsafe(app.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


async def test_a_revoked_refresh_token_marks_the_connection_reconnect(
    hub: Hub, web: httpx.AsyncClient, crm: DemoApp
) -> None:
    credential_id = await connected(hub, web, crm)
    view = await deploy(hub, crm)
    async with httpx.AsyncClient() as client:  # the user removes the app at the provider
        gone = await client.delete(
            f"{crm.url}/api/oauth/grants", headers={"Authorization": "Bearer crm-key"}
        )
    assert gone.status_code == 204
    result = await run(hub, view.id)
    assert result.status.value == "failed"
    assert result.error is not None
    assert "Connection 'crm-oauth' needs to be reconnected" in result.error.message
    assert "invalid_grant" in result.error.message
    assert result.error.hint.startswith("Reconnect connection crm-oauth on the instance page")
    after = stored(hub, credential_id)
    assert after.status == "needs_reconnect"
    shown = await instances.get_instance(hub, view.id)
    assert [(c.status, c.connect_url) for c in shown.connections] == [
        ("needs_reconnect", f"/oauth/connect/{credential_id}")
    ]
    again = await run(hub, view.id)  # no second refresh with a refused token
    assert again.error is not None and "needs to be reconnected" in again.error.message
    assert grants(crm) == ["authorization_code"]
    assert (await consent(web, crm, credential_id)).status_code == 200  # reconnect
    assert (await run(hub, view.id)).status.value == "succeeded"


# --- client credentials -------------------------------------------------------------------------


async def test_client_credentials_connect_at_once_and_fetch_a_new_token_when_expired(
    hub: Hub, crm: DemoApp
) -> None:
    view = await credentials.create_credential(
        hub,
        CredentialRequest(
            name="crm-oauth", type="oauth2", values=settings(crm, "client_credentials")
        ),
    )
    assert view.status == "ok" and view.connect_url is None
    deployed = await deploy(hub, crm)
    assert (await run(hub, deployed.id)).status.value == "succeeded"
    expire(hub, view.id)
    assert (await run(hub, deployed.id)).status.value == "succeeded"
    assert grants(crm) == ["client_credentials", "client_credentials"]
    with pytest.raises(InvalidInput, match="refused the client credentials"):
        await credentials.create_credential(
            hub,
            CredentialRequest(
                name="bad",
                type="oauth2",
                values={**settings(crm, "client_credentials"), "client_secret": "wrong"},
            ),
        )


async def test_a_token_endpoint_the_address_policy_refuses_is_never_called(
    hub: Hub, crm: DemoApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    metadata = {**settings(crm, "client_credentials"), "token_url": "http://169.254.169.254/t"}
    with pytest.raises(InvalidInput, match=r"token endpoint .* is refused: .*metadata"):
        await credentials.create_credential(
            hub, CredentialRequest(name="meta", type="oauth2", values=metadata)
        )
    monkeypatch.setenv("FLOWYARD_HTTP_BLOCK_PRIVATE", "1")  # the demo CRM is on 127.0.0.1
    with pytest.raises(InvalidInput, match=r"token endpoint .* is refused") as refused:
        await credentials.create_credential(
            hub,
            CredentialRequest(
                name="private", type="oauth2", values=settings(crm, "client_credentials")
            ),
        )
    assert "FLOWYARD_HTTP_BLOCK_PRIVATE" in refused.value.hint
    assert grants(crm) == []
    assert (await credentials.list_credentials(hub)) == []
