"""The sandbox builds the district report with the cover settings of `schoolbot report` and the bot
(DISTRICT_HEAD_NAME, DISTRICT_HEAD_TITLE, REPORT_NUMBER_SUFFIX, REPORT_PLACE): an officer asks for it
in the web chat, over HTTP, types the document's number, and the workbook's cover carries them."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook

from bot.sandbox.app import Sandbox
from bot.texts import t
from tests.test_sandbox import JSON, bot_texts, chat, persona, sandbox_settings, say, wait_chat

HEAD = "Nguyễn Thị Thu Hà"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    settings = sandbox_settings(
        tmp_path,
        district_head_name=HEAD,
        district_head_title="KT. TRƯỞNG PHÒNG\nPHÓ TRƯỞNG PHÒNG",
        report_number_suffix="BC-PGDĐT",
        report_place="Thị trấn Mẫu",
    )
    running = Sandbox(settings, port=0, schools=2, students=40)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.url, trust_env=False, timeout=30) as client:
        yield client


async def tap(http: httpx.AsyncClient, user_id: int, wanted: str) -> JSON:
    """Press the button of the last message whose label is or starts with `wanted`."""
    state = await chat(http, user_id)
    message = next(m for m in reversed(state["messages"]) if m["buttons"])
    button = next(b for row in message["buttons"] for b in row if b["text"].startswith(wanted))
    before = state["version"]
    pressed = await http.post(
        f"/api/chats/{user_id}/callbacks", json={"message_id": message["id"], "data": button["data"]}
    )
    assert pressed.status_code == 200, pressed.text
    return await wait_chat(http, user_id, lambda s: s["version"] > before and bool(bot_texts(s)))


async def test_the_cover_carries_the_head_of_office_from_settings(
    sandbox: Sandbox, http: httpx.AsyncClient
) -> None:
    officer = await persona(http, "statistics_officer")
    user = officer["id"]
    await say(http, user, "/report")
    await tap(http, user, t("report_chat.kind.district", "vi"))
    await tap(http, user, "🏙")  # the whole district
    state = await tap(http, user, t("report_chat.period_all", "vi"))
    assert "«Số: …/BC-PGDĐT»" in bot_texts(state)[-1]
    await say(http, user, "125")
    state = await wait_chat(http, user, lambda s: any(m["document"] for m in s["messages"]))
    document = next(m["document"] for m in state["messages"] if m["document"])
    content = (await http.get(document["url"])).content
    cover = load_workbook(io.BytesIO(content))[t("reports.sheet.cover", "vi")]
    texts = [str(c.value) for row in cover.iter_rows() for c in row if c.value is not None]
    assert cover["A4"].value == "Số: 125/BC-PGDĐT"
    assert HEAD in texts
    assert any(text.startswith("Thị trấn Mẫu, ngày ") for text in texts)
