"""parse_body: every content type and option; every malformed body refused with BodyError only."""

from __future__ import annotations

import itertools
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from pydantic import ValidationError

from app.services.bodies import MAX_DEPTH, BodyError, BodyOptions, parse_body
from components.builtin.webhook import WebhookInputs


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


# --- lone surrogates: everything accepted is storable as UTF-8 --------------------------------


def storable(value: Any) -> Any:
    """`value` after a round trip through UTF-8 JSON, as a JSON column stores it."""
    return json.loads(json.dumps(value, ensure_ascii=False).encode("utf-8"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (rb'{"a": "\ud800"}', {"a": "\ufffd"}),
        (rb'{"\udc00": ["x\ud83dy", "\ud800\ud800"]}', {"\ufffd": ["x\ufffdy", "\ufffd\ufffd"]}),
        (rb'{"a": "\ud83d\ude00", "b": "\uD83D\uDE00"}', {"a": "\U0001f600", "b": "\U0001f600"}),
        (rb'{"a": "\ude00\ud83d"}', {"a": "\ufffd\ufffd"}),
        # An escaped backslash then "ud800" is text; a real escape after it is not hidden.
        (
            rb'{"a": "\\ud800", "b": "\\\ud800", "c": "\\ud800\udc00"}',
            {"a": "\\ud800", "b": "\\\ufffd", "c": "\\ud800\ufffd"},
        ),
        (rb'{"a": "\u00e9\n\"\\u"}', {"a": 'é\n"\\u'}),
    ],
)
def test_json_lone_surrogate_escapes_become_replacement_characters(
    raw: bytes, expected: Any
) -> None:
    value = parse_body(ct("application/json"), raw)
    assert value == expected
    assert storable(value) == expected
    assert parse_body({}, raw) == expected  # no Content-Type: the same JSON path


def test_every_mix_of_escapes_and_backslashes_decodes_to_storable_text() -> None:
    """Each string of up to four pieces (escaped backslashes, surrogate escapes, text that looks
    like one) decodes as JSON does, with lone surrogates, and only those, as U+FFFD."""
    pieces = ["\\\\", "\\ud800", "\\udc00", "\\uD83D", "\\ude00", "ud800", "udc00", "x"]
    for size in range(1, 5):
        for combination in itertools.product(pieces, repeat=size):
            raw = ('["' + "".join(combination) + '"]').encode()
            [plain] = json.loads(raw)
            expected = plain.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
            assert parse_body(ct("application/json"), raw) == [expected], raw


def test_malformed_json_with_a_lone_surrogate_keeps_its_position() -> None:
    with pytest.raises(BodyError) as info:
        parse_body(ct("application/json"), rb'{"a": "\ud800",}')
    assert "line 1, column 16 (position 15)" in str(info.value)  # the "}" in the raw text


@pytest.mark.parametrize(
    ("content_type", "raw", "expected"),
    [
        # Decoders that let a lone surrogate through (UTF-7, unicode_escape) are repaired too.
        ("text/plain; charset=utf-7", b"a+2AA-b", "a\ufffdb"),
        ("text/plain; charset=unicode_escape", rb"\ud800 \ud83d\ude00", "\ufffd \U0001f600"),
        ("application/json; charset=utf-7", b'{"a": "+2AA-"}', {"a": "\ufffd"}),
        ("application/json; charset=unicode_escape", rb'{"a": "\ud800"}', {"a": "\ufffd"}),
        (
            "application/x-www-form-urlencoded; charset=utf-7",
            b"a=%2B2AA-&%2B2AA-=1&b=+2AA-",
            {"a": "\ufffd", "\ufffd": "1", "b": "\ufffd"},
        ),
    ],
)
def test_decoders_that_yield_lone_surrogates_are_repaired(
    content_type: str, raw: bytes, expected: Any
) -> None:
    value = parse_body(ct(content_type), raw)
    assert value == expected
    assert storable(value) == expected


