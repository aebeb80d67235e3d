"""Evaluates templates for the hostile suite in a child: `python -m tests.hostile.evaluator`.

Reads one JSON object a line, `{"template": ..., "scope": ...}`, compiles the template, renders it
under the default `ExpressionLimits` and writes one JSON line: `{"kind": "value", "value": ...}`,
or `{"kind": <error class name>, "message": ...}`. It runs apart so that an evaluation that never
returns (a backtracking regex holds the GIL) can be killed after a bound instead of hanging pytest.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from runtime.errors import ExpressionError, LimitExceeded
from runtime.expressions import ExpressionLimits, compile_value

__all__ = ["evaluate_line"]


def evaluate_line(line: str) -> dict[str, Any]:
    """The answer to one request line."""
    request = json.loads(line)
    try:
        compiled = compile_value(request["template"])
    except (ExpressionError, LimitExceeded) as exc:
        return {"kind": "compile", "error": type(exc).__name__, "message": exc.message}
    try:
        value = compiled.render(request["scope"], ExpressionLimits())
    except (ExpressionError, LimitExceeded) as exc:
        return {"kind": type(exc).__name__, "message": exc.message}
    except Exception as exc:  # the contract says this never happens: report it as such
        return {"kind": f"unexpected {type(exc).__name__}", "message": str(exc)}
    return {"kind": "value", "value": value}


def main() -> None:
    for line in sys.stdin:
        print(json.dumps(evaluate_line(line), default=repr), flush=True)


if __name__ == "__main__":
    main()
