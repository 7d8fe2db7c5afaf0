"""The sandbox's page in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

Needs `apt-get install chromium` and `pip install playwright` (never `playwright install`: the
browser is Debian's). Skipped, with the reason shown, only where they are missing.

`SANDBOX_SCREENSHOT=docs/sandbox.png pytest tests/test_sandbox_browser.py` also writes the
screenshot of the documentation.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.sandbox.app import Sandbox
from bot.sandbox.database import Persona
from bot.texts import t
from storage.models import Handover, Student
from storage.text import fold
from tests.test_sandbox import sandbox_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
REPLY_TIMEOUT_MS = 60_000  # how long a step may wait for the bot; a bound, not a measurement
REPLY_ROUNDS = 1500  # polls of 20 ms for an update to reach the bot; a bound as well


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return "no Chromium: apt-get install chromium (Debian's package)"
    if importlib.util.find_spec("playwright") is None:
        return "no Playwright: pip install playwright (it drives Debian's chromium; no `playwright install`)"
    return None


@pytest.fixture(autouse=True)
def _browser_available() -> None:
    """Skip with the reason where no browser can be had; in CI (.ci/run installs one) that fails."""
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test is required in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    running = Sandbox(sandbox_settings(tmp_path), port=0, schools=2, students=60)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1200, "height": 760}, accept_downloads=True)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    await context.close()
    assert errors == [], f"errors in the page's script: {errors}"


def person(sandbox: Sandbox, role: str, level: str | None = None) -> Persona:
    """A demo account, as read from the sandbox's database."""
    return next(
        p for p in sandbox.personas.values() if p.role == role and (level is None or p.level == level)
    )


# --- the page as a person sees it -------------------------------------------------------------------


class Visitor:
    """The page in the browser, and a way to wait until the bot has answered and the page shows it:
    the update reached the bot, the bot finished with it, and the page shows the chat's last version."""

    def __init__(self, page: Any, sandbox: Sandbox) -> None:
        self.page = page
        self.sandbox = sandbox
        self.user_id = 0

    async def open(self, query: str = "") -> None:
        await self.page.goto(f"{self.sandbox.url}/{query}")
        await self.page.wait_for_selector(".persona")

    async def choose(self, persona: Persona) -> None:
        self.user_id = persona.user_id
        await self.page.click(f'.persona[data-user-id="{persona.user_id}"]')
        await self.page.wait_for_selector(f'.persona[data-user-id="{persona.user_id}"][aria-pressed="true"]')
        await self.shown()

    async def act(self, action: Any) -> None:
        """Do something that sends the bot an update, then wait for the bot and the page."""
        api = self.sandbox.api
        pushed = api.pushed
        await action()
        for _ in range(REPLY_ROUNDS):
            if api.pushed > pushed:
                break
            await asyncio.sleep(0.02)
        await self.settle()

    async def settle(self) -> None:
        api, application = self.sandbox.api, self.sandbox.application
        for _ in range(REPLY_ROUNDS):
            if not api.pending_updates:
                break
            await asyncio.sleep(0.02)
        await asyncio.wait_for(application.update_queue.join(), REPLY_TIMEOUT_MS / 1000)
        await self.shown()

    async def shown(self) -> None:
        version = self.sandbox.feed.version(self.user_id)
        await self.page.wait_for_function(
            "v => Number(document.body.dataset.version ?? -1) >= v", arg=version, timeout=REPLY_TIMEOUT_MS
        )

    async def type(self, text: str) -> None:
        async def send() -> None:
            await self.page.fill("#text", text)
            await self.page.press("#text", "Enter")

        await self.act(send)

    async def tap(self, label: str) -> None:
        """An inline button of the latest bot message that has it."""
        button = self.page.locator(".msg.bot button.inline-button", has_text=label).last
        await self.act(button.click)

    async def tap_menu(self, label: str) -> None:
        await self.act(self.page.locator(".menu-button", has_text=label).first.click)

    async def says(self, text: str) -> None:
        await self.page.locator(".msg.bot", has_text=text).last.wait_for(timeout=REPLY_TIMEOUT_MS)

    async def latest(self) -> tuple[str, list[str]]:
        """The bot's latest message: its text and the labels of its inline buttons."""
        last = self.page.locator(".msg.bot").last
        labels = [await b.inner_text() for b in await last.locator("button.inline-button").all()]
        return await last.inner_text(), labels


