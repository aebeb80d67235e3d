"""`flowyard test`: every payload of every flow, PASS/FAIL with the first mismatch, exit 0/1/2,
coverage with a minimum, and JUnit XML for CI."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner, Result

from app.cli import app
from app.cli_test import suite_command
from tests.test_cli import Destination, destination

assert callable(suite_command)  # importing app.cli_test registers `test` on the app
__all__ = ["destination"]  # the fixture, used by name

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

SUITE = """
name: Shop
flows:
  - id: orders
    trigger: {id: trigger, action: manual.manual}
    steps:
      - id: total
        action: transform.object
        inputs: {fields: {cents: "{{ trigger.body.amount * 100 }}"}}
      - id: post
        action: http.request
        inputs:
          method: POST
          url: https://books.example.test/entries
          body_type: json
          body: {cents: "{{ steps.total.output.cents }}"}
    edges:
      - {from: trigger, to: total}
      - {from: total, to: post}
    tests:
      - name: ten euros
        request: {body: {amount: 10}}
        responses:
          - request: {method: POST, url: /entries}
            response: {status: 201, body: {id: e1}}
        expect:
          steps:
            total: {output: {cents: 1000}}
            post: {output: {body: {id: e1}}}
"""


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["test", *[str(a) for a in args]])


def write(tmp_path: Path, text: str, name: str = "shop.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_shipped_examples_pass_with_full_coverage_of_crm_acme() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    result = invoke(*files, "--components-dir", EXAMPLES / "components", "--coverage")
    assert result.exit_code == 0, result.output
    assert "13 passed, 0 failed" in result.output
    assert "FAIL" not in result.output
    crm = [line for line in result.output.splitlines() if line.startswith("crm-acme.yaml ")]
    flows = ["deploy", "crm_account", "crm_opportunity", "acme_opportunity_update", "teardown"]
    assert [line.split()[1].rstrip(":") for line in crm] == flows
    assert all(" 100% " in line for line in crm), crm


def test_a_passing_suite_exits_0_and_says_so(tmp_path: Path) -> None:
    result = invoke(write(tmp_path, SUITE))
    assert result.exit_code == 0, result.output
    assert "  PASS  orders > ten euros" in result.output
    assert "1 passed, 0 failed" in result.output


def test_a_mismatch_exits_1_naming_step_path_expected_and_got(tmp_path: Path) -> None:
    result = invoke(write(tmp_path, SUITE.replace("cents: 1000", "cents: 999")))
    assert result.exit_code == 1, result.output
    assert "  FAIL  orders > ten euros" in result.output
    assert "step total, output.cents: expected 999, got 1000" in result.output
    assert "0 passed, 1 failed" in result.output


def test_a_call_without_recording_fails_the_test_naming_the_call(tmp_path: Path) -> None:
    text = SUITE.replace("url: /entries", "url: /other")
    result = invoke(write(tmp_path, text))
    assert result.exit_code == 1, result.output
    assert "No recorded response for POST https://books.example.test/entries" in result.output
    assert "(recorded: POST /other)" in result.output


def test_junit_xml_has_a_case_per_payload_and_the_failure(tmp_path: Path) -> None:
    failing = SUITE.replace("cents: 1000", "cents: 5").replace("ten euros", "five cents")
    junit = tmp_path / "out" / "junit.xml"
    junit.parent.mkdir()
    result = invoke(
        write(tmp_path, SUITE), write(tmp_path, failing, "other.yaml"), "--junit", junit
    )
    assert result.exit_code == 1, result.output
    root = ET.fromstring(junit.read_text())
    suites = root.findall("testsuite")
    assert [(s.get("name"), s.get("tests"), s.get("failures")) for s in suites] == [
        ("shop.yaml", "1", "0"),
        ("other.yaml", "1", "1"),
    ]
    [passed] = suites[0].findall("testcase")
    assert (passed.get("classname"), passed.get("name")) == ("shop.orders", "ten euros")
    assert passed.find("failure") is None
    [failed] = suites[1].findall("testcase")
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("message") == "step total, output.cents: expected 5, got 1000"


def test_coverage_below_the_minimum_exits_1(tmp_path: Path) -> None:
    step = "        action: http.request\n"
    text = SUITE.replace(step, step + "        on_error: continue\n")
    path = write(tmp_path, text)
    assert invoke(path, "--min-coverage", "50").exit_code == 0
    result = invoke(path, "--coverage", "--min-coverage", "90")
    assert result.exit_code == 1, result.output
    assert "shop.yaml orders: 80% (steps 3/3, paths 1/2)" in result.output
    assert "    not covered: post:error" in result.output
    assert "1 flow below 90% coverage" in result.output


def test_bad_input_exits_2_with_the_problem(tmp_path: Path) -> None:
    missing = invoke(tmp_path / "nope.yaml")
    assert missing.exit_code == 2
    assert "no such file" in missing.output
    no_tests = invoke(write(tmp_path, SUITE.split("    tests:")[0]))
    assert no_tests.exit_code == 2
    assert "No tests found in shop.yaml" in no_tests.output
    unknown = invoke(write(tmp_path, SUITE.replace("total: {output", "totl: {output")))
    assert unknown.exit_code == 2
    assert "tests[0] (ten euros) > expect > steps: there is no step 'totl'" in unknown.output
    option = invoke(write(tmp_path, SUITE), "--config", "nope=1")
    assert option.exit_code == 2
    assert "--config nope: shop.yaml has no config variable 'nope'" in option.output


def test_live_calls_the_real_service_instead_of_recordings(destination: Destination) -> None:
    result = CliRunner().invoke(
        app,
        [
            "test",
            str(EXAMPLES / "warehouse-import.yaml"),
            "--live",
            "--config",
            f"destination_url={destination.url}",
            "--connection",
            "warehouse_api.api_key=live-key-123",
        ],
        env={"FLOWYARD_HTTP_BLOCK_PRIVATE": None},
    )
    # The live service accepts the change the recording refuses: that test fails.
    assert result.exit_code == 1, result.output
    assert (
        "  PASS  warehouse_update > an addition, a removal and an unknown action" in result.output
    )
    assert 'status: expected "failed", got "succeeded"' in result.output
    assert [(r["path"], r["api_key"]) for r in destination.received] == [
        ("/inventory/W-100", "live-key-123"),
        ("/inventory/W 200", "live-key-123"),
        ("/inventory/W-100", "live-key-123"),
    ]
