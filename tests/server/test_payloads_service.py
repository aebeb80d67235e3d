"""Test payloads service: create, list, get, update, duplicate, delete, and their refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.persistence import SecretBox, load_secret_key, open_database
from app.services import integrations, payloads
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.hub import Hub
from app.services.payloads import PayloadInput, PayloadUpdate
from app.settings import Settings
from components.registry import default_registry
from runtime.http import make_http_client

ECHO = Path(__file__).parent.parent / "fixtures" / "echo.yaml"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    engine = open_database(tmp_path)
    async with make_http_client() as http:
        hub = Hub(
            settings=Settings(data_dir=tmp_path),
            db=engine,
            registry=default_registry(),
            http=http,
            box=SecretBox(load_secret_key(tmp_path)),
        )
        await integrations.import_integration(hub, ECHO.read_text(), "echo.yaml")
        yield hub
    engine.dispose()


async def test_payload_crud(hub: Hub) -> None:
    created = await payloads.create_payload(
        hub,
        "Echo",
        PayloadInput(
            flow_id="echo",
            name=" order created ",
            body={"id": 7},
            headers={"X-Event": "created"},
            query={"page": "2", "tag": ["a", "b"]},
        ),
    )
    assert (created.integration, created.flow_id, created.name) == ("Echo", "echo", "order created")
    assert created.headers == {"x-event": "created"}
    assert created.query == {"page": "2", "tag": ["a", "b"]}
    assert await payloads.get_payload(hub, "Echo", created.id) == created

    copy = await payloads.duplicate_payload(hub, "Echo", created.id, "order created (2)")
    assert copy.id != created.id
    assert (copy.body, copy.headers, copy.query) == (created.body, created.headers, created.query)

    updated = await payloads.update_payload(
        hub, "Echo", copy.id, PayloadUpdate(name="order deleted", body={"id": 8})
    )
    assert (updated.name, updated.body, updated.headers) == (
        "order deleted",
        {"id": 8},
        created.headers,
    )
    cleared = await payloads.update_payload(hub, "Echo", copy.id, PayloadUpdate(body=None))
    assert cleared.body is None
    assert cleared.name == "order deleted"
    unchanged = await payloads.update_payload(hub, "Echo", copy.id, PayloadUpdate(name="again"))
    assert unchanged.body is None

    listed = await payloads.list_payloads(hub, "Echo")
    assert [p.name for p in listed] == ["again", "order created"]
    assert [p.name for p in await payloads.list_payloads(hub, "Echo", "echo")] == [
        "again",
        "order created",
    ]
    assert await payloads.list_payloads(hub, "Echo", "other") == []

    await payloads.delete_payload(hub, "Echo", copy.id)
    assert [p.id for p in await payloads.list_payloads(hub, "Echo")] == [created.id]
    with pytest.raises(NotFound):
        await payloads.get_payload(hub, "Echo", copy.id)
    with pytest.raises(NotFound):
        await payloads.delete_payload(hub, "Echo", copy.id)


async def test_payload_refusals(hub: Hub) -> None:
    first = await payloads.create_payload(hub, "Echo", PayloadInput(flow_id="echo", name="one"))
    second = await payloads.create_payload(hub, "Echo", PayloadInput(flow_id="echo", name="two"))

    with pytest.raises(InvalidInput) as caught:
        await payloads.create_payload(
            hub,
            "Echo",
            PayloadInput(flow_id="nope", name=" ", headers={"x": 1}, query={"q": {"a": 1}}),
        )
    assert caught.value.details == {
        "flow_id": "integration 'Echo' has no flow 'nope' (its flows: echo)",
        "name": "give the payload a name",
        "headers": "header values must be text",
        "query": "query values must be text or lists of text",
    }
    with pytest.raises(Conflict, match="already has a test payload named 'one'"):
        await payloads.create_payload(hub, "Echo", PayloadInput(flow_id="echo", name="one"))
    with pytest.raises(Conflict, match="named 'two'"):
        await payloads.duplicate_payload(hub, "Echo", first.id, "two")
    with pytest.raises(Conflict, match="named 'one'"):
        await payloads.update_payload(hub, "Echo", second.id, PayloadUpdate(name="one"))
    with pytest.raises(InvalidInput):
        await payloads.update_payload(hub, "Echo", second.id, PayloadUpdate(flow_id="nope"))
    with pytest.raises(NotFound):
        await payloads.create_payload(hub, "Nope", PayloadInput(flow_id="echo", name="x"))
    with pytest.raises(NotFound):
        await payloads.get_payload(hub, "Nope", first.id)

    other = (
        await integrations.import_integration(hub, ECHO.read_text().replace("Echo", "Other"))
    ).name
    with pytest.raises(NotFound):
        await payloads.get_payload(hub, other, first.id)  # ids are scoped to their integration
    assert [p.name for p in await payloads.list_payloads(hub, "Echo")] == ["one", "two"]
