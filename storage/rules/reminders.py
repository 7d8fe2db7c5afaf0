"""A round's reminders, planned (section 5 of the directive: schools submit by 15:30 on Monday 15
Nov, specialists approve by the morning of 16 Nov, statistics sends the compiled report by the
afternoon; DOMAIN.md "Time rules"). Pure: a snapshot of the open rounds in, the reminders due out;
`RoundService.due_reminders` reads the snapshot, the chat's job sends them and marks them sent."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from storage.enums import Role, SchoolLevel, SubmissionStatus
from storage.rules import round_label
from storage.rules.dates import show_local
from storage.rules.roles import SPECIALIST_LEVELS

# A school's data still to submit: never submitted, or sent back.
PENDING_STATUSES = (SubmissionStatus.NOT_SUBMITTED, SubmissionStatus.RETURNED)
# Names listed in a reminder's digest; more are counted.
MAX_DIGEST_NAMES = 30


class ReminderDue(BaseModel):
    """One message to send: render `text_key` with `params` in `language`, send to
    `telegram_user_id`, then call `mark_sent(round_id, staff_id, reminder_key)`."""

    round_id: int
    staff_id: int
    telegram_user_id: int
    language: str
    reminder_key: str  # unique per round and person, e.g. `submit:24h`, `late:submit`
    text_key: str  # catalogue key, e.g. `rounds.reminder.submit`
    params: dict[str, str | int] = Field(default_factory=dict)
    # The deadline it is about: one person's reminders go out one after another in this order.
    due_at: datetime | None = None


@dataclass(frozen=True)
class Contact:
    staff_id: int
    telegram_user_id: int
    language: str
    role: Role


@dataclass(frozen=True)
class SchoolState:
    school_id: int
    name: str
    level: SchoolLevel
    program: SubmissionStatus
    vaccine: SubmissionStatus
    program_late: bool  # as on the progress board
    # Records in the bot for over a day and not in the sector database (issue 19), the first by name.
    not_in_csdl: int = 0
    not_in_csdl_names: tuple[str, ...] = ()


@dataclass
class RoundState:
    """What the reminder rules look at for one open round."""

    round_id: int
    name: str
    submit_deadline: datetime
    approve_deadline: datetime
    compile_deadline: datetime
    schools: list[SchoolState]
    principals: dict[int, list[Contact]] = field(default_factory=dict)  # school id -> principals
    specialists: list[Contact] = field(default_factory=list)  # TH and THCS
    health_officers: list[Contact] = field(default_factory=list)
    statistics_officers: list[Contact] = field(default_factory=list)
    deputy_heads: list[Contact] = field(default_factory=list)
    sent: set[tuple[int, str]] = field(default_factory=set)  # (staff id, reminder key) already sent


def in_quiet_hours(local: datetime, quiet_start: int, quiet_end: int) -> bool:
    """Quiet from `quiet_start` (inclusive) to `quiet_end` (exclusive), local hours; may wrap midnight."""
    if quiet_start == quiet_end:
        return False
    hour = local.hour
    if quiet_start < quiet_end:
        return quiet_start <= hour < quiet_end
    return hour >= quiet_start or hour < quiet_end


def reminder_offset(now: datetime, deadline: datetime, hours_before: Sequence[int]) -> int | None:
    """The reminder due before `deadline`: the smallest offset whose time has come (a reminder held
    back by quiet hours is overtaken by a later one), none once the deadline has passed."""
    if now >= deadline:
        return None
    started = [h for h in hours_before if h > 0 and now >= deadline - timedelta(hours=h)]
    return min(started) if started else None


def _hours_left(now: datetime, deadline: datetime) -> int:
    return max(1, math.ceil((deadline - now).total_seconds() / 3600))


def _names(names: Sequence[str]) -> str:
    shown = list(names[:MAX_DIGEST_NAMES])
    if len(names) > MAX_DIGEST_NAMES:
        shown.append(f"(+{len(names) - MAX_DIGEST_NAMES})")
    return "; ".join(shown)


def plan_reminders(
    rounds: Iterable[RoundState],
    now: datetime,
    tz: ZoneInfo,
    *,
    hours_before: Sequence[int],
    quiet_start: int,
    quiet_end: int,
) -> list[ReminderDue]:
    """The reminders due at `now`, none during quiet hours.

    - before the submit deadline, at each offset: the principals of schools whose programme data is
      not submitted (never, or sent back);
    - before the approve deadline: TH/THCS specialists with programme submissions of their levels
      waiting, the health officer with vaccine submissions waiting;
    - the statistics officers: once every school's programme data is approved, and at each offset
      before the compile deadline;
    - after each deadline, one digest to the deputy head(s) of what is late, if anything is.
    A reminder held back by quiet hours goes out when they end, if its deadline has not passed.
    """
    if in_quiet_hours(now.astimezone(tz), quiet_start, quiet_end):
        return []
    due: list[ReminderDue] = []
    for state in rounds:
        planner = _Planner(state, now, tz, due)
        planner.submit(hours_before)
        planner.approve(hours_before)
        planner.compile(hours_before)
        planner.late_digests()
    # By deadline (stable: a round's steps keep their order), so that the job sends each person's
    # reminders in the order of what they are about — the late submission before the late approval.
    due.sort(key=lambda reminder: reminder.due_at or now)
    return due


@dataclass
class _Planner:
    state: RoundState
    now: datetime
    tz: ZoneInfo
    due: list[ReminderDue]
    planned: set[tuple[int, str]] = field(default_factory=set)

    def add(
        self, contact: Contact, key: str, text_key: str, *, due_at: datetime, **params: str | int
    ) -> None:
        if (contact.staff_id, key) in self.state.sent or (contact.staff_id, key) in self.planned:
            return
        self.planned.add((contact.staff_id, key))
        self.due.append(
            ReminderDue(
                round_id=self.state.round_id,
                staff_id=contact.staff_id,
                telegram_user_id=contact.telegram_user_id,
                language=contact.language,
                reminder_key=key,
                text_key=text_key,
                params={"round": round_label(self.state.name), **params},
                due_at=due_at,
            )
        )

    def _deadline_params(self, deadline: datetime) -> dict[str, str | int]:
        return {"deadline": show_local(deadline, self.tz), "hours_left": _hours_left(self.now, deadline)}

    def submit(self, hours_before: Sequence[int]) -> None:
        deadline = self.state.submit_deadline
        offset = reminder_offset(self.now, deadline, hours_before)
        if offset is None:
            return
        for school in self.state.schools:
            if school.program not in PENDING_STATUSES:
                continue
            # The CSDL's records not uploaded a day after entry, named (conversations.reminders adds them).
            csdl: dict[str, str | int] = (
                {"csdl_count": school.not_in_csdl, "csdl_records": _names(school.not_in_csdl_names)}
                if school.not_in_csdl
                else {}
            )
            for principal in self.state.principals.get(school.school_id, []):
                self.add(
                    principal,
                    f"submit:{offset}h",
                    "rounds.reminder.submit",
                    due_at=deadline,
                    school=school.name,
                    status=school.program.value,
                    **self._deadline_params(deadline),
                    **csdl,
                )

    def approve(self, hours_before: Sequence[int]) -> None:
        deadline = self.state.approve_deadline
        offset = reminder_offset(self.now, deadline, hours_before)
        if offset is None:
            return
        for specialist in self.state.specialists:
            levels = SPECIALIST_LEVELS.get(specialist.role, frozenset())
            waiting = [
                s.name
                for s in self.state.schools
                if s.level in levels and s.program is SubmissionStatus.SUBMITTED
            ]
            if waiting:
                self.add(
                    specialist,
                    f"approve:{offset}h",
                    "rounds.reminder.approve",
                    due_at=deadline,
                    count=len(waiting),
                    schools=_names(waiting),
                    **self._deadline_params(deadline),
                )
        waiting = [s.name for s in self.state.schools if s.vaccine is SubmissionStatus.SUBMITTED]
        if waiting:
            for officer in self.state.health_officers:
                self.add(
                    officer,
                    f"approve:{offset}h",
                    "rounds.reminder.approve_vaccine",
                    due_at=deadline,
                    count=len(waiting),
                    schools=_names(waiting),
                    **self._deadline_params(deadline),
                )

    def compile(self, hours_before: Sequence[int]) -> None:
        deadline = self.state.compile_deadline
        if self.now >= deadline:
            return
        schools = self.state.schools
        approved = sum(1 for s in schools if s.program is SubmissionStatus.APPROVED)
        missing = [s.name for s in schools if s.program is not SubmissionStatus.APPROVED]
        if schools and not missing:
            for officer in self.state.statistics_officers:
                self.add(
                    officer,
                    "compile:ready",
                    "rounds.reminder.compile_ready",
                    due_at=deadline,
                    count=approved,
                    **self._deadline_params(deadline),
                )
        offset = reminder_offset(self.now, deadline, hours_before)
        if offset is None:
            return
        for officer in self.state.statistics_officers:
            self.add(
                officer,
                f"compile:{offset}h",
                "rounds.reminder.compile",
                due_at=deadline,
                approved=approved,
                total=len(schools),
                missing=_names(missing) or "–",
                **self._deadline_params(deadline),
            )

    def late_digests(self) -> None:
        state = self.state
        if self.now >= state.submit_deadline:
            late = [s.name for s in state.schools if s.program_late]
            self._digest("late:submit", "rounds.reminder.late_submit", state.submit_deadline, late)
        if self.now >= state.approve_deadline:
            waiting = [s.name for s in state.schools if SubmissionStatus.SUBMITTED in (s.program, s.vaccine)]
            self._digest("late:approve", "rounds.reminder.late_approve", state.approve_deadline, waiting)
        if self.now >= state.compile_deadline:
            missing = [s.name for s in state.schools if s.program is not SubmissionStatus.APPROVED]
            for deputy in state.deputy_heads:
                self.add(
                    deputy,
                    "late:compile",
                    "rounds.reminder.late_compile",
                    due_at=state.compile_deadline,
                    deadline=show_local(state.compile_deadline, self.tz),
                    count=len(missing),
                    schools=_names(missing) or "–",
                )

    def _digest(self, key: str, text_key: str, deadline: datetime, names: list[str]) -> None:
        if not names:
            return
        for deputy in self.state.deputy_heads:
            self.add(
                deputy,
                key,
                text_key,
                due_at=deadline,
                deadline=show_local(deadline, self.tz),
                count=len(names),
                schools=_names(names),
            )
