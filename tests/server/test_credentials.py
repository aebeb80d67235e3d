"""The connection store: one connection chosen by several instances, rotated once for all, never
deleted while in use; and the migration of per-instance connections into it (SQLite and, with
FLOWYARD_TEST_DB=postgresql, PostgreSQL)."""

from __future__ import annotations

import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlmodel import select

from app.persistence import SecretBox, load_secret_key, session_scope
from app.persistence import repositories as repo
from app.persistence.db import create_db_engine
from app.persistence.migrations import MIGRATIONS, migrate
from app.persistence.models import CredentialRow
from app.routes import oauth as oauth_routes
from app.services import credentials, instances
from app.services.credentials import CredentialRequest
from app.services.environment import load_environment
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.hub import Hub
from app.services.instances import DeployRequest
from components.registry import default_registry
from runtime.model import Integration
from tests.server.test_oauth import open_hub

INTEGRATION = textwrap.dedent("""\
    name: Shop
    connections:
      - {key: crm, type: api_key}
      - {key: erp, type: basic, required: false}
    flows:
      - id: hook
        trigger: {id: receive, action: webhook.webhook}
    """)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    async with open_hub(tmp_path, default_registry(), INTEGRATION) as hub:
        yield hub


async def deploy(hub: Hub, name: str, crm: Any) -> instances.InstanceView:
    return await instances.deploy(
        hub, DeployRequest(name=name, integration="Shop", connections={"crm": crm})
    )


def key_seen(hub: Hub, instance_id: str) -> str:
    """The api_key a run of the instance gets, read as the dispatcher reads it."""
    return load_environment(hub, instance_id).connections["crm"].secret("api_key")


async def test_one_connection_chosen_by_two_instances_rotates_for_both(hub: Hub) -> None:
    shared = await credentials.create_credential(
        hub, CredentialRequest(name="crm-prod", type="api_key", values={"api_key": "key-one"})
    )
    a = await deploy(hub, "a", {"credential": "crm-prod"})
    b = await deploy(hub, "b", {"credential": shared.id})  # by id works too
    assert [c.credential for c in a.connections] == ["crm-prod"]
    assert key_seen(hub, a.id) == key_seen(hub, b.id) == "key-one"
    rotated = await credentials.update_credential(hub, "crm-prod", {"api_key": "key-two"})
    assert [(u.instance, u.slot) for u in rotated.used_by] == [("a", "crm"), ("b", "crm")]
    assert key_seen(hub, a.id) == key_seen(hub, b.id) == "key-two"
    assert "key-two" not in rotated.model_dump_json()  # views never hold values


async def test_a_connection_in_use_is_not_deleted_and_the_refusal_says_where(hub: Hub) -> None:
    await credentials.create_credential(
        hub, CredentialRequest(name="crm-prod", type="api_key", values={"api_key": "key-one"})
    )
    a = await deploy(hub, "a", {"credential": "crm-prod"})
    b = await deploy(hub, "b", {"credential": "crm-prod"})
    with pytest.raises(Conflict) as refused:
        await credentials.delete_credential(hub, "crm-prod")
    assert refused.value.message == (
        "Connection 'crm-prod' is in use by instance 'a' (slot crm), instance 'b' (slot crm); "
        "it was not deleted."
    )
    assert key_seen(hub, a.id) == "key-one"  # nothing changed
    await instances.delete_instance(hub, a.id)
    await instances.delete_instance(hub, b.id)
    await credentials.delete_credential(hub, "crm-prod")
    assert [c.name for c in await credentials.list_credentials(hub)] == []


async def test_the_api_answers_409_naming_the_instances(hub: Hub) -> None:
    app = FastAPI()
    app.state.hub = hub

    @app.exception_handler(Conflict)
    async def conflict(request: Any, exc: Conflict) -> Any:
        from fastapi.responses import JSONResponse

        return JSONResponse(exc.to_json(), status_code=exc.status)

    app.include_router(oauth_routes.api_router)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as api:
        made = await api.post(
            "/api/credentials",
            json={"name": "crm-prod", "type": "api_key", "values": {"api_key": "key-one"}},
        )
        assert made.status_code == 201, made.text
        await deploy(hub, "a", {"credential": "crm-prod"})
        gone = await api.delete("/api/credentials/crm-prod")
        assert gone.status_code == 409
        assert gone.json()["details"] == {"used_by": [{"instance": "a", "slot": "crm"}]}


