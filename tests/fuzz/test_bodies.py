"""Property: any bytes under any content type parse to a value or raise `BodyError`, only that."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given

from app.services.bodies import BodyError, parse_body
from tests.fuzz.strategies import bodies, content_types, json_values


@given(body=bodies, content_type=content_types)
def test_any_body_parses_or_raises_body_error(body: bytes, content_type: str) -> None:
    try:
        parse_body({"content-type": content_type}, body)
    except BodyError as exc:
        message = str(exc)  # the contract: a message saying what is wrong
        assert message


@given(value=json_values)
def test_json_documents_parse_to_themselves(value: Any) -> None:
    raw = json.dumps(value).encode()
    assert parse_body({"content-type": "application/json"}, raw) == value
