"""Hardening (issue 13, finding 10): names cannot hide invisible, bidi or emoji characters, and invite
codes cannot be guessed without limit.

Names: one rule (`storage.schemas.parsing.clean_name`, on top of `storage.text.nfc`) for students, staff
invites, donors and contacts — invisible characters are dropped, emoji and symbols refused with a text that
names them, every Vietnamese letter accepted whether typed NFC or NFD, and stored NFC. Invites: wrong codes
are audited per Telegram account and, after `INVITE_MAX_FAILURES` in `INVITE_FAILURE_WINDOW`, every code
(even a right one) is refused with the time left to wait.
"""

from __future__ import annotations

import logging
import sys
import unicodedata
from datetime import date, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from bot.errors import render_error
from bot.import_texts import message
from bot.texts import load, t
from storage.enums import AuditAction, Role
from storage.errors import DomainError
from storage.models import AuditLog, Student
from storage.schemas.devices import DonorIn
from storage.schemas.faq import ContactIn
from storage.schemas.organisation import InviteIn
from storage.schemas.parsing import clean_name
from storage.schemas.students import StudentIn
from storage.services import Services
from storage.services.staff import (
    INVITE_ATTEMPT_ENTITY,
    INVITE_FAILURE_WINDOW,
    INVITE_MAX_FAILURES,
    telegram_name,
)
from storage.text import fold, nfc, strip_invisible
from tests import excel_files as files
from tests.factories import TELEGRAM_IDS, make_world

TODAY = date(2021, 11, 15)
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
BIDI += ["\u200e", "\u200f", "\u061c"]
# Every Vietnamese letter with a diacritic, lower and upper case.
VIETNAMESE_LETTERS = "àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ"


def nfd(value: str) -> str:
    return unicodedata.normalize("NFD", value)


def is_nfc(value: str) -> bool:
    return unicodedata.is_normalized("NFC", value)


def refused(value: str, code: str, *shown: str) -> str:
    """`clean_name(value)` raises `code`; the Vietnamese text names each of `shown`."""
    with pytest.raises(DomainError) as info:
        clean_name(value)
    assert info.value.code == code
    text = render_error(info.value, "vi")
    assert f"errors.{code}" in load("vi") and "{" not in text, text
    for part in shown:
        assert part in text, (part, text)
    return text


# --- the invisible characters ---------------------------------------------------------------------


def test_every_control_and_format_character_is_dropped() -> None:
    kept = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in ("Cc", "Cf")
        and strip_invisible(f"a{chr(code)}b") not in ("ab", "a b")
    ]
    assert kept == []


@pytest.mark.parametrize(
    "char", ZERO_WIDTH + BIDI + ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u00ad", "\u3164"]
)
def test_nfc_drops_zero_width_bidi_and_control_characters(char: str) -> None:
    assert nfc(f" Nguyễn{char} Văn {char}An{char} ") == "Nguyễn Văn An"
    assert fold(f"Nguyễn{char} Văn An") == "nguyen van an"


def test_invisible_characters_go_before_composing() -> None:
    # A zero-width space between a letter and its accent must not keep them apart.
    assert nfc("Le\u200b\u0301") == "Lé"


