"""Changing instances in place: upgrade to another published version, edit config values and
connection credentials, and test instances that follow the draft.

Uses the instances service's fixtures: a hub whose fake dispatcher runs lifecycle flows on the
real engine, and the "Acme" app the deploy flows register webhooks in.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from app.persistence import session_scope
from app.persistence.models import InstanceStateRow
from app.services import instances, integrations, upgrades
from app.services.environment import EnvironmentCache, load_environment
from app.services.errors import InvalidInput
from app.services.hub import Hub
from app.services.upgrades import InstanceChange, UpgradeRequest
from tests.server.test_instances_service import ACME, INTEGRATION, SECRET, request
from tests.server.test_instances_service import hub as hub  # the fixture

V2 = (
    INTEGRATION.replace("          name: accounts\n", "          name: accounts_v2\n")
    .replace(
        "connections:\n", "  - key: tier\n    type: string\n    required: true\nconnections:\n"
    )
    .replace("version: 1\n", "version: 2\n")
    + "  - id: extra\n    trigger:\n      id: receive\n      action: webhook.webhook\n"
)
"""Version 2: the accounts deploy flow registers another name, a new required variable `tier`,
and a new webhook flow `extra`."""


def stored_state(hub: Hub, instance_id: str) -> dict[str, Any]:
    with session_scope(hub.db, write=False) as session:
        rows = session.exec(
            select(InstanceStateRow).where(InstanceStateRow.instance_id == instance_id)
        )
        return {f"{r.flow_id}/{r.key}": r.value for r in rows if r.flow_id != "@lifecycle"}


async def publish_v2(hub: Hub) -> None:
    await integrations.import_integration(hub, V2)
    assert await integrations.publish(hub, "Acme sync", "accounts hook renamed") == 2


async def test_upgrade_keeps_urls_values_and_state_and_reruns_changed_deploy_flows(
    hub: Hub,
) -> None:
    view = await instances.deploy(hub, request())
    urls = {f.flow_id: f.webhook_url for f in view.flows}
    state = stored_state(hub, view.id)
    assert ACME.events == ["subscribe eu-orders", "register orders", "register accounts"]
    running = load_environment(hub, view.id)  # what a run in flight holds
    await publish_v2(hub)

    # The new required variable has no value: refused, by field, and nothing changes.
    with pytest.raises(InvalidInput, match="was not upgraded") as caught:
        await upgrades.upgrade(hub, view.id, UpgradeRequest(version=2))
    assert caught.value.details == {"config.tier": "'tier' is required"}
    for wrong, message in ((1, "already runs version 1"), (3, "published versions: 1, 2")):
        with pytest.raises(InvalidInput) as caught:
            await upgrades.upgrade(hub, view.id, UpgradeRequest(version=wrong))
        assert caught.value.details == {"version": message}
    assert (await instances.get_instance(hub, view.id)).version == 1
    assert len(ACME.events) == 3

    report = await upgrades.upgrade(
        hub, view.id, UpgradeRequest(version=2, config={"tier": "gold"})
    )
    assert (report.previous_version, report.version) == (1, 2)
    # Only the deploy flow that changed ran again; the hook and the other flow did not.
    assert [(r.flow_id, r.kind, r.status) for r in report.runs] == [
        ("register_accounts", "flow", "succeeded")
    ]
    assert ACME.events[3:] == ["register accounts_v2"]
    upgraded = report.instance
    assert (upgraded.version, upgraded.version_note, upgraded.status) == (
        2,
        "accounts hook renamed",
        "active",
    )
    after = {f.flow_id: f.webhook_url for f in upgraded.flows}
    assert {k: after[k] for k in urls} == urls  # same URLs
    assert after["extra"].startswith("https://hooks.example.test/webhooks/")
    assert after["extra"] not in urls.values()
    assert upgraded.config["region"] == "eu"
    assert upgraded.config["tier"] == "gold"
    assert upgraded.config["password"] == "***"
    env = load_environment(hub, view.id)
    assert env.config["password"] == "hunter2-secret"
    assert env.connections["acme"].secret("api_key") == SECRET
    assert env.flows["register_accounts"].steps[0].inputs["name"] == "accounts_v2"
    # State kept: the ids the first deploy stored are still there (the rerun appended one).
    now = stored_state(hub, view.id)
    assert {k: v for k, v in now.items() if k in state and k != "/acme_ids"} == {
        k: v for k, v in state.items() if k != "/acme_ids"
    }
    assert now["/acme_ids"][: len(state["/acme_ids"])] == state["/acme_ids"]
    # A run that started before the upgrade keeps the flows it started with.
    assert running.integration.version == 1
    assert running.flows["register_accounts"].steps[0].inputs["name"] == "accounts"
    assert view.id in hub.dispatcher.invalidated  # type: ignore[union-attr]


async def test_upgrading_a_failed_deploy_runs_the_whole_deploy_sequence(hub: Hub) -> None:
    ACME.fail.add("register:accounts")
    view = await instances.deploy(hub, request())
    assert view.status == "deploy_failed"
    ACME.fail.clear()
    ACME.events.clear()
    await publish_v2(hub)
    report = await upgrades.upgrade(
        hub, view.id, UpgradeRequest(version=2, config={"tier": "gold"})
    )
    assert [(r.flow_id, r.status) for r in report.runs] == [
        ("orders", "succeeded"),
        ("register_orders", "succeeded"),
        ("register_accounts", "succeeded"),
    ]
    assert ACME.events == ["subscribe eu-orders", "register orders", "register accounts_v2"]
    assert (report.instance.status, report.instance.error) == ("active", None)


async def test_edit_config_and_connections_in_place_checks_each_field(hub: Hub) -> None:
    view = await instances.deploy(hub, request())
    before = load_environment(hub, view.id)
    bad = InstanceChange(
        config={"limit": "many", "nope": 1, "region": None},
        connections={"acme": {"api_key": " "}, "crm": {"key": "x"}},
    )
    with pytest.raises(InvalidInput, match="was not changed") as caught:
        await upgrades.update_instance(hub, view.id, bad)
    assert set(caught.value.details) == {
        "config.limit",
        "config.nope",
        "config.region",
        "connections.acme.api_key",
        "connections.crm",
    }
    assert caught.value.details["config.region"] == "'region' is required"
    unchanged = load_environment(hub, view.id)
    assert (unchanged.config, unchanged.connections) == (before.config, before.connections)

    good = InstanceChange(
        config={"region": "us", "password": "***", "verbose": None},
        connections={"acme": {"api_key": "sk_new_key_987654"}},
    )
    changed = await upgrades.update_instance(hub, view.id, good)
    assert (changed.config["region"], changed.version) == ("us", 1)
    assert "verbose" not in changed.config  # cleared
    env = load_environment(hub, view.id)
    assert env.config["password"] == "hunter2-secret"  # the mask kept it
    assert env.connections["acme"].secret("api_key") == "sk_new_key_987654"
    assert {f.flow_id: f.webhook_url for f in changed.flows} == {
        f.flow_id: f.webhook_url for f in view.flows
    }
    assert view.id in hub.dispatcher.invalidated  # type: ignore[union-attr]


async def test_a_test_instance_follows_the_draft_at_once(hub: Hub) -> None:
    with pytest.raises(InvalidInput) as caught:
        await instances.deploy(hub, request(name="try", test=True, version=1))
    assert set(caught.value.details) == {"version"}
    view = await instances.deploy(hub, request(name="try", test=True))
    assert (view.test, view.version) == (True, 1)
    detail = await integrations.get_integration(hub, "Acme sync")
    assert [(v.version, v.published) for v in detail.versions] == [(1, False)]  # not published

    cache = EnvironmentCache(hub)
    assert cache.get_blocking(view.id).flows["register_accounts"].steps[0].inputs == {
        "name": "accounts",
        "flow": "accounts",
    }
    optional_tier = V2.replace("required: true\nconnections", "default: x\nconnections")
    await integrations.import_integration(hub, optional_tier)
    # The saved edit is live at once: no cache to invalidate, no disable/enable.
    assert cache.cached(view.id) is None
    env = cache.get_blocking(view.id)
    assert env.flows["register_accounts"].steps[0].inputs["name"] == "accounts_v2"
    assert "extra" in env.flows
    # Publishing freezes the draft; the test instance then follows the next draft.
    await integrations.publish(hub, "Acme sync")
    await integrations.import_integration(hub, INTEGRATION)
    again = await instances.get_instance(hub, view.id)
    assert (again.test, again.version) == (True, 2)
    assert cache.get_blocking(view.id).integration.version == 2
    with pytest.raises(InvalidInput, match="test instance") as caught:
        await upgrades.upgrade(hub, view.id, UpgradeRequest(version=1))
    assert set(caught.value.details) == {"version"}
