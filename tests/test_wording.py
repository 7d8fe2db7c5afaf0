"""Wording the first week showed up (issue 16): sentences a flow title is inserted into, where the buttons
are, the zero figures line, the place of a dose. Texts only: no database, no chat."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import conversations
from bot.texts import LANGUAGES, load, t
from conversations.common import Flow
from storage.enums import DosePlace

# The sentences a flow's title goes into (the title is the catalogue text of `Flow.title_key`).
TITLE_SENTENCES = (
    "core.draft_exists",
    "core.busy",
    "core.busy_other",
    "core.cancelled",
    "core.timed_out",
    "core.resume_offer",
)
# A Vietnamese verb right after "nhập dở", "đang nhập", "Đã huỷ", "tạm dừng": the title was an action
# ("Bạn đang nhập dở xem và sửa bản ghi đã nhập"); a title must name a thing ("phiếu …").
VI_VERBS = r"xem|sửa|thêm|tạo|gửi|duyệt|rà soát|tổng hợp|mở|nhập|ghi|xuất|tải|chọn|bàn giao|nhận|huỷ|xoá"
VI_BAD = re.compile(rf"(?:nhập dở|đang nhập|Đã huỷ|tạm dừng)\s*(?:<b>)?\s*(?:{VI_VERBS})\b", re.IGNORECASE)


def _flows() -> list[type[Flow]]:
    """Every flow of the bot: each module of `conversations`, every Flow subclass with a title."""
    for module in pkgutil.iter_modules(conversations.__path__):
        importlib.import_module(f"conversations.{module.name}")
    found: list[type[Flow]] = []
    pending = list(Flow.__subclasses__())
    while pending:
        flow = pending.pop()
        pending.extend(flow.__subclasses__())
        if flow.__module__.startswith("conversations.") and getattr(flow, "title_key", None):
            found.append(flow)
    return sorted(set(found), key=lambda flow: flow.title_key)


FLOWS = _flows()


def test_every_flow_is_found() -> None:
    keys = {flow.title_key for flow in FLOWS}
    assert {"devices.handover.title", "my.title", "rounds_chat.submit.title", "faq_chat.add.title"} <= keys


@pytest.mark.parametrize("sentence", TITLE_SENTENCES)
@pytest.mark.parametrize("flow", FLOWS, ids=lambda flow: flow.title_key)
def test_every_flow_title_reads_well_in_every_sentence(flow: type[Flow], sentence: str) -> None:
    for language in LANGUAGES:
        title = t(flow.title_key, language)
        text = t(sentence, language, title=title, answers=2)
        assert title in text
        if language == "vi":
            assert not VI_BAD.search(text), text
            assert title[0].islower(), f"the title sits inside a sentence: {text}"
        else:
            # English titles are gerunds or nouns ("creating a round", "my recent records"): the sentence
            # gives them a label to stand after, never "an unfinished creating…".
            assert f": <b>{title}</b>" in text, text


def test_the_known_bad_sentence_is_caught() -> None:
    assert VI_BAD.search("Bạn đang nhập dở <b>xem và sửa bản ghi đã nhập</b>. Tiếp tục?")
    assert VI_BAD.search("Đã huỷ <b>tạo đợt báo cáo</b>.")
    assert not VI_BAD.search("Bạn đang nhập dở <b>phiếu xem và sửa bản ghi đã nhập</b>. Tiếp tục?")


# Sent after the question, as a reminder: its buttons are above, never "below".
REMINDERS_AFTER_THE_BUTTONS = (
    "devices.press_button",
    "my.press_button",
    "needs.press_button",
    "vaccines.press_button",
    "vaccines.place_hint",
    "vaccines.round.class_unknown",
)


@pytest.mark.parametrize("key", REMINDERS_AFTER_THE_BUTTONS)
def test_a_reminder_sent_after_the_buttons_does_not_say_they_are_below(key: str) -> None:
    assert "bên dưới" not in load("vi")[key]
    assert "below" not in load("en")[key]


def test_no_reminder_to_press_a_button_says_below() -> None:
    # Every «press a button» reminder of the catalogue (a new one included).
    reminders = [key for key in load("vi") if key.endswith(".press_button")]
    assert set(REMINDERS_AFTER_THE_BUTTONS) & set(reminders)
    for key in reminders:
        assert "bên dưới" not in load("vi")[key], key


def test_the_zero_figures_line_says_the_others_are_zero() -> None:
    assert t("rounds_chat.zero_figures", "vi") == "• Các chỉ tiêu khác đều bằng 0"
    assert "còn lại" not in t("rounds_chat.zero_figures", "vi")
    assert t("rounds_chat.zero_figures", "en") == "• All other figures are 0"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("place", list(DosePlace))
def test_the_place_of_a_dose_has_one_icon(place: DosePlace, language: str) -> None:
    value = t(f"vaccines.place.{place.value}", language)
    button = t(f"vaccines.place_button.{place.value}", language)
    assert value[0].isalpha(), "a value inside a sentence has no icon"
    assert button.endswith(value) and button != value, "the button is the value with its icon"
    summary = t(
        "vaccines.dose.summary",
        language,
        student="A",
        dose_number=1,
        given_on="15/11/2021",
        product="P",
        place=value,
    )
    line = next(line for line in summary.splitlines() if value in line)
    assert line.count("📍") <= 1 and not re.search(r":\s*<b>\W", line), line


def test_the_community_place_is_named_as_in_the_directive() -> None:
    assert t("vaccines.place.community", "vi") == "Tại cộng đồng"
    assert t("excel.codes.place.community", "vi") == "Tại cộng đồng"
    assert "địa phương" not in t("errors.excel.cell.place_invalid", "vi", value="x")