# --- person names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Nguyễn\u200b Văn\u200d An", "Nguyễn Văn An"),
        ("\ufeffLê Thị Mai\u2060", "Lê Thị Mai"),
        # A right-to-left override would show the name reversed; it is dropped, the name kept.
        ("\u202eTrần Thị Bình\u202c", "Trần Thị Bình"),
        ("\u2067Phạm\u2069 \u200fVăn\u200e Đức\u061c", "Phạm Văn Đức"),
        ("Lê\x00 Thị\x07 Hồng\x1b", "Lê Thị Hồng"),
        ("  Lê\tThị\r\nHồng  ", "Lê Thị Hồng"),
        ("Lê\u00a0Thị\u3000Hồng", "Lê Thị Hồng"),
    ],
)
def test_invisible_characters_are_cleaned_from_names(typed: str, expected: str) -> None:
    assert clean_name(typed) == expected


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("Nguyễn Văn An 😀", "😀"),
        ("Hoa ❤️", "❤️"),  # with its variation selector
        ("👍🏽 Lan", "👍🏽"),  # with its skin tone
        ("An 1️⃣", "1️⃣"),  # a keycap
        ("Bình ☺ ♥", "☺ ♥"),  # So, each named once
        ("Bình ♥♥♥", "♥"),
        ("Nguyễn ^ An", "^"),  # Sk
        ("Lan ˜", "˜"),  # Sk
        ("Lan \ue000", "U+E000"),  # private use
        ("Lan \u0378", "U+0378"),  # unassigned
        ("Lan \ud83d", "U+D83D"),  # a lone surrogate
        ("Lan \U0010fffe", "U+10FFFE"),  # a non-character
        ("An\U000e0100", "U+E0100"),  # a variation selector on a letter
        ("Nguyễn Văn An 2", "2"),
        ("Nguyễn @n", "@"),
        ("Lan e\u0301\u0301\u0301\u0301", "U+0301"),  # marks stacked up
        ("\u0301An", "U+0301"),  # a mark on nothing
    ],
)
def test_emoji_symbols_and_digits_are_refused_and_named(typed: str, shown: str) -> None:
    text = refused(typed, "name.invalid_characters", shown)
    assert "emoji" in text


@pytest.mark.parametrize("typed", ["...", "- - -", "'", ". - '"])
def test_names_without_letters_are_refused(typed: str) -> None:
    refused(typed, "name.no_letters", typed)


@pytest.mark.parametrize("typed", ["12345", "0909 123 456", "!!!", "?"])
def test_digits_and_punctuation_alone_are_refused(typed: str) -> None:
    refused(typed, "name.invalid_characters")


@pytest.mark.parametrize("typed", ["", "   ", "\u200b\u202e", "\x00\ufeff"])
def test_nothing_but_invisible_characters_is_an_empty_name(typed: str) -> None:
    refused(typed, "name.empty")


@pytest.mark.parametrize(
    "name",
    [
        "Nguyễn Thị Ánh Tuyết",
        "Đặng Quốc Khánh",
        "Trương Ỷ Lan",
        "Hoàng Thị Ngọc Diệp",
        "Lưu Thị Thủy",
        "Võ Thị Sáu",
        "H'Hen Niê",
        "Y Ngông Niê Kđăm",
        "Nguyễn-Trần Minh Thư",
        "Nguyễn T. Bình",
        "Ksor H’Ân",
        " ".join(VIETNAMESE_LETTERS[i : i + 6].capitalize() for i in range(0, len(VIETNAMESE_LETTERS), 6)),
    ],
)
@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_vietnamese_names_are_accepted_and_stored_nfc(name: str, form: str) -> None:
    typed = unicodedata.normalize(form, name)
    cleaned = clean_name(typed)
    assert cleaned == unicodedata.normalize("NFC", name)
    assert is_nfc(cleaned)


def test_every_vietnamese_letter_typed_either_way_is_a_letter() -> None:
    for letter in VIETNAMESE_LETTERS + VIETNAMESE_LETTERS.upper():
        for form in ("NFC", "NFD"):
            assert clean_name(f"A{unicodedata.normalize(form, letter)}") == f"A{letter}".capitalize()
    # The two accents of "ệ" typed in either order are the same letter.
    assert clean_name("Nghe\u0302\u0323") == clean_name("Nghe\u0323\u0302") == "Nghệ"


# --- every schema that takes a name ---------------------------------------------------------------


def _student(name: str) -> StudentIn:
    row = {"code": "HS9001", "full_name": name, "date_of_birth": "14/3/2012", "class_name": "4A1"}
    return StudentIn.model_validate(row, context={"today": TODAY})


