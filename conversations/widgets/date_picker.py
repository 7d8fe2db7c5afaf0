"""The date step: a date picked («Hôm nay» / «Hôm qua») or typed, and a draft's date as people read it."""

from __future__ import annotations

from datetime import date

from conversations.common import Turn
from storage.rules.dates import show_date
from storage.schemas.parsing import parse_event_date


def shown_date(value: str | date) -> str:
    """An ISO date from the draft (or a date) as the person reads it: 15/11/2021."""
    return show_date(date.fromisoformat(value) if isinstance(value, str) else value)


def parse_picked_date(turn: Turn, *, not_before: date | None = None) -> date:
    """An event date from «Hôm nay»/«Hôm qua» (button data `today`/`yesterday`) or typed text:
    not in the future, not before the programme began (or `not_before`)."""
    return parse_event_date(turn.answer, turn.context.services.clock.today(), not_before=not_before)
