"""Property: any YAML or JSON text loads as an integration or raises `IntegrationFileError`, only
that: random text, and random documents built from the file's own vocabulary so that they reach
the model's validation, not only the parsers."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from runtime.files import IntegrationFileError, parse_integration
from tests.fuzz.strategies import json_values

KEYS = [
    "name", "description", "version", "config", "connections", "flows", "endpoint", "layout",
    "id", "trigger", "action", "inputs", "steps", "edges", "from", "to", "port", "retry",
    "max_attempts", "on_error", "timeout", "settings", "key", "type", "default", "required",
]  # fmt: skip
ACTIONS = ["webhook.webhook", "transform.object", "http.request", "branch.expression", "x.y", ""]

_leaf = st.sampled_from(ACTIONS) | json_values
documents: st.SearchStrategy[Any] = st.recursive(
    _leaf,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=6)
    ),
    max_leaves=40,
)


def _load(text: str, source: str) -> None:
    try:
        parse_integration(text, source)
    except IntegrationFileError as exc:
        problems = exc.errors
        assert problems, "the error lists no problem"


@given(document=documents, as_json=st.booleans())
def test_documents_load_or_raise_integration_file_error(document: Any, as_json: bool) -> None:
    if as_json:
        _load(json.dumps(document), "fuzz.json")
    else:
        _load(yaml.safe_dump(document, allow_unicode=True), "fuzz.yaml")


@given(text=st.text(max_size=300), source=st.sampled_from(["fuzz.yaml", "fuzz.json", "fuzz"]))
def test_any_text_loads_or_raises_integration_file_error(text: str, source: str) -> None:
    _load(text, source)
