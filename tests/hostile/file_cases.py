"""The hostile catalogue of integration files, as data: one row per file and what must follow.

Each file goes through the loader (`runtime.files.load_integration`), `flowyard validate` and the
server's import (`POST /api/integrations`). `expect`:

- `unreadable`: the loader raises `IntegrationFileError`; validate exits 2; import answers 422;
- `invalid`: the file loads, validation finds errors; validate exits 2; import answers 422;
- `valid`: loads, validates (exit 0) and imports (201).

Every `fragments` entry must appear in all three answers. `fixed_by` names the issue-19 fix a row
needs; until that fix is merged the row fails.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

__all__ = ["FILES", "FileCase"]


@dataclass(frozen=True)
class FileCase:
    """One integration file and what the loader, `flowyard validate` and the import must say."""

    id: str
    text: str | bytes
    expect: Literal["unreadable", "invalid", "valid"]
    fragments: tuple[str, ...] = ()
    suffix: str = ".yaml"
    fixed_by: str = ""


def _file(
    steps: str = "{id: s, action: transform.object, inputs: {fields: {a: 1}}}",
    edges: str = "{from: trigger, to: s}",
    trigger: str = "",
    top: str = "",
) -> str:
    """A one-flow integration; `steps` and `edges` are `;`-separated YAML flow mappings."""
    step_lines = "".join(f"      - {s.strip()}\n" for s in steps.split(";"))
    edge_lines = "".join(f"      - {e.strip()}\n" for e in edges.split(";"))
    return (
        f"name: Probe {zlib.crc32((steps + edges + trigger + top).encode())}\n{top}flows:\n"
        f"  - id: f\n    name: F\n"
        f"    trigger: {{id: trigger, action: webhook.webhook{trigger}}}\n"
        f"    steps:\n{step_lines}    edges:\n{edge_lines}"
    )


def _step(expression: str) -> str:
    """A transform step whose one field is `{{ expression }}` (YAML single quotes)."""
    template = "{{ " + expression + " }}"
    return f"{{id: s, action: transform.object, inputs: {{fields: {{a: '{template}'}}}}}}"


STATIC_FIX = "7: static inputs validated at validate/import/deploy"
_BIG_TEXT = "x" * (4 * 1_048_576)

# fmt: off
FILES: list[FileCase] = [
    # --- what the YAML and JSON readers refuse ---------------------------------------------------
    FileCase("yaml-alias-bomb", "a: &a [lol, lol, lol]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n",
             "unreadable", ("aliases are not allowed",)),
    FileCase("yaml-python-object-tag", 'name: x\nflows: !!python/object/apply:os.system ["true"]\n',
             "unreadable", ("could not determine a constructor",)),
    FileCase("yaml-binary-tag", "name: !!binary aGk=\nflows: []\n", "unreadable",
             ("could not determine a constructor",)),
    FileCase("yaml-duplicate-key", "name: a\nname: b\nflows: []\n", "unreadable",
             ("appears twice",)),
    FileCase("yaml-tab-indentation", "name: a\nflows:\n\t- x\n", "unreadable",
             ("cannot start any token",)),
    FileCase("yaml-10k-nested", "name: " + "[" * 10_000 + "]" * 10_000 + "\n", "unreadable",
             ("nesting depth",)),
    FileCase("yaml-lone-surrogate-escape", _file().replace("name: Probe", 'name: "x\\ud800'),
             "unreadable", ("invalid Unicode character escape",)),
    FileCase("yaml-a-list", "- a\n", "unreadable", ("holds a list",)),
    FileCase("yaml-empty", "", "unreadable", ("empty",)),
    FileCase("json-nan", '{"name": "a", "flows": [], "x": NaN}', "unreadable", ("NaN",),
             suffix=".json"),
    FileCase("json-duplicate-key", '{"name": "a", "name": "b", "flows": []}', "unreadable",
             ("appears twice",), suffix=".json"),
    FileCase("json-100k-nested", "[" * 100_000 + "]" * 100_000, "unreadable",
             ("nested too deeply",), suffix=".json"),
    FileCase("not-utf8", b"name: caf\xe9\nflows: []\n", "unreadable", ("UTF-8",)),
    FileCase("over-5-mib", "name: a\ndescription: " + "x" * (5 * 1_048_576) + "\nflows: []\n",
             "unreadable"),
    # --- what the model refuses, by where it is ---------------------------------------------------
    FileCase("unknown-top-level-key", _file(top="nope: 1\n"), "unreadable", ("nope: unknown key",)),
    FileCase("flows-not-a-list", "name: a\nflows: 5\n", "unreadable", ("flows: should be a list",)),
    FileCase("name-missing", "flows: []\n", "unreadable", ("name: required key is missing",)),
    FileCase("step-id-path-traversal",
             _file("{id: ../etc, action: transform.object}", "{from: trigger, to: ../etc}"),
             "unreadable", ("../etc",)),
    FileCase("retry-zero-attempts",
             _file("{id: s, action: transform.object, inputs: {fields: {a: 1}}, "
                   "retry: {max_attempts: 0}}"),
             "unreadable", ("max_attempts",)),
    # --- what validation refuses, by step ---------------------------------------------------------
    FileCase("edges-form-a-cycle",
             _file("{id: a, action: transform.object}; {id: b, action: transform.object}",
                   "{from: trigger, to: a}; {from: a, to: b}; {from: b, to: a}"),
             "invalid", ("form a cycle",)),
    FileCase("edge-to-a-missing-step", _file(edges="{from: trigger, to: s}; {from: s, to: ghost}"),
             "invalid", ("ghost",)),
    FileCase("unknown-component", _file("{id: s, action: nope.nothing}"), "invalid",
             ("component 'nope' is not installed",)),
    FileCase("expression-does-not-compile",
             _file("{id: s, action: transform.object, inputs: {fields: {a: '{{ $$$ ( }}'}}}"),
             "invalid", ("does not compile",)),
    FileCase("regex-lookahead", _file(_step('$contains("ab", /(?=a)a/)')),
             "invalid", ("Step 's'",), fixed_by="2: lookaround refused at compile"),
    FileCase("regex-backreference", _file(_step('$replace("aa", /(a)\\1/, "b")')),
             "invalid", ("Step 's'",), fixed_by="2: backreferences refused at compile"),
    FileCase("static-http-method-and-url-wrong-types",
             _file("{id: fetch, action: http.request, inputs: {method: 5, url: 12}}",
                   "{from: trigger, to: fetch}"),
             "invalid", ("fetch", "method"), fixed_by=STATIC_FIX),
    FileCase("static-http-timeout-not-a-number",
             _file("{id: fetch, action: http.request, inputs: {url: 'http://x', timeout: soon}}",
                   "{from: trigger, to: fetch}"),
             "invalid", ("fetch", "timeout"), fixed_by=STATIC_FIX),
    FileCase("static-trigger-method-unknown", _file(trigger=", inputs: {methods: [BREW]}"),
             "invalid", ("trigger", "methods"), fixed_by=STATIC_FIX),
    # --- hostile but valid ---------------------------------------------------------------------
    FileCase("utf8-bom", "\ufeff" + _file(), "valid"),
    FileCase("4-mib-description", _file(top=f"description: {_BIG_TEXT}\n"), "valid"),
    FileCase("templated-input-not-checked-statically",
             _file("{id: fetch, action: http.request, inputs: {method: '{{ trigger.body.m }}', "
                   "url: 'http://127.0.0.1:9'}}", "{from: trigger, to: fetch}"),
             "valid"),
]
# fmt: on
