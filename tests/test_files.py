"""Integration files: strict reading with errors named by place, stable writing, the schema."""

from __future__ import annotations

import difflib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import FlowError
from runtime.files import (
    MAX_FILE_BYTES,
    IntegrationFileError,
    dump_integration,
    integration_schema,
    load_integration,
    parse_document,
    parse_integration,
)
from runtime.model import Integration, Position

EXAMPLE = Path(__file__).parent.parent / "examples" / "warehouse-import.yaml"

MINIMAL = """\
name: Minimal
flows:
  - id: main
    trigger: {id: start, action: manual.manual}
    steps:
      - id: first
        action: log.message
        inputs: {message: hi}
    edges:
      - {from: start, to: first}
"""


def errors_of(text: str, source: str = "w.yaml") -> list[str]:
    with pytest.raises(IntegrationFileError) as caught:
        parse_integration(text, source)
    assert caught.value.message == "\n".join(caught.value.errors)
    return caught.value.errors


def test_file_error_is_a_flow_error_with_its_own_kind() -> None:
    error = IntegrationFileError("w.yaml", ["name: required key is missing"])
    assert isinstance(error, FlowError)
    assert error.kind == "invalid_file"
    assert error.message == "w.yaml: name: required key is missing"
    assert "flowyard schema" in error.hint


def test_unknown_keys_at_every_depth_are_all_named_by_path_and_id() -> None:
    text = """\
name: W
colour: blue
flows:
  - id: warehouse_update
    trigger: {id: receive, action: webhook.webhook}
    stesp: []
    steps:
      - id: each
        action: loop.items
      - id: route
        action: branch.value
        on_eror: fail
      - id: send
        action: http.request
        retry: {max_attempts: 3, jiter: true}
    edges:
      - {from: receive, too: each}
layout:
  warehouse_update:
    receive: {x: 1, y: 2, z: 3}
"""
    errors = errors_of(text)
    allowed_step_keys = "id, name, action, inputs, on_error, retry, timeout, notes"
    assert errors == [
        "w.yaml: colour: unknown key; allowed here: name, description, version, config, "
        "connections, flows, endpoint, errors, testing, layout (line 2)",
        "w.yaml: flows[0] (warehouse_update) > stesp: unknown key; did you mean 'steps'? "
        "allowed here: id, name, description, trigger, steps, edges, settings, tests, "
        "test_responses (line 6)",
        "w.yaml: flows[0] (warehouse_update) > steps[1] (route) > on_eror: unknown key; did you "
        f"mean 'on_error'? allowed here: {allowed_step_keys} (line 12)",
        "w.yaml: flows[0] (warehouse_update) > steps[2] (send) > retry > jiter: unknown key; "
        "did you mean 'jitter'? allowed here: max_attempts, backoff, delay, max_delay, jitter "
        "(line 15)",
        "w.yaml: flows[0] (warehouse_update) > edges[0] > to: required key is missing (line 17)",
        "w.yaml: flows[0] (warehouse_update) > edges[0] > too: unknown key; did you mean 'to'? "
        "allowed here: from, to, port (line 17)",
        "w.yaml: layout > warehouse_update > receive > z: unknown key; allowed here: x, y "
        "(line 20)",
    ]


def test_errors_in_json_files_are_named_by_path_without_lines() -> None:
    data = {"name": "W", "flows": [{"id": "main", "trigger": {"id": "t", "action": "a.b", "x": 1}}]}
    assert errors_of(json.dumps(data), "w.json") == [
        "w.json: flows[0] (main) > trigger > x: unknown key; allowed here: id, name, action, "
        "inputs, on_error, retry, timeout, notes"
    ]


def test_wrong_types_and_bounds_name_the_place_and_the_value() -> None:
    text = """\
name: W
version: two
flows:
  - id: warehouse_update
    trigger: {id: receive, action: webhook.webhook}
    steps:
      - id: each
        action: loop.items
        timeout: soon
      - id: route
        action: branch.value
        on_error: ignore
      - id: send
        action: http.request
        retry: {max_attempts: 0}
      - [not, a, step]
    settings: 5
"""
    errors = errors_of(text)
    assert errors[0].startswith("w.yaml: version: Input should be a valid integer")
    assert errors[0].endswith('(got "two") (line 2)')
    where = "w.yaml: flows[0] (warehouse_update)"
    assert errors[1].startswith(f"{where} > steps[0] (each) > timeout: Input should be a valid")
    assert errors[2] == (
        f"{where} > steps[1] (route) > on_error: Input should be 'fail' or 'continue' "
        '(got "ignore") (line 12)'
    )
    assert errors[3] == (
        f"{where} > steps[2] (send) > retry > max_attempts: "
        "Input should be greater than or equal to 1 (got 0) (line 15)"
    )
    assert errors[4] == (
        f"{where} > steps[3]: should be a mapping (key: value), not a list (line 16)"
    )
    assert errors[5] == (
        f"{where} > settings: should be a mapping (key: value), not a number (line 17)"
    )
    assert len(errors) == 6