def _codes(error: ValidationError) -> list[str]:
    return [
        e["ctx"]["error"].code
        for e in error.errors()
        if isinstance(e.get("ctx", {}).get("error"), DomainError)
    ]


def test_student_invite_donor_and_contact_names_follow_the_rule() -> None:
    assert _student("\u202eNguyễn\u200b Văn An").full_name == "Nguyễn Văn An"
    assert InviteIn(role=Role.TEACHER, full_name=nfd("trần kim ngân\u200d")).full_name == "Trần Kim Ngân"
    assert InviteIn(role=Role.TEACHER, full_name="\u200b\u202e").full_name == ""
    assert DonorIn(name="Công ty 3M & Co.\u200b", kind="business").name == "Công ty 3M & Co."
    assert DonorIn(name="VNPT", kind="business").name == "VNPT"  # an organisation keeps its case
    assert ContactIn(topic="technical", name="Bộ phận một cửa (Phòng GD&ĐT)\u202e").name == (
        "Bộ phận một cửa (Phòng GD&ĐT)"
    )
    assert ContactIn(topic="technical", name="\u200b").name == ""
    cases = [
        (lambda: _student("Nguyễn Văn An 😀"), "name.invalid_characters"),
        (lambda: _student("..."), "name.no_letters"),
        (lambda: InviteIn(role=Role.TEACHER, full_name="Ngân 🌸"), "name.invalid_characters"),
        (lambda: DonorIn(name="Quỹ 🎁 Ánh Dương", kind="business"), "name.organisation_invalid_characters"),
        (lambda: DonorIn(name="12/3", kind="business"), "name.organisation_no_letters"),
        (lambda: ContactIn(topic="technical", name="Cô Lan ☎"), "name.organisation_invalid_characters"),
    ]
    for build, code in cases:
        with pytest.raises(ValidationError) as info:
            build()
        assert _codes(info.value) == [code]
        assert "{" not in render_error(info.value, "vi")


@pytest.mark.parametrize(
    ("profile", "expected"),
    [("Hoa 🌸", "Hoa"), ("\u202eLan", "Lan"), ("nguyễn văn an", "Nguyễn Văn An"), ("🌸🌸", ""), ("123", "")],
)
def test_a_telegram_profile_name_is_cleaned_not_refused(profile: str, expected: str) -> None:
    assert telegram_name(profile) == expected


def test_name_texts_exist_in_both_languages_with_the_same_placeholders() -> None:
    for key in (
        "errors.name.invalid_characters",
        "errors.name.no_letters",
        "errors.name.organisation_invalid_characters",
        "errors.name.organisation_no_letters",
        "errors.invite.too_many_attempts",
    ):
        assert key in load("vi") and key in load("en"), key
    assert t("errors.invite.too_many_attempts", "vi", minutes=7).count("7 phút") == 1


# --- storing ----------------------------------------------------------------------------------------


async def test_students_are_stored_nfc_without_invisible_characters(services: Services) -> None:
    world = await make_world(services)
    typed = nfd("\u202elê\u200b thị  mai\u200f")
    added = await services.students.add(_student(typed), school_id=world.primary_school_id, actor_id=None)
    assert added.full_name == "Lê Thị Mai"
    async with services.sessionmaker() as session:
        stored = await session.get(Student, added.id)
        assert stored is not None
        assert stored.full_name == "Lê Thị Mai" and is_nfc(stored.full_name)
        assert stored.search_name == "le thi mai"
    assert (await services.students.search(world.primary_school_id, "le thi mai")).total == 1


