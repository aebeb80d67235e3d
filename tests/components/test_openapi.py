"""Components from OpenAPI documents, tested on real public specs installed from npm by `make`
(tests/openapi_specs: @readme/oas-examples' Petstore 3.0 and Train Travel 3.1, and GitHub's REST
API description from @octokit/openapi, 13 MB and 1,200 operations)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from app.cli import app, execute, prepare_run
from app.cli_components import from_openapi
from app.services.apis import generate
from components.api import Action, Component, Connection, Result, StepConfigError, StepError
from components.openapi import ApiSpec, OpenApiError, api_component, load_document
from components.registry import default_registry
from runtime.http import make_http_client
from tests.components.conftest import Harness

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "tests" / "openapi_specs" / "node_modules"
PETSTORE = SPECS / "@readme" / "oas-examples" / "3.0" / "json" / "petstore.json"
TRAIN_TRAVEL = SPECS / "@readme" / "oas-examples" / "3.1" / "json" / "train-travel.json"
SWAGGER_2 = SPECS / "@readme" / "oas-examples" / "2.0" / "json" / "petstore.json"
GITHUB = SPECS / "@octokit" / "openapi" / "generated" / "api.github.com.json"


def spec_file(path: Path) -> Path:
    assert path.is_file(), f"{path} is missing: `make test` installs tests/openapi_specs (npm ci)"
    return path


def component_of(path: Path, key: str = "petstore") -> Component:
    return api_component(ApiSpec.from_document(load_document(spec_file(path))), key=key)


def action(component: Component, key: str) -> type[Action[Any]]:
    found = component.action(key)
    assert found is not None, sorted(a.key for a in component.actions)
    return found


def fields(model: Any) -> dict[str, dict[str, Any]]:
    schema: dict[str, dict[str, Any]] = model.model_json_schema()["properties"]
    return schema


# --- what a document becomes ----------------------------------------------------------------------


def test_petstore_operations_become_actions_titled_by_tag() -> None:
    petstore = component_of(PETSTORE)
    spec = ApiSpec.from_document(load_document(PETSTORE))
    assert len(petstore.actions) == 19
    # multipart upload is left out, and said so
    assert spec.skipped == [
        ("POST /pet/{petId}/uploadImage", "its request body is not JSON or a form")
    ]
    get_pet = action(petstore, "get_pet_by_id")
    assert get_pet.title == "pet · Find pet by ID"
    assert get_pet.description.startswith("GET /pet/{petId}. Returns a single pet")
    assert {a.title.split(" · ")[0] for a in petstore.actions} == {"pet", "store", "user"}


def test_petstore_forms_come_from_parameters_and_schemas() -> None:
    petstore = component_of(PETSTORE)
    get_pet = fields(action(petstore, "get_pet_by_id").Inputs)
    assert get_pet["pet_id"]["type"] == "integer"
    assert get_pet["pet_id"]["title"] == "petId"
    assert get_pet["base_url"]["default"] == "http://petstore.swagger.io/v2"
    assert "api_key" in get_pet["connection"]["description"]
    assert set(action(petstore, "get_pet_by_id").Inputs.model_json_schema()["required"]) == {
        "pet_id"
    }
    find = fields(action(petstore, "find_pets_by_status").Inputs)
    assert find["status"]["type"] == "array"
    assert find["status"]["items"]["enum"] == ["available", "pending", "sold"]
    add = action(petstore, "add_pet").Inputs.model_json_schema()
    pet = add["$defs"]["Pet"]
    assert set(pet["required"]) == {"name", "photoUrls"}
    assert pet["properties"]["photoUrls"]["items"] == {"type": "string"}
    assert pet["properties"]["status"]["anyOf"][0]["enum"] == ["available", "pending", "sold"]
    assert "oauth2" in fields(action(petstore, "add_pet").Inputs)["connection"]["description"]
    output = action(petstore, "get_pet_by_id").Output
    assert output is not None
    assert output.model_json_schema()["$defs"]["Pet"]["properties"]["name"]["type"] == "string"


def test_inputs_are_checked_like_any_component() -> None:
    inputs = action(component_of(PETSTORE), "get_pet_by_id").Inputs
    with pytest.raises(ValidationError, match="pet_id"):
        inputs.model_validate({"pet_id": "seven"})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        inputs.model_validate({"pet_id": 7, "petid": 8})
    assert inputs.model_validate({"pet_id": 7}).model_dump()["pet_id"] == 7


def test_openapi_3_1_types_and_oauth2() -> None:
    travel = component_of(TRAIN_TRAVEL, key="travel")
    assert {a.key for a in travel.actions} >= {"get_stations", "create_booking", "get_trips"}
    stations = fields(action(travel, "get_stations").Inputs)
    assert "oauth2" in stations["connection"]["description"]
    trips = fields(action(travel, "get_trips").Inputs)
    assert trips["date"]["type"] == "string"
    assert set(action(travel, "get_trips").Inputs.model_json_schema()["required"]) >= {
        "origin",
        "destination",
        "date",
    }
    booking = action(travel, "create_booking").Inputs.model_json_schema()
    assert "body" in booking["properties"]


def test_a_large_real_spec_loads_and_builds_forms_on_demand() -> None:
    github = component_of(GITHUB, key="github")
    assert len(github.actions) > 1000
    get_repo = action(github, "repos_get")
    assert get_repo.title == "repos · Get a repository"
    inputs = get_repo.Inputs.model_json_schema()
    assert set(inputs["required"]) == {"owner", "repo"}
    assert inputs["properties"]["base_url"]["default"] == "https://api.github.com"
    output = get_repo.Output
    assert output is not None
    body = output.model_json_schema()
    full_repository = next(v for k, v in body["$defs"].items() if "full_name" in v["properties"])
    assert full_repository["properties"]["full_name"]["type"] == "string"
    create_issue = action(github, "issues_create").Inputs.model_json_schema()
    assert "body" in create_issue["properties"]
    # a sample of other operations builds too (all 1,200 take ~10 s; loading is on demand)
    for found in github.actions[::60]:
        found.Inputs.model_json_schema()
        assert found.Output is not None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"swagger": "2.0", "info": {}}, "is Swagger 2.0; only OpenAPI 3.0 and 3.1"),
        ({"openapi": "4.0.0"}, "has openapi '4.0.0'; only 3.0.x and 3.1.x"),
        ({"openapi": "3.0.3", "paths": {}}, "is not a valid OpenAPI 3.0.3 document: "),
        ([1, 2], "its top level is not an object"),
    ],
)
def test_documents_that_are_not_openapi_3_are_refused(
    tmp_path: Path, document: Any, message: str
) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(document))
    with pytest.raises(OpenApiError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_document(path)


def test_unreadable_documents_and_refs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OpenApiError, match="There is no file"):
        load_document(tmp_path / "absent.json")
    (tmp_path / "bad.yaml").write_text("openapi: [unclosed\n")
    with pytest.raises(OpenApiError, match="neither JSON nor YAML"):
        load_document(tmp_path / "bad.yaml")
    with pytest.raises(OpenApiError, match=r"Swagger 2\.0"):
        load_document(spec_file(SWAGGER_2))
    document = {
        "openapi": "3.0.3",
        "info": {"title": "x", "version": "1"},
        "paths": {"/a": {"get": {"responses": {"200": {"$ref": "other.yaml#/Ok"}}}}},
    }
    (tmp_path / "ext.json").write_text(json.dumps(document))
    with pytest.raises(OpenApiError, match=r"'other\.yaml#/Ok' points outside the document"):
        ApiSpec.from_document(load_document(tmp_path / "ext.json"))
    document["paths"] = {"/a": {"get": {"responses": {"200": {"$ref": "#/nowhere"}}}}}
    (tmp_path / "missing.json").write_text(json.dumps(document))
    with pytest.raises(OpenApiError, match="'#/nowhere' points at nothing"):
        ApiSpec.from_document(load_document(tmp_path / "missing.json"))


# --- running the actions against a server that implements a few operations ------------------------


@pytest.fixture
async def pet_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """Three Petstore operations on 127.0.0.1, with the spec's `api_key` header auth."""
    seen: list[dict[str, Any]] = []
    pets: dict[int, dict[str, Any]] = {
        7: {"id": 7, "name": "Rex", "photoUrls": [], "status": "sold"}
    }

    async def record(request: web.Request) -> None:
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": list(request.query.items()),
                "api_key": request.headers.get("api_key"),
                "authorization": request.headers.get("Authorization"),
                "body": await request.json() if request.can_read_body else None,
            }
        )

    async def get_pet(request: web.Request) -> web.Response:
        await record(request)
        if request.headers.get("api_key") != "k-123":
            return web.json_response({"message": "bad key"}, status=401)
        pet = pets.get(int(request.match_info["pet_id"]))
        return web.json_response(pet or {"message": "Pet not found"}, status=200 if pet else 404)

    async def add_pet(request: web.Request) -> web.Response:
        await record(request)
        pet = await request.json()
        pets[pet["id"]] = pet
        return web.json_response(pet)

    async def find(request: web.Request) -> web.Response:
        await record(request)
        wanted = request.query.getall("status")
        return web.json_response([p for p in pets.values() if p.get("status") in wanted])

    application = web.Application()
    application.router.add_get("/v2/pet/findByStatus", find)
    application.router.add_get("/v2/pet/{pet_id}", get_pet)
    application.router.add_post("/v2/pet", add_pet)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/v2", seen
    finally:
        await runner.cleanup()