def test_a_list_where_a_mapping_belongs_and_bad_ids() -> None:
    errors = errors_of("name: W\nflows: {id: main}\n")
    assert errors == ["w.yaml: flows: should be a list, not a mapping (line 2)"]
    errors = errors_of("name: W\nflows:\n  - id: 2fast\n    trigger: {id: t, action: a.b}\n")
    assert errors[0].startswith("w.yaml: flows[0] (2fast) > id: String should match pattern")


def test_duplicate_step_id() -> None:
    text = MINIMAL + "      - {from: start, to: first}\n"
    text = text.replace(
        "        inputs: {message: hi}\n",
        "        inputs: {message: hi}\n      - id: first\n        action: log.message\n",
    )
    assert errors_of(text) == [
        "w.yaml: flows[0] (main): step id 'first' is used twice; step ids must be unique (line 3)"
    ]


def test_yaml_syntax_error_names_line_and_column() -> None:
    text = "name: W\nflows:\n  - id: main\n    trigger: {id: t, action: manual.manual\n"
    (error,) = errors_of(text, "broken.yaml")
    assert error.startswith("broken.yaml: line 5, column 1: ")
    (error,) = errors_of("name: W\n  flows: []\n", "indent.yaml")
    assert error.startswith("indent.yaml: line 2, column 8: mapping values are not allowed")


def test_duplicate_keys_are_refused_not_silently_dropped() -> None:
    (error,) = errors_of("name: W\nflows: []\nname: V\n")
    assert error.startswith("w.yaml: line 3, column 1: key 'name' appears twice")
    assert "first at line 1, column 1" in error


def test_aliases_are_refused_and_an_alias_bomb_is_cheap() -> None:
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)
    ]
    bomb = "\n".join(levels) + "\n"  # 9**9 strings once expanded
    started = time.perf_counter()
    (error,) = errors_of(bomb, "bomb.yaml")
    # Expanded, the bomb is 387 million strings (minutes and gigabytes): refused before that.
    assert time.perf_counter() - started < 10
    assert error.startswith("bomb.yaml: line 1, column 4: ")
    assert "aliases are not allowed" in error
    (error,) = errors_of("name: &n W\ndescription: *n\n")
    assert "aliases are not allowed" in error


def test_anchors_without_aliases_and_merge_free_yaml_are_fine() -> None:
    assert parse_integration("name: &n W\n").name == "W"


def test_yaml_12_scalars_keep_no_and_dates_as_text_and_exotic_tags_are_refused() -> None:
    data = parse_document("a: no\nb: yes\nc: 2024-01-01\nd: true\ne: 1.5\nf: ~\ng: off\n")
    assert data == {
        "a": "no",
        "b": "yes",
        "c": "2024-01-01",
        "d": True,
        "e": 1.5,
        "f": None,
        "g": "off",
    }
    with pytest.raises(IntegrationFileError, match=r"tag:yaml\.org,2002:binary"):
        parse_document("a: !!binary aGVsbG8=\n", "x.yaml")
    with pytest.raises(IntegrationFileError, match="could not determine a constructor"):
        parse_document("a: !!python/name:os.system\n", "x.yaml")


def test_size_limit_and_nesting_limit() -> None:
    with pytest.raises(IntegrationFileError, match="larger than"):
        parse_integration("name: W\n" + "#" * MAX_FILE_BYTES)
    with pytest.raises(IntegrationFileError, match=r"nest"):
        parse_document("[" * 100_000, "deep.yaml")
    with pytest.raises(IntegrationFileError, match=r"nest"):
        parse_document("[" * 100_000 + "]" * 100_000, "deep.json")


def test_big_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(IntegrationFileError) as caught:
        load_integration(path)
    assert caught.value.errors == [
        f"huge.yaml: the file is {MAX_FILE_BYTES + 1} bytes; the limit is {MAX_FILE_BYTES}"
    ]


