"""Expressions under hostile templates and data (`expression_cases.py`).

Each row is evaluated twice. In a child process (`evaluator.py`), bounded by `EVALUATION_WAIT`
seconds: the value, or the error class and message fragment. Then on the real server: an
integration whose one step renders the template is imported (a `compile` row must be refused with
422 naming the step, storing nothing), deployed, and sent the row's body; the execution must end
`succeeded` with the value or `failed` naming the problem, while the canary instance keeps running.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench.serving import ROOT
from tests.hostile.expression_cases import EXPRESSIONS, ExpressionCase
from tests.hostile.harness import CANARY_SECONDS, UNSET, Harness, strings_in, wait_for_execution

EVALUATION_WAIT = 20.0
"""Seconds one evaluation may take in the child before it counts as never returning."""


class Evaluator:
    """The evaluator child process, restarted after an evaluation that did not return."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.hostile.evaluator"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        return self.process

    def evaluate(self, template: str, scope: dict[str, Any]) -> dict[str, Any]:
        process = self._start()
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps({"template": template, "scope": scope}) + "\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], EVALUATION_WAIT)
        if not ready:
            self.stop()
            raise AssertionError(f"the evaluation did not return within {EVALUATION_WAIT} s")
        answer: dict[str, Any] = json.loads(process.stdout.readline())
        return answer

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            for pipe in (self.process.stdin, self.process.stdout):
                if pipe is not None:
                    pipe.close()
            self.process = None


@pytest.fixture(scope="module")
def evaluator() -> Iterator[Evaluator]:
    child = Evaluator()
    yield child
    child.stop()


def _integration(case: ExpressionCase) -> str:
    """A JSON integration file (JSON is YAML too) whose step `probe` renders the template."""
    flow = {
        "id": "probe",
        "name": "Probe",
        "trigger": {"id": "trigger", "action": "webhook.webhook"},
        "steps": [
            {
                "id": "probe",
                "action": "transform.object",
                "inputs": {"fields": {"v": case.template}},
            }
        ],
        "edges": [{"from": "trigger", "to": "probe"}],
    }
    return json.dumps({"name": f"Expression {case.id}", "flows": [flow]})


@pytest.mark.parametrize("case", EXPRESSIONS, ids=[c.id for c in EXPRESSIONS])
@pytest.mark.timeout(120)
def test_expression_in_process(case: ExpressionCase, evaluator: Evaluator) -> None:
    answer = evaluator.evaluate(case.template, {"trigger": {"body": case.body}})
    assert answer["kind"] == case.expect, answer
    if case.value is not UNSET:
        assert answer["value"] == case.value
    assert case.fragment in answer.get("message", "")


@pytest.mark.parametrize("case", EXPRESSIONS, ids=[c.id for c in EXPRESSIONS])
@pytest.mark.timeout(120)
def test_expression_on_the_server(case: ExpressionCase, harness: Harness) -> None:
    with harness.case() as snapshot:
        imported = httpx.post(
            f"{harness.url}/api/integrations",
            content=_integration(case),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        if case.expect == "compile":
            assert imported.status_code == 422, imported.text[:2000]
            said = strings_in(imported.json())
            assert "Step 'probe'" in said and case.fragment in said, said
            harness.settle(snapshot, accepted=False)
            return
        assert imported.status_code == 201, imported.text[:2000]
        deployed = httpx.post(
            f"{harness.url}/api/instances",
            json={"name": f"expr-{case.id}", "integration": imported.json()["name"]},
            timeout=30,
        )
        assert deployed.status_code == 201, deployed.text[:2000]
        (url,) = [f["webhook_url"] for f in deployed.json()["flows"]]
        sent = httpx.post(url, json=case.body, timeout=30)
        assert sent.status_code == 202, sent.text[:2000]
        detail = wait_for_execution(harness.url, sent.json()["execution_id"], CANARY_SECONDS)
        (probe,) = [s for s in detail["steps"] if s["step_id"] == "probe"]
        if case.expect == "value":
            assert detail["status"] == "succeeded", detail["error"]
            if case.value is not UNSET:
                assert probe["output"] == {"v": case.value}
        else:
            assert detail["status"] == "failed", detail
            assert case.fragment in strings_in(probe["error"]), probe["error"]
        harness.still_serving(snapshot)
