"""`schoolbot sandbox`: the real bot polling a local Bot API server, and the web chat in front of it.

Each test starts the whole sandbox in-process (tornado on a free port of 127.0.0.1, the bot built by
build_application polling it over HTTP, a small demo district in a temporary SQLite file) and talks to
it over HTTP like the page does. Waiting is done with the page's own long polling, bounded in rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyKeyboardMarkup, ReplyKeyboardRemove

from bot.sandbox.app import SANDBOX_TOKEN, Sandbox
from bot.sandbox.database import SandboxError, reset_database, sandbox_path
from bot.sandbox.entities import parse_html
from bot.sandbox.render import telegram_html
from bot.sandbox.server import run_sandbox
from bot.settings import Settings
from bot.texts import t

JSON = dict[str, Any]
ROUNDS = 40  # long polls of up to 5 s each before giving up on a reply


def sandbox_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'production.sqlite3'}",
        "sandbox_database_url": f"sqlite+aiosqlite:///{tmp_path / 'sandbox.sqlite3'}",
        "telegram_bot_token": None,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    running = Sandbox(sandbox_settings(tmp_path), port=0, schools=2, students=40)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.url, trust_env=False, timeout=30) as client:
        yield client


async def personas(http: httpx.AsyncClient, lang: str = "vi") -> list[JSON]:
    response = await http.get("/api/config", params={"lang": lang})
    assert response.status_code == 200
    return response.json()["personas"]


async def persona(http: httpx.AsyncClient, role: str, level: str | None = None) -> JSON:
    return next(
        p for p in await personas(http) if p["role"] == role and (level is None or p["level"] == level)
    )


async def chat(http: httpx.AsyncClient, user_id: int) -> JSON:
    response = await http.get(f"/api/chats/{user_id}")
    assert response.status_code == 200
    return response.json()


async def wait_chat(http: httpx.AsyncClient, user_id: int, condition: Callable[[JSON], bool]) -> JSON:
    state = await chat(http, user_id)
    for _ in range(ROUNDS):
        if condition(state):
            return state
        response = await http.get(f"/api/chats/{user_id}", params={"after": state["version"], "wait": 5})
        state = response.json()
    raise AssertionError(f"the chat never got there: {state}")


def bot_texts(state: JSON) -> list[str]:
    return [m["text"] for m in state["messages"] if m["from_bot"] and m["text"]]


async def say(http: httpx.AsyncClient, user_id: int, text: str) -> JSON:
    before = len(bot_texts(await chat(http, user_id)))
    response = await http.post(f"/api/chats/{user_id}/messages", json={"text": text})
    assert response.status_code == 200, response.text
    return await wait_chat(http, user_id, lambda s: len(bot_texts(s)) > before)


# --- the page -------------------------------------------------------------------------------------


async def test_the_page_loads_and_says_it_is_a_sandbox(sandbox, http):
    page = await http.get("/")
    assert page.status_code == 200
    assert '<script src="/static/app.js"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("app.js", "style.css"):
        assert (await http.get(f"/static/{asset}")).status_code == 200
    config = (await http.get("/api/config")).json()
    assert "SANDBOX" in config["texts"]["banner"]
    assert config["texts"]["send"] == t("sandbox.page.send", "vi")
    assert config["bot"]["username"] == sandbox.api.bot_username
    english = (await http.get("/api/config", params={"lang": "en"})).json()
    assert english["texts"]["send"] == "Send"
    assert english["texts"].keys() == config["texts"].keys()


async def test_the_people_are_the_demo_staff_read_from_the_database(sandbox, http):
    staff = await sandbox.services.staff.list_staff()
    demo = {s.telegram_user_id: s for s in staff if s.telegram_user_id and s.telegram_user_id > 900_000_000}
    people = await personas(http)
    assert [p["id"] for p in people] == sorted(demo)
    for person in people:
        account = demo[person["id"]]
        assert person["name"] == account.full_name
        assert person["role"] == account.role.value
        assert person["school"] == account.school_name
    roles = {(p["role"], p["level"]) for p in people}
    for wanted in (
        ("teacher", "TH"),
        ("principal", "TH"),
        ("primary_specialist", None),
        ("health_officer", None),
        ("statistics_officer", None),
        ("deputy_head", None),
    ):
        assert wanted in roles
    english = await personas(http, "en")
    assert english[0]["role_label"] == t(f"roles.{english[0]['role']}", "en")


async def test_a_message_from_the_teacher_gets_the_bots_reply_in_her_chat(sandbox, http):
    teacher = await persona(http, "teacher", "TH")
    state = await say(http, teacher["id"], "/me")
    mine, reply = state["messages"][0], state["messages"][-1]
    assert not mine["from_bot"] and mine["text"] == "/me"
    assert reply["from_bot"] and teacher["name"] in reply["text"]
    assert f"<b>{teacher['name']}</b>" in reply["html"]  # Telegram's HTML, rendered
    assert teacher["school"] in reply["text"]
    # The bot really polled: its getUpdates went over HTTP to the sandbox.
    assert any(c.method == "getUpdates" for c in sandbox.api.calls)


async def test_an_inline_button_works_when_pressed(sandbox, http):
    teacher = await persona(http, "teacher", "TH")
    state = await say(http, teacher["id"], "/lang")
    question = state["messages"][-1]
    english = next(b for row in question["buttons"] for b in row if b["text"] == "English")
    pressed = await http.post(
        f"/api/chats/{teacher['id']}/callbacks", json={"message_id": question["id"], "data": english["data"]}
    )
    assert pressed.status_code == 200
    state = await wait_chat(http, teacher["id"], lambda s: "Switched to English." in bot_texts(s))
    # The tapped message lost its buttons (edited by the bot), so it cannot be pressed twice.
    assert next(m for m in state["messages"] if m["id"] == question["id"])["buttons"] == []
    again = await http.post(
        f"/api/chats/{teacher['id']}/callbacks", json={"message_id": question["id"], "data": english["data"]}
    )
    assert again.status_code == 409
    assert again.json()["error"] == t("sandbox.page.errors.unknown_button", "vi")
    answered = [a for a in sandbox.api.callback_answers if "callback_query_id" in a]
    assert answered  # the press was answered, as Telegram's clients expect
    account = next(
        s for s in await sandbox.services.staff.list_staff() if s.telegram_user_id == teacher["id"]
    )
    assert account.language == "en"


async def test_each_person_has_their_own_chat(sandbox, http):
    teacher = await persona(http, "teacher", "TH")
    officer = await persona(http, "statistics_officer")
    await say(http, teacher["id"], "/me")
    assert (await chat(http, officer["id"]))["messages"] == []
    state = await say(http, officer["id"], "/me")
    assert officer["name"] in bot_texts(state)[-1]
    teacher_chat = await chat(http, teacher["id"])
    assert all(officer["name"] not in text for text in bot_texts(teacher_chat))
    assert len(teacher_chat["messages"]) == 2
    assert (await http.get("/api/chats/12345")).status_code == 404  # not a demo account


async def test_documents_photos_and_the_reply_keyboard_reach_the_page(sandbox, http):
    teacher = await persona(http, "teacher", "TH")
    bot = sandbox.application.bot
    # What the bot sends (over HTTP, multipart) shows as a download link and a photo.
    workbook = b"PK\x03\x04 fake workbook"
    await bot.send_document(
        teacher["id"], document=workbook, filename="Báo cáo thiết bị.xlsx", caption="<b>32</b>"
    )
    png = b"\x89PNG\r\n\x1a\n fake picture"
    await bot.send_photo(teacher["id"], photo=png)
    await bot.send_message(
        teacher["id"], "Menu", reply_markup=ReplyKeyboardMarkup([["/me", "/help"]], resize_keyboard=True)
    )
    state = await chat(http, teacher["id"])
    document = state["messages"][0]["document"]
    assert document["name"] == "Báo cáo thiết bị.xlsx"
    assert state["messages"][0]["caption_html"] == "<b>32</b>"
    download = await http.get(document["url"])
    assert download.content == workbook
    assert "attachment" in download.headers["content-disposition"]
    assert "UTF-8''B%C3%A1o%20c%C3%A1o" in download.headers["content-disposition"]
    photo = await http.get(state["messages"][1]["photo"]["url"])
    assert photo.content == png and photo.headers["content-type"] == "image/png"
    assert state["keyboard"] == [["/me", "/help"]]
    # A menu button sends its label, like in Telegram.
    state = await say(http, teacher["id"], state["keyboard"][0][0])
    assert teacher["name"] in bot_texts(state)[-1]
    await bot.send_message(teacher["id"], "…", reply_markup=ReplyKeyboardRemove())
    assert (await chat(http, teacher["id"]))["keyboard"] == []


async def test_attaching_a_document_sends_it_to_the_bot(sandbox, http):
    teacher = await persona(http, "teacher", "TH")
    content = "họ tên;lớp\nNguyễn Văn An;4A1\n".encode()
    response = await http.post(
        f"/api/chats/{teacher['id']}/documents",
        files={"file": ("danh sách.csv", content, "text/csv")},
        data={"caption": "lớp 4A1"},
    )
    assert response.status_code == 200
    state = await chat(http, teacher["id"])
    sent = state["messages"][0]
    assert not sent["from_bot"] and sent["document"]["name"] == "danh sách.csv"
    assert sent["caption_html"] == "lớp 4A1"
    # The bot can fetch it like from Telegram: getFile, then the file URL.
    update_document = sandbox.api.chats[teacher["id"]][0]["document"]
    telegram_file = await sandbox.application.bot.get_file(update_document["file_id"])
    assert bytes(await telegram_file.download_as_bytearray()) == content
    missing = await http.post(f"/api/chats/{teacher['id']}/documents", data={"caption": "x"})
    assert missing.status_code == 400
    # A picture goes as a photo (e.g. the signed handover receipt), as Telegram's apps send it.
    picture = b"\xff\xd8\xff\xe0 fake jpeg"
    response = await http.post(
        f"/api/chats/{teacher['id']}/documents", files={"file": ("biên bản.jpg", picture, "image/jpeg")}
    )
    assert response.status_code == 200
    sent_photo = next(m for m in (await chat(http, teacher["id"]))["messages"] if m["photo"])
    assert sent_photo["document"] is None and not sent_photo["from_bot"]
    assert (await http.get(sent_photo["photo"]["url"])).content == picture


async def test_a_button_pop_up_shows_on_the_page(sandbox, http):
    teacher = await persona(http, "teacher", "TH")
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Cũ", callback_data="gone:1")]])
    message = await sandbox.application.bot.send_message(teacher["id"], "Nút cũ", reply_markup=markup)
    response = await http.post(
        f"/api/chats/{teacher['id']}/callbacks", json={"message_id": message.message_id, "data": "gone:1"}
    )
    assert response.status_code == 200
    state = await wait_chat(http, teacher["id"], lambda s: bool(s["notices"]))
    assert state["notices"][-1]["text"] == t("core.stale_button", "vi")
    assert state["notices"][-1]["alert"] is True


async def test_posts_from_another_web_site_are_refused(http, sandbox):
    teacher = await persona(http, "teacher", "TH")
    response = await http.post(
        f"/api/chats/{teacher['id']}/messages", json={"text": "/me"}, headers={"Origin": "https://evil.test"}
    )
    assert response.status_code == 403
    rebound = await http.get(f"/api/chats/{teacher['id']}", headers={"Host": "evil.test"})
    assert rebound.status_code == 403  # a name that resolves here is not this machine's own
    assert (await http.post(f"/api/chats/{teacher['id']}/messages", json={"text": "  "})).status_code == 400


# --- the Bot API over HTTP ------------------------------------------------------------------------


async def test_the_bot_api_over_http_is_faithful(sandbox, http):
    # The test is the client now: the bot stops polling so that it takes no update.
    await sandbox.application.updater.stop()
    base = f"/bot{SANDBOX_TOKEN}"
    unknown = await http.post(f"{base}/sendDice")
    assert unknown.status_code == 404
    assert unknown.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    wrong = await http.post("/bot123:WRONG/getMe")
    assert wrong.status_code == 401
    assert wrong.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    me = (await http.get(f"{base}/getMe")).json()
    assert me["ok"] is True and me["result"]["is_bot"] is True and me["result"]["id"] == sandbox.api.bot_id

    user = sandbox.api.user(900_000_001, "Hà")
    first = sandbox.api.incoming_message(user, text="/me")
    second = sandbox.api.incoming_message(user, text="/help")
    for update in (first, second):
        sandbox.api.push_update(update)
    got = (await http.post(f"{base}/getUpdates", data={"offset": "0", "timeout": "0"})).json()["result"]
    assert [u["update_id"] for u in got] == [first["update_id"], second["update_id"]]
    message = got[0]["message"]
    assert isinstance(message["date"], int) and isinstance(message["message_id"], int)
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 3}]
    # An offset confirms every update below it: they are gone for good.
    got = (await http.post(f"{base}/getUpdates", json={"offset": second["update_id"]})).json()["result"]
    assert [u["update_id"] for u in got] == [second["update_id"]]
    got = (await http.get(f"{base}/getUpdates", params={"offset": 0})).json()["result"]
    assert [u["update_id"] for u in got] == [second["update_id"]]
    got = (await http.post(f"{base}/getUpdates", json={"offset": second["update_id"] + 1})).json()
    assert got == {"ok": True, "result": []}
    # Long polling: a request waiting for updates is answered when one arrives.
    waiting = asyncio.ensure_future(
        http.post(f"{base}/getUpdates", json={"offset": second["update_id"] + 1, "timeout": 30})
    )
    for _ in range(50):
        if sandbox.api.calls[-1].method == "getUpdates" and not waiting.done():
            break
        await asyncio.sleep(0.01)
    third = sandbox.api.incoming_message(user, text="/lang")
    sandbox.api.push_update(third)
    assert [u["update_id"] for u in (await waiting).json()["result"]] == [third["update_id"]]

    sent = (
        await http.post(f"{base}/sendMessage", json={"chat_id": user["id"], "text": "<b>Chào</b>"})
    ).json()
    assert sent["ok"] and isinstance(sent["result"]["message_id"], int)
    assert sent["result"]["chat"]["id"] == user["id"] and isinstance(sent["result"]["date"], int)
    empty = await http.post(f"{base}/sendMessage", json={"chat_id": user["id"], "text": " "})
    assert empty.status_code == 400 and empty.json()["description"] == "Bad Request: message text is empty"
    same = await http.post(
        f"{base}/editMessageText",
        json={"chat_id": user["id"], "message_id": sent["result"]["message_id"], "text": "<b>Chào</b>"},
    )
    assert same.status_code == 400 and same.json()["description"].startswith(
        "Bad Request: message is not modified"
    )
    document = await http.post(
        f"{base}/sendDocument",
        data={"chat_id": str(user["id"])},
        files={"document": ("a.xlsx", b"PK-data", "application/octet-stream")},
    )
    file_id = document.json()["result"]["document"]["file_id"]
    path = (await http.post(f"{base}/getFile", json={"file_id": file_id})).json()["result"]["file_path"]
    assert (await http.get(f"/file/bot{SANDBOX_TOKEN}/{path}")).content == b"PK-data"
    assert (await http.get(f"/file/bot{SANDBOX_TOKEN}/files/nothing")).status_code == 404
    bad_file = await http.post(f"{base}/getFile", json={"file_id": "nope"})
    assert bad_file.json() == {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}


# --- the database, --reset, the command -------------------------------------------------------------


async def test_reset_starts_over_with_a_fresh_database(tmp_path):
    settings = sandbox_settings(tmp_path)
    first = Sandbox(settings, port=0, schools=2, students=20)
    await first.start()
    try:
        teacher = next(p for p in first.personas.values() if p.role == "teacher")
        await first.services.staff.set_language(teacher.staff_id, "en")
    finally:
        await first.stop()
    path = sandbox_path(settings)
    assert path.exists()
    assert not (tmp_path / "production.sqlite3").exists()  # never the production database

    again = Sandbox(settings, port=0, schools=2, students=20)  # without --reset: the same data
    await again.start()
    try:
        assert again.personas[teacher.user_id].language == "en"
    finally:
        await again.stop()

    out = io.StringIO()
    stop = asyncio.Event()
    stop.set()  # stop as soon as it has started
    code = await run_sandbox(settings, port=0, reset=True, schools=2, students=20, out=out, stop=stop)
    assert code == 0
    lines = out.getvalue()
    assert t("sandbox.reset_done", path=path) in lines
    assert t("sandbox.creating_demo", schools=2, students=20) in lines
    assert t("sandbox.stopped") in lines
    fresh = Sandbox(settings, port=0)
    await fresh.start()
    try:
        assert fresh.personas[teacher.user_id].language == "vi"  # a new demo district
    finally:
        await fresh.stop()


def test_reset_removes_the_file_and_its_journals(tmp_path):
    path = tmp_path / "sandbox.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).write_bytes(b"x")
    assert reset_database(path) is True
    assert list(tmp_path.iterdir()) == []
    assert reset_database(path) is False


def test_the_sandbox_never_uses_the_production_database(tmp_path):
    same = sandbox_settings(
        tmp_path,
        sandbox_database_url=f"sqlite+aiosqlite:///{tmp_path / 'production.sqlite3'}",
    )
    with pytest.raises(SandboxError) as raised:
        sandbox_path(same)
    assert raised.value.key == "same_database"
    memory = sandbox_settings(tmp_path, sandbox_database_url="sqlite+aiosqlite:///:memory:")
    with pytest.raises(SandboxError):
        sandbox_path(memory)


async def test_a_busy_port_is_reported(tmp_path, sandbox):
    other = Sandbox(sandbox_settings(tmp_path), port=sandbox.port)
    with pytest.raises(SandboxError) as raised:
        await other.start()
    assert raised.value.key == "port_in_use"
    assert other.application is None and other.services is None


def test_the_command_line(tmp_path):
    from bot.cli import build_parser

    args = build_parser().parse_args(["sandbox", "--reset", "--port", "9090"])
    assert args.reset is True and args.port == 9090 and args.schools == 6 and args.students == 600


async def test_run_without_a_token_starts_the_sandbox(tmp_path, monkeypatch, caplog):
    from bot.cli import CliContext
    from bot.commands import run
    from bot.sandbox import server

    started: list[Settings] = []

    async def fake_sandbox(settings: Settings, **kwargs: Any) -> int:
        started.append(settings)
        return 0

    monkeypatch.setattr(server, "run_sandbox", fake_sandbox)
    ctx = CliContext(settings=sandbox_settings(tmp_path), out=io.StringIO())
    with caplog.at_level(logging.WARNING):
        code = await run._run(ctx, argparse.Namespace(webhook=False))
    assert code == 0 and len(started) == 1
    assert t("cli.run_no_token").splitlines()[0] in caplog.text
    assert t("sandbox.run_instead") in caplog.text


# --- Telegram's HTML: parsed like Telegram, shown safely on the page --------------------------------


@pytest.mark.parametrize(
    ("text", "plain", "html"),
    [
        ("<b>Đậm</b> <i>nghiêng</i> <u>gạch</u> <s>xoá</s>", "Đậm nghiêng gạch xoá", None),
        ("<strong>a</strong><em>b</em><ins>c</ins><del>d</del>", "abcd", "<b>a</b><i>b</i><u>c</u><s>d</s>"),
        ("<b>a<i>b</i></b>c", "abc", None),
        ("👤 <b>Hà</b>", "👤 Hà", None),  # offsets count UTF-16 code units, as Telegram's do
        ('<pre><code class="language-python">1 &lt; 2</code></pre>', "1 < 2", "<pre>1 &lt; 2</pre>"),
        (
            "&lt;script&gt;alert(1)&lt;/script&gt;",
            "<script>alert(1)</script>",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
        ),
        ('<a href="javascript:alert(1)">x</a>', "x", "<a>x</a>"),
        (
            '<a href="https://moet.gov.vn" onclick="x()">Bộ</a>',
            "Bộ",
            '<a href="https://moet.gov.vn" target="_blank" rel="noopener noreferrer">Bộ</a>',
        ),
        ("<tg-spoiler>bí mật</tg-spoiler> &amp; &#273;", "bí mật & đ", "bí mật &amp; đ"),
        ("Tom & Jerry", "Tom & Jerry", "Tom &amp; Jerry"),
    ],
)
def test_telegram_html_becomes_entities_and_safe_page_html(text, plain, html):
    parsed, entities = parse_html(text)
    assert parsed == plain
    for entity in entities:
        units = parsed.encode("utf-16-le")[entity["offset"] * 2 : (entity["offset"] + entity["length"]) * 2]
        assert units.decode("utf-16-le")  # every entity covers whole characters
    assert telegram_html(text) == (html if html is not None else text)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<script>alert(1)</script>", 'Unsupported start tag "script" at byte offset 0'),
        ('<img src=x onerror="alert(1)">', 'Unsupported start tag "img" at byte offset 0'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("<b>không đóng", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
    ],
)
def test_bad_html_is_refused_like_telegram_does(text, error):
    with pytest.raises(ValueError, match="can't parse entities") as raised:
        parse_html(text)
    assert str(raised.value) == f"Bad Request: can't parse entities: {error}"


async def test_the_bot_sees_messages_as_telegram_returns_them(sandbox, http):
    """Plain text and entities: `text_html` of a message is what the bot sent."""
    teacher = await persona(http, "teacher", "TH")
    bot = sandbox.application.bot
    sent = await bot.send_message(teacher["id"], "👤 <b>Hà</b> &amp; <i>lớp 4A1</i>")
    assert sent.text == "👤 Hà & lớp 4A1"
    assert sent.text_html == "👤 <b>Hà</b> &amp; <i>lớp 4A1</i>"
    edited = await bot.edit_message_text(f"{sent.text_html}\n<i>Đã chọn</i>", teacher["id"], sent.message_id)
    assert edited.text_html.endswith("<i>Đã chọn</i>")
    from telegram.error import BadRequest

    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_text(edited.text_html, teacher["id"], sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)unsupported start tag"):
        await bot.send_message(teacher["id"], "1 <2")
    state = await chat(http, teacher["id"])
    assert state["messages"][-1]["html"] == "👤 <b>Hà</b> &amp; <i>lớp 4A1</i>\n<i>Đã chọn</i>"
    assert state["messages"][-1]["edited"] is True