def test_missing_empty_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(IntegrationFileError, match="no such file"):
        load_integration(tmp_path / "nope.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(IntegrationFileError, match=r"empty\.yaml: the file is empty"):
        load_integration(tmp_path / "empty.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(IntegrationFileError, match=r"list\.yaml: the file holds a list"):
        load_integration(tmp_path / "list.yaml")
    (tmp_path / "latin1.yaml").write_bytes("name: Caf\xe9\n".encode("latin-1"))
    with pytest.raises(IntegrationFileError, match="not UTF-8"):
        load_integration(tmp_path / "latin1.yaml")


def test_json_files_are_read_too_with_their_own_errors() -> None:
    integration = parse_integration(MINIMAL)
    as_json = json.dumps(integration.model_dump(mode="json", by_alias=True), indent="\t")
    assert parse_integration(as_json, "min.json") == integration
    assert parse_integration(as_json) == integration  # detected by its first character
    (error,) = errors_of('{\n  "name": "W",\n  "flows": [}\n', "bad.json")
    assert error == ("bad.json: line 3, column 13: Expecting value (invalid JSON)")
    (error,) = errors_of('{"name": "W", "name": "V"}', "dupe.json")
    assert "key 'name' appears twice" in error
    (error,) = errors_of('{"name": "W", "version": NaN}', "nan.json")
    assert "NaN is not a JSON value" in error


# --- writing --------------------------------------------------------------------------------


def rich_integration() -> Integration:
    return Integration.model_validate(
        {
            "name": "Überall ✓",
            "description": "Line one\nline two\n",
            "version": 3,
            "config": [
                {"key": "base_url", "required": True},
                {"key": "limit", "type": "integer", "default": 10, "description": "Max."},
                {"key": "mapping", "type": "json", "default": {"a": [1, 2.5, None]}},
            ],
            "connections": [{"key": "crm", "type": "bearer", "required": False}],
            "flows": [
                {
                    "id": "main",
                    "name": "Main",
                    "trigger": {
                        "id": "hook",
                        "action": "webhook.webhook",
                        "inputs": {"sync": True},
                    },
                    "steps": [
                        {
                            "id": "shape",
                            "action": "transform.object",
                            "notes": "  leading spaces\nand trailing  \n",
                            "inputs": {
                                "fields": {
                                    "yes": "yes",
                                    "no": "no",
                                    "date": "2024-01-01",
                                    "number_text": "123",
                                    "empty": "",
                                    "null_text": "null",
                                    "null": None,
                                    "tpl": "{{ trigger.body.a & ': ' & 'b' }}",
                                    "multi": "{{\n  $sum(steps.x.output)\n}}",
                                    "float": 1e20,
                                    "list": [{"a": 1}, [], {}],
                                    "colon": "a: b # not a comment",
                                    "unicode_breaks": "nel\x85ls\u2028ps\u2029bom\ufeff",
                                    "block_with_nel": "one\ntwo\x85",
                                    "tab": "\tx",
                                }
                            },
                            "on_error": "continue",
                            "retry": {"max_attempts": 5},
                            "timeout": 2.5,
                        }
                    ],
                    "edges": [{"from": "hook", "to": "shape"}],
                    "settings": {"timeout": 30},
                },
                {"id": "other", "trigger": {"id": "go", "action": "manual.manual"}},
            ],
            "layout": {
                "ghost": {"a": {"x": 1, "y": 2}},
                "main": {
                    "shape": {"x": 10.5, "y": -3},
                    "hook": {"x": 0, "y": 0},
                    "gone": {"x": 1, "y": 1},
                },
            },
        }
    )


@pytest.mark.parametrize(
    "integration", [rich_integration(), load_integration(EXAMPLE)], ids=["rich", "example"]
)
def test_round_trip_is_equal_and_byte_stable(integration: Integration) -> None:
    text = dump_integration(integration)
    again = parse_integration(text, "dumped.yaml")
    assert again == integration
    assert dump_integration(again) == text


def test_the_example_file_is_in_the_written_form() -> None:
    text = EXAMPLE.read_text()
    assert dump_integration(load_integration(EXAMPLE)) == text


def test_dump_orders_keys_like_the_model_and_omits_defaults() -> None:
    text = dump_integration(parse_integration(MINIMAL))
    assert text == (
        "name: Minimal\n"
        "version: 1\n"
        "flows:\n"
        "  - id: main\n"
        "    trigger:\n"
        "      id: start\n"
        "      action: manual.manual\n"
        "    steps:\n"
        "      - id: first\n"
        "        action: log.message\n"
        "        inputs:\n"
        "          message: hi\n"
        "    edges:\n"
        "      - from: start\n"
        "        to: first\n"
    )


def test_dump_writes_layout_last_one_line_per_node_in_flow_order() -> None:
    text = dump_integration(rich_integration())
    layout = text[text.index("\nlayout:\n") + 1 :]
    assert layout == (
        "layout:\n"
        "  main:\n"
        "    hook: {x: 0, y: 0}\n"
        "    shape: {x: 10.5, y: -3}\n"
        "    gone: {x: 1, y: 1}\n"
        "  ghost:\n"
        "    a: {x: 1, y: 2}\n"
    )
    assert "retry:\n          max_attempts: 5\n          backoff: exponential\n" in text


def diff_lines(before: str, after: str) -> list[tuple[int, str]]:
    """(line number in `before`, changed line) for every removed or added line."""
    changed: list[tuple[int, str]] = []
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines())
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            changed += [(i, f"- {before.splitlines()[i]}") for i in range(i1, i2)]
            changed += [(i1, f"+ {after.splitlines()[j]}") for j in range(j1, j2)]
    return changed


def moved(integration: Integration, flow: str, step: str, x: float, y: float) -> Integration:
    layout: dict[str, Any] = {f: dict(steps) for f, steps in integration.layout.items()}
    layout[flow][step] = Position(x=x, y=y)
    return integration.model_copy(update={"layout": layout})


def test_moving_a_node_diffs_one_layout_line_only() -> None:
    before = load_integration(EXAMPLE)
    after = moved(before, "warehouse_update", "route", 500, 140)
    old, new = dump_integration(before), dump_integration(after)
    layout_start = old.splitlines().index("layout:")
    changes = diff_lines(old, new)
    assert [c for _, c in changes] == [
        "-     route: {x: 480, y: 120}",
        "+     route: {x: 500, y: 140}",
    ]
    assert all(line > layout_start for line, _ in changes)


def test_a_logic_change_never_touches_the_layout() -> None:
    text = EXAMPLE.read_text()
    changed_text = text.replace("quantity }}'", "quantity * 2 }}'", 1)
    assert changed_text != text
    old = dump_integration(load_integration(EXAMPLE))
    new = dump_integration(parse_integration(changed_text, "w.yaml"))
    layout_start = old.splitlines().index("layout:")
    changes = diff_lines(old, new)
    assert len(changes) == 2
    assert all(line < layout_start for line, _ in changes)


# --- schema ----------------------------------------------------------------------------------


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_schema_is_json_schema_of_the_integration() -> None:
    schema = integration_schema()
    assert json.loads(json.dumps(schema)) == schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Integration"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name"]
    assert list(schema["properties"]) == [
        "name",
        "description",
        "version",
        "config",
        "connections",
        "flows",
        "endpoint",
        "errors",
        "testing",
        "layout",
    ]
    defs = schema["$defs"]
    for ref in refs(schema):
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in defs, ref
    assert set(defs["Edge"]["properties"]) == {"from", "to", "port"}
    assert defs["Step"]["additionalProperties"] is False
    for definition in defs.values():
        assert definition.get("type") in ("object", "string", None), definition


