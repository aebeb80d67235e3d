"""Errors services raise; routes turn them into HTTP answers (never a 500 for a user's mistake)."""

from __future__ import annotations

from typing import Any

__all__ = ["Conflict", "InvalidInput", "NotFound", "ServiceError"]


class ServiceError(Exception):
    """A user-facing failure: `status` is the HTTP status, `details` a JSON-able explanation."""

    status = 400

    def __init__(self, message: str, *, details: Any = None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.hint = hint

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.hint:
            body["hint"] = self.hint
        if self.details is not None:
            body["details"] = self.details
        return body


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class InvalidInput(ServiceError):
    """The request is well-formed but its content is wrong; `details` maps fields to problems."""

    status = 422
