"""Domain errors carry a code and parameters; the bot and CLI render them from the text catalogue
(`errors.<code>`), so storage stays free of user-facing strings and of Telegram."""

from __future__ import annotations

from typing import Any


class DomainError(ValueError):
    """A rule said no (a ValueError, so pydantic validators report it per field).

    `code` names the text `errors.<code>`; `params` fill its placeholders.
    """

    def __init__(self, code: str, /, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params

    def __repr__(self) -> str:
        return f"DomainError({self.code!r}, {self.params!r})"


class NotFound(DomainError):
    """`NotFound("school", code=...)` renders `errors.not_found.school`."""

    def __init__(self, entity: str, /, **params: Any) -> None:
        super().__init__(f"not_found.{entity}", **params)


class AccessDenied(DomainError):
    """The person may not do this; `code` says why."""


class Conflict(DomainError):
    """The database said no (a race lost, a duplicate): nothing was changed."""
