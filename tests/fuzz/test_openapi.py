"""Schemathesis over every operation of the REST API's OpenAPI document, against a real server.

The document is built in-process at import (`create_app(...).openapi()`, the generator behind
`/api/openapi.json`; `test_served_document_is_the_one_fuzzed` pins that they are the same) so that
schemathesis makes one test per operation; every request goes to a real `flowyard serve`. Each
operation gets boundary values (the coverage phase) and random valid and invalid requests; no
answer may be a server error, and each must carry the declared content type and, where the schema
declares a model for its status, match it. `BUDGET_SECONDS` bounds the whole run: once spent, the
remaining cases are generated but not sent.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from app.server import create_app
from app.settings import Settings
from bench.serving import ServerProcess, deploy_text, free_port
from tests.fuzz.conftest import FUZZING, examples
from tests.hostile.harness import FIXTURES

BUDGET_SECONDS = 900.0 if FUZZING else 60.0
"""Wall time for sending cases, across all operations."""


def _document() -> dict[str, Any]:
    with warnings.catch_warnings():
        # FastAPI names each method of the shared webhook routes (one `api_route` for every
        # method) with the same operation id and warns; the document is otherwise what is served.
        warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
        app = create_app(Settings(ui=False, data_dir=Path("unused")))
        document: dict[str, Any] = app.openapi()
    return document


schema = schemathesis.openapi.from_dict(_document())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], database="none"
)
_deadline: list[float] = []
_sent: list[str] = []


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("openapi")
    server = ServerProcess(root / "data", free_port(), root / "server.log")
    server.start()
    deploy_text(server.url, (FIXTURES / "target.yaml").read_text(), "target")
    deploy_text(server.url, (FIXTURES / "canary.yaml").read_text(), "canary")
    yield server
    server.stop()
    assert "Traceback" not in server.log(), server.log()


def _without_operation_ids(paths: dict[str, Any]) -> dict[str, Any]:
    # FastAPI names a multi-method route's operations after whichever method its set yields
    # first, which differs between processes; everything else must be identical.
    return {
        path: {
            method: {k: v for k, v in op.items() if k != "operationId"}
            for method, op in ops.items()
        }
        for path, ops in paths.items()
    }


def test_served_document_is_the_one_fuzzed(api_server: ServerProcess) -> None:
    served = httpx.get(f"{api_server.url}/api/openapi.json").json()
    assert _without_operation_ids(served["paths"]) == _without_operation_ids(_document()["paths"])


@schema.parametrize()
@settings(max_examples=examples(ci=6, fuzz=300), deadline=None)
def test_no_operation_answers_5xx(case: schemathesis.Case[Any], api_server: ServerProcess) -> None:
    if not _deadline:
        _deadline.append(time.monotonic() + BUDGET_SECONDS)
    if time.monotonic() > _deadline[0]:
        return
    response = case.call(base_url=api_server.url, timeout=30)
    _sent.append(case.operation.label)
    case.validate_response(
        response,
        checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
    )


def test_every_operation_was_sent_cases() -> None:
    """Runs after the fuzzing above (pytest keeps file order): the budget reached them all."""
    operations = {
        result.ok().label for result in schema.get_all_operations() if isinstance(result, Ok)
    }
    assert operations <= set(_sent), sorted(operations - set(_sent))
