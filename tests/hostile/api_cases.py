"""The hostile catalogue of the REST API under `/api`, as data: one row per request.

Paths may hold `{instance}` (the target instance's id). The server holds the integrations
`Hostile target` and `Canary`, each deployed once. No row may store anything, and no answer may
be a 5xx; every answer is JSON unless `json_answer` is False.

`fixed_by` names the issue-19 fix a row needs; until that fix is merged the row fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.hostile.harness import UNSET

__all__ = ["APIS", "Api"]


@dataclass(frozen=True)
class Api:
    """One request to the API and what must come back."""

    id: str
    method: str
    path: str
    expect: int | tuple[int, ...]
    json: Any = UNSET
    body: bytes | None = None
    """Sent as is (with `content_type`) instead of `json`."""
    content_type: str = "application/json"
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    fragment: str = ""
    json_answer: bool = True
    fixed_by: str = ""


BIG = str(10**30)
SURROGATE_FIX = "6: no 500 for lone surrogates in names"
METHOD_FIX = "6: JSON 405 for wrong methods on /api"
_DEEP = b"[" * 100_000 + b"]" * 100_000
_FLOW = {"name": "P", "trigger": {"id": "trigger", "action": "webhook.webhook"}}

# fmt: off
APIS: list[Api] = [
    # --- issue 19: lone surrogates in names, wrong methods -----------------------------------
    Api("deploy-lone-surrogate-name", "POST", "/api/instances", (201, 422),
        body=b'{"name": "\\ud800", "integration": "Canary"}', fixed_by=SURROGATE_FIX),
    Api("import-json-lone-surrogate-name", "POST", "/api/integrations", (201, 422),
        body=b'{"name": "\\ud800", "flows": []}', fixed_by=SURROGATE_FIX),
    Api("payload-lone-surrogate-name", "POST", "/api/integrations/Canary/payloads", (201, 422),
        body=b'{"name": "\\ud800", "flow_id": "ping", "body": {}}', fixed_by=SURROGATE_FIX),
    Api("get-integration-encoded-surrogate", "GET", "/api/integrations/%ED%A0%80", 404),
    Api("put-health", "PUT", "/api/health", 405, fixed_by=METHOD_FIX),
    Api("delete-health", "DELETE", "/api/health", 405, fixed_by=METHOD_FIX),
    Api("delete-executions", "DELETE", "/api/executions", 405, fixed_by=METHOD_FIX),
    Api("patch-instances", "PATCH", "/api/instances", 405, fixed_by=METHOD_FIX),
    Api("post-export", "POST", "/api/integrations/Canary/export", 405, fixed_by=METHOD_FIX),
    # --- issue 23: publish notes, editing and upgrading an instance ---------------------------
    Api("publish-note-lone-surrogate", "POST", "/api/integrations/Canary/publish", 422,
        body=b'{"note": "\\ud800"}', fragment="note"),
    Api("publish-note-too-long", "POST", "/api/integrations/Canary/publish", 422,
        json={"note": "n" * 501}, fragment="note"),
    Api("publish-note-not-text", "POST", "/api/integrations/Canary/publish", 422,
        json={"note": ["a"]}),
    Api("edit-instance-lone-surrogate", "PATCH", "/api/instances/{instance}", 422,
        body=b'{"config": {"\\ud800": "\\ud800"}}'),
    Api("edit-instance-unknown-fields", "PATCH", "/api/instances/{instance}", 422,
        json={"config": {"nope": 1}, "connections": {"nope": {"k": "v"}}}, fragment="nope"),
    Api("edit-instance-wrong-types", "PATCH", "/api/instances/{instance}", 422,
        json={"config": [], "connections": "x"}),
    Api("edit-instance-extra-key", "PATCH", "/api/instances/{instance}", 422, json={"x": 1}),
    Api("edit-instance-encoded-surrogate", "PATCH", "/api/instances/%ED%A0%80", 404, json={}),
    Api("upgrade-huge-version", "POST", "/api/instances/{instance}/upgrade", 422,
        json={"version": BIG}),
    Api("upgrade-unknown-version", "POST", "/api/instances/{instance}/upgrade", 422,
        json={"version": 99}, fragment="version"),
    Api("upgrade-no-body", "POST", "/api/instances/{instance}/upgrade", 422, json={}),
    Api("get-replay", "GET", "/api/executions/x/replay", 405, fixed_by=METHOD_FIX),
    # --- deploy: wrong types, missing fields, huge values ------------------------------------
    Api("deploy-wrong-types", "POST", "/api/instances", 422,
        json={"name": 5, "integration": ["x"]}, fragment="body.name"),
    Api("deploy-missing-fields", "POST", "/api/instances", 422, json={},
        fragment="Field required"),
    Api("deploy-not-json", "POST", "/api/instances", 422, body=b"{", fragment="JSON decode"),
    Api("deploy-array-body", "POST", "/api/instances", 422, json=[1, 2]),
    Api("deploy-form-body", "POST", "/api/instances", 422, body=b"name=a&integration=Canary",
        content_type="application/x-www-form-urlencoded"),
    Api("deploy-1mb-name", "POST", "/api/instances", 422,
        json={"name": "x" * 1_000_000, "integration": "Canary"}, fragment="name"),
    Api("deploy-unknown-integration", "POST", "/api/instances", 422,
        json={"name": "z", "integration": "Nope"}, fragment="no integration named 'Nope'"),
    Api("deploy-config-not-object", "POST", "/api/instances", 422,
        json={"name": "z", "integration": "Canary", "config": "x"}, fragment="body.config"),
    Api("deploy-unknown-config-key", "POST", "/api/instances", 422,
        json={"name": "z", "integration": "Canary", "config": {"nope": 1}}, fragment="config.nope"),
    Api("deploy-nan-config-value", "POST", "/api/instances", 422,
        body=b'{"name": "z", "integration": "Canary", "config": {"x": NaN}}', fragment="config.x"),
    Api("deploy-connections-not-object", "POST", "/api/instances", 422,
        json={"name": "z", "integration": "Canary", "connections": [1]}),
    Api("deploy-unknown-connection", "POST", "/api/instances", 422,
        json={"name": "z", "integration": "Canary", "connections": {"x": {"a": 1}}}),
    Api("deploy-100k-nested-body", "POST", "/api/instances", 400,
        body=b'{"name": "z", "integration": "Canary", "config": {"x": ' + _DEEP + b"}}"),
    Api("deploy-existing-name", "POST", "/api/instances", 409,
        json={"name": "canary", "integration": "Canary"}, fragment="already exists"),
    # --- executions: filters and ids ---------------------------------------------------------
    Api("executions-limit-negative", "GET", "/api/executions", 422, params={"limit": "-1"}),
    Api("executions-limit-huge", "GET", "/api/executions", 422, params={"limit": BIG}),
    Api("executions-limit-not-a-number", "GET", "/api/executions", 422, params={"limit": "x"}),
    Api("executions-offset-beyond-sqlite", "GET", "/api/executions", 422, params={"offset": BIG},
        fragment="query.offset"),
    Api("executions-since-nan", "GET", "/api/executions", 200, params={"since": "nan"}),
    Api("executions-unknown-status", "GET", "/api/executions", 422, params={"status": "x"},
        fragment="unknown status"),
    Api("executions-text-of-5000-wildcards", "GET", "/api/executions", 200,
        params={"q": "%" * 5000}),
    Api("executions-text-encoded-surrogate", "GET", "/api/executions?q=%ED%A0%80", 200),
    Api("execution-unknown", "GET", "/api/executions/nope", 404, fragment="no execution"),
    Api("execution-10k-char-id", "GET", "/api/executions/" + "e" * 10_000, 404),
    Api("replay-unknown", "POST", "/api/executions/nope/replay", 404),
    # --- integrations --------------------------------------------------------------------------
    Api("integration-unknown", "GET", "/api/integrations/nope", 404, fragment="no integration"),
    Api("integration-version-negative", "GET", "/api/integrations/Canary", 404,
        params={"version": "-5"}),
    Api("integration-version-beyond-sqlite", "GET", "/api/integrations/Canary", 422,
        params={"version": BIG}, fragment="query.version"),
    Api("export-version-beyond-sqlite", "GET", "/api/integrations/Canary/export", 422,
        params={"version": BIG}),
    Api("import-empty", "POST", "/api/integrations", 422, body=b"",
        content_type="application/yaml"),
    Api("import-not-utf8", "POST", "/api/integrations", 422, body=b"\xff\xfe\x00",
        content_type="application/yaml", fragment="not UTF-8"),
    Api("import-6mb", "POST", "/api/integrations", 422, body=b"a" * (6 * 1_048_576),
        content_type="application/yaml", fragment="larger than 5 MiB"),
    Api("import-yaml-alias-bomb", "POST", "/api/integrations", 422,
        body=b"a: &a [1, 2]\nb: [*a, *a]\n", content_type="application/yaml", fragment="alias"),
    Api("import-json-100k-nested", "POST", "/api/integrations", 422, body=_DEEP,
        fragment="nested too deeply"),
    Api("import-wrapped-text-not-a-string", "POST", "/api/integrations", 422, json={"text": 5}),
    Api("import-python-tag", "POST", "/api/integrations", 422,
        body=b'name: x\nflows: !!python/object/apply:os.system ["true"]\n',
        content_type="application/yaml", fragment="could not determine a constructor"),
    # --- test payloads, flows, test runs --------------------------------------------------------
    Api("payload-wrong-types", "POST", "/api/integrations/Canary/payloads", 422, json={"name": 5}),
    Api("payload-unknown-flow", "POST", "/api/integrations/Canary/payloads", 422,
        json={"name": "p", "flow_id": "nope", "body": {}}, fragment="no flow 'nope'"),
    Api("payload-id-not-a-number", "GET", "/api/integrations/Canary/payloads/abc", 422),
    Api("payload-id-beyond-sqlite", "GET", f"/api/integrations/Canary/payloads/{BIG}", 422),
    Api("payload-delete-id-beyond-sqlite", "DELETE", f"/api/integrations/Canary/payloads/{BIG}",
        422),
    Api("payload-duplicate-id-beyond-sqlite", "POST",
        f"/api/integrations/Canary/payloads/{BIG}/duplicate", 422, params={"new_name": "x"}),
    Api("save-flow-wrong-types", "PUT", "/api/integrations/Canary/flows/ping", 422,
        json={"flow": [], "revision": "x"}),
    Api("save-flow-stale-revision", "PUT", "/api/integrations/Canary/flows/ping", 409,
        json={"flow": _FLOW, "revision": 999}, fragment="changed elsewhere"),
    Api("save-flow-revision-beyond-sqlite", "PUT", "/api/integrations/Canary/flows/ping", 422,
        body=json.dumps({"flow": _FLOW, "revision": 10**30}).encode(), fragment="body.revision"),
    Api("save-flow-id-mismatch", "PUT", "/api/integrations/Canary/flows/ping", 422,
        json={"flow": {"id": "other"}, "revision": 1}, fragment="from the URL"),
    Api("save-flow-unknown-integration", "PUT", "/api/integrations/nope/flows/x", 404,
        json={"flow": _FLOW, "revision": 0}),
    Api("test-run-unknown-field", "POST", "/api/integrations/Canary/flows/ping/test", 422,
        json={"nope": 1}, fragment="Extra inputs"),
    Api("test-run-payload-id-beyond-sqlite", "POST", "/api/integrations/Canary/flows/ping/test",
        422, body=json.dumps({"payload_id": 10**30}).encode(), fragment="body.payload_id"),
    # --- instances, paths, hosts ----------------------------------------------------------------
    Api("instance-unknown", "GET", "/api/instances/nope", 404),
    Api("instance-delete-unknown", "DELETE", "/api/instances/nope", 404),
    Api("instance-enable-unknown", "POST", "/api/instances/nope/enable", 404),
    Api("instance-list-encoded-surrogate-filter", "GET", "/api/instances?integration=%ED%A0%80",
        200),
    Api("unknown-api-path", "GET", "/api/nope", 404, json_answer=False),
    Api("foreign-host", "GET", "/api/health", 400, headers={"Host": "evil.example"},
        json_answer=False, fragment="Invalid host header"),
    Api("encoded-traversal-in-id", "GET", "/api/executions/..%2F..%2Fhealth", 404,
        json_answer=False),
]
# fmt: on
