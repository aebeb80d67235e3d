"""Payload suites of a stored integration: run all of them ("Run all"), with coverage as data.

Convention (as in the other services): `async` functions taking the `Hub`; database reads run
in a worker thread. Suites run on the integration's draft, headless and in memory (nothing is
stored as an execution), with outbound HTTP answered by the tests' recorded responses only:
the server never calls real services for a suite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from app.persistence import repositories as repo
from app.persistence.db import session_scope
from app.services.errors import InvalidInput, NotFound
from app.services.hub import Hub
from app.services.integrations import IssueView
from runtime.model import Integration
from runtime.suites import run_suite, suite_config
from runtime.validation import errors_only, validate_flow

__all__ = ["run_suites"]


def _load(hub: Hub, name: str) -> Integration:
    with session_scope(hub.db, write=False) as session:
        try:
            return repo.load_integration(session, name)
        except repo.NotFound:
            raise NotFound(f"There is no integration named '{name}'.") from None


async def run_suites(hub: Hub, name: str, flows: Sequence[str] | None = None) -> dict[str, Any]:
    """Run every test of the draft's flows (or of `flows`, by id) and return the report:
    `{passed, failed, tests: [...], coverage: [...]}` (`runtime.suites.SuiteReport.to_json`).

    Refused with InvalidInput, naming the flow or step, when a flow named is unknown, a flow
    with tests fails validation, or required config has no test value.
    """
    integration = await asyncio.to_thread(_load, hub, name)
    known = [f.id for f in integration.flows]
    unknown = [f for f in flows or () if f not in known]
    if unknown:
        raise InvalidInput(
            f"Integration '{name}' has no flow '{unknown[0]}'.",
            details={"flows": f"known flows: {', '.join(known) or 'none'}"},
        )
    chosen = [f for f in integration.flows if flows is None or f.id in flows]
    for flow in chosen:
        errors = errors_only(validate_flow(flow, hub.registry, integration))
        if flow.tests and errors:
            raise InvalidInput(
                f"Flow '{flow.label}' cannot run: {errors[0].message}",
                details={"issues": [IssueView.of(flow, i).model_dump() for i in errors]},
                hint=errors[0].hint or "Fix the problems listed, then run the suite again.",
            )
    _, missing = suite_config(integration)
    tests = [t for f in chosen for t in f.tests]
    if missing and any(set(missing) - set(t.config) for t in tests):
        raise InvalidInput(
            f"Config {', '.join(missing)} has no value for test runs.",
            details={f"testing.config.{key}": "required" for key in missing},
            hint="Set it in the integration's `testing: config:` (or in each test's `config:`).",
        )
    report = await run_suite(integration, hub.registry, flows=[f.id for f in chosen])
    return report.to_json()
