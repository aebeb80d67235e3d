"""Parse a webhook request body by its Content-Type into the value flows see as `trigger.body`.

`parse_body(headers, raw, options=...)` is called twice for each request: by the ingest route (so
a malformed body is refused with 400 and nothing is stored) and by the workers on the stored raw
bytes, both with the `BodyOptions` of the flow's webhook trigger. It is pure and deterministic, so
both calls agree. It raises `BodyError` (a `ValueError`) and nothing else; the message names the
problem and, for JSON and XML, the position.

By media type (parameters such as `charset` are honoured where they mean something):

- empty body -> `None`, whatever the type;
- `application/json`, `*/*+json`: strict JSON. `NaN`, `Infinity` and `-Infinity` are refused (not
  JSON; they would not survive a JSON column), nesting deeper than `MAX_DEPTH` is refused,
  duplicate object keys keep the last value (what JSON.parse and most senders' own parsers do);
- `application/x-www-form-urlencoded`: a dict of str; a repeated key becomes a list of its values
  in order; blank values are kept as "". The fields named in `BodyOptions.form_json_fields` are
  parsed as JSON by the rules above (GitHub and Slack send their event document as `payload=`);
  malformed JSON there is refused, naming the field and the position;
- `application/xml`, `text/xml`, `*/*+xml`: a dict through xmltodict (attributes `@name`, text
  `#text`, one element a value, a repeated one a list). A DOCTYPE or entity declaration is
  refused, so entity expansion ("billion laughs") and external entities can never happen.
  `BodyOptions.xml_strip_namespaces` drops namespace prefixes (`soapenv:Envelope` -> `Envelope`,
  `@xsi:type` -> `@type`) and the `xmlns` declarations; `BodyOptions.xml_force_list` names
  elements that are always a list, even when one is present;
- other `text/*`: a str decoded with the declared charset (UTF-8 by default); undecodable bytes
  are refused;
- no Content-Type: JSON when the body is valid JSON, else text when it is valid UTF-8, else binary
  as below (senders that omit the header almost always send one of those);
- anything else (images, PDFs, `multipart/*`, `application/octet-stream`, ...): a str when the body
  is valid UTF-8, otherwise `{"base64": "<standard base64>", "content_type": "<type>",
  "size": <bytes>}` so that a flow can tell binary apart and decode it.

Every str in the result is storable as UTF-8 (hence in a JSON column). JSON allows a lone UTF-16
surrogate escape (`"\\ud800"`: `JSON.stringify` writes one for half an emoji), which no UTF-8
text can hold: each such escape, in a string or an object key, becomes U+FFFD, as a browser's
`TextEncoder` does, and the delivery is kept. A valid pair (`"\\ud83d\\ude00"`) is one character.
The same holds for a charset whose decoder lets lone surrogates through (`utf-7`). Bytes that
are not valid in their own encoding (a surrogate encoded in UTF-8 or UTF-16, also
percent-encoded in a form) are refused like any undecodable bytes, and so are XML character
references to surrogates (by expat).
"""

from __future__ import annotations

import base64
import codecs
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, NoReturn, Protocol
from urllib.parse import parse_qsl
from xml.parsers import expat

import xmltodict  # type: ignore[import-untyped]  # no stubs in the venv (types-xmltodict)

__all__ = [
    "MAX_DEPTH",
    "MAX_FORM_FIELDS",
    "BodyError",
    "BodyOptions",
    "BodySettings",
    "media_type",
    "parse_body",
]

MAX_DEPTH = 200
"""Deepest nesting of JSON arrays/objects or XML elements accepted."""

MAX_FORM_FIELDS = 10_000
"""Most fields a form body may hold."""


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


class BodyError(ValueError):
    """The body cannot be parsed as its Content-Type says; the message says where and why."""


