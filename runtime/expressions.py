"""Templates and JSONata expressions (stub: being implemented)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Compiled", "ExpressionLimits", "compile_value", "evaluate", "is_template", "render"]


@dataclass(frozen=True, slots=True)
class ExpressionLimits:
    """Bounds on one evaluation."""

    timeout_ms: int = 250
    max_depth: int = 150
    max_output_bytes: int = 1_048_576


class Compiled:
    static: bool = True
    references: frozenset[str] = frozenset()

    def render(self, scope: Mapping[str, Any], limits: ExpressionLimits) -> Any:
        raise NotImplementedError


def compile_value(value: Any) -> Compiled:
    raise NotImplementedError


def evaluate(expression: str, scope: Mapping[str, Any], limits: ExpressionLimits) -> Any:
    raise NotImplementedError


def render(value: Any, scope: Mapping[str, Any], limits: ExpressionLimits) -> Any:
    raise NotImplementedError


def is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value