async def test_typed_values_become_the_instance_own_connection_removed_with_it(hub: Hub) -> None:
    a = await deploy(hub, "a", {"api_key": "typed-key"})
    assert [(c.credential, c.status) for c in a.connections] == [("a.crm", "ok")]
    assert key_seen(hub, a.id) == "typed-key"
    b = await deploy(hub, "b", {"credential": "a.crm"})  # chosen by another instance since
    await instances.delete_instance(hub, a.id)
    assert [c.name for c in await credentials.list_credentials(hub)] == ["a.crm"]
    await instances.delete_instance(hub, b.id)
    assert [c.name for c in await credentials.list_credentials(hub)] == ["a.crm"]  # not b's own
    c = await deploy(hub, "c", {"api_key": "k"})
    await instances.delete_instance(hub, c.id)
    assert [c.name for c in await credentials.list_credentials(hub)] == ["a.crm"]


async def test_bad_choices_and_values_are_refused_by_field_and_store_nothing(hub: Hub) -> None:
    await credentials.create_credential(
        hub,
        CredentialRequest(name="erp", type="basic", values={"username": "u", "password": "p"}),
    )
    with pytest.raises(InvalidInput) as refused:
        await instances.deploy(
            hub,
            DeployRequest(
                name="a",
                integration="Shop",
                connections={"crm": {"credential": "nope"}, "erp": {"credential": "erp"}},
            ),
        )
    assert refused.value.details == {
        "connections.crm": "there is no connection 'nope' in the store"
    }
    with pytest.raises(InvalidInput) as wrong_type:
        await deploy(hub, "a", {"credential": "erp"})
    assert wrong_type.value.details == {
        "connections.crm": "connection 'erp' is of type basic; this slot takes api_key"
    }
    with pytest.raises(InvalidInput) as bad:
        await credentials.create_credential(
            hub, CredentialRequest(name="x", type="oauth2", values={"client_id": "c"})
        )
    assert isinstance(bad.value.details, dict) and "values.token_url" in bad.value.details
    with pytest.raises(Conflict):
        await credentials.create_credential(
            hub, CredentialRequest(name="erp", type="api_key", values={"api_key": "k"})
        )
    with pytest.raises(InvalidInput, match="give it a name"):  # PostgreSQL cannot store NUL
        await credentials.create_credential(
            hub, CredentialRequest(name="a\x00b", type="api_key", values={"api_key": "k"})
        )
    with pytest.raises(NotFound):
        await credentials.get_credential(hub, "a\x00b")
    assert await instances.list_instances(hub) == []
    assert [c.name for c in await credentials.list_credentials(hub)] == ["erp"]


def test_per_instance_connections_move_into_the_store_on_upgrade(
    tmp_path: Path,
) -> None:
    """A schema-2 database with connections kept on their instance is upgraded: each becomes a
    stored connection `<instance>.<slot>` with the same encrypted values, chosen by its slot."""
    engine = create_db_engine(tmp_path)
    box = SecretBox(load_secret_key(tmp_path))
    try:
        assert migrate(engine, MIGRATIONS[:1]) == 2  # the shape before the store
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE oauth_states"))
            conn.execute(text("DROP TABLE connections"))
            conn.execute(text("DROP TABLE credentials"))
            conn.execute(
                text(
                    "CREATE TABLE connections (id INTEGER PRIMARY KEY, instance_id VARCHAR(64) "
                    "NOT NULL REFERENCES instances (id) ON DELETE CASCADE, slot VARCHAR(64) NOT "
                    "NULL, type VARCHAR(32) NOT NULL, encrypted BYTEA NOT NULL, updated_at FLOAT "
                    "NOT NULL, UNIQUE (instance_id, slot))".replace(
                        "BYTEA", "BLOB" if engine.dialect.name == "sqlite" else "BYTEA"
                    )
                )
            )
        with session_scope(engine) as session:
            repo.save_integration(
                session, Integration.model_validate({"name": "Shop", "connections": []})
            )
            version = repo.publish_version(session, "Shop")
            instance_id = repo.create_instance(session, "acme", "Shop", version)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO connections (id, instance_id, slot, type, encrypted, updated_at)"
                    " VALUES (1, :i, 'crm', 'api_key', :e, :t)"
                ),
                {"i": instance_id, "e": box.encrypt({"api_key": "old-key"}), "t": time.time()},
            )
        assert migrate(engine) == 1 + len(MIGRATIONS)
        with session_scope(engine) as session:
            assert repo.load_connections(session, box, instance_id) == {
                "crm": ("api_key", {"api_key": "old-key"})
            }
            stored = session.exec(select(CredentialRow)).all()
            assert [(c.name, c.type, c.created_for) for c in stored] == [
                ("acme.crm", "api_key", instance_id)
            ]
        with engine.connect() as conn:
            left = conn.execute(text("SELECT encrypted FROM connections")).scalar_one()
        assert bytes(left) == b""  # the values live in the store only
    finally:
        engine.dispose()
