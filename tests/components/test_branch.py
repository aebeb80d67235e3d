"""branch.value and branch.expression: ports, equality rules, every operator, errors."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from components.api import Result, StepConfigError
from components.builtin.branch import (
    BranchExpression,
    BranchExpressionInputs,
    BranchValue,
    BranchValueInputs,
    Condition,
    ConditionGroup,
    values_equal,
)
from tests.components.conftest import Harness

# -- equality --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (1, 1.0),
        (5, "5"),
        ("5", 5),
        (5, " 5.0 "),
        (1.5, "1.50"),
        (-2, "-2"),
        (1000, "1e3"),
        ("abc", "abc"),
        (True, True),
        (None, None),
        ([1, "2"], [1.0, 2]),
        ({"a": 1, "b": [True]}, {"b": [True], "a": "1"}),
    ],
)
def test_values_equal(left: Any, right: Any) -> None:
    assert values_equal(left, right)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("1.0", "1"),  # two strings compare as text
        (True, 1),
        (True, "true"),
        (False, 0),
        (None, ""),
        (None, 0),
        (0, ""),
        (5, "5 apples"),
        (5, "0x5"),
        (5, "nan"),
        ("Abc", "abc"),
        ([1], [1, 1]),
        ({"a": 1}, {"a": 1, "b": 2}),
        ([1], {"0": 1}),
    ],
)
def test_values_not_equal(left: Any, right: Any) -> None:
    assert not values_equal(left, right)


# -- branch.value ----------------------------------------------------------------------------------


async def run_value(harness: Harness, value: Any, cases: list[dict[str, Any]]) -> Result:
    inputs = BranchValueInputs.model_validate({"value": value, "cases": cases})
    result = await BranchValue().run(inputs, harness.ctx())
    assert isinstance(result, Result)
    return result


CASES: list[dict[str, Any]] = [
    {"port": "created", "equals": "account.created"},
    {"port": "five", "equals": 5},
    {"port": "also_five", "equals": "5"},
    {"port": "obj", "equals": {"a": [1, 2]}},
]


@pytest.mark.parametrize(
    ("value", "port"),
    [
        ("account.created", "created"),
        (5, "five"),
        ("5", "five"),  # first matching case wins
        (5.0, "five"),
        ({"a": [1.0, "2"]}, "obj"),
        ("account.deleted", "else"),
        (None, "else"),
        (True, "else"),
    ],
)
async def test_value_branch_takes_first_matching_case(
    harness: Harness, value: Any, port: str
) -> None:
    result = await run_value(harness, value, CASES)
    assert result.port == port
    assert result.output == {"value": value, "matched": port}


async def test_value_branch_without_cases_takes_else(harness: Harness) -> None:
    assert (await run_value(harness, "x", [])).port == "else"


@pytest.mark.parametrize(
    ("cases", "message"),
    [
        ([{"port": "else", "equals": 1}], "built in"),
        ([{"port": "a", "equals": 1}, {"port": "a", "equals": 2}], "used by two cases"),
        ([{"port": "", "equals": 1}], "at least 1 character"),
        ([{"port": "a", "equals": 1, "extra": 2}], "Extra inputs"),
    ],
)
def test_value_cases_are_validated(cases: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BranchValueInputs.model_validate({"value": 1, "cases": cases})


@pytest.mark.parametrize(
    ("inputs", "ports"),
    [
        ({"cases": [{"port": "a"}, {"port": "b", "equals": 2}]}, ("a", "b", "else")),
        ({"cases": [{"port": "a"}, {"port": "a"}, {"port": "else"}]}, ("a", "else")),
        ({"cases": [{"port": 3}, "junk", None, {"equals": 1}, {"port": ""}]}, ("else",)),
        ({"cases": "{{ config.cases }}"}, ("else",)),
        ({}, ("else",)),
    ],
)
def test_output_ports_read_raw_inputs(inputs: dict[str, Any], ports: tuple[str, ...]) -> None:
    assert BranchValue.output_ports(inputs) == ports


# -- branch.expression -----------------------------------------------------------------------------


async def run_expr(harness: Harness, data: dict[str, Any]) -> Result:
    result = await BranchExpression().run(
        BranchExpressionInputs.model_validate(data), harness.ctx()
    )
    assert isinstance(result, Result)
    return result


async def check(harness: Harness, left: Any, operator: str, right: Any = None) -> bool:
    data = {"groups": [{"conditions": [{"left": left, "operator": operator, "right": right}]}]}
    result = await run_expr(harness, data)
    assert result.port == ("true" if result.output["result"] else "false")
    return bool(result.output["result"])


@pytest.mark.parametrize(
    ("left", "operator", "right", "expected"),
    [
        (5, "==", "5", True),
        ("a", "==", "b", False),
        (5, "!=", 6, True),
        (5, "!=", 5.0, False),
        (3, "<", 10, True),
        ("10", "<", "9", False),  # numeric strings order numerically
        (10, "<", 10, False),
        (10, "<=", "10", True),
        (11, "<=", 10, False),
        (2.5, ">", 2, True),
        ("2024-01-02", ">", "2024-03-01", False),  # ISO dates order as text
        ("b", ">=", "a", True),
        (1, ">=", 2, False),
        ("order shipped", "contains", "ship", True),
        ("order shipped", "contains", "paid", False),
        ("v12", "contains", 12, True),
        ([1, "2", 3], "contains", 2, True),
        ([1, 3], "contains", 2, False),
        ({"email": "a@b"}, "contains", "email", True),
        ({"email": "a@b"}, "contains", "phone", False),
        (None, "contains", "x", False),
        ("hello", "not contains", "z", True),
        (["a"], "not contains", "a", False),
        (None, "not contains", "x", True),
        ("INV-001", "starts with", "INV-", True),
        ("PO-001", "starts with", "INV-", False),
        (None, "starts with", "INV-", False),
        ("report.csv", "ends with", ".csv", True),
        (2024, "ends with", 24, True),
        ("report.pdf", "ends with", ".csv", False),
        (0, "exists", None, True),
        (None, "exists", None, False),
        (None, "not exists", None, True),
        ("", "not exists", None, False),
        ("", "is empty", None, True),
        ([], "is empty", None, True),
        ({}, "is empty", None, True),
        (None, "is empty", None, True),
        (0, "is empty", None, False),
        (" ", "is empty", None, False),
        ([0], "is not empty", None, True),
        ("", "is not empty", None, False),
        ("INV-0042", "matches", r"^INV-\d+$", True),
        ("inv-0042", "matches", r"^INV-\d+$", False),
        ("order 42 shipped", "matches", r"\d+", True),  # search, not full match
        (42, "matches", r"^4", True),
        (None, "matches", r".*", False),
    ],
)
async def test_every_operator(
    harness: Harness, left: Any, operator: str, right: Any, expected: bool
) -> None:
    assert await check(harness, left, operator, right) is expected


def group(match: str, *results: bool) -> dict[str, Any]:
    return {
        "match": match,
        "conditions": [{"left": r, "operator": "==", "right": True} for r in results],
    }


@pytest.mark.parametrize(
    ("match", "groups", "expected"),
    [
        ("all", [group("all", True, True), group("any", False, True)], True),
        ("all", [group("all", True, False), group("any", True)], False),
        ("any", [group("all", True, False), group("any", False, True)], True),
        ("any", [group("all", False), group("any", False, False)], False),
    ],
)
async def test_all_and_any(
    harness: Harness, match: str, groups: list[dict[str, Any]], expected: bool
) -> None:
    result = await run_expr(harness, {"match": match, "groups": groups})
    assert result.port == ("true" if expected else "false")
    assert result.output["result"] is expected


async def test_output_lists_every_condition(harness: Harness) -> None:
    result = await run_expr(harness, {"match": "any", "groups": [group("any", True, False)]})
    assert result.output == {
        "result": True,
        "conditions": [
            {"group": 1, "condition": 1, "operator": "==", "result": True},
            {"group": 1, "condition": 2, "operator": "==", "result": False},
        ],
    }


@pytest.mark.parametrize(
    ("left", "operator", "right", "message"),
    [
        ("abc", "<", 5, "Condition 2 of group 1: cannot compare 'abc' with 5"),
        (None, ">", 1, "Condition 2 of group 1: cannot compare null with 1"),
        (True, ">=", False, "cannot compare true with false"),
        ([1], "<", [2], "cannot compare"),
        ("x", "matches", "(unclosed", "Condition 2 of group 1: '(unclosed' is not a valid regular"),
        ("x", "matches", 5, "pattern must be a regular expression as text"),
        ("x", "matches", "a" * 501, "longer than 500 characters"),
        ("a" * 10_001, "matches", "a", "longer than 10000 characters"),
        ("x", "matches", r"(a)\1", "Condition 2 of group 1: the pattern .* uses backreference"),
        ("x", "matches", r"a(?=b)", "uses lookahead"),
        (5, "contains", 5, "cannot check whether 5 contains 5"),
        ({"a": 1}, "contains", 1, "not a key name"),
        ("abc", "contains", None, "must be text or a number, not null"),
        (["a"], "starts with", "a", "must be text or a number"),
    ],
)
async def test_misconfigured_conditions_name_the_condition(
    harness: Harness, left: Any, operator: str, right: Any, message: str
) -> None:
    data = {
        "groups": [
            {
                "match": "any",
                "conditions": [
                    {"left": 1, "operator": "==", "right": 1},
                    {"left": left, "operator": operator, "right": right},
                ],
            }
        ]
    }
    with pytest.raises(StepConfigError, match=message.replace("(", r"\(").replace("+", r"\+")):
        await run_expr(harness, data)


async def test_patterns_run_in_linear_time(harness: Harness) -> None:
    # Python's `re` took about 100 s on the first one; RE2 needs no guard against such patterns.
    assert not await check(harness, "a" * 30 + "!", "matches", r"^(a+)+$")
    assert await check(harness, "a" * 30, "matches", r"^(a+)+$")
    assert not await check(harness, "word " * 20 + "!", "matches", r"^(\w+\s?)*$")
    assert await check(harness, "123-456-", "matches", r"^(\d{3}-)+$")
    assert await check(harness, "a,b,c", "matches", r"^(\w+,){0,50}\w+$")


@pytest.mark.parametrize(
    "data",
    [
        {"groups": []},
        {"groups": [{"conditions": []}]},
        {"groups": [{"conditions": [{"left": 1, "operator": "equals", "right": 1}]}]},
        {"match": "some", "groups": [{"conditions": [{"left": 1}]}]},
    ],
)
def test_expression_inputs_are_validated(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BranchExpressionInputs.model_validate(data)


def test_condition_models_carry_the_ui_hint() -> None:
    assert Condition.model_json_schema()["x-ui"] == "conditions"
    assert ConditionGroup.model_json_schema()["x-ui"] == "conditions"
    schema = BranchExpressionInputs.model_json_schema()
    assert schema["properties"]["groups"]["x-ui"] == "conditions"
    assert BranchExpression.output_ports({}) == ("true", "false")
