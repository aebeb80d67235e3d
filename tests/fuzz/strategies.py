"""Hypothesis strategies shared by the fuzz tests: JSON values, request bodies, content types."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

__all__ = ["CONTENT_TYPES", "bodies", "content_types", "json_values"]

CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=utf-16",
    "application/json; charset=latin-1",
    "application/vnd.api+json",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=iso-8859-1",
    "application/xml",
    "text/xml",
    "application/atom+xml",
    "text/plain",
    "text/plain; charset=utf-16",
    "text/csv; charset=klingon",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "image/png",
    "",
]

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)

json_values: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
"""Any JSON value (no NaN or infinities: JSON has none)."""

content_types: st.SearchStrategy[str] = st.sampled_from(CONTENT_TYPES) | st.text(max_size=40)
"""The main content types, with and without charsets, plus arbitrary header text."""


def _mutated(data: bytes, cut: int, insert: bytes) -> bytes:
    at = cut % (len(data) + 1)
    return data[:at] + insert + data[at + 1 :]


bodies: st.SearchStrategy[bytes] = st.one_of(
    st.binary(max_size=2048),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(
        _mutated,
        json_values.map(lambda v: json.dumps(v).encode()),
        st.integers(min_value=0),
        st.sampled_from([b"", b"{", b"]", b'"', b"\\", b"\xff", b"NaN", b"\\ud800", b"\x00"]),
    ),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.builds(
        lambda tag, text: f"<{tag}>{text}</{tag}>".encode(),
        st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True),
        st.text(max_size=50),
    ),
    st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=8).map(
        lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")
    ),
)
"""Request bodies: random bytes, JSON, broken JSON, text, XML-ish and form-ish bytes."""