async def run_action(
    harness: Harness, component: Component, key: str, values: dict[str, Any], **connections: Any
) -> Any:
    cls = action(component, key)
    async with make_http_client() as client:
        ctx = harness.ctx(http=client, connections=connections)
        result = await cls().run(cls.Inputs.model_validate(values), ctx)
    assert isinstance(result, Result)
    return result.output


async def test_actions_call_the_api_with_auth_parameters_and_typed_bodies(
    harness: Harness, pet_server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = pet_server
    petstore = component_of(PETSTORE)
    key = Connection("petstore", "api_key", {"api_key": SecretStr("k-123")})
    got = await run_action(
        harness, petstore, "get_pet_by_id", {"base_url": url, "pet_id": 7}, petstore=key
    )
    assert got["status"] == 200
    assert got["body"]["name"] == "Rex"
    assert seen[-1]["api_key"] == "k-123"  # the spec's header name, from its security scheme

    token = Connection("petstore", "oauth2", {"access_token": SecretStr("tok-9")})
    pet = {"id": 8, "name": "Fido", "photoUrls": ["http://x/1.png"], "status": "available"}
    added = await run_action(
        harness, petstore, "add_pet", {"base_url": url, "body": pet}, petstore=token
    )
    assert added["body"] == pet
    assert seen[-1]["body"] == pet  # property names as the spec spells them (photoUrls)
    assert seen[-1]["authorization"] == "Bearer tok-9"

    found = await run_action(
        harness,
        petstore,
        "find_pets_by_status",
        {"base_url": url, "status": ["available", "sold"]},
        petstore=token,
    )
    assert seen[-1]["query"] == [("status", "available"), ("status", "sold")]
    assert sorted(p["id"] for p in found["body"]) == [7, 8]


async def test_api_errors_fail_the_step_with_the_servers_words(
    harness: Harness, pet_server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, _ = pet_server
    petstore = component_of(PETSTORE)
    wrong = Connection("petstore", "api_key", {"api_key": SecretStr("nope")})
    with pytest.raises(StepError, match="401"):
        await run_action(
            harness, petstore, "get_pet_by_id", {"base_url": url, "pet_id": 7}, petstore=wrong
        )
    with pytest.raises(StepConfigError, match="Connection 'petstore' is not available"):
        await run_action(harness, petstore, "get_pet_by_id", {"base_url": url, "pet_id": 7})
    right = Connection("petstore", "api_key", {"api_key": SecretStr("k-123")})
    answer = await run_action(
        harness,
        petstore,
        "get_pet_by_id",
        {"base_url": url, "pet_id": 99, "on_http_error": "output"},
        petstore=right,
    )
    assert answer["status"] == 404


# --- the command ----------------------------------------------------------------------------------


def test_from_openapi_writes_a_component_the_registry_loads(tmp_path: Path) -> None:
    assert from_openapi.__name__  # importing app.cli_components registers `flowyard component`
    out = tmp_path / "custom"
    result = CliRunner().invoke(
        app,
        [
            "component",
            "from-openapi",
            str(spec_file(PETSTORE)),
            "--name",
            "pets",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out / 'pets.py'} (19 actions in 3 tags)" in result.output
    assert "skipped POST /pet/{petId}/uploadImage" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["pets.openapi.json", "pets.py"]
    assert "of type\napi_key or oauth2" in (out / "pets.py").read_text()
    registry = default_registry(out)
    assert registry.problems == []
    assert registry.action("pets.get_pet_by_id").title == "pet · Find pet by ID"


def test_from_openapi_refuses_bad_input_with_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["component", "from-openapi", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
    assert "There is no file" in missing.output
    bad_name = runner.invoke(
        app,
        ["component", "from-openapi", str(PETSTORE), "--name", "Pet Store", "--out", str(tmp_path)],
    )
    assert bad_name.exit_code == 2
    assert "'Pet Store' cannot be a component key" in bad_name.output
    assert list(tmp_path.iterdir()) == []


async def test_generated_component_runs_in_a_flow(
    tmp_path: Path, pet_server: tuple[str, list[dict[str, Any]]]
) -> None:
    """A generated folder loaded like any custom one: the flow validates, templates resolve
    before the typed inputs are checked, and the step's output is the API's answer."""
    url, seen = pet_server
    out = tmp_path / "custom"
    generate(load_document(spec_file(PETSTORE)), out, source="petstore.json")
    flow = tmp_path / "pets.yaml"
    flow.write_text(
        textwrap.dedent(
            """\
            name: Pets
            connections:
              - key: petstore
                type: api_key
            flows:
              - id: lookup
                name: Lookup
                trigger: {id: hook, name: Hook, action: webhook.webhook}
                steps:
                  - id: get
                    name: Get pet
                    action: swagger_petstore.get_pet_by_id
                    inputs:
                      base_url: '{{ trigger.body.url }}'
                      connection: petstore
                      pet_id: '{{ trigger.body.id }}'
                edges: [{from: hook, to: get}]
            """
        )
    )
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps({"url": url, "id": 7}))
    request = prepare_run(
        flow,
        "lookup",
        payload,
        connections=["petstore.api_key=k-123"],
        components_dir=out,
    )
    result, records = await execute(request)
    assert result.status == "succeeded", result.error
    assert records[-1].output["body"]["name"] == "Rex"
    assert seen[-1]["path"] == "/v2/pet/7"
