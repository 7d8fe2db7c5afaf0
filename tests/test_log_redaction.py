"""At LOG_LEVEL=DEBUG the logs hold no bot token, invite code, student name or phone number: PTB logs
every Bot API call with its parameters and every update, httpx logs URLs with the token in them."""

from __future__ import annotations

import io
import logging
import urllib.parse
from collections.abc import Iterator

import pytest

from bot.logging_setup import (
    LOG_FORMAT,
    NOISY_LOGGERS,
    QUIET_LOGGERS,
    REDACTED,
    RedactingFilter,
    configure_logging,
    install_filter,
    secrets_of,
    set_levels,
)
from bot.settings import Settings
from storage.enums import Role
from storage.schemas.faq import ContactIn
from storage.schemas.organisation import InviteIn
from tests.chat import CONFIRM, TODAY_BUTTON, Harness, label
from tests.factories import BINH, make_world

TOKEN = "7012345678:AAHk2Zp9sQvLx0-NnB_3cTyWq8eRmUd4fGh"
PHONE = "0901234567"
CODE = "Ab3_x-Yz09Kq"  # an invite code's shape (secrets.token_urlsafe)


@pytest.fixture
def backend() -> str:
    """What is logged does not depend on the database: SQLite only."""
    return "sqlite"


# --- the filter on lines of the kinds PTB, httpx and tornado write ----------------------------------


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (f"HTTP Request: POST https://api.telegram.org/bot{TOKEN}/getMe 200", TOKEN),
        (f"Set Bot API URL: https://api.telegram.org/bot{TOKEN}", TOKEN),
        (f"url=https%3A%2F%2Fapi.telegram.org%2Fbot{urllib.parse.quote(TOKEN, safe='')}", "AAHk2Zp9sQ"),
        (
            "Calling Bot API endpoint `sendMessage` with parameters `{'chat_id': 5, 'text': 'Chào Lan'}`",
            "Lan",
        ),
        (
            'Webhook received data: {"update_id": 1, "message": {"text": "/start Ab3_x-Yz09Kq"}}',
            "Ab3_x-Yz09Kq",
        ),
        (
            "Processing update Update(message=Message(text='/start Ab3_x-Yz09Kq'), update_id=1)",
            "Ab3_x-Yz09Kq",
        ),
        ("link https://t.me/pgd_bot?start=Ab3_x-Yz09Kq", "Ab3_x-Yz09Kq"),
        ("Chat(first_name='Lan', last_name=\"O'Neil\", username='lan_pgd')", "O'Neil"),
        ("Chat(first_name='Lan', last_name=\"O'Neil\", username='lan_pgd')", "lan_pgd"),
        ("Contact(first_name='Mai', phone_number='+84901234567', user_id=5)", "901234567"),
        ('{"phone_number": "0901234567", "first_name": "Mai \\"Mi\\""}', "Mi"),
        ("CallbackQuery(data='student:HS0002', id='7')", "HS0002"),
        ("InlineKeyboardButton(callback_data='pick:42', text='Trần Thị Bình · 4A1')", "Bình"),
        ("liên hệ cô Mai 090 123 4567 hoặc +84 901234567", "4567"),
        ("form body chat_id=5&text=Tr%E1%BA%A7n+Th%E1%BB%8B&parse_mode=HTML", "Tr%E1"),
    ],
)
def test_the_filter_redacts(line: str, secret: str) -> None:
    redacting = RedactingFilter([TOKEN])
    record = logging.LogRecord("telegram.Bot", logging.DEBUG, __file__, 1, "%s", (line,), None)
    assert redacting.filter(record)
    assert record.args is None  # formatted once, here: no handler formats the arguments again
    assert secret not in record.getMessage()
    assert REDACTED in record.getMessage()


def test_the_filter_keeps_what_is_not_secret() -> None:
    redacting = RedactingFilter([TOKEN])
    line = "Selecting conversation (1001, 1001) with state 2; update_id=17 at 2021-11-15 09:00:00.123456"
    assert redacting.redact(line) == line


