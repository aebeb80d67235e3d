"""`flowyard deploy FILE --dry-run`: the calls and state a deploy or tear-down would make, with a
real app on loopback that must receive nothing; exit codes 0, 1 and 2."""

from __future__ import annotations

import json
from pathlib import Path

from app.cli_deploy import deploy_command  # noqa: F401  (registers `deploy` on the app)
from tests.test_cli import ROOT, Destination, destination, invoke

__all__ = ["destination"]  # the fixture, imported for pytest

SUBSCRIBER = ROOT / "tests" / "server" / "fixtures" / "subscriber.yaml"
CRM_ACME = ROOT / "examples" / "crm-acme.yaml"
SECRET, TOKEN = "sign-0f9e8d7c", "tok-1a2b3c4d"


def dry_run(dest: Destination, *extra: str | Path) -> list[str | Path]:
    return [
        "deploy",
        SUBSCRIBER,
        "--dry-run",
        "--name",
        "acme",
        "--config",
        f"base_url={dest.url}/inventory",
        "--config",
        f"signing_secret={SECRET}",
        "--connection",
        f"api.token={TOKEN}",
        *extra,
    ]


def test_a_deploy_dry_run_prints_calls_and_state_and_sends_nothing(
    destination: Destination, tmp_path: Path
) -> None:
    responses = tmp_path / "responses.yaml"
    responses.write_text(
        "- request: {method: POST, url: /inventory/subscriptions}\n"
        "  response: {status: 201, body: {id: sub-77}}\n"
    )
    result = invoke(*dry_run(destination, "--responses", responses))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Dry run of the deploy of 'acme' (Subscriber): nothing was sent or stored."
    assert "  register (flow) succeeded" in lines
    call = next(line for line in lines if line.startswith("  POST "))
    assert call.startswith(f"  POST {destination.url}/inventory/subscriptions ")
    assert '"secret":"***"' in call
    assert call.endswith("-> 201 (recording) [register.subscribe]")
    assert '  instance.subscription = "sub-77"' in lines
    assert SECRET not in result.stdout and TOKEN not in result.stdout
    assert destination.received == []


def test_json_output_and_the_echo_stub(destination: Destination) -> None:
    result = invoke(*dry_run(destination, "--json"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(c["method"], c["status"], c["answered_by"]) for c in report["calls"]] == [
        ("POST", 200, "echo")
    ]
    assert report["calls"][0]["body"]["url"] == "http://127.0.0.1:8080/webhooks/dry-run-main"
    assert destination.received == []


def test_a_teardown_dry_run_starts_from_the_given_state(
    destination: Destination, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"instance": {"subscription": "sub-5"}}))
    result = invoke(*dry_run(destination, "--teardown", "--state", state))
    assert result.exit_code == 0, result.output
    assert "Dry run of the tear-down of 'acme'" in result.stdout
    assert (
        f"  DELETE {destination.url}/inventory/subscriptions/sub-5 -> 200 (echo) "
        "[unregister.unsubscribe]" in result.stdout.splitlines()
    )
    assert "State that would be stored (0):" in result.stdout
    assert destination.received == []


def test_a_failing_run_exits_1(destination: Destination, tmp_path: Path) -> None:
    responses = tmp_path / "responses.json"
    refused = {"request": {"method": "POST", "url": "/inventory/subscriptions"}}
    responses.write_text(json.dumps([{**refused, "response": {"status": 400}}]))
    result = invoke(*dry_run(destination, "--responses", responses))
    assert result.exit_code == 1, result.output
    assert "  register (flow) failed: " in result.stdout
    assert "State that would be stored (0):" in result.stdout


def test_unusable_input_exits_2(destination: Destination, tmp_path: Path) -> None:
    real = invoke("deploy", SUBSCRIBER)
    assert real.exit_code == 2
    assert "flowyard deploy runs only with --dry-run." in real.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"request": {"method": "FETCH", "url": "/x"}}]))
    result = invoke(*dry_run(destination, "--responses", bad))
    assert result.exit_code == 2
    assert "--responses" in result.stderr and "'FETCH' is not an HTTP method" in result.stderr
    missing = invoke("deploy", SUBSCRIBER, "--dry-run")
    assert missing.exit_code == 2
    assert "required" in missing.stderr


def test_the_crm_acme_deploy_dry_run_lists_its_four_registrations() -> None:
    result = invoke(
        "deploy",
        CRM_ACME,
        "--dry-run",
        "--components-dir",
        ROOT / "examples" / "components",
        "--config",
        "crm_url=http://127.0.0.1:8091",
        "--config",
        "acme_url=http://127.0.0.1:8092",
        "--config",
        "webhook_secret=whsec-12345678",
        "--connection",
        "crm.access_token=crm-token-1",
        "--connection",
        "acme.api_key=acme-key-1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(c["step_id"], c["method"], c["url"]) for c in report["calls"]] == [
        ("get_user", "GET", "http://127.0.0.1:8091/api/me"),
        ("opportunity_message", "POST", "http://127.0.0.1:8091/api/outbound-messages"),
        ("account_message", "POST", "http://127.0.0.1:8091/api/outbound-messages"),
        ("acme_webhook", "POST", "http://127.0.0.1:8092/api/webhooks"),
    ]
    assert all(c["body"]["secret"] == "***" for c in report["calls"][1:])
    assert "whsec-12345678" not in result.stdout
    assert [(s["scope"], s["key"]) for s in report["state"]] == [("instance", "remote_ids")]