def test_public_surface_is_pinned() -> None:
    import runtime.files

    assert runtime.files.__all__ == [
        "MAX_FILE_BYTES",
        "IntegrationFileError",
        "dump_integration",
        "integration_schema",
        "load_integration",
        "parse_document",
        "parse_integration",
    ]


def test_lone_surrogates_are_refused_naming_where_they_are() -> None:
    # JSON may spell one as an escape; it is not Unicode text, so nothing could store it.
    text = json.dumps({"name": "I", "flows": [{"id": "main", "name": "x\ud800"}]})
    with pytest.raises(IntegrationFileError) as caught:
        parse_integration(text, "i.json")
    assert caught.value.errors == [
        "i.json: flows[0] (main) > name: holds \\ud800, a lone surrogate, which is not valid "
        "Unicode text; remove it or fix the escape"
    ]
    with pytest.raises(IntegrationFileError) as caught:
        parse_integration('{"name": "I", "layout": {"k\\udfff": {}}}', "i.json")
    assert caught.value.errors[0].startswith("i.json: layout > k\\udfff: holds \\udfff, ")
    with pytest.raises(IntegrationFileError) as caught:
        parse_integration("name: I\ndescription: x\udc80\n", "i.yaml")
    assert caught.value.errors[0].startswith("i.yaml: line 2: holds \\udc80, a lone surrogate")
    for error in caught.value.errors:
        error.encode("utf-8")  # the message itself is printable anywhere