class BodySettings(Protocol):
    """Where `BodyOptions.of` reads the options: a trigger's `Ingress`."""

    @property
    def form_json_fields(self) -> Sequence[str]: ...

    @property
    def xml_strip_namespaces(self) -> bool: ...

    @property
    def xml_force_list(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class BodyOptions:
    """How a flow wants its bodies parsed, beyond what the Content-Type says (module docstring).

    The defaults parse as a call without options does.
    """

    form_json_fields: tuple[str, ...] = ()
    """Form fields whose value is parsed as JSON (each value, when the field repeats)."""
    xml_strip_namespaces: bool = False
    """XML element and attribute names without their prefix; `xmlns` declarations left out."""
    xml_force_list: tuple[str, ...] = ()
    """XML elements always in a list; `Notification` also matches `sf:Notification`."""

    @classmethod
    def of(cls, settings: BodySettings) -> BodyOptions:
        """The options a trigger's `Ingress` (or the webhook trigger's inputs) set."""
        return cls(
            tuple(settings.form_json_fields),
            settings.xml_strip_namespaces,
            tuple(settings.xml_force_list),
        )


_DEFAULT = BodyOptions()


def media_type(headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The lower-cased media type of `content-type` (empty when absent) and its parameters."""
    value = headers.get("content-type", "")
    kind, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        name, sep, val = part.partition("=")
        if sep:
            params[name.strip().lower()] = val.strip().strip('"')
    return kind.strip().lower(), params


def parse_body(
    headers: Mapping[str, str], raw: bytes, *, options: BodyOptions | None = None
) -> Any:
    """Parse `raw` as `headers["content-type"]` says (header names lower-case); see the module."""
    try:
        return _parse(headers, raw, options or _DEFAULT)
    except BodyError:
        raise
    except Exception as exc:  # the contract: nothing but BodyError, whatever the bytes are
        raise BodyError(f"The body could not be parsed: {type(exc).__name__}: {exc}") from None


def _parse(headers: Mapping[str, str], raw: bytes, options: BodyOptions) -> Any:
    if not raw:
        return None
    kind, params = media_type(headers)
    charset = params.get("charset")
    if kind == "application/json" or kind.endswith("+json"):
        return _json(raw, charset)
    if kind == "application/x-www-form-urlencoded":
        return _form(raw, charset or "utf-8", options.form_json_fields)
    if kind in ("application/xml", "text/xml") or kind.endswith("+xml"):
        return _xml(raw, options)
    if kind.startswith("text/"):
        return _text(raw, charset or "utf-8")
    if not kind:
        try:
            return _json(raw, None)
        except BodyError:
            pass
    return _opaque(raw, kind or "application/octet-stream")


# --- lone surrogates ----------------------------------------------------------------------------

_WELL_FORMED_CODECS = frozenset(
    {"utf-8", "ascii", "iso8859-1", "utf-16", "utf-16-le", "utf-16-be"}
    | {"utf-32", "utf-32-le", "utf-32-be"}
)
"""Codecs whose strict decoders never yield a lone surrogate; others' output is checked."""

_SURROGATE = re.compile("[\ud800-\udfff]")

_SURROGATE_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?:\\u[dD][c-fC-F][0-9a-fA-F]{2})?"
    r"|\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
"""A high surrogate escape with the low one that may follow it, or a low one alone."""

_LONE_ESCAPE_HINT = re.compile(
    r"\\u(?:[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"  # a high one, no low one next
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u)[dD][c-fC-F]"  # a low one, no high one before
    r"|(?<=\\\\u)[dD][89a-fA-F])"  # "\\ud8..": text, or hiding a lone low one after it
)
"""Found in any JSON text with a lone surrogate escape (and in a few without: an escaped
backslash before "ud8.."). Unlike `_SURROGATE_ESCAPE` it skips valid pairs in C, so a body full
of escaped emoji is checked without a Python call per pair."""

_REPLACEMENT_ESCAPE = "\\ufffd"