async def test_the_import_refuses_such_rows_one_by_one(services: Services) -> None:
    await make_world(services)
    header = ["STT", "Mã học sinh", "Họ và tên", "Ngày sinh", "Lớp", "Giới tính"]
    content = files.xlsx(
        [
            header,
            [1, "HS9101", "Trần Văn Tú 😀", date(2013, 1, 1), "3A1", "Nam"],
            [2, "HS9102", "\u202eLê Thị Mai\u200b", date(2013, 2, 2), "3A1", "Nữ"],
            [3, "HS9103", nfd("Đặng Thu Thảo"), date(2013, 3, 3), "3A1", "Nữ"],
            [4, "HS9104", "12345", date(2013, 4, 4), "3A1", "Nam"],
            [5, "HS9105", "---", date(2013, 5, 5), "3A1", "Nam"],
            [6, "HS9106", "Lan \ue000", date(2013, 6, 6), "3A1", "Nữ"],
        ]
    )
    staff = await services.staff.by_telegram_id(TELEGRAM_IDS["teacher"])
    assert staff is not None
    scope = await services.imports.scope_for(staff)
    check = await services.imports.check(scope, "danh-sach.xlsx", content, _limits(), stage_for=staff.id)
    outcomes = {row.row: row.outcome.value for row in check.rows}
    assert outcomes == {
        2: "rejected",
        3: "created",
        4: "created",
        5: "rejected",
        6: "rejected",
        7: "rejected",
    }
    issues = {row.row: [(i.field, i.code) for i in row.issues] for row in check.rows if row.issues}
    assert issues == {
        2: [("full_name", "name.invalid_characters")],
        5: [("full_name", "name.invalid_characters")],
        6: [("full_name", "name.no_letters")],
        7: [("full_name", "name.invalid_characters")],
    }
    # The same text as in the chat, naming what to remove.
    emoji_row = next(row for row in check.rows if row.row == 2)
    (issue,) = emoji_row.issues
    assert "😀" in message(issue.code, issue.params, "vi")
    assert "U+E000" in message(*_issue(check, 7), "vi")

    assert check.pending_id is not None
    await services.imports.confirm(check.pending_id, staff, _limits())
    async with services.sessionmaker() as session:
        names = {
            s.code: s.full_name
            for s in await session.scalars(select(Student).where(Student.code.like("HS91%")))
        }
    assert names == {"HS9102": "Lê Thị Mai", "HS9103": "Đặng Thu Thảo"}
    assert all(is_nfc(name) for name in names.values())


def _issue(check, row_number: int) -> tuple[str, dict]:  # type: ignore[no-untyped-def]
    (issue,) = next(row for row in check.rows if row.row == row_number).issues
    return issue.code, issue.params


def _limits():  # type: ignore[no-untyped-def]
    from storage.schemas.imports import ReadLimits

    return ReadLimits(max_bytes=10 * 2**20, max_rows=50_000)


# --- invite attempts --------------------------------------------------------------------------------

NEWCOMER = 777_001


async def _invite(services: Services, days: int = 7) -> str:
    created = await services.staff.create_invite(
        InviteIn(role=Role.TEACHER, school_code="79785001", full_name="Trần Kim Ngân", valid_days=days)
    )
    return created.code


async def _attempts(services: Services, telegram_user_id: int = NEWCOMER) -> list[AuditLog]:
    async with services.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditLog)
            .where(AuditLog.entity == INVITE_ATTEMPT_ENTITY, AuditLog.entity_id == str(telegram_user_id))
            .order_by(AuditLog.id)
        )
        return list(rows)


async def _register(services: Services, code: str, telegram_user_id: int = NEWCOMER) -> DomainError | None:
    try:
        await services.staff.register(telegram_user_id, code, full_name="Ngân")
    except DomainError as exc:
        return exc
    return None


