"""A person's records for /my, whatever their kind (batches, handovers, returns, doses, needs).

`EntryService` (storage/services/entries.py) lists them, one page of every kind newest first, and the
/my handler renders each with the catalogue text of its kind.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from storage.schemas.vaccines import Finding

# A value the bot puts into the kind's text: plain, language-neutral (enum values, numbers, names).
DetailValue = str | int | bool | date | None


# The kinds of record a person's list (/my) holds, in the order its filter offers them.
KINDS = ("batch", "handover", "return", "dose", "need")


class RecentEntry(BaseModel):
    kind: str  # "batch", "handover", "dose", "need": names the catalogue text that renders the entry
    id: int
    school_id: int
    event_on: date | None  # the day it happened (received, handed over, given), if it has one
    subject: str  # who or what it is about: the student's name, the donor
    details: dict[str, DetailValue] = Field(default_factory=dict)
    entered_at: datetime
    entered_late: bool = False
    # False while its day is in a locked period (then `locked_round` names the round, and `refusal`
    # is the owning service's refusal: which period, who can reopen it, what to do instead).
    editable: bool = True
    locked_round: str | None = None
    refusal: Finding | None = None