def _well_formed(text: str) -> str:
    """`text` with valid surrogate pairs joined and each lone surrogate replaced by U+FFFD."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _without_lone_escapes(text: str) -> str:
    """JSON text with each lone surrogate escape replaced by `\\ufffd` (same length, so error
    positions stay true). A body without a lone one costs one regex search."""
    if _LONE_ESCAPE_HINT.search(text) is None:  # C speed, faster than a `"\\u" in text` first
        return text

    def repair(match: re.Match[str]) -> str:
        found = match.group()
        start = before = match.start()
        while before and text[before - 1] == "\\":
            before -= 1
        if (start - before) % 2:  # an escaped backslash then "ud800": text, not an escape
            # The low half, when matched with it, is a real escape standing alone.
            return found[:6] + (_REPLACEMENT_ESCAPE if len(found) > 6 else "")
        return found if len(found) > 6 else _REPLACEMENT_ESCAPE

    return _SURROGATE_ESCAPE.sub(repair, text)


# --- JSON -------------------------------------------------------------------------------------


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
"""`json.loads` with a keyword argument builds a decoder on every call; this one is reused."""


def _json(raw: bytes, charset: str | None) -> Any:
    if charset is not None and _codec(charset) not in ("utf-8", "ascii"):
        text = _decode(raw, charset, what="JSON body")
    else:
        # No charset (or UTF-8): detect UTF-8/16/32 and a BOM as RFC 8259 section 8.1 allows.
        encoding = json.detect_encoding(raw)
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise BodyError(f"The JSON body is not valid UTF-8 (byte {exc.start}).") from None
    return _json_text(text, "JSON body")


def _json_text(text: str, what: str) -> Any:
    """Decode JSON `text`; `what` ("JSON body", "JSON in form field 'x'") starts the errors."""
    depth = _max_depth(text)
    if depth > MAX_DEPTH:
        raise BodyError(f"The {what} is nested {depth} levels deep; at most {MAX_DEPTH} allowed.")
    try:
        return _DECODER.decode(_without_lone_escapes(text))
    except json.JSONDecodeError as exc:
        raise BodyError(
            f"Malformed {what}: {exc.msg} at line {exc.lineno}, column {exc.colno} "
            f"(position {exc.pos})."
        ) from None
    except RecursionError:
        raise BodyError(f"The {what} is nested too deeply; at most {MAX_DEPTH} allowed.") from None
    except ValueError as exc:  # NaN/Infinity, or an integer beyond Python's digit limit
        raise BodyError(f"Malformed {what}: {exc}.") from None


def _max_depth(text: str) -> int:
    """Nesting depth of brackets outside strings, without recursion and at C speed."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0
    brackets = _BRACKETS.findall(_STRINGS.sub("", text))
    return max(accumulate(1 if b in "[{" else -1 for b in brackets), default=0)


# --- form, text, opaque -----------------------------------------------------------------------


def _codec(charset: str) -> str:
    try:
        return codecs.lookup(charset).name
    except LookupError:
        raise BodyError(f"Unknown charset '{charset}' in the Content-Type header.") from None


def _decode(raw: bytes, charset: str, *, what: str) -> str:
    codec = _codec(charset)
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise BodyError(f"The {what} is not valid {charset} (byte {exc.start}).") from None
    return text if codec in _WELL_FORMED_CODECS else _well_formed(text)


def _form(raw: bytes, charset: str, json_fields: Iterable[str]) -> dict[str, Any]:
    text = _decode(raw, charset, what="form body")
    codec = _codec(charset)
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding=codec,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except UnicodeDecodeError as exc:
        raise BodyError(
            f"The form body has a percent-encoded value that is not valid {charset}: {exc.reason}."
        ) from None
    except ValueError:
        raise BodyError(f"The form body has more than {MAX_FORM_FIELDS} fields.") from None
    if codec not in _WELL_FORMED_CODECS:  # percent-decoding went through the same decoder
        pairs = [(_well_formed(key), _well_formed(value)) for key, value in pairs]
    result: dict[str, Any] = {}
    for key, value in pairs:
        existing = result.get(key)
        if existing is None:
            result[key] = value
        elif isinstance(existing, list):
            existing.append(value)
        else:
            result[key] = [existing, value]
    for name in json_fields:
        if name in result:
            result[name] = _json_field(name, result[name])
    return result


