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
