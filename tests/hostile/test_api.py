"""The REST API under hostile requests (`api_cases.py`), against one real server.

Each row: the status, never a 5xx, a JSON answer (naming the problem where a fragment is given);
nothing stored (a row whose fix may accept the request, e.g. by replacing a lone surrogate, may
store what it accepted); the canary instance still runs; the server logged no crash.
"""

from __future__ import annotations

import httpx
import pytest

from tests.hostile.api_cases import APIS, Api
from tests.hostile.harness import UNSET, Harness


@pytest.mark.parametrize("case", APIS, ids=[c.id for c in APIS])
def test_api_request(case: Api, harness: Harness) -> None:
    with harness.case() as snapshot:
        request: dict[str, object] = {"params": case.params, "timeout": 30}
        headers = {"Content-Type": case.content_type, **case.headers}
        if case.body is not None:
            request["content"] = case.body
        elif case.json is not UNSET:
            request["json"] = case.json
        response = httpx.request(
            case.method,
            harness.url + case.path.replace("{instance}", harness.canary_instance),
            headers=headers,
            **request,  # type: ignore[arg-type]
        )
        expected = case.expect if isinstance(case.expect, tuple) else (case.expect,)
        assert response.status_code in expected, response.text[:1000]
        assert response.status_code < 500
        if case.json_answer:
            assert response.headers["content-type"].startswith("application/json"), response.text[
                :300
            ]
            response.json()
        assert case.fragment in response.text
        if response.is_success and case.method != "GET":
            harness.still_serving(snapshot)
        else:
            harness.settle(snapshot, accepted=False)