def _json_field(name: str, value: str | list[str]) -> Any:
    what = f"JSON in form field '{name}'"
    if isinstance(value, list):  # the field repeated: each value is a document
        return [_json_text(item, what) for item in value]
    return _json_text(value, what)


def _text(raw: bytes, charset: str) -> str:
    return _decode(raw, charset, what="text body")


def _opaque(raw: bytes, kind: str) -> Any:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {
            "base64": base64.b64encode(raw).decode("ascii"),
            "content_type": kind,
            "size": len(raw),
        }


# --- XML --------------------------------------------------------------------------------------


class _Refused(Exception):
    pass


class _SafeExpat:
    """Stands in for the `expat` module xmltodict uses: parsers that refuse any DTD."""

    ExpatError = expat.ExpatError

    @staticmethod
    def ParserCreate(encoding: str | None = None, namespace_separator: str | None = None) -> Any:
        parser = expat.ParserCreate(encoding, namespace_separator)

        def refuse_doctype(*_: Any) -> None:
            raise _Refused("a DOCTYPE declaration (DTDs and entities are not accepted)")

        def refuse_entity(*_: Any) -> None:
            raise _Refused("an entity declaration (entities are not accepted)")

        parser.StartDoctypeDeclHandler = refuse_doctype
        parser.EntityDeclHandler = refuse_entity
        parser.ExternalEntityRefHandler = lambda *_: 0
        return parser


def _local_names(_path: Any, key: str, value: Any) -> tuple[str, Any] | None:
    """xmltodict postprocessor: keys without their namespace prefix, `xmlns` declarations gone.

    Prefixes are dropped by name rather than by expat's namespace processing, so a document
    that uses an undeclared prefix is still accepted, as it is without the option."""
    if key.startswith("@"):
        name = key[1:]
        if name == "xmlns" or name.startswith("xmlns:"):
            return None
        return "@" + name.rpartition(":")[2], value
    return key.rpartition(":")[2], value


class _ElementNames:
    """xmltodict `force_list`: an element whose name, or name without its prefix, is listed."""

    __slots__ = ("names",)

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self.names or key.rpartition(":")[2] in self.names)


def _xml(raw: bytes, options: BodyOptions) -> Any:
    features: dict[str, Any] = {}
    if options.xml_strip_namespaces:
        features["postprocessor"] = _local_names
    if options.xml_force_list:
        features["force_list"] = _ElementNames(options.xml_force_list)
    try:
        result = xmltodict.parse(raw, expat=_SafeExpat, disable_entities=True, **features)
    except _Refused as exc:
        raise BodyError(f"The XML body contains {exc}.") from None
    except expat.ExpatError as exc:
        message = expat.ErrorString(exc.code) if exc.code else str(exc)
        raise BodyError(
            f"Malformed XML body: {message} at line {exc.lineno}, column {exc.offset + 1}."
        ) from None
    except ValueError as exc:
        raise BodyError(f"The XML body was refused: {exc}.") from None
    depth = _xml_depth(result)
    if depth > MAX_DEPTH:
        raise BodyError(f"The XML body is nested {depth} levels deep; at most {MAX_DEPTH} allowed.")
    return result


def _xml_depth(value: Any) -> int:
    """Depth of the parsed tree, iteratively (a deep document must not recurse here either)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if level > deepest:
            deepest = level
            if deepest > MAX_DEPTH:
                return deepest
        if isinstance(node, dict):
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, level) for child in node)
    return deepest
