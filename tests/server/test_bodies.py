"""parse_body: every content type, and every malformed body refused with BodyError only."""

from __future__ import annotations

from typing import Any

import pytest

from app.services.bodies import MAX_DEPTH, BodyError, parse_body


def ct(value: str) -> dict[str, str]:
    return {"content-type": value}


@pytest.mark.parametrize(
    ("headers", "raw", "expected"),
    [
        (ct("application/json"), b'{"a": [1, 2.5, null, true]}', {"a": [1, 2.5, None, True]}),
        (ct("application/json; charset=utf-8"), '{"é": 1}'.encode(), {"é": 1}),
        (ct("application/vnd.api+json"), b"[1]", [1]),
        (ct("application/json"), b'{"a": 1, "a": 2}', {"a": 2}),
        (ct("application/json"), '{"a": 1}'.encode("utf-16"), {"a": 1}),
        (ct("application/json"), b"", None),
        (
            ct("application/x-www-form-urlencoded"),
            b"a=1&a=2&b=&c=caf%C3%A9&d=x+y",
            {"a": ["1", "2"], "b": "", "c": "café", "d": "x y"},
        ),
        (
            ct("application/xml"),
            b'<a x="1"><b>t</b><b>u</b></a>',
            {"a": {"@x": "1", "b": ["t", "u"]}},
        ),
        (ct("text/xml"), b"<?xml version='1.0'?><r>hi</r>", {"r": "hi"}),
        (ct("application/atom+xml"), b"<feed/>", {"feed": None}),
        (ct("text/plain"), "café".encode(), "café"),
        (ct("text/plain; charset=ISO-8859-1"), b"caf\xe9", "café"),
        ({}, b'{"x": 1}', {"x": 1}),
        ({}, b"hello", "hello"),
        (ct("application/octet-stream"), b"plain", "plain"),
        (
            ct("image/png"),
            b"\x89PNG\xff",
            {"base64": "iVBOR/8=", "content_type": "image/png", "size": 5},
        ),
    ],
)
def test_parses(headers: dict[str, str], raw: bytes, expected: Any) -> None:
    assert parse_body(headers, raw) == expected


@pytest.mark.parametrize(
    ("headers", "raw", "message"),
    [
        (ct("application/json"), b'{"a":\n  1,}', "line 2, column 5 (position 10)"),
        (ct("application/json"), b'{"a": NaN}', "NaN is not valid JSON"),
        (ct("application/json"), b"[Infinity]", "Infinity is not valid JSON"),
        (ct("application/json"), b"[" * 100_000, f"at most {MAX_DEPTH}"),
        (ct("application/json"), b"1" + b"0" * 5000, "Malformed JSON"),
        (ct("application/json"), b'{"a": "\xff"}', "not valid UTF-8"),
        (ct("application/x-www-form-urlencoded"), b"a=%FF", "not valid utf-8"),
        (ct("application/xml"), b"<a><b></a>", "mismatched tag at line 1"),
        (ct("application/xml"), b"<a>" * 300 + b"</a>" * 300, f"at most {MAX_DEPTH}"),
        (
            ct("application/xml"),
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>',
            "DOCTYPE",
        ),
        (ct("text/xml"), b'<!DOCTYPE r SYSTEM "http://127.0.0.1/x.dtd"><r/>', "DOCTYPE"),
        (ct("text/plain"), b"caf\xe9", "not valid utf-8 (byte 3)"),
        (ct("text/plain; charset=nope"), b"x", "Unknown charset 'nope'"),
    ],
)
def test_refuses(headers: dict[str, str], raw: bytes, message: str) -> None:
    with pytest.raises(BodyError) as info:
        parse_body(headers, raw)
    assert message in str(info.value)


def test_body_error_is_a_value_error() -> None:
    assert issubclass(BodyError, ValueError)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    raw = b'{"a": "' + b"[" * 1000 + b'"}'
    assert parse_body(ct("application/json"), raw) == {"a": "[" * 1000}