def test_the_filter_redacts_tracebacks_and_arguments() -> None:
    redacting = RedactingFilter([TOKEN])
    try:
        raise RuntimeError(f"could not reach https://api.telegram.org/bot{TOKEN}/getMe")
    except RuntimeError:
        import sys

        record = logging.LogRecord(
            "httpx", logging.ERROR, __file__, 1, "failed %s", (f"bot{TOKEN}/x",), sys.exc_info()
        )
    redacting.filter(record)
    text = logging.Formatter(LOG_FORMAT).format(record)
    assert TOKEN not in text and "AAHk2Zp9" not in text
    assert "RuntimeError" in text  # the traceback is still there


def test_configure_logging_installs_the_filter_on_every_root_handler(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in a fresh process: basicConfig adds a stderr handler
    monkeypatch.setattr(root, "level", logging.WARNING)
    levels = {name: logging.getLogger(name).level for name in (*QUIET_LOGGERS, *NOISY_LOGGERS)}
    try:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            telegram_bot_token=TOKEN,
            log_level="DEBUG",
            database_url="postgresql+asyncpg://bot:pa55word-x@127.0.0.1/schoolbot",
        )
        configure_logging(settings)
        assert root.level == logging.DEBUG
        [handler] = root.handlers
        assert any(isinstance(f, RedactingFilter) for f in handler.filters)
        logging.getLogger("httpx").debug("GET https://api.telegram.org/bot%s/getMe", TOKEN)
        logging.getLogger("some.library").info("connecting with password pa55word-x")
        err = capsys.readouterr().err
        assert "pa55word-x" not in err and TOKEN not in err
        assert err.count(REDACTED) == 2
        # SQL parameters (a student's name in a tuple) are never logged, even at DEBUG.
        assert logging.getLogger("sqlalchemy.engine.Engine").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("aiosqlite").getEffectiveLevel() == logging.WARNING
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


# --- a whole day of chat at DEBUG -------------------------------------------------------------------


@pytest.fixture
def debug_log(harness: Harness) -> Iterator[io.StringIO]:
    """Every logger at DEBUG (as LOG_LEVEL=DEBUG sets them) into a capture handler with the filter."""
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    install_filter(handler, secrets_of(harness.settings))
    names = (*QUIET_LOGGERS, *NOISY_LOGGERS)
    saved = root.level, {name: logging.getLogger(name).level for name in names}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    set_levels("DEBUG")
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


async def test_a_day_of_chat_at_debug_leaks_nothing(harness: Harness, debug_log: io.StringIO) -> None:
    services = harness.services
    await make_world(services)
    await services.faq.import_contacts(
        [ContactIn(topic="vaccine", role="Y tế trường học", name="Lê Thị Hạnh", phone=PHONE)]
    )
    invite = await services.staff.create_invite(
        InviteIn(role=Role.TEACHER, school_code="79785001", full_name="Phạm Ngọc Diệp")
    )
    # Registration with the invite code, from an account with a name of its own.
    newcomer = harness.person("5001", "Hoàng Quốc Việt")
    await newcomer.send(f"/start {invite.code}")
    assert "Đăng ký thành công" in newcomer.last_text()
    # A dose for a student found by name.
    teacher = harness.person("teacher")
    await teacher.send("/vaccine")
    await teacher.send("tran thi binh")
    await teacher.tap(BINH)
    await teacher.tap(label("vaccines.dose.next_button", dose_number=1))
    await teacher.tap(TODAY_BUTTON)
    await teacher.tap("Comirnaty (Pfizer-BioNTech)")
    await teacher.tap(label("vaccines.place_button.school"))
    await teacher.tap(CONFIRM)
    assert "Đã lưu mũi 1" in teacher.last_text()
    # The contacts, with a phone number; and a shared contact card.
    await teacher.send("/contacts")
    assert PHONE in teacher.last_text()
    await harness.deliver(
        harness.api.incoming_message(
            teacher.user, contact={"phone_number": "+84912345678", "first_name": "Bố em Bình"}
        )
    )

    log = debug_log.getvalue()
    token = harness.api.token
    assert "sendMessage" in log and REDACTED in log, "nothing was logged: the test proves nothing"
    leaks = [
        token,
        urllib.parse.quote(token, safe=""),
        invite.code,
        "Trần Thị Bình",
        "tran thi binh",
        "Phạm Ngọc Diệp",
        "Hoàng Quốc Việt",
        "Lê Thị Hạnh",
        "Bố em Bình",
        PHONE,
        "912345678",
    ]
    for secret in leaks:
        found = [line for line in log.splitlines() if secret in line]
        assert not found, (secret, found[:3])
