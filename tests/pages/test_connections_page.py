"""Connections on the pages: an instance's OAuth connection needing a new consent shows
"Reconnect", the store page says where a connection is used and refuses to delete it, and the
deploy form chooses a stored connection for a slot."""

from __future__ import annotations

from pathlib import Path

from nicegui import ui
from nicegui.testing import User

from app.persistence import credentials as store
from app.services import credentials, instances, integrations
from app.services.credentials import CredentialRequest
from app.services.hub import Hub
from app.services.instances import DeployRequest
from tests.pages.conftest import import_yaml

CRM_READER = """\
name: CRM reader
connections:
  - {key: crm, type: oauth2}
flows:
  - id: hook
    trigger: {id: receive, action: webhook.webhook}
"""

OAUTH = {
    "grant": "authorization_code",
    "client_id": "flowyard-demo",
    "client_secret": "s3cret-client",
    "authorize_url": "http://127.0.0.1:9/oauth/authorize",
    "token_url": "http://127.0.0.1:9/oauth/token",
}


async def reader(hub: Hub, tmp_path: Path) -> str:
    path = tmp_path / "crm-reader.yaml"
    path.write_text(CRM_READER)
    summary = await import_yaml(hub, path)
    await integrations.publish(hub, summary.name)  # the deploy form offers published versions
    made = await credentials.create_credential(
        hub, CredentialRequest(name="crm-oauth", type="oauth2", values=OAUTH)
    )
    return made.id


async def test_a_refused_refresh_shows_reconnect_on_the_instance_page(
    user: User, hub: Hub, tmp_path: Path
) -> None:
    credential_id = await reader(hub, tmp_path)
    view = await instances.deploy(
        hub,
        DeployRequest(
            name="acme", integration="CRM reader", connections={"crm": {"credential": "crm-oauth"}}
        ),
    )
    problem = "the provider refused to refresh its token: invalid_grant (revoked)."
    store.mark_needs_reconnect(hub.db, credential_id, 1, problem)
    await user.open("/instances")
    await user.should_see(f"Reconnect connection crm-oauth: {problem}")
    link = user.find(marker="connect-crm-oauth").elements.pop()
    assert isinstance(link, ui.link)
    assert link.text == "Reconnect" and link.props["href"] == f"/oauth/connect/{credential_id}"
    assert view.connections[0].credential == "crm-oauth"


async def test_the_store_page_says_where_a_connection_is_used_and_keeps_it(
    user: User, hub: Hub, tmp_path: Path
) -> None:
    await reader(hub, tmp_path)
    for name in ("acme", "globex"):
        await instances.deploy(
            hub,
            DeployRequest(
                name=name,
                integration="CRM reader",
                connections={"crm": {"credential": "crm-oauth"}},
            ),
        )
    await user.open("/connections")
    await user.should_see("Used by: acme (crm), globex (crm)")
    await user.should_see("not connected")
    await user.should_not_see("s3cret-client")
    user.find(marker="delete-crm-oauth").click()
    await user.should_see(
        "Connection 'crm-oauth' is in use by instance 'acme' (slot crm), instance 'globex' "
        "(slot crm); it was not deleted."
    )
    assert [c.name for c in await credentials.list_credentials(hub)] == ["crm-oauth"]


async def test_the_deploy_form_chooses_a_stored_connection(
    user: User, hub: Hub, tmp_path: Path
) -> None:
    await reader(hub, tmp_path)
    await user.open("/instances/deploy?integration=CRM%20reader")
    chosen = user.find(marker="connection-crm-stored").elements.pop()
    assert isinstance(chosen, ui.select) and chosen.value == "crm-oauth"
    user.find(marker="deploy-name").type("acme")
    user.find(marker="deploy-button").click()
    await user.should_see("Instance 'acme' deployed.", retries=20)
    (deployed,) = await instances.list_instances(hub)
    assert [(c.slot, c.credential) for c in deployed.connections] == [("crm", "crm-oauth")]
