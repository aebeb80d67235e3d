"""The `flowyard` command line, as a user runs it: exit codes, messages, per-step output."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from typer.testing import CliRunner, Result

from app.cli import app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "warehouse-import.yaml"
PAYLOAD = ROOT / "examples" / "payloads" / "warehouse-update.json"
FIXTURES = Path(__file__).parent / "fixtures"


def invoke(*args: str | Path) -> Result:
    # The destination app is on loopback, which the HTTP step refuses when private addresses are
    # blocked on a server.
    env: dict[str, str | None] = {"FLOWYARD_HTTP_BLOCK_PRIVATE": None}
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


# --- a destination app on 127.0.0.1, served from its own thread ---------------------------------


@dataclass
class Destination:
    url: str = ""
    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def destination() -> Iterator[Destination]:
    dest = Destination()

    async def inventory(request: web.Request) -> web.Response:
        dest.received.append(
            {
                "method": request.method,
                "path": request.path,
                "api_key": request.headers.get("X-API-Key"),
                "content_type": request.content_type,
                "body": await request.json(),
            }
        )
        return web.json_response({"accepted": dest.status < 400}, status=dest.status)

    async def start() -> web.AppRunner:
        server = web.Application()
        server.router.add_post("/inventory/{item}", inventory)
        runner = web.AppRunner(server, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        dest.url = f"http://{host}:{port}"
        return runner

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield dest
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def run_example(dest: Destination, *extra: str | Path) -> Result:
    return invoke(
        "run",
        EXAMPLE,
        "--flow",
        "warehouse_update",
        "--payload",
        PAYLOAD,
        "--config",
        f"destination_url={dest.url}",
        "--connection",
        "warehouse_api.api_key=test-key",
        *extra,
    )


# --- validate and schema -------------------------------------------------------------------------


def test_validate_the_example_is_valid() -> None:
    result = invoke("validate", EXAMPLE)
    assert result.exit_code == 0, result.output
    assert "warehouse-import.yaml: valid (1 flow, 0 errors, 0 warnings)" in result.stdout


def test_validate_prints_warnings_but_passes() -> None:
    result = invoke("validate", FIXTURES / "warnings-only.yaml")
    assert result.exit_code == 0, result.output
    assert "warning: warnings-only.yaml: main > orphan: Step 'orphan' is not connected" in (
        result.stdout
    )
    assert "valid (1 flow, 0 errors, 1 warning)" in result.stdout


def test_validate_names_file_flow_and_step_of_every_problem() -> None:
    result = invoke("validate", EXAMPLE, FIXTURES / "invalid-graph.yaml")
    assert result.exit_code == 2, result.output
    lines = result.stdout.splitlines()
    assert "warehouse-import.yaml: valid (1 flow, 0 errors, 0 warnings)" in lines
    assert any(
        line.startswith("invalid-graph.yaml: main > fetch: Step 'fetch' uses 'nope.fetch'")
        for line in lines
    ), lines
    assert any(
        line.startswith("invalid-graph.yaml: main > shape: Step 'shape' reads steps.later")
        for line in lines
    ), lines
    assert any(line.startswith("invalid-graph.yaml: invalid (1 flow, 2 errors") for line in lines)


def test_validate_reports_file_errors_with_their_place(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("retry:", "retyr:"))
    result = invoke("validate", bad)
    assert result.exit_code == 2
    assert (
        "bad.yaml: flows[0] (warehouse_update) > steps[5] (send_change) > retyr: unknown key; "
        "did you mean 'retry'?"
    ) in result.stdout
    missing = invoke("validate", tmp_path / "missing.yaml")
    assert missing.exit_code == 2
    assert "missing.yaml: no such file" in missing.stdout


def test_validate_checks_literal_inputs_against_each_action(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: Orders\n"
        "flows:\n"
        "  - id: main\n"
        "    trigger:\n"
        "      id: hook\n"
        "      action: webhook.webhook\n"
        "      inputs: {signature: {scheme: hmac_md5, secret: s}, max_body_bytes: lots}\n"
        "    steps:\n"
        "      - id: fetch\n"
        "        name: Fetch order\n"
        "        action: http.request\n"
        "        inputs: {method: FETCH, url: 42, timeout: soon}\n"
        "    edges: [{from: hook, to: fetch}]\n"
    )
    result = invoke("validate", bad)
    assert result.exit_code == 2, result.output
    lines = result.stdout.splitlines()
    for line in (
        "bad.yaml: main > hook: Trigger 'hook' input 'signature.scheme': 'hmac_md5' is not one "
        "of none, github, stripe, slack, shopify, standard_webhooks, hmac, hmac_sha256.",
        "bad.yaml: main > hook: Trigger 'hook' input 'max_body_bytes': should be a whole "
        "number, not 'lots'.",
        "bad.yaml: main > fetch: Step 'Fetch order' input 'method': 'FETCH' is not one of GET, "
        "POST, PUT, PATCH, DELETE, HEAD, OPTIONS.",
        "bad.yaml: main > fetch: Step 'Fetch order' input 'url': should be text, not 42.",
        "bad.yaml: main > fetch: Step 'Fetch order' input 'timeout': should be a number, not "
        "'soon'.",
    ):
        assert any(printed.startswith(line) for printed in lines), (line, lines)
    assert "bad.yaml: invalid (1 flow, 5 errors, 0 warnings)" in lines


def test_schema_prints_the_json_schema() -> None:
    result = invoke("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "Integration"
    assert result.stdout.startswith('{\n  "$schema"')


def test_the_installed_entry_point_runs() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    done = subprocess.run(
        [sys.executable, "-m", "app", "schema"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["title"] == "Integration"


# --- run ------------------------------------------------------------------------------------------


def test_run_the_warehouse_example(destination: Destination) -> None:
    result = run_example(destination)
    assert result.exit_code == 0, result.output
    assert destination.received == [
        {
            "method": "POST",
            "path": "/inventory/widgets",
            "api_key": "test-key",
            "content_type": "application/json",
            "body": {"item": "widgets", "change": -10},
        },
        {
            "method": "POST",
            "path": "/inventory/gadgets",
            "api_key": "test-key",
            "content_type": "application/json",
            "body": {"item": "gadgets", "change": 20},
        },
    ]
    lines = result.stdout.splitlines()
    route = [line for line in lines if line.split()[1:2] == ["Add"]]
    assert len(route) == 2, lines
    assert "Add or remove? [0]" in route[0] and "-> remove" in route[0]
    assert "Add or remove? [1]" in route[1] and "-> add" in route[1]
    assert any(line.startswith("skipped   Quantity added [0]") for line in lines), lines
    assert lines[-1].startswith("Flow 'Warehouse update' succeeded in ")
    assert "test-key" not in result.output


def test_run_reads_a_connection_secret_from_the_environment(
    destination: Destination, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--connection-env` keeps the secret out of the command line (and shell history)."""
    base: list[str | Path] = ["run", EXAMPLE, "--flow", "warehouse_update", "--payload", PAYLOAD]
    base += ["--config", f"destination_url={destination.url}"]
    unset = invoke(*base, "--connection-env", "warehouse_api.api_key=WAREHOUSE_KEY")
    assert unset.exit_code == 2
    assert "environment variable 'WAREHOUSE_KEY' is not set" in unset.stderr
    assert destination.received == []
    monkeypatch.setenv("WAREHOUSE_KEY", "key-from-env")
    result = invoke(*base, "--connection-env", "warehouse_api.api_key=WAREHOUSE_KEY")
    assert result.exit_code == 0, result.output
    assert [r["api_key"] for r in destination.received] == ["key-from-env", "key-from-env"]
    assert "key-from-env" not in result.output


