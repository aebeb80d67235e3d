"""The test panel's "Run all": every suite payload of the flow, pass/fail, and path coverage.

`SuiteResults(hub, integration, on_coverage=..., on_error=...)` draws an (initially hidden)
results block in the current container; `await results.run(flow_id)` runs the flow's suite on
the draft (`app.services.suites.run_suites`: headless, in memory, outbound HTTP answered by the
tests' recorded responses) and shows:

- a summary (`suite-summary`: passed / failed) and the coverage in total (`suite-coverage`),
- one row per test (`suite-test`, `data-passed`), a failed one with its first mismatch
  (`suite-failure`: step, path, expected, got),
- what no test covers (`suite-uncovered`), and a Clear button (`suite-clear`).

`on_coverage` receives the flow's coverage JSON (`runtime.coverage.FlowCoverage.to_json`) after
a run and `None` when the results are cleared: the editor overlays it on the canvas. Refusals
(an invalid flow, config without a test value) go to `on_error`, never as a traceback.

The suite payloads also join the panel's payload dropdown (`suite_key(index)` beside the saved
payloads' ids, read back with `suite_index`), shown read-only by `draw_suite_payload`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from nicegui import ui

from app.pages.testpanel_widgets import tid
from app.services import suites, testruns
from app.services.errors import ServiceError
from app.services.hub import Hub
from runtime.suite_model import FlowTest

__all__ = [
    "CoverageCallback",
    "SuiteResults",
    "draw_suite_payload",
    "suite_index",
    "suite_key",
    "suite_request",
]

log = logging.getLogger("flowyard.pages.testpanel_suite")

CoverageCallback = Callable[[dict[str, Any] | None], None]


class SuiteResults:
    """The Run all results block of the test panel; see the module docstring."""

    def __init__(
        self,
        hub: Hub,
        integration: str,
        *,
        on_coverage: CoverageCallback | None,
        on_error: Callable[[ServiceError], None],
    ) -> None:
        self._hub = hub
        self._integration = integration
        self._on_coverage = on_coverage
        self._on_error = on_error
        self._flow_id: str | None = None
        self.report: dict[str, Any] | None = None
        self._box = tid(ui.column().classes("w-full gap-1 p-2 rounded bg-grey-2"), "suite-results")
        self._box.set_visibility(False)

    async def run(self, flow_id: str) -> None:
        """Run every suite payload of `flow_id` and show the outcome (replacing earlier ones)."""
        self.clear()
        self._flow_id = flow_id
        self._box.set_visibility(True)
        with self._box:
            ui.label("Running every suite payload…").classes("text-caption")
        try:
            report = await suites.run_suites(self._hub, self._integration, [flow_id])
        except ServiceError as exc:
            self.clear()
            self._on_error(exc)
            return
        except Exception as exc:  # our bug: say so in the panel, keep the traceback in the log
            log.exception("Run all of %s/%s failed", self._integration, flow_id)
            self.clear()
            self._on_error(ServiceError(f"Run all could not be completed: {exc}"))
            return
        if flow_id != self._flow_id:
            return  # the flow changed (or the results were cleared) while it ran
        self.report = report
        self._draw(report)
        coverage = next((c for c in report["coverage"] if c["flow"] == flow_id), None)
        if self._on_coverage is not None and coverage is not None:
            self._on_coverage(coverage)

    def clear(self) -> None:
        """Hide the results and remove the canvas overlay."""
        had = self.report is not None
        self._flow_id, self.report = None, None
        self._box.clear()
        self._box.set_visibility(False)
        if had and self._on_coverage is not None:
            self._on_coverage(None)

    def _draw(self, report: dict[str, Any]) -> None:
        self._box.clear()
        tests = report["tests"]
        coverage = report["coverage"][0] if report["coverage"] else None
        with self._box:
            with ui.row().classes("w-full items-center gap-3"):
                if not tests:
                    text = "This flow has no suite payloads: add `tests:` to it (or Add to suite)."
                else:
                    text = f"Run all: {report['passed']} passed, {report['failed']} failed"
                tid(ui.label(text).classes("text-subtitle2"), "suite-summary")
                if coverage is not None:
                    tid(
                        ui.label(
                            f"Path coverage {coverage['covered']}/{coverage['total']} "
                            f"({coverage['percent']:g}%)"
                        ),
                        "suite-coverage",
                    )
                ui.space()
                tid(
                    ui.button("Clear", icon="layers_clear", on_click=self.clear).props(
                        "flat dense"
                    ),
                    "suite-clear",
                ).tooltip("Hide these results and the coverage on the canvas")
            for test in tests:
                _draw_test(test)
            if coverage is not None:
                missing = _uncovered(coverage)
                if missing:
                    tid(
                        ui.label(f"Not covered: {', '.join(missing)}").classes(
                            "text-caption text-grey-8"
                        ),
                        "suite-uncovered",
                    )


def _draw_test(test: dict[str, Any]) -> None:
    passed = bool(test["passed"])
    with tid(ui.row().classes("w-full items-start gap-2 no-wrap"), "suite-test") as row:
        row.props(f'data-passed="{str(passed).lower()}"')
        ui.icon("check_circle" if passed else "cancel").classes(
            "text-positive" if passed else "text-negative"
        )
        with ui.column().classes("gap-0 min-w-0"):
            ui.label(test["test"]).classes("text-body2")
            failure = test.get("failure")
            if failure is not None:
                tid(
                    ui.label(failure["text"]).classes("text-caption font-mono break-all"),
                    "suite-failure",
                )


def _uncovered(coverage: dict[str, Any]) -> list[str]:
    """`step` and `step:port` names no test covers (as `flowyard test --coverage` prints them)."""
    steps = [s["step"] for s in coverage["steps"] if not s["covered_by"]]
    paths = [f"{p['step']}:{p['port']}" for p in coverage["paths"] if not p["covered_by"]]
    return [*steps, *paths]


# --- suite payloads in the payload library ------------------------------------------------------

_SUITE = "suite:"


def suite_key(index: int) -> str:
    """The payload dropdown's key for the flow's suite test at `index` (saved payloads use
    their integer ids)."""
    return f"{_SUITE}{index}"


def suite_index(value: Any) -> int | None:
    """The suite test index of a dropdown key, None for a saved payload's id."""
    if isinstance(value, str) and value.startswith(_SUITE) and value[len(_SUITE) :].isdigit():
        return int(value[len(_SUITE) :])
    return None