@pytest.mark.parametrize(
    ("content_type", "raw", "message"),
    [
        # Encoded surrogates are invalid bytes in UTF-8 and UTF-16: refused, as any bad byte is.
        ("application/json", b'{"a": "\xed\xa0\x80"}', "not valid UTF-8"),
        ("application/x-www-form-urlencoded", b"a=%ED%A0%80", "not valid utf-8"),
        ("application/x-www-form-urlencoded", b"%ED%A0%80=1", "not valid utf-8"),
        ("text/plain", b"\xed\xa0\x80", "not valid utf-8"),
        ("text/plain; charset=utf-16-le", b"a\x00\x00\xd8", "not valid utf-16-le"),
        ("application/xml", b"<a>&#xD800;</a>", "reference to invalid character number"),
        ("application/xml", b'<a b="&#xDC00;"/>', "reference to invalid character number"),
        ("application/xml", b"<a>\xed\xa0\x80</a>", "not well-formed"),
        ("application/xml", b'<?xml version="1.0" encoding="utf-7"?><a>+2AA-</a>', "refused"),
    ],
)
def test_encoded_surrogates_are_refused_elsewhere(
    content_type: str, raw: bytes, message: str
) -> None:
    with pytest.raises(BodyError) as info:
        parse_body(ct(content_type), raw)
    assert message in str(info.value)


def test_binary_with_surrogate_bytes_is_base64() -> None:
    assert parse_body(ct("image/png"), b"\xed\xa0\x80") == {
        "base64": "7aCA",
        "content_type": "image/png",
        "size": 3,
    }


# --- options: form fields holding JSON ----------------------------------------------------------

FORM = ct("application/x-www-form-urlencoded")
GITHUB = BodyOptions(form_json_fields=("payload",))


def test_form_json_field_is_parsed_like_a_json_body() -> None:
    document = {"action": "opened", "issue": {"number": 7, "title": "caf\u00e9 \U0001f600"}}
    raw = urlencode({"payload": json.dumps(document)}).encode()
    assert parse_body(FORM, raw) == {"payload": json.dumps(document)}  # without the option
    assert parse_body(FORM, raw, options=GITHUB) == {"payload": document}


def test_form_json_fields_repeated_missing_and_untouched() -> None:
    options = BodyOptions(form_json_fields=("a", "b", "absent"))
    raw = b"a=1&a=%5Btrue%5D&b=%22%5Cud800%22&c=%7B%7D"
    assert parse_body(FORM, raw, options=options) == {"a": [1, [True]], "b": "\ufffd", "c": "{}"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            b"payload=%7B%22a%22%3A+1%2C%7D",
            "Malformed JSON in form field 'payload': Expecting property name enclosed in double "
            "quotes at line 1, column 9 (position 8).",
        ),
        (b"payload=", "Malformed JSON in form field 'payload': Expecting value at line 1"),
        (b"payload=NaN", "Malformed JSON in form field 'payload': NaN is not valid JSON."),
        (b"payload=" + b"%5B" * 300, "form field 'payload' is nested 300 levels deep; at most"),
        (b"payload=1&payload=x", "Malformed JSON in form field 'payload': Expecting value"),
    ],
)
def test_form_json_field_malformed_is_refused_naming_field_and_position(
    raw: bytes, message: str
) -> None:
    with pytest.raises(BodyError) as info:
        parse_body(FORM, raw, options=GITHUB)
    assert message in str(info.value)


def test_form_options_leave_other_types_alone() -> None:
    assert parse_body(ct("text/plain"), b"payload=x", options=GITHUB) == "payload=x"
    assert parse_body(ct("application/json"), b'{"payload": "{}"}', options=GITHUB) == {
        "payload": "{}"
    }


# --- options: XML namespaces and lists ----------------------------------------------------------


