"""What a rule says about a record: a refusal or a warning, as a catalogue code and its values."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from storage.errors import DomainError


class Finding(BaseModel):
    """A refusal or a warning: `code` names the catalogue text `errors.<code>`, `params` fill it."""

    code: str
    params: dict[str, Any] = Field(default_factory=dict)

    def as_error(self) -> DomainError:
        """As a DomainError, so `bot.errors.render_error` renders it like any other."""
        return DomainError(self.code, **self.params)


class WarningsToConfirm(DomainError):
    """Saving needs the person's check of these warnings first; the error itself says the first one."""

    def __init__(self, warnings: list[Finding]) -> None:
        super().__init__(warnings[0].code, **warnings[0].params)
        self.warnings = warnings


class HandoverWarnings(WarningsToConfirm):
    """A handover's warnings (a second programme device, …): the chat's «Tôi đã kiểm tra, vẫn bàn giao»."""


class WarningsNotConfirmed(WarningsToConfirm):
    """A dose's warnings (a short interval, a missing earlier dose): confirmed by a second button."""