def test_run_json_has_per_iteration_records(destination: Destination) -> None:
    result = run_example(destination, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "succeeded"
    assert doc["error"] is None
    assert doc["response"] is None
    assert isinstance(doc["execution_id"], str)
    steps = doc["steps"]
    for step in steps:
        assert step.keys() >= {
            "id",
            "status",
            "attempt",
            "iteration",
            "duration_ms",
            "input",
            "output",
            "error",
        }
    route = [(s["iteration"], s["port"]) for s in steps if s["id"] == "route"]
    assert route == [(0, "remove"), (1, "add")]
    removed = {s["iteration"]: s for s in steps if s["id"] == "removed"}
    assert removed[0]["status"] == "succeeded"
    assert removed[0]["output"] == {"item": "widgets", "change": -10}
    assert removed[1]["status"] == "skipped"
    sends = [s for s in steps if s["id"] == "send_change"]
    assert [(s["iteration"], s["status"]) for s in sends] == [(0, "succeeded"), (1, "succeeded")]
    assert sends[1]["output"]["status"] == 200
    assert sends[1]["input"]["body"] == {"item": "gadgets", "change": 20}
    assert "test-key" not in result.stdout
    loop = next(s for s in steps if s["id"] == "each_update")
    assert loop["iteration"] is None
    assert loop["output"]["count"] == 2


def test_run_fails_with_exit_1_when_the_destination_refuses(destination: Destination) -> None:
    destination.status = 400
    result = run_example(destination)
    assert result.exit_code == 1, result.output
    assert len(destination.received) == 1  # the flow stops at the first failure
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert failed and "Send inventory change [0]" in failed[0] and "HTTP 400" in failed[0]
    assert "Flow 'Warehouse update' failed" in result.stdout
    assert "Error: " in result.stderr and "HTTP 400" in result.stderr

    as_json = run_example(destination, "--json")
    assert as_json.exit_code == 1
    doc = json.loads(as_json.stdout)
    assert doc["status"] == "failed"
    assert "HTTP 400" in doc["error"]["message"]
    assert doc["steps"][-1]["status"] == "failed"


def test_run_with_a_bad_payload_file_exits_2_naming_it(tmp_path: Path) -> None:
    payload = tmp_path / "broken.json"
    payload.write_text('{"updates": [}')
    result = invoke(
        "run", EXAMPLE, "--flow", "warehouse_update", "--payload", payload,
        "--config", "destination_url=http://127.0.0.1:9", "--connection", "warehouse_api.api_key=k",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "broken.json" in result.stderr
    assert "invalid JSON" in result.stderr
    assert "Traceback" not in result.output
    missing = invoke("run", EXAMPLE, "--flow", "warehouse_update", "--payload", tmp_path / "x.json")
    assert missing.exit_code == 2
    assert "x.json does not exist" in missing.stderr


def test_run_with_an_unknown_flow_lists_the_flows() -> None:
    result = invoke("run", EXAMPLE, "--flow", "nope", "--payload", PAYLOAD)
    assert result.exit_code == 2
    assert "has no flow 'nope'" in result.stderr
    assert "Available flows: warehouse_update (Warehouse update)" in result.stderr


def test_run_flow_by_name_and_config_errors() -> None:
    base: list[str | Path] = ["run", EXAMPLE, "--flow", "Warehouse update", "--payload", PAYLOAD]
    missing = invoke(*base, "--connection", "warehouse_api.api_key=k")
    assert missing.exit_code == 2
    assert "Config variable destination_url is required." in missing.stderr
    unknown = invoke(*base, "--config", "destination=x", "--connection", "warehouse_api.api_key=k")
    assert unknown.exit_code == 2
    assert "no config variable 'destination'" in unknown.stderr
    assert "destination_url" in unknown.stderr
    no_key = invoke(*base, "--config", "destination_url=http://127.0.0.1:9")
    assert no_key.exit_code == 2
    assert "Connection warehouse_api is required." in no_key.stderr
    bad_slot = invoke(
        *base, "--config", "destination_url=x", "--connection", "crm.token=k",
    )  # fmt: skip
    assert bad_slot.exit_code == 2
    assert "no connection 'crm'" in bad_slot.stderr


ECHO = FIXTURES / "echo.yaml"


def echo(payload: Path, *extra: str) -> dict[str, Any]:
    result = invoke("run", ECHO, "--flow", "echo", "--payload", payload, "--json", *extra)
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("limit=ten", "'limit' is of type integer; expected an integer"),
        ("ratio=fast", "'ratio' is of type number"),
        ("ratio=nan", "'ratio' is of type number"),
        ("verbose=maybe", "'verbose' is of type boolean; expected true or false"),
        ("options={bad", "'options' is of type json"),
        ("limit", "--config 'limit' is not 'key=value'"),
    ],
)
def test_run_with_a_bad_config_value_exits_2(option: str, message: str) -> None:
    result = invoke("run", ECHO, "--flow", "echo", "--payload", PAYLOAD, "--config", option)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_config_values_are_typed_and_defaults_applied() -> None:
    doc = echo(
        PAYLOAD,
        "--config", "ratio=2.5", "--config", "verbose=yes",
        "--config", 'options={"a": [1]}', "--config", "label=007",
    )  # fmt: skip
    config = doc["steps"][1]["output"]["config"]
    assert config == {
        "limit": 10,
        "ratio": 2.5,
        "verbose": True,
        "options": {"a": [1]},
        "label": "007",
    }
    assert echo(PAYLOAD, "--config", "limit=3")["steps"][1]["output"]["config"] == {"limit": 3}


