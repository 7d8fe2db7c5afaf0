"""The directive's rules as pure functions (storage/rules/, issue 20 item 2): each at its edges, and,
for a handover, the same verdict from the three places that ask — the service's save, the Excel
import and the chat's preview (the service calls the chat makes before Confirm)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from storage.enums import DeviceType, DonationSource, HandoverKind, PriorityGroup
from storage.errors import DomainError
from storage.rules import devices, timeliness
from storage.rules.findings import Finding, HandoverWarnings
from storage.rules.reminders import in_quiet_hours, reminder_offset
from storage.rules.vaccines import DoseFacts, dose_day_and_product, interval_rule, judge_dose
from storage.schemas.devices import BatchIn, HandoverIn
from storage.services import Services
from tests import excel_files as files
from tests.factories import make_world
from tests.test_import import check_as

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
RECEIVED = date(2021, 11, 10)
TODAY = date(2021, 11, 15)


def refused(call: Any, *args: Any) -> tuple[str, dict[str, Any]]:
    with pytest.raises(DomainError) as caught:
        call(*args)
    return caught.value.code, dict(caught.value.params)


# --- timeliness: the day of an event, the 1-day rule, the 5-day rule ------------------------------


def test_an_event_day_is_not_in_the_future_nor_before_the_programme() -> None:
    assert timeliness.check_event_date(TODAY, TODAY) == TODAY  # the same day
    assert refused(timeliness.check_event_date, TODAY + timedelta(days=1), TODAY) == (
        "date.future",
        {"value": date(2021, 11, 16)},
    )
    start = timeliness.PROGRAM_START
    assert timeliness.check_event_date(start, TODAY) == start
    assert refused(timeliness.check_event_date, start - timedelta(days=1), TODAY) == (
        "date.too_early",
        {"value": date(2021, 8, 31), "earliest": date(2021, 9, 1)},
    )


def test_the_one_day_rule_counts_local_days() -> None:
    event = date(2021, 11, 10)

    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2021, 11, day, hour, minute, tzinfo=TZ)

    assert not timeliness.is_late_entry(event, at(10, 8), TZ)  # the same day
    assert not timeliness.is_late_entry(event, at(11, 23, 59), TZ)  # the day after: in time
    assert timeliness.is_late_entry(event, at(12, 0), TZ)  # exactly 1 day late
    # The local day, not UTC's: 12/11 00:30 in Hanoi is still 11/11 in UTC.
    assert timeliness.is_late_entry(event, at(12, 0, 30).astimezone(UTC), TZ)


def test_the_five_day_rule_at_its_edges() -> None:
    assert timeliness.district_report_deadline(RECEIVED) == date(2021, 11, 15)
    assert timeliness.reported_in_time(RECEIVED, date(2021, 11, 15))
    assert not timeliness.reported_in_time(RECEIVED, date(2021, 11, 16))

    def judge(days: list[tuple[date, int]], reported: date | None, today: date) -> tuple[str, str, int]:
        verdict = timeliness.judge_five_days(RECEIVED, 3, days, reported, today)
        return verdict.status, verdict.report_status, verdict.handed

    on_day_5, on_day_6 = date(2021, 11, 15), date(2021, 11, 16)
    assert judge([(RECEIVED, 1), (on_day_5, 2)], on_day_5, on_day_6) == ("met", "on_time", 3)
    assert judge([(RECEIVED, 1), (on_day_6, 2)], on_day_6, on_day_6) == ("partial", "late", 1)
    assert judge([(on_day_6, 3)], None, on_day_6) == ("none", "not_reported", 0)
    # On the deadline day itself, nothing is overdue yet.
    assert judge([(RECEIVED, 1)], None, on_day_5) == ("pending", "pending", 1)


def test_a_late_submission() -> None:
    deadline = datetime(2021, 11, 15, 8, 30, tzinfo=UTC)
    assert not timeliness.is_late(deadline, deadline, deadline + timedelta(days=1))
    assert timeliness.is_late(deadline + timedelta(seconds=1), deadline, deadline)
    assert not timeliness.is_late(None, deadline, deadline)
    assert timeliness.is_late(None, deadline, deadline + timedelta(seconds=1))


# --- devices -------------------------------------------------------------------------------------


def test_a_handover_is_not_before_its_batch_was_received() -> None:
    devices.check_handed_on(RECEIVED, RECEIVED, TODAY)  # the same day
    assert refused(devices.check_handed_on, RECEIVED - timedelta(days=1), RECEIVED, TODAY) == (
        "devices.handed_before_received",
        {"value": date(2021, 11, 9), "received_on": date(2021, 11, 10)},
    )
    assert refused(devices.check_handed_on, TODAY + timedelta(days=1), RECEIVED, TODAY)[0] == "date.future"


def test_a_return_is_not_before_the_loan() -> None:
    devices.check_returned_on(RECEIVED, RECEIVED, TODAY)  # lent and back the same day
    assert refused(devices.check_returned_on, date(2021, 11, 9), RECEIVED, TODAY) == (
        "devices.returned_before_handed",
        {"value": date(2021, 11, 9), "handed_on": date(2021, 11, 10)},
    )


def test_only_an_open_loan_comes_back() -> None:
    devices.check_open_loan(HandoverKind.LOAN, None)
    assert refused(devices.check_open_loan, HandoverKind.GIFT, None) == ("devices.not_a_loan", {})
    assert refused(devices.check_open_loan, HandoverKind.LOAN, TODAY) == (
        "devices.already_returned",
        {"returned_on": date(2021, 11, 15)},
    )


def test_a_batch_is_not_received_after_its_first_handover() -> None:
    devices.check_received_on(RECEIVED, None, TODAY)
    devices.check_received_on(RECEIVED, RECEIVED, TODAY)
    assert refused(devices.check_received_on, date(2021, 11, 11), RECEIVED, TODAY) == (
        "devices.received_after_handover",
        {"value": date(2021, 11, 11), "first_handed_on": date(2021, 11, 10)},
    )


def test_one_device_per_student_per_batch() -> None:
    devices.check_not_holding("An", None)
    assert refused(devices.check_not_holding, "An", RECEIVED) == (
        "devices.already_handed_from_batch",
        {"student": "An", "handed_on": date(2021, 11, 10)},
    )


def test_devices_left() -> None:
    assert devices.devices_left(3, 2) == 1
    devices.check_devices_left(3, 2)  # the last device
    assert refused(devices.check_devices_left, 3, 3) == ("devices.batch_exhausted", {"quantity": 3})
    assert devices.exhausted(3).code == "devices.batch_exhausted"
    devices.check_quantity(3, 3)
    assert refused(devices.check_quantity, 2, 3) == (
        "devices.quantity_below_handed",
        {"quantity": 2, "handed": 3},
    )


def test_a_loan_is_not_a_device() -> None:
    assert devices.MEETS_NEED is HandoverKind.GIFT


def test_the_programme_warnings() -> None:
    def codes(source: DonationSource = DonationSource.PROGRAM, **facts: Any) -> list[str]:
        values: dict[str, Any] = {
            "student": "An",
            "priority_group": PriorityGroup.POOR,
            "needs_device": False,
            "held": None,
        }
        values.update(facts)
        return [finding.code for finding in devices.judge_handover(source, **values)]

    assert codes() == []
    held = devices.Held(RECEIVED, HandoverKind.LOAN, 2)
    assert codes(held=held) == ["devices.second_program_device"]
    assert codes(priority_group=PriorityGroup.NONE) == ["devices.program_without_need"]
    assert codes(priority_group=PriorityGroup.NONE, needs_device=True) == []
    # Another donor's device: no word, whatever the child holds.
    assert codes(DonationSource.OTHER, held=held, priority_group=PriorityGroup.NONE) == []
    [second] = devices.judge_handover(
        DonationSource.PROGRAM, student="An", priority_group=PriorityGroup.POOR, needs_device=False, held=held
    )
    assert second.params == {"student": "An", "handed_on": date(2021, 11, 10), "kind": "loan", "batch": 2}


# --- vaccines ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    id: int
    code: str
    name: str
    min_age_years: int
    min_interval_days: int


@dataclass(frozen=True)
class Dose:
    dose_number: int
    given_on: date
    product_id: int


PFIZER = Product(1, "PFIZER", "Pfizer", 12, 21)
OTHER = Product(2, "OTHER", "Khác", 5, 28)
PRODUCTS = {1: PFIZER, 2: OTHER}


def judged(
    number: int, given_on: date, others: list[Dose], product: Product = PFIZER
) -> tuple[list[str], list[str]]:
    facts = DoseFacts(date(2008, 1, 1), number, given_on, product, "", others)
    errors, warnings = judge_dose(facts, PRODUCTS, TODAY)
    return [f.code for f in errors], [f.code for f in warnings]


def test_doses_in_order_and_their_interval() -> None:
    first = Dose(1, date(2021, 10, 1), 1)
    assert judged(2, date(2021, 10, 22), [first]) == ([], [])  # exactly the minimum interval
    assert judged(2, date(2021, 10, 21), [first]) == ([], ["vaccines.short_interval"])
    assert judged(2, date(2021, 9, 30), [first])[0] == ["vaccines.before_previous"]
    assert judged(2, date(2021, 10, 1), [first])[0] == ["vaccines.same_day"]
    assert judged(3, date(2021, 11, 1), [first]) == ([], ["vaccines.missing_earlier"])
    assert judged(1, date(2021, 10, 2), [first])[0] == ["vaccines.duplicate_dose"]
    # Mixed products: the longer minimum interval of the two.
    assert interval_rule(PFIZER, OTHER) is OTHER and interval_rule(OTHER, PFIZER) is OTHER


def test_a_dose_day_and_product() -> None:
    assert dose_day_and_product(PFIZER, "", TODAY, TODAY) == []
    assert [f.code for f in dose_day_and_product(OTHER, "", TODAY + timedelta(days=1), TODAY)] == [
        "vaccines.other_needs_name",
        "vaccines.future",
    ]
    too_early = dose_day_and_product(PFIZER, "", date(2021, 8, 31), TODAY)
    assert too_early == [
        Finding(
            code="vaccines.too_early", params={"given_on": date(2021, 8, 31), "earliest": date(2021, 9, 1)}
        )
    ]


# --- reminders -----------------------------------------------------------------------------------


def test_quiet_hours_and_offsets() -> None:
    local = datetime(2021, 11, 14, 21, 0, tzinfo=TZ)
    assert in_quiet_hours(local, 21, 7) and not in_quiet_hours(local - timedelta(minutes=1), 21, 7)
    deadline = datetime(2021, 11, 15, 15, 30, tzinfo=TZ)
    assert reminder_offset(deadline - timedelta(hours=24), deadline, (24, 2)) == 24
    assert reminder_offset(deadline, deadline, (24, 2)) is None


# --- one handover, three places, one verdict -------------------------------------------------------


def said(error: DomainError) -> tuple[str, dict[str, Any]]:
    return error.code, dict(error.params)


async def test_the_service_the_import_and_the_chat_agree(services: Services) -> None:
    """A second programme device to HS0003 (no priority group, no need recorded): the save refuses
    it until confirmed, the chat's preview shows the same warnings, the import notes the same; a day
    before the batch was received: the same refusal from all three."""
    world = await make_world(services)
    school, student = world.primary_school_id, world.student_ids["HS0003"]

    async def program_batch() -> int:
        batch = await services.donations.create_batch(
            BatchIn(
                source=DonationSource.PROGRAM,
                received_on=RECEIVED,
                quantity=3,
                device_type=DeviceType.LAPTOP,
            ),
            school_id=school,
            actor_id=None,
        )
        return batch.id

    first, second = await program_batch(), await program_batch()
    gift = HandoverIn(
        batch_id=first, student_id=student, kind=HandoverKind.GIFT, handed_on=date(2021, 11, 11)
    )
    await services.handovers.create_handover(
        gift, school_id=school, actor_id=None, confirm_second_program_device=True
    )
    data = gift.model_copy(update={"batch_id": second, "handed_on": date(2021, 11, 12)})

    with pytest.raises(HandoverWarnings) as caught:
        await services.handovers.create_handover(data, school_id=school, actor_id=None)
    by_service = [(f.code, f.params) for f in caught.value.warnings]
    preview = await services.handovers.check_handover(data, school_id=school, source=DonationSource.PROGRAM)
    by_chat = [(f.code, f.params) for f in preview]
    header = ["Lô thiết bị", "Mã học sinh", "Hình thức", "Ngày bàn giao"]
    check = await check_as(
        services, "teacher", files.xlsx([header, ["Lô 2", "HS0003", "Tặng", "12/11/2021"]])
    )
    [row] = check.rows
    by_import = [(issue.code, issue.params) for issue in row.issues if issue.warning]
    assert [code for code, _ in by_service] == [
        "devices.second_program_device",
        "devices.program_without_need",
    ]
    assert by_service == by_chat == by_import

    early = data.model_copy(update={"handed_on": date(2021, 11, 9)})
    with pytest.raises(DomainError) as saved:
        await services.handovers.create_handover(
            early, school_id=school, actor_id=None, confirm_second_program_device=True
        )
    with pytest.raises(DomainError) as chat:
        services.handovers.check_handed_on(early.handed_on, RECEIVED)
    check = await check_as(
        services, "teacher", files.xlsx([header, ["Lô 2", "HS0003", "Tặng", "09/11/2021"]])
    )
    [row] = check.rows
    by_import = [(issue.code, issue.params) for issue in row.issues]
    assert (
        said(saved.value)
        == said(chat.value)
        == (
            "devices.handed_before_received",
            {
                "value": date(2021, 11, 9),
                "received_on": date(2021, 11, 10),
            },
        )
    )
    assert by_import == [said(saved.value)]