def salesforce(*ids: str) -> bytes:
    """A Salesforce outbound message (SOAP) carrying one Notification per id."""
    notifications = "".join(
        f"""
   <Notification>
    <Id>04l5e00000{n}AAAQ</Id>
    <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>{i}</sf:Id>
     <sf:StageName>Closed Won</sf:StageName>
    </sObject>
   </Notification>"""
        for n, i in enumerate(ids)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:xsd="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D5e000000ABCDEAA</OrganizationId>
   <ActionId>04k5e000000ABCDAAA</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/59.0/00D5e</EnterpriseUrl>
   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/59.0/00D5e</PartnerUrl>{notifications}
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>""".encode()


SOAP = ct("text/xml; charset=utf-8")
SALESFORCE = BodyOptions(xml_strip_namespaces=True, xml_force_list=("Notification",))


def notification(n: int, opportunity: str) -> dict[str, Any]:
    return {
        "Id": f"04l5e00000{n}AAAQ",
        "sObject": {"@type": "sf:Opportunity", "Id": opportunity, "StageName": "Closed Won"},
    }


@pytest.mark.parametrize("ids", [("0065e000001",), ("0065e000001", "0065e000002")])
def test_salesforce_outbound_message_with_options(ids: tuple[str, ...]) -> None:
    body = parse_body(SOAP, salesforce(*ids), options=SALESFORCE)
    assert list(body) == ["Envelope"]
    notifications = body["Envelope"]["Body"]["notifications"]
    assert notifications["OrganizationId"] == "00D5e000000ABCDEAA"
    assert notifications["SessionId"] == {"@nil": "true"}
    assert "@xmlns" not in notifications
    # One notification or two: always a list, so a loop over it works either way.
    assert notifications["Notification"] == [notification(n, i) for n, i in enumerate(ids)]


def test_salesforce_outbound_message_without_options_keeps_prefixes_and_one_is_an_object() -> None:
    body = parse_body(SOAP, salesforce("0065e000001"))
    notifications = body["soapenv:Envelope"]["soapenv:Body"]["notifications"]
    assert body["soapenv:Envelope"]["@xmlns:soapenv"] == "http://schemas.xmlsoap.org/soap/envelope/"
    assert notifications["Notification"]["sObject"]["sf:Id"] == "0065e000001"
    assert notifications["Notification"]["sObject"]["@xsi:type"] == "sf:Opportunity"


def test_xml_force_list_matches_with_or_without_prefix_and_each_option_alone() -> None:
    raw = b'<a xmlns:x="urn:x"><x:item>1</x:item><one>2</one><x:b x:k="v"/></a>'
    force = BodyOptions(xml_force_list=("item", "one"))
    assert parse_body(ct("application/xml"), raw, options=force) == {
        "a": {"@xmlns:x": "urn:x", "x:item": ["1"], "one": ["2"], "x:b": {"@x:k": "v"}}
    }
    strip = BodyOptions(xml_strip_namespaces=True)
    assert parse_body(ct("application/xml"), raw, options=strip) == {
        "a": {"item": "1", "one": "2", "b": {"@k": "v"}}
    }
    exact = BodyOptions(xml_force_list=("x:item",))
    assert parse_body(ct("application/xml"), raw, options=exact)["a"]["x:item"] == ["1"]


def test_xml_strip_namespaces_accepts_an_undeclared_prefix_and_merges_equal_names() -> None:
    raw = b"<r><p:v>1</p:v><q:v>2</q:v></r>"
    strip = BodyOptions(xml_strip_namespaces=True)
    assert parse_body(ct("application/xml"), raw, options=strip) == {"r": {"v": ["1", "2"]}}


def test_xml_options_keep_the_safety_checks() -> None:
    with pytest.raises(BodyError, match="DOCTYPE"):
        parse_body(ct("application/xml"), b'<!DOCTYPE r SYSTEM "x.dtd"><r/>', options=SALESFORCE)
    deep = b"<a>" * 300 + b"</a>" * 300
    with pytest.raises(BodyError, match=f"at most {MAX_DEPTH}"):
        parse_body(ct("application/xml"), deep, options=SALESFORCE)


# --- options from the webhook trigger's settings ------------------------------------------------


def test_options_of_webhook_inputs() -> None:
    assert BodyOptions.of(WebhookInputs()) == BodyOptions()
    inputs = WebhookInputs(
        form_json_fields=["payload"], xml_strip_namespaces=True, xml_force_list=["sf:Item"]
    )
    assert BodyOptions.of(inputs) == BodyOptions(("payload",), True, ("sf:Item",))


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"form_json_fields": [""]}, "form_json_fields", "must be 1-200 characters"),
        ({"form_json_fields": ["a", "a"]}, "form_json_fields", "'a' is listed twice"),
        ({"form_json_fields": "payload"}, "form_json_fields", "valid list"),
        ({"xml_force_list": ["two words"]}, "xml_force_list", "'two words' is not an XML"),
        ({"xml_force_list": ["@id"]}, "xml_force_list", "'@id' is not an XML element name"),
        ({"xml_force_list": ["a:b:c"]}, "xml_force_list", "'a:b:c' is not an XML"),
        ({"xml_strip_namespaces": "maybe"}, "xml_strip_namespaces", "valid boolean"),
    ],
)
def test_bad_option_settings_are_refused_naming_the_field(
    values: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        WebhookInputs.model_validate(values)
    [error] = info.value.errors()
    assert error["loc"][0] == field
    assert message in str(info.value)
