"""Devices: donation batches and handovers (Directive No. 1128/GDĐT, menu 4.8.3; DOMAIN.md "Devices
received and handed over"). Each rule once, over plain values: the handover service, the Excel
import and the chat's preview (`HandoverService.check_handover`) all ask these."""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from storage.enums import DonationSource, HandoverKind, PriorityGroup
from storage.errors import DomainError
from storage.rules.findings import Finding
from storage.rules.timeliness import check_event_date


class Held(NamedTuple):
    """A programme device a student holds: a gift, or a loan not yet returned."""

    handed_on: date
    kind: HandoverKind
    batch_number: int


def devices_left(quantity: int, handed: int) -> int:
    """A batch's devices not handed over: its quantity less its gifts and open loans (a returned loan's
    device is back in the batch)."""
    return quantity - handed


def check_devices_left(quantity: int, handed: int) -> None:
    """A batch gives each device it received once (4.8.3: «số lượng» received, then handed to named
    students): no handover when gifts + open loans already reach the quantity."""
    if devices_left(quantity, handed) <= 0:
        raise exhausted(quantity)


def exhausted(quantity: int) -> DomainError:
    """`check_devices_left`'s refusal, also for the loser of a race for a batch's last device (the
    database's guarded UPDATE, `repositories.devices.allocate_one`, said no)."""
    return DomainError("devices.batch_exhausted", quantity=quantity)


def check_quantity(quantity: int, handed: int) -> None:
    """A batch's quantity, corrected, is never below the devices already handed out of it."""
    if quantity < handed:
        raise DomainError("devices.quantity_below_handed", quantity=quantity, handed=handed)


def check_handed_on(handed_on: date, received_on: date, today: date) -> None:
    """A handover happened on a real day (`check_event_date`) and not before its batch was received
    («bàn giao máy tính đến học sinh» follows «tiếp nhận tài trợ»)."""
    check_event_date(handed_on, today)
    check_handed_after(handed_on, received_on)


def check_handed_after(handed_on: date, received_on: date) -> None:
    """A handover's day is not before its batch's day received (`check_handed_on` without the
    calendar: the chat's date step, where the day was parsed against the same rules already)."""
    if handed_on < received_on:
        raise DomainError(
            "devices.handed_before_received",
            value=handed_on,
            received_on=received_on,
        )


def check_received_on(received_on: date, first_handed_on: date | None, today: date) -> None:
    """A batch's day received, corrected: a real day, and not after its first handover (the same
    order as `check_handed_on`, seen from the batch)."""
    check_event_date(received_on, today)
    if first_handed_on is not None and received_on > first_handed_on:
        raise DomainError(
            "devices.received_after_handover",
            value=received_on,
            first_handed_on=first_handed_on,
        )


def check_returned_on(returned_on: date, handed_on: date, today: date) -> None:
    """A lent device («cho học sinh mượn tạm … đến khi hết trực tuyến phải gửi lại») comes back on a
    real day, not before it was lent."""
    check_event_date(returned_on, today)
    check_returned_after(returned_on, handed_on)


def check_returned_after(returned_on: date, handed_on: date) -> None:
    """A loan's return is not before the day it was lent (the chat's date step; the save adds
    `check_event_date`)."""
    if returned_on < handed_on:
        raise DomainError(
            "devices.returned_before_handed",
            value=returned_on,
            handed_on=handed_on,
        )


def check_open_loan(kind: HandoverKind, returned_on: date | None) -> None:
    """Only a loan comes back («mượn tạm … phải gửi lại»; a gift is the student's), and only once."""
    if kind is not HandoverKind.LOAN:
        raise DomainError("devices.not_a_loan")
    if returned_on is not None:
        raise DomainError("devices.already_returned", returned_on=returned_on)


def check_not_holding(student: str, held_on: date | None) -> None:
    """One device per student per batch: a student who still holds one of this batch (a gift or an
    open loan handed on `held_on`) gets no second (4.8.3: each handover is one device to one student)."""
    if held_on is not None:
        raise DomainError("devices.already_handed_from_batch", student=student, handed_on=held_on)


# «A loan is not a device»: a device lent until online learning ends «không tính là học sinh đã có
# thiết bị» — only a handover of this kind meets a student's need for a device (the reports' figures
# read it: `repositories.reports._gift_received`, behind needs met / unmet and Biểu 1).
MEETS_NEED = HandoverKind.GIFT


def may_warn(source: DonationSource) -> bool:
    """Only a programme device («Sóng và máy tính cho em», 4.8.3.1) is warned about: the programme's
    devices go to its groups, one each; another donor's gift is the donor's and the school's choice."""
    return source is DonationSource.PROGRAM


def judge_handover(
    source: DonationSource,
    *,
    student: str,
    priority_group: PriorityGroup,
    needs_device: bool,
    held: Held | tuple[date, HandoverKind, int] | None,
) -> list[Finding]:
    """The warnings of one handover (nothing here refuses it; the person checks, then goes on):

    - a programme device to a student who already holds one (a gift or an open loan: `held`) — each
      student normally gets one;
    - a programme device to a student with no recorded need for a device and no priority group:
      the programme is for poor and near-poor households, children who lost a parent to COVID-19
      and other hardship (a need recorded first, or the group, says why this child).
    """
    if not may_warn(source):
        return []
    warnings = []
    if held is not None:
        held = Held(*held)
        warnings.append(
            Finding(
                code="devices.second_program_device",
                params={
                    "student": student,
                    "handed_on": held.handed_on,
                    "kind": held.kind.value,
                    "batch": held.batch_number,
                },
            )
        )
    if priority_group is PriorityGroup.NONE and not needs_device:
        warnings.append(Finding(code="devices.program_without_need", params={"student": student}))
    return warnings