@pytest.fixture
def visitor(page: Any, sandbox: Sandbox) -> Visitor:
    return Visitor(page, sandbox)


async def test_a_teacher_chats_with_the_bot_in_the_browser(sandbox, visitor, tmp_path):
    page = visitor.page
    teacher = person(sandbox, "teacher", "TH")
    officer = person(sandbox, "statistics_officer")
    await visitor.open()
    assert t("sandbox.page.banner", "vi") in await page.inner_text("#banner")
    await visitor.choose(teacher)

    await visitor.type("/me")
    await visitor.says(teacher.name)
    assert teacher.school and teacher.school in (await visitor.latest())[0]
    # Telegram's formatting is shown: the name is bold.
    assert await page.locator(".msg.bot b", has_text=teacher.name).count() == 1

    await visitor.type("/lang")
    await visitor.tap("English")
    await visitor.says("Switched to English.")
    assert await page.locator(".inline-button", has_text="English").count() == 0  # buttons closed

    # Another person has a chat of their own; coming back shows the teacher's again.
    await visitor.choose(officer)
    await page.wait_for_selector("#messages .empty")
    await visitor.type("/me")
    await visitor.says(officer.name)
    await visitor.choose(teacher)
    await visitor.says("Switched to English.")
    assert await page.locator(".msg.bot", has_text=officer.name).count() == 0

    await visitor.type("/lang")
    await visitor.tap("Tiếng Việt")
    await visitor.says(t("core.lang_set", "vi"))
    await visitor.type("/help")
    await visitor.says("/me")
    await visitor.type("/lang")  # its buttons stay on the screenshot
    assert (await visitor.latest())[1] == ["Tiếng Việt", "English"]

    screenshot = Path(os.environ.get("SANDBOX_SCREENSHOT") or tmp_path / "sandbox.png")
    await page.screenshot(path=str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_a_document_is_attached_and_the_bots_file_downloaded(sandbox, visitor, tmp_path):
    page = visitor.page
    teacher = person(sandbox, "teacher", "TH")
    await visitor.open(f"?as={teacher.user_id}")
    visitor.user_id = teacher.user_id
    await page.wait_for_selector(f'.persona[data-user-id="{teacher.user_id}"][aria-pressed="true"]')
    upload = tmp_path / "danh sách lớp.csv"
    upload.write_text("họ tên;lớp\n", encoding="utf-8")
    await visitor.act(lambda: page.set_input_files("#file", str(upload)))
    assert "danh sách lớp.csv" in await page.locator(".msg.me .doc-name").last.inner_text()

    await sandbox.application.bot.send_document(
        teacher.user_id, document=b"PK workbook", filename="bao-cao.xlsx"
    )
    link = page.locator(".msg.bot a.document", has_text="bao-cao.xlsx")
    await link.wait_for(timeout=REPLY_TIMEOUT_MS)
    async with page.expect_download() as info:
        await link.click()
    download = await info.value
    assert download.suggested_filename == "bao-cao.xlsx"
    assert Path(await download.path()).read_bytes() == b"PK workbook"


# --- the scenario: a handover by buttons, then the officer's workbook ------------------------

AVOID = ("huy", "cancel", "sua", "edit", "quay lai", "back", "muon", "loan", "bo lo", "discard")


def _pick(labels: list[str], preferred: list[str]) -> str | None:
    folded = [(label, fold(label)) for label in labels]
    for wanted in preferred:
        for label, low in folded:
            if fold(wanted) in low:
                return label
    for label, low in folded:
        if not any(word in low for word in AVOID):
            return label
    return None


async def click_through(
    visitor: Visitor, preferred: list[str], answer: str | None, done: Any, steps: int = 15
) -> None:
    """Answer the bot's questions: the preferred button where there is one, else the first harmless
    one; `answer` typed where the bot asks for text (a student's name); else wait for the bot."""
    for _ in range(steps):
        await visitor.settle()
        if await done():
            return
        _text, labels = await visitor.latest()
        choice = _pick(labels, preferred) if labels else None
        if choice is not None:
            await visitor.tap(choice)
        elif answer is not None:
            await visitor.type(answer)
        else:  # working (a workbook being built): wait for its next message
            before = await visitor.page.evaluate(LAST_MESSAGES)
            await visitor.page.wait_for_function(
                f"before => ({LAST_MESSAGES})() !== before", arg=before, timeout=REPLY_TIMEOUT_MS
            )
    assert await done(), f"not done after {steps} steps: {await visitor.latest()}"


LAST_MESSAGES = """() => {
  const messages = document.querySelectorAll('#messages .msg');
  return messages.length + '|' + (messages.length ? messages[messages.length - 1].innerText : '');
}"""


async def handovers(sandbox: Sandbox) -> int:
    async with sandbox.services.sessionmaker() as session:
        return int(await session.scalar(select(func.count(Handover.id))) or 0)


async def student_without_device(sandbox: Sandbox, school_name: str) -> str:
    from storage.models import School

    async with sandbox.services.sessionmaker() as session:
        name = await session.scalar(
            select(Student.full_name)
            .join(School, School.id == Student.school_id)
            .where(School.name == school_name, Student.id.not_in(select(Handover.student_id)))
            .order_by(Student.id)
            .limit(1)
        )
    assert name, "the demo school has no student without a device"
    return str(name)


async def officer_report(visitor: Visitor, officer: Persona, tmp_path: Path, name: str) -> Path:
    await visitor.choose(officer)
    documents = visitor.page.locator(".msg.bot a.document")
    count = await documents.count()
    await visitor.type("/report")

    async def has_workbook() -> bool:
        return await documents.count() > count

    await click_through(visitor, ["thiết bị", "devices", "toàn huyện", "district"], None, has_workbook)
    async with visitor.page.expect_download() as info:
        await documents.last.click()
    target = tmp_path / name
    await (await info.value).save_as(str(target))
    return target


def handover_cells_up_by_one(before: Path, after: Path) -> list[str]:
    """Cells under the devices tables' «Đã tặng» / «Đang cho mượn» headers (the handovers, counted per
    school, per level and in total) that went up by exactly one."""
    from openpyxl import load_workbook

    old, new = load_workbook(before, data_only=True), load_workbook(after, data_only=True)
    wanted = {t("reports.col.given", "vi"), t("reports.col.on_loan", "vi")}
    found = []
    for sheet in new.sheetnames:
        if sheet not in old.sheetnames:
            continue
        old_sheet, new_sheet = old[sheet], new[sheet]
        header_row: dict[int, int] = {}  # column -> the row of its handover header
        for row in new_sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value in wanted:
                    header_row[cell.column] = cell.row
        for column, first in header_row.items():
            for (cell,) in new_sheet.iter_rows(min_row=first + 1, min_col=column, max_col=column):
                value = cell.value
                was = old_sheet.cell(row=cell.row, column=column).value
                if (
                    isinstance(value, int | float)
                    and isinstance(was, int | float)
                    and not isinstance(value, bool)
                    and value - was == 1
                ):
                    found.append(f"{sheet}!{cell.coordinate}")
    return found


async def test_a_handover_by_buttons_shows_in_the_officers_workbook(sandbox, visitor, tmp_path):
    commands = sandbox.application.registered_commands
    missing = sorted({"handover", "report"} - commands)
    if missing:
        pytest.skip(f"not registered yet: /{', /'.join(missing)} (the flows of issues 4 and 7)")
    teacher = person(sandbox, "teacher", "TH")
    officer = person(sandbox, "statistics_officer")
    await visitor.open()

    before = await officer_report(visitor, officer, tmp_path, "before.xlsx")

    await visitor.choose(teacher)
    await visitor.type("/me")  # the menu for her role
    assert teacher.school is not None
    student = await student_without_device(sandbox, teacher.school)
    count = await handovers(sandbox)
    menu_label = t("menu.handover.button", teacher.language)
    if await visitor.page.locator(".menu-button", has_text=menu_label).count():
        await visitor.tap_menu(menu_label)  # the reply-keyboard menu, as on a phone
    else:
        await visitor.type("/handover")

    async def saved() -> bool:
        return await handovers(sandbox) == count + 1

    preferred = [student, t("core.confirm", "vi"), t("core.today", "vi"), "tặng", "gift", "bỏ qua", "skip"]
    await click_through(visitor, preferred, student, saved)

    after = await officer_report(visitor, officer, tmp_path, "after.xlsx")
    assert handover_cells_up_by_one(before, after), "no handover count went up by one in the workbook"


# --- at phone width -----------------------------------------------------------------------------------

PHONE = {"width": 390, "height": 844}
PHONE_MARGIN = 2  # pixels of rounding allowed when comparing boxes

# Where the page's layout stands, read in one go: the viewport, the document's height, and the boxes
# (viewport coordinates) of the message pane, the composer and the latest bot message.
LAYOUT = """() => {
  const box = (node) => {
    if (!node) return null;
    const r = node.getBoundingClientRect();
    return { top: r.top, bottom: r.bottom, height: r.height };
  };
  const replies = document.querySelectorAll('#messages .msg.bot');
  return {
    viewport: window.innerHeight,
    document: Math.max(document.documentElement.scrollHeight, document.body.scrollHeight),
    pane: box(document.getElementById('messages')),
    composer: box(document.getElementById('composer')),
    reply: box(replies[replies.length - 1]),
  };
}"""


@pytest.fixture
async def phone(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, accept_downloads=True
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    await context.close()
    assert errors == [], f"errors in the page's script: {errors}"


async def assert_reply_in_view(page: Any) -> dict[str, Any]:
    """The page is one screen high (its chat scrolls, not the page), the composer is on screen, and
    the latest reply is in view: whole when it fits the pane, from its first line when it is taller."""
    layout = await page.evaluate(LAYOUT)
    viewport, pane, composer, reply = layout["viewport"], layout["pane"], layout["composer"], layout["reply"]
    assert layout["document"] <= viewport + PHONE_MARGIN, layout
    assert composer["top"] >= 0 and composer["bottom"] <= viewport + PHONE_MARGIN, layout
    assert pane["bottom"] <= composer["top"] + PHONE_MARGIN and pane["height"] > 200, layout
    assert reply is not None, layout
    assert reply["top"] >= 0 and pane["top"] - PHONE_MARGIN <= reply["top"] < pane["bottom"], layout
    if reply["height"] <= pane["height"]:
        assert reply["bottom"] <= pane["bottom"] + PHONE_MARGIN and reply["bottom"] <= viewport, layout
    return layout


async def test_at_phone_width_the_latest_reply_stays_in_view(sandbox, phone, tmp_path):
    """390×844: after each message, the page is still one screen high and the bot's latest reply is in
    view above the composer; long replies (/help) start at their first line."""
    visitor = Visitor(phone, sandbox)
    teacher = person(sandbox, "teacher", "TH")
    await visitor.open(f"?as={teacher.user_id}")
    visitor.user_id = teacher.user_id
    await phone.wait_for_selector(f'.persona[data-user-id="{teacher.user_id}"][aria-pressed="true"]')
    await visitor.shown()

    tall = 0
    for typed in ["/me", "/help", "/me", "/help", "/lang"]:
        await visitor.type(typed)
        layout = await assert_reply_in_view(phone)
        tall += layout["reply"]["height"] > layout["pane"]["height"]
    assert tall, "no reply was taller than the pane: the long-reply case was not exercised"
    await visitor.tap("English")
    await visitor.says("Switched to English.")
    await assert_reply_in_view(phone)
    await visitor.type("/me")
    await assert_reply_in_view(phone)
    await visitor.type("/lang")
    await visitor.tap("Tiếng Việt")
    await visitor.says(t("core.lang_set", "vi"))
    await assert_reply_in_view(phone)
    await visitor.type("/me")
    await assert_reply_in_view(phone)
    await visitor.type("/lang")  # its buttons stay on the screenshot
    await assert_reply_in_view(phone)

    screenshot = Path(os.environ.get("SANDBOX_PHONE_SCREENSHOT") or tmp_path / "sandbox-phone.png")
    await phone.screenshot(path=str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_at_desktop_width_the_latest_reply_is_scrolled_into_view(sandbox, visitor):
    teacher = person(sandbox, "teacher", "TH")
    await visitor.open(f"?as={teacher.user_id}")
    visitor.user_id = teacher.user_id
    await visitor.page.wait_for_selector(f'.persona[data-user-id="{teacher.user_id}"][aria-pressed="true"]')
    await visitor.shown()
    for typed in ["/help", "/me", "/help", "/help", "/me"]:
        await visitor.type(typed)
        await assert_reply_in_view(visitor.page)
