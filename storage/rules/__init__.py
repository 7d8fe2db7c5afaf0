"""Rules of the directive (No. 1128/GDĐT) as code, each written once, pure (plain values in, a verdict
out; no database, no chat): `timeliness` (the day of an event, the 1-day and 5-day rules, a late
submission), `devices` (batches, handovers, loans), `needs` (the programme's priority groups),
`vaccines` (doses), `reminders` (a round's reminders), `roles` (who reviews which schools); `findings`
(what a rule says), `dates` and `numbers` (the one place that spells days, times and figures for
display). Here: the programme's name and a round's label; the timeliness names stay importable from
here."""

from __future__ import annotations

import re

from storage.rules.timeliness import DISTRICT_REPORT_DAYS as DISTRICT_REPORT_DAYS
from storage.rules.timeliness import ENTRY_GRACE_DAYS as ENTRY_GRACE_DAYS
from storage.rules.timeliness import PROGRAM_START as PROGRAM_START
from storage.rules.timeliness import district_report_deadline as district_report_deadline
from storage.rules.timeliness import is_late_entry as is_late_entry
from storage.text import fold

# The ministry's programme (menu 4.8.3.1) is a source of its own, never a donor of "other sources".
PROGRAM_NAME = "Sóng và máy tính cho em"


def names_the_programme(name: str) -> bool:
    """A donor's name that is the programme itself («Chương trình Sóng và máy tính cho em», with or
    without diacritics), not a donor of another source (4.8.3.2)."""
    return fold(PROGRAM_NAME) in fold(name)


# A round's name is often a whole title ("Báo cáo Chương trình «Sóng và máy tính cho em» và tiêm vắc
# xin (CV 1128/GDĐT)"); messages put it inside «…», once or more, so they carry a short form.
ROUND_LABEL_MAX = 60
_ROUND_TAIL = re.compile(r"\s*(\([^()]{1,24}\))$")


def round_label(name: str, limit: int | None = ROUND_LABEL_MAX) -> str:
    """The round's name as messages show it inside «…»: its own «» become “” (never «« »»), and a
    name longer than `limit` keeps its first words — a quoted part whole or not at all — then «…» and
    a short closing reference in parentheses such as «(CV 1128/GDĐT)». `limit=None`: the full name
    (official documents), un-nested only."""
    text = " ".join(name.split()).replace("«", "“").replace("»", "”")
    if limit is None or len(text) <= limit:
        return text
    tail = ""
    found = _ROUND_TAIL.search(text)
    if found is not None:
        tail, text = " " + found.group(1), text[: found.start()]
    room = max(limit - len(tail) - 1, 12)
    head = text[:room]
    if len(text) > room and not text[room].isspace() and " " in head:
        head = head[: head.rfind(" ")]
    if head.count("“") > head.count("”"):
        # Cut inside a quoted part: keep it whole when it closes soon, else stop before it.
        closing = text.find("”", len(head))
        opening = head.rfind("“")
        head = text[: closing + 1] if 0 <= closing < room + 16 else head[:opening]
    head = head.rstrip(" ,;:-–—")
    return f"{head}…{tail}" if head else text[:room] + "…" + tail