def test_a_plain_document_is_the_body_and_an_envelope_is_the_request(tmp_path: Path) -> None:
    doc = echo(PAYLOAD, "--header", "X-Delivery: 42", "--query", "a=1", "--query", "a=2")
    shown = doc["steps"][1]["output"]
    assert shown["body"] == json.loads(PAYLOAD.read_text())
    assert shown["method"] == "POST"
    assert shown["headers"] == {"content-type": "application/json", "x-delivery": "42"}
    assert shown["query"] == {"a": ["1", "2"]}
    assert doc["response"] == {"status": 202, "headers": {"X-Echo": "yes"}, "body": shown["body"]}

    envelope = tmp_path / "request.yaml"
    envelope.write_text(
        "body: {id: 7}\nheaders: {X-Signature: abc}\nquery: {page: 2}\nmethod: put\n"
    )
    shown = echo(envelope, "-H", "x-signature: override")["steps"][1]["output"]
    assert shown == {
        "body": {"id": 7},
        "headers": {"x-signature": "override", "content-type": "application/json"},
        "query": {"page": 2},
        "method": "PUT",
        "config": {"limit": 10},
    }

    not_envelope = tmp_path / "data.json"
    not_envelope.write_text('{"body": "text", "extra": true}')
    assert echo(not_envelope)["steps"][1]["output"]["body"] == {"body": "text", "extra": True}


