"""The Vietnamese parsing helpers: what staff type on a phone, accepted or rejected with a clear text.

Pure tests: no database. Every rejection checks the error code and that the Vietnamese text the bot
shows names the value that was wrong.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.errors import render_error
from bot.texts import load
from storage.errors import DomainError
from storage.rules import PROGRAM_START, is_late_entry
from storage.schemas.parsing import (
    MAX_NAME_LENGTH,
    clean_code,
    clean_name,
    parse_date,
    parse_event_date,
    parse_quantity,
)
from storage.schemas.reports import ReportPeriod, parse_date_range
from storage.text import fold, fold_key

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
TODAY = date(2021, 11, 15)  # the directive's Monday


def nfd(value: str) -> str:
    return unicodedata.normalize("NFD", value)


def assert_rejected(call: Callable[[], object], code: str, *shown: str) -> str:
    """`call` raises DomainError `code`; its Vietnamese text exists and contains each of `shown`."""
    with pytest.raises(DomainError) as info:
        call()
    assert info.value.code == code
    assert f"errors.{code}" in load("vi"), f"no Vietnamese text for errors.{code}"
    message = render_error(info.value)
    assert message == render_error(info.value, "vi")
    # Vietnamese: the text has diacritics (folding changes it).
    assert fold(message) != message.casefold().strip(), message
    for value in shown:
        assert value in message, (value, message)
    return message


# --- dates ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("15/11/2021", date(2021, 11, 15)),
        ("15-11-2021", date(2021, 11, 15)),
        ("15.11.21", date(2021, 11, 15)),
        ("1/9/2021", date(2021, 9, 1)),
        ("01/09/2021", date(2021, 9, 1)),
        ("2021-11-15", date(2021, 11, 15)),
        ("15/11", date(2021, 11, 15)),
        ("14/11", date(2021, 11, 14)),
        # Day and month in the future this year: last year's is meant.
        ("20/11", date(2020, 11, 20)),
        ("31/12", date(2020, 12, 31)),
        ("hôm nay", TODAY),
        ("hom nay", TODAY),
        ("HOM NAY", TODAY),
        ("Hôm nay", TODAY),
        ("Hôm qua", date(2021, 11, 14)),
        ("hom qua", date(2021, 11, 14)),
        (nfd("hôm qua"), date(2021, 11, 14)),
        (nfd("Hôm Nay"), TODAY),
        ("  hôm   qua  ", date(2021, 11, 14)),
        (" 15 / 11 / 2021 ", date(2021, 11, 15)),
        ("\t15/11/2021\n", date(2021, 11, 15)),
    ],
)
def test_parse_date_accepts(typed: str, expected: date) -> None:
    assert parse_date(typed, TODAY) == expected


def test_day_and_month_without_year_is_the_most_recent_past_date() -> None:
    assert parse_date("16/11", TODAY) == date(2020, 11, 16)
    assert parse_date("1/1", TODAY) == date(2021, 1, 1)
    assert parse_date("15/11", date(2022, 1, 3)) == date(2021, 11, 15)


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2021, 11, 15), date(2020, 2, 29)),  # 2021 has no 29/02: the last one was 2020
        (date(2024, 3, 1), date(2024, 2, 29)),  # this year's, already past
        (date(2024, 2, 29), date(2024, 2, 29)),  # today
        (date(2024, 1, 15), date(2020, 2, 29)),  # this year's is still ahead; 2023 has none
        (date(2100, 6, 1), date(2096, 2, 29)),  # 2100 is not a leap year
    ],
)
def test_29_february_without_year(today: date, expected: date) -> None:
    assert parse_date("29/02", today) == expected


def test_29_february_with_a_year() -> None:
    assert parse_date("29/02/2020", TODAY) == date(2020, 2, 29)
    assert_rejected(lambda: parse_date("29/02/2021", TODAY), "date.impossible", "29/02/2021")


def test_future_dates_are_rejected() -> None:
    assert_rejected(lambda: parse_date("16/11/2021", TODAY), "date.future", "16/11/2021")
    assert_rejected(lambda: parse_date("2022-01-01", TODAY), "date.future", "01/01/2022")
    assert_rejected(lambda: parse_date("16.11.21", TODAY), "date.future", "16/11/2021")


def test_future_dates_allowed_when_asked() -> None:
    assert parse_date("16/11/2021", TODAY, allow_future=True) == date(2021, 11, 16)


@pytest.mark.parametrize(
    ("typed", "code", "shown"),
    [
        ("31/02/2021", "date.impossible", "31/02/2021"),
        ("30/2", "date.impossible", "30/2"),
        ("32/1", "date.impossible", "32/1"),
        ("15/13/2021", "date.impossible", "15/13/2021"),
        ("0/5/2021", "date.impossible", "0/5/2021"),
        ("2021-02-30", "date.impossible", "2021-02-30"),
    ],
)
def test_impossible_dates_are_rejected(typed: str, code: str, shown: str) -> None:
    assert_rejected(lambda: parse_date(typed, TODAY), code, shown)


@pytest.mark.parametrize(
    "typed",
    ["abc", "ngày mai", "Ngày Mai", "15/11/2021/3", "15 11", "1511", "15//11", "hôm nay nữa", "2021/11/15x"],
)
def test_garbage_is_not_a_date(typed: str) -> None:
    # The message quotes what was typed, as typed (NFC, trimmed), not a folded copy.
    assert_rejected(lambda: parse_date(typed, TODAY), "date.invalid", typed)


@pytest.mark.parametrize("typed", ["", "   ", "\n"])
def test_empty_date(typed: str) -> None:
    assert_rejected(lambda: parse_date(typed, TODAY), "date.empty")


def test_event_dates_not_before_the_programme() -> None:
    assert parse_event_date("1/9/2021", TODAY) == PROGRAM_START
    assert parse_event_date("hôm qua", TODAY) == date(2021, 11, 14)
    assert_rejected(
        lambda: parse_event_date("31/08/2021", TODAY), "date.too_early", "31/08/2021", "01/09/2021"
    )
    assert_rejected(lambda: parse_event_date("15/11/20", TODAY), "date.too_early", "15/11/2020")
    # 20/11 without a year is 20/11/2020 (the future one is excluded), which is too early.
    assert_rejected(lambda: parse_event_date("20/11", TODAY), "date.too_early", "20/11/2020")
    # A later floor (e.g. a loan returned on or after the day it was handed over).
    assert_rejected(
        lambda: parse_event_date("10/11/2021", TODAY, not_before=date(2021, 11, 12)),
        "date.too_early",
        "10/11/2021",
        "12/11/2021",
    )
    assert_rejected(lambda: parse_event_date("16/11/2021", TODAY), "date.future", "16/11/2021")


# --- quantities -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("12", 12),
        ("1", 1),
        (" 20 ", 20),
        ("1.000", 1000),
        ("1,000", 1000),
        ("1 000", 1000),
        ("10.000", 10_000),
        (20, 20),
        (100_000, 100_000),
    ],
)
def test_parse_quantity_accepts(typed: str | int, expected: int) -> None:
    assert parse_quantity(typed) == expected


@pytest.mark.parametrize(
    ("typed", "code", "shown"),
    [
        ("0", "quantity.not_positive", "0"),
        (0, "quantity.not_positive", "0"),
        ("-3", "quantity.not_positive", "-3"),
        (-3, "quantity.not_positive", "-3"),
        ("1,5", "quantity.invalid", "1,5"),
        ("1.5", "quantity.invalid", "1.5"),
        ("abc", "quantity.invalid", "abc"),
        ("12 máy", "quantity.invalid", "12 máy"),
        ("", "quantity.empty", ""),
        ("   ", "quantity.empty", ""),
        ("100001", "quantity.too_large", "100001"),
        ("1.000.000", "quantity.too_large", "1000000"),
    ],
)
def test_parse_quantity_rejects(typed: str | int, code: str, shown: str) -> None:
    assert_rejected(lambda: parse_quantity(typed), code, *([shown] if shown else []))


def test_parse_quantity_maximum_is_a_parameter() -> None:
    assert parse_quantity("50", maximum=50) == 50
    assert_rejected(lambda: parse_quantity("51", maximum=50), "quantity.too_large", "51", "50")


def test_parse_quantity_rejects_booleans() -> None:
    with pytest.raises(DomainError):
        parse_quantity(True)  # type: ignore[arg-type]


# --- names and codes ------------------------------------------------------------------------------


def test_clean_name_gives_nfc() -> None:
    typed = nfd("Nguyễn Thị Thanh Thủy")
    assert typed != "Nguyễn Thị Thanh Thủy"  # really decomposed
    cleaned = clean_name(typed)
    assert cleaned == "Nguyễn Thị Thanh Thủy"
    assert unicodedata.is_normalized("NFC", cleaned)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("  Nguyễn   Văn  An ", "Nguyễn Văn An"),
        ("Nguyễn\tVăn\nAn", "Nguyễn Văn An"),
        ("NGUYỄN VĂN AN", "Nguyễn Văn An"),
        ("nguyễn văn an", "Nguyễn Văn An"),
        ("ĐẶNG QUỐC KHÁNH", "Đặng Quốc Khánh"),
        ("đặng quốc khánh", "Đặng Quốc Khánh"),
        (nfd("TRẦN THỊ BÌNH"), "Trần Thị Bình"),
        # Mixed case is left as typed.
        ("Cam Văn Võ Kiêm Toàn", "Cam Văn Võ Kiêm Toàn"),
        ("Lê thị Hồng", "Lê thị Hồng"),
    ],
)
def test_clean_name(typed: str, expected: str) -> None:
    assert clean_name(typed) == expected


@pytest.mark.parametrize(
    ("typed", "code", "shown"),
    [
        ("", "name.empty", None),
        ("   ", "name.empty", None),
        ("Nguyễn Văn An 2", "name.invalid_characters", "Nguyễn Văn An 2"),
        ("Nguyễn @n", "name.invalid_characters", "Nguyễn @n"),
        ("Trần Thị Bình!", "name.invalid_characters", "Trần Thị Bình!"),
        ("An_Bình", "name.invalid_characters", "An_Bình"),
        ("a" * (MAX_NAME_LENGTH + 1), "name.too_long", str(MAX_NAME_LENGTH)),
    ],
)
def test_clean_name_rejects(typed: str, code: str, shown: str | None) -> None:
    assert_rejected(lambda: clean_name(typed), code, *([shown] if shown else []))


def test_clean_name_length_counts_after_trimming() -> None:
    name = "A" + "n" * (MAX_NAME_LENGTH - 1)
    assert clean_name(f"   {name}   ") == name


@pytest.mark.parametrize(
    ("typed", "code", "shown"),
    [
        ("Nguyễn Văn An 😀", "name.invalid_characters", "😀"),
        ("Lan ★", "name.invalid_characters", "★"),
        ("...", "name.no_letters", "..."),
        ("\u200b\u202e", "name.empty", None),
    ],
)
def test_clean_name_rejects_emoji_symbols_and_names_without_letters(
    typed: str, code: str, shown: str | None
) -> None:
    assert_rejected(lambda: clean_name(typed), code, *([shown] if shown else []))


def test_clean_name_drops_zero_width_and_bidi_characters() -> None:
    assert clean_name("\u202eNguyễn\u200b Văn\u200f An\ufeff") == "Nguyễn Văn An"
    assert clean_name(nfd("\u2066trần thị bình\u2069")) == "Trần Thị Bình"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("HS0001", "HS0001"),
        (" hs0001 ", "HS0001"),
        ("hs 00 01", "HS0001"),
        ("79785001", "79785001"),
        ("NB-01.a", "NB-01.A"),
    ],
)
def test_clean_code(typed: str, expected: str) -> None:
    assert clean_code(typed) == expected


@pytest.mark.parametrize(
    ("typed", "code", "shown"),
    [
        ("", "code.empty", None),
        ("  ", "code.empty", None),
        ("HS#1", "code.invalid", "HS#1"),
        ("MÃ01", "code.invalid", "MÃ01"),
        ("X" * 33, "code.invalid", "X" * 33),
    ],
)
def test_clean_code_rejects(typed: str, code: str, shown: str | None) -> None:
    assert_rejected(lambda: clean_code(typed), code, *([shown] if shown else []))


# --- folding --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Nguyễn Văn Ân", "nguyen van an"),
        ("Đặng Quốc Khánh", "dang quoc khanh"),
        ("đ", "d"),
        ("Đ", "d"),
        (nfd("Tiêm vắc xin"), "tiem vac xin"),
        ("  TIÊM   VẮC XIN ", "tiem vac xin"),
        ("Võ Minh Đức", "vo minh duc"),
    ],
)
def test_fold(value: str, expected: str) -> None:
    assert fold(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Mã quận/huyện", "maquanhuyen"),
        ("Mã trường", "matruong"),
        ("Tên trường", "tentruong"),
        ("Cấp học", "caphoc"),
        ("Địa chỉ", "diachi"),
        ("ĐỊA  CHỈ (*)", "diachi"),
        ("Mã học sinh", "mahocsinh"),
    ],
)
def test_fold_key(value: str, expected: str) -> None:
    assert fold_key(value) == expected


# --- the 1-day rule -------------------------------------------------------------------------------


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)


def test_entered_on_the_day_or_the_next_is_on_time() -> None:
    event = date(2021, 11, 15)
    assert not is_late_entry(event, local(2021, 11, 15, 8, 0), TZ)
    assert not is_late_entry(event, local(2021, 11, 16, 0, 0), TZ)
    assert not is_late_entry(event, local(2021, 11, 16, 23, 59), TZ)
    assert not is_late_entry(event, local(2021, 11, 16, 23, 59, 59), TZ)


def test_entered_two_days_after_is_late() -> None:
    event = date(2021, 11, 15)
    assert is_late_entry(event, local(2021, 11, 17, 0, 0), TZ)
    assert is_late_entry(event, local(2021, 11, 17, 0, 1), TZ)
    assert is_late_entry(event, local(2021, 11, 20, 12, 0), TZ)


def test_local_day_decides_not_utc() -> None:
    event = date(2021, 11, 15)
    # 23:59 local on D+1 is 16:59 UTC on D+1: on time.
    on_time = local(2021, 11, 16, 23, 59).astimezone(UTC)
    assert on_time.date() == date(2021, 11, 16)
    assert not is_late_entry(event, on_time, TZ)
    # 00:01 local on D+2 is still D+1 in UTC (17:01): late all the same.
    late = local(2021, 11, 17, 0, 1).astimezone(UTC)
    assert late.date() == date(2021, 11, 16)
    assert is_late_entry(event, late, TZ)
    # 06:00 UTC on D+1 is 13:00 local on D+1: on time; 17:00 UTC on D+1 is 00:00 local on D+2: late.
    assert not is_late_entry(event, datetime(2021, 11, 16, 6, 0, tzinfo=UTC), TZ)
    assert is_late_entry(event, datetime(2021, 11, 16, 17, 0, tzinfo=UTC), TZ)


# --- date ranges (/report's typed period) ---------------------------------------------------------


def period(date_from: date, date_to: date) -> ReportPeriod:
    return ReportPeriod(date_from=date_from, date_to=date_to)


SEPT_TO_NOV = period(date(2021, 9, 1), date(2021, 11, 15))


@pytest.mark.parametrize(
    "typed",
    [
        "01/09/2021 - 15/11/2021",  # the pattern the period question shows
        "01/09/2021 – 15/11/2021",  # a round's button (en dash)
        "từ 01/09/2021 đến 15/11/2021",  # a report's caption
        "01/09/2021-15/11/2021",
        "01/09/2021 -15/11/2021",
        "01/09/2021 —  15/11/2021",
        "01/09/2021 − 15/11/2021",  # minus sign
        "01/09/2021 ‐ 15/11/2021",  # Unicode hyphen
        "01/09/2021 → 15/11/2021",
        "01/09/2021 -> 15/11/2021",
        "01/09/2021 ~ 15/11/2021",
        "01/09/2021 đến 15/11/2021",
        "01/09/2021 den 15/11/2021",
        "01/09/2021 tới 15/11/2021",
        "01/09/2021 đến hết 15/11/2021",
        "Từ 01/09/2021 đến 15/11/2021",
        "tu 01/09/2021 den 15/11/2021",
        nfd("từ 01/09/2021 đến 15/11/2021"),
        "từ ngày 01/09/2021 đến ngày 15/11/2021",
        "from 01/09/2021 to 15/11/2021",
        "  01/09/2021   -   15/11/2021.  ",
        "1/9/2021 - 15/11/2021",
        "01-09-2021 - 15-11-2021",
        "01.09.21-15.11.21",
        "2021-09-01 - 2021-11-15",
        "1/9 - 15/11",
        "1/9-15/11",
        "từ 1/9 đến 15/11",
        "tu 1/9 den 15/11",
        "1/9 - 15/11/2021",
        "01/09/2021 - 15/11",
        "từ 1/9 đến nay",
        "tu 01/09/2021 den hom nay",
    ],
)
def test_parse_date_range_accepts(typed: str) -> None:
    assert parse_date_range(typed, TODAY) == SEPT_TO_NOV


@pytest.mark.parametrize(
    ("typed", "today", "expected"),
    [
        # Without a year, the current school year (September to August) - even for a day not yet
        # come: "15/11" typed on 10/11/2021 is 15/11/2021, not the year before (a reversed range).
        ("1/9 - 15/11", date(2021, 11, 10), SEPT_TO_NOV),
        ("1/9 - 15/11", date(2022, 1, 10), SEPT_TO_NOV),
        ("1/9 - 15/11", date(2021, 9, 1), SEPT_TO_NOV),
        ("1/9 - 15/11", date(2022, 8, 31), SEPT_TO_NOV),
        ("1/9 - 15/11", date(2022, 9, 1), period(date(2022, 9, 1), date(2022, 11, 15))),
        ("1/12 - 31/1", TODAY, period(date(2021, 12, 1), date(2022, 1, 31))),
        ("1/2 - 31/3", TODAY, period(date(2022, 2, 1), date(2022, 3, 31))),
        # One end with a year: the other end is in that end's school year.
        ("1/9 - 15/11/2020", TODAY, period(date(2020, 9, 1), date(2020, 11, 15))),
        ("01/09/2020 - 31/5", TODAY, period(date(2020, 9, 1), date(2021, 5, 31))),
        ("hôm qua - hôm nay", TODAY, period(date(2021, 11, 14), TODAY)),
    ],
)
def test_parse_date_range_years(typed: str, today: date, expected: ReportPeriod) -> None:
    assert parse_date_range(typed, today) == expected


@pytest.mark.parametrize(
    "typed",
    ["15/11/2021 - 01/09/2021", "15/11 - 1/9", "15/11/2021 - 1/9"],
)
def test_parse_date_range_refuses_a_reversed_range(typed: str) -> None:
    message = assert_rejected(lambda: parse_date_range(typed, TODAY), "reports.period_invalid")
    assert "sau ngày kết thúc" in message


@pytest.mark.parametrize(
    ("typed", "code", "shown"),
    [
        ("01/11/2021", "reports.period_range_invalid", "«01/11/2021»"),
        ("01/09/2021 15/11/2021", "reports.period_range_invalid", "01/09/2021 15/11/2021"),
        ("01/09/2021 - 15/11/2021 - 20/11/2021", "reports.period_range_invalid", "20/11/2021"),
        ("tháng 9 đến tháng 11", "reports.period_range_invalid", "tháng 9 đến tháng 11"),
        ("31/02/2021 - 01/03/2021", "date.impossible", "31/02/2021"),
        ("30/2 - 1/3", "date.impossible", "30/2"),
        ("29/2 - 1/3", "date.impossible", "29/2"),  # February 2022 has 28 days
        ("", "reports.period_range_invalid", "«»"),
    ],
)
def test_parse_date_range_rejects(typed: str, code: str, shown: str) -> None:
    assert_rejected(lambda: parse_date_range(typed, TODAY), code, shown)
