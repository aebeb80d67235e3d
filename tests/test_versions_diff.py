"""The version diff: steps added, removed, moved and changed (inputs before/after), flows added
and removed, flow settings and config; layout alone is no change."""

from __future__ import annotations

from typing import Any

from designer.versions import FieldChange, diff_versions
from runtime.model import Integration


def integration(version: int, **changes: Any) -> Integration:
    flow: dict[str, Any] = {
        "id": "orders",
        "name": "Orders",
        "trigger": {"id": "trigger", "action": "webhook.webhook"},
        "steps": [
            {"id": "check", "action": "branch.expression", "inputs": {"groups": []}},
            {
                "id": "send",
                "name": "Send",
                "action": "http.request",
                "inputs": {"url": "https://a.test", "body": {"n": 1}},
            },
            {"id": "log", "action": "log.message", "inputs": {"message": "hi"}},
        ],
        "edges": [
            {"from": "trigger", "to": "check"},
            {"from": "check", "port": "true", "to": "send"},
            {"from": "send", "to": "log"},
        ],
    }
    flow.update(changes.pop("flow", {}))
    document = {"name": "Shop", "version": version, "flows": [flow, *changes.pop("more", [])]}
    return Integration.model_validate({**document, **changes})


def test_identical_versions_and_layout_moves_are_no_change() -> None:
    moved = integration(2, layout={"orders": {"send": {"x": 500, "y": 9}}})
    diff = diff_versions(integration(1), moved)
    assert (diff.before, diff.after, diff.empty) == (1, 2, True)


def test_steps_added_removed_moved_and_inputs_changed_before_after() -> None:
    after = integration(
        2,
        flow={
            "steps": [
                {"id": "check", "action": "branch.expression", "inputs": {"groups": []}},
                {
                    "id": "send",
                    "name": "Send",
                    "action": "http.request",
                    "inputs": {"url": "https://b.test", "body": {"n": 1}, "method": "POST"},
                    "retry": {"max_attempts": 2},
                },
                {"id": "note", "action": "log.message", "inputs": {"message": "new"}},
            ],
            "edges": [
                {"from": "trigger", "to": "check"},
                {"from": "check", "port": "false", "to": "send"},
                {"from": "send", "to": "note"},
            ],
            "settings": {"concurrency": 2},
        },
    )
    (flow,) = diff_versions(integration(1), after).flows
    assert (flow.flow, flow.change) == ("orders", "changed")
    by_step = {s.step: s for s in flow.steps}
    assert [(s.step, s.change) for s in flow.steps] == [
        ("send", "moved"),
        ("note", "added"),
        ("log", "removed"),
    ]
    send = by_step["send"]
    assert (send.moved_from, send.moved_to) == (["check:true"], ["check:false"])
    assert send.fields[:2] == [
        FieldChange(field="inputs.url", before="https://a.test", after="https://b.test"),
        FieldChange(field="inputs.method", before=None, after="POST"),
    ]
    assert send.fields[2].field == "retry"
    assert send.fields[2].before is None
    assert send.fields[2].after["max_attempts"] == 2
    assert flow.settings == [FieldChange(field="settings.concurrency", before=8, after=2)]


def test_an_input_change_alone_is_changed_and_flows_and_config_are_listed() -> None:
    extra = {"id": "nightly", "trigger": {"id": "trigger", "action": "schedule.cron"}}
    before = integration(1, config=[{"key": "region"}])
    after = integration(
        3,
        flow={"name": "Orders v2"},
        more=[extra],
        config=[{"key": "region", "required": True}, {"key": "tier"}],
    )
    after.flows[0].steps[2].inputs["message"] = "bye"
    diff = diff_versions(before, after)
    assert [(f.flow, f.change) for f in diff.flows] == [("orders", "changed"), ("nightly", "added")]
    orders = diff.flows[0]
    assert [(s.step, s.change, s.fields) for s in orders.steps] == [
        ("log", "changed", [FieldChange(field="inputs.message", before="hi", after="bye")])
    ]
    assert orders.settings == [FieldChange(field="name", before="Orders", after="Orders v2")]
    assert [s.step for s in diff.flows[1].steps] == ["trigger"]
    assert [c.field for c in diff.config] == ["config.region", "config.tier"]
    assert diff.config[1].before is None
    removed = diff_versions(after, before)
    assert [(f.flow, f.change) for f in removed.flows] == [
        ("orders", "changed"),
        ("nightly", "removed"),
    ]