def test_bad_envelope_and_options_exit_2(tmp_path: Path) -> None:
    envelope = tmp_path / "request.json"
    envelope.write_text('{"body": {}, "headers": ["x"]}')
    result = invoke("run", ECHO, "--flow", "echo", "--payload", envelope)
    assert result.exit_code == 2
    assert "'headers' must map header names to text" in result.stderr
    bad_header = invoke("run", ECHO, "--flow", "echo", "--payload", PAYLOAD, "-H", "novalue")
    assert bad_header.exit_code == 2
    assert "--header 'novalue' is not 'Name: value'" in bad_header.stderr


def test_run_of_an_invalid_flow_exits_2_listing_issues() -> None:
    result = invoke("run", FIXTURES / "invalid-graph.yaml", "--flow", "main", "--payload", PAYLOAD)
    assert result.exit_code == 2
    assert "Flow 'main' is invalid (2 problems):" in result.stderr
    assert "invalid-graph.yaml: main > fetch: Step 'fetch' uses 'nope.fetch'" in result.stderr
    as_json = invoke(
        "run", FIXTURES / "invalid-graph.yaml", "--flow", "main", "--payload", PAYLOAD, "--json"
    )
    assert as_json.exit_code == 2
    doc = json.loads(as_json.stdout)
    assert doc["status"] == "invalid"
    assert len(doc["issues"]) == 2


def test_run_of_an_invalid_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: W\nflows: [\n")
    result = invoke("run", bad, "--flow", "main", "--payload", PAYLOAD)
    assert result.exit_code == 2
    assert "bad.yaml: line 3, column 1" in result.stderr
    assert "Traceback" not in result.output


def test_demo_runs_the_example_end_to_end() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    done = subprocess.run(
        [sys.executable, "-m", "examples.demo"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "The destination app received 2 request(s):" in done.stdout
    assert 'POST /inventory/widgets  {"item": "widgets", "change": -10}' in done.stdout