def suite_request(test: FlowTest) -> testruns.TestRequest:
    """Suite test `test`'s request for a designer test run, sent as `flowyard test` sends it
    (header numbers and booleans as text)."""
    request = test.request
    return testruns.TestRequest(
        method=request.method,
        body=request.body,
        headers=request.header_text(),
        query=dict(request.query),
    )


def draw_suite_payload(view: ui.column, test: FlowTest | None) -> None:
    """Show suite test `test` read-only in `view` (hidden when None): it lives in the flow's
    `tests:` in the integration file and changes there."""
    view.clear()
    view.set_visibility(test is not None)
    if test is None:
        return
    with view:
        ui.label(f"Suite test '{test.name}'").classes("text-bold")
        ui.label(
            "From the flow's `tests:` in the integration file (read-only here). Run runs its "
            "request on the draft, with its pinned steps; Run all checks its expectations."
        ).classes("text-caption text-grey-8")
        request = test.request.model_dump(mode="json")
        tid(
            ui.label(json.dumps(request, indent=2, ensure_ascii=False)).classes(
                "w-full font-mono text-xs whitespace-pre-wrap break-all"
            ),
            "suite-payload-request",
        )
        if test.pinned:
            ui.label(f"Pinned: {', '.join(test.pinned)}").classes("text-caption")
