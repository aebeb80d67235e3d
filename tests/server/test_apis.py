"""APIs added from OpenAPI documents in the UI: written to `<data-dir>/apis/`, registered at once,
loaded again by the next server or worker; bad input changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.services.apis import add_api, apis_dir, registry_for
from app.services.errors import InvalidInput
from app.settings import Settings
from components.registry import default_registry
from tests.components.test_openapi import PETSTORE, spec_file


async def test_an_uploaded_document_becomes_a_component_now_and_after_a_restart(
    tmp_path: Path,
) -> None:
    registry = default_registry()
    added = await add_api(
        registry, tmp_path, upload=spec_file(PETSTORE).read_bytes(), name="petstore.json"
    )
    assert (added.key, added.actions, added.tags) == ("swagger_petstore", 19, 3)
    assert added.connection_types == ["api_key", "oauth2"]
    assert registry.action("swagger_petstore.add_pet").title == "pet · Add a new pet to the store"
    assert sorted(p.name for p in apis_dir(tmp_path).iterdir()) == [
        "swagger_petstore.openapi.json",
        "swagger_petstore.py",
    ]
    # the next `serve` or `worker` on this data directory loads it too
    restarted = registry_for(Settings(data_dir=tmp_path))
    assert restarted.problems == []
    assert restarted.action("swagger_petstore.get_pet_by_id").key == "get_pet_by_id"
    # adding it again (a newer document) replaces it in place
    again = await add_api(
        registry, tmp_path, upload=spec_file(PETSTORE).read_bytes(), name="petstore.json"
    )
    assert again.key == "swagger_petstore"
    assert registry.problems == []


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "Give either the URL of an OpenAPI document or a file"),
        ({"url": "http://127.0.0.1:9/x", "upload": b"{}"}, "Give either the URL"),
        ({"upload": b"openapi: 3.0.3\n", "name": "a.yaml"}, "is not a valid OpenAPI 3.0.3"),
        ({"upload": b"{not json", "name": "a.json"}, "a.json is neither JSON nor YAML"),
        ({"url": "http://127.0.0.1:9/openapi.json"}, "Could not download"),
        ({"upload": b"{}", "key": "Bad Key"}, "'Bad Key' cannot be a component key"),
    ],
)
async def test_bad_input_is_refused_and_writes_nothing(
    tmp_path: Path, given: dict[str, object], message: str
) -> None:
    registry = default_registry()
    before = {c.key for c in registry.components()}
    with pytest.raises(InvalidInput, match=message.replace(".", r"\.")):
        await add_api(registry, tmp_path, **given)  # type: ignore[arg-type]
    assert not apis_dir(tmp_path).exists()
    assert {c.key for c in registry.components()} == before


async def test_an_api_cannot_take_the_key_of_an_installed_component(tmp_path: Path) -> None:
    registry = default_registry()
    with pytest.raises(InvalidInput, match="A component 'http' is already installed"):
        await add_api(
            registry, tmp_path, upload=spec_file(PETSTORE).read_bytes(), name="p.json", key="http"
        )
    assert registry.action("http.request").key == "request"
    assert not apis_dir(tmp_path).exists()