async def test_five_wrong_codes_lock_the_account_for_ten_minutes(services, clock, caplog) -> None:
    await make_world(services)
    code = await _invite(services)
    assert INVITE_MAX_FAILURES == 5 and INVITE_FAILURE_WINDOW.total_seconds() == 600
    caplog.set_level(logging.INFO, logger="storage")
    guesses = [f"doan-ma-{n}" for n in range(INVITE_MAX_FAILURES)]
    for number, guess in enumerate(guesses, start=1):
        error = await _register(services, guess)
        assert error is not None and error.code == "invite.unknown"
        assert len(await _attempts(services)) == number
        clock.advance(timedelta(seconds=30))

    # Each wrong attempt is audited: who (the Telegram id), when (the service clock), why; never the code.
    attempts = await _attempts(services)
    assert [a.action for a in attempts] == [AuditAction.CREATE] * INVITE_MAX_FAILURES
    assert all(a.actor_id is None and a.school_id is None for a in attempts)
    assert [a.after for a in attempts] == [{"telegram_user_id": NEWCOMER, "reason": "invite.unknown"}] * 5
    assert attempts[0].at == clock.now() - timedelta(seconds=30) * INVITE_MAX_FAILURES
    assert all(guess not in str(a.after) for a in attempts for guess in guesses)

    # The 6th try, even with the right code, is refused with the time left (the 1st wrong one was 2.5
    # minutes ago: 7.5 minutes left, shown rounded up), and is not counted (waiting is not guessing).
    error = await _register(services, code)
    assert error is not None and error.code == "invite.too_many_attempts"
    assert error.params == {"minutes": 8}
    text = render_error(error, "vi")
    assert "8 phút" in text and "chờ" in text
    assert "8 minutes" in render_error(error, "en")
    assert len(await _attempts(services)) == INVITE_MAX_FAILURES
    assert await services.staff.by_telegram_id(NEWCOMER) is None

    # Another account is not affected.
    assert (await _register(services, "doan-ma-khac", NEWCOMER + 1)).code == "invite.unknown"  # type: ignore[union-attr]

    # Still locked until the first wrong code is 10 minutes old.
    clock.advance(timedelta(minutes=7, seconds=29))
    error = await _register(services, code)
    assert error is not None and error.params == {"minutes": 1}
    clock.advance(timedelta(seconds=1))
    assert await _register(services, code) is None
    staff = await services.staff.by_telegram_id(NEWCOMER)
    assert staff is not None and staff.full_name == "Trần Kim Ngân"

    # No log line carries a code.
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "locked out" in logged and str(NEWCOMER) in logged
    assert code not in logged and not any(guess in logged for guess in guesses)


async def test_used_and_expired_codes_count_already_registered_does_not(services, clock) -> None:
    await make_world(services)
    used = await _invite(services)
    assert await _register(services, used, NEWCOMER + 5) is None
    expired = await _invite(services, days=1)
    clock.advance(timedelta(days=2))
    for code in (used, expired):
        error = await _register(services, code)
        assert error is not None and error.code in ("invite.used", "invite.expired")
    assert [a.after["reason"] for a in await _attempts(services) if a.after] == [
        "invite.used",
        "invite.expired",
    ]
    # A registered person sending a code again is told so, and that is no guess.
    for _ in range(INVITE_MAX_FAILURES + 1):
        error = await _register(services, used, NEWCOMER + 5)
        assert error is not None and error.code == "invite.already_registered"
    assert await _attempts(services, NEWCOMER + 5) == []


async def test_wrong_attempts_outside_the_window_do_not_count(services, clock) -> None:
    await make_world(services)
    code = await _invite(services)
    for _ in range(INVITE_MAX_FAILURES - 1):
        await _register(services, "sai")
    clock.advance(INVITE_FAILURE_WINDOW)
    # The four old ones have left the window: four more wrong codes still leave one try.
    for _ in range(INVITE_MAX_FAILURES - 1):
        assert (await _register(services, "sai")).code == "invite.unknown"  # type: ignore[union-attr]
    assert await _register(services, code) is None


async def test_the_chat_shows_the_wait(services, harness) -> None:
    await make_world(services)
    code = await _invite(services)
    newcomer = harness.person("5001", "Ngân")
    for _ in range(INVITE_MAX_FAILURES):
        await newcomer.send("/start khong-co-ma-nay")
        assert "Mã mời không đúng" in newcomer.last_text()
    await newcomer.send(f"/start {code}")
    assert "chờ 10 phút" in newcomer.last_text()
    assert await services.staff.by_telegram_id(5001) is None
