"""`designer.testing.refusal_lines`: a service refusal's details as sentences a user reads."""

from __future__ import annotations

from designer.testing import refusal_lines


def test_validation_issues_read_as_their_messages_and_hints() -> None:
    details = {
        "issues": [
            {
                "flow": "f",
                "step": "call",
                "message": "Step 'Call' is missing required input 'url' (URL).",
                "hint": "Fill it in the inspector.",
                "severity": "error",
            }
        ]
    }
    assert refusal_lines(details) == [
        "Step 'Call' is missing required input 'url' (URL). Fill it in the inspector."
    ]


def test_fields_and_plain_lists() -> None:
    assert refusal_lines({"payload": "no such payload"}) == ["payload: no such payload"]
    assert refusal_lines(["one", {"message": "two"}]) == ["one", "two"]
    assert refusal_lines(None) == []
