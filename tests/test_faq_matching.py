"""FAQ matching and the shipped knowledge base, without a database: accuracy, not-found, rendering."""

from __future__ import annotations

import re

import pytest

from bot.faq_render import render_answer, render_contacts, render_unanswered, topic_title
from bot.texts import LANGUAGES, load, placeholders
from storage.errors import DomainError
from storage.faq_index import FaqIndex, analyse, is_match, shipped_entries, shipped_entry_outs
from storage.schemas.faq import (
    CONTACT_TOPICS,
    ENTRY_CONTACT_TOPICS,
    TOPICS,
    ContactOut,
    FaqAnswer,
    FaqEntryOut,
    FaqRelated,
    dump_knowledge_base,
    parse_contacts_file,
    parse_knowledge_base,
)
from storage.text import fold
from tests.faq_questions import FIRST_BATCH, IN_DOMAIN, OUT_OF_DOMAIN

MIN_ACCURACY = 0.90


@pytest.fixture(scope="module")
def index() -> FaqIndex:
    return FaqIndex(shipped_entry_outs())


def _top(index: FaqIndex, question: str) -> str | None:
    candidates = index.search(question, 1)
    return candidates[0].entry.key if candidates and is_match(candidates[0]) else None


# --- accuracy -------------------------------------------------------------------------------------


def test_question_set_is_realistic() -> None:
    keys = {entry.key for entry in shipped_entries()}
    assert len(IN_DOMAIN) >= 60
    assert {key for _, key in IN_DOMAIN} <= keys
    assert {key for _, key in IN_DOMAIN} == keys, "every entry is asked for at least once"
    without_diacritics = [q for q, _ in IN_DOMAIN if fold(q) == q.lower()]
    assert len(without_diacritics) * 2 >= len(IN_DOMAIN)
    alternatives = {
        fold(text) for entry in shipped_entries() for text in (entry.question, *entry.alternatives)
    }
    copied = [q for q, _ in IN_DOMAIN if fold(q) in alternatives]
    assert copied == [], "test questions must not be copies of stored phrasings"
    assert len(OUT_OF_DOMAIN) >= 8


def test_top1_accuracy(index: FaqIndex) -> None:
    misses = [(q, key, _top(index, q)) for q, key in IN_DOMAIN if _top(index, q) != key]
    accuracy = 1 - len(misses) / len(IN_DOMAIN)
    first = 1 - sum(1 for q, key in FIRST_BATCH if _top(index, q) != key) / len(FIRST_BATCH)
    print(f"\nFAQ top-1 accuracy: {accuracy:.3f} on {len(IN_DOMAIN)} questions (first batch {first:.3f})")
    for miss in misses:
        print("  miss:", miss)
    assert accuracy >= MIN_ACCURACY


@pytest.mark.parametrize("question", OUT_OF_DOMAIN)
def test_out_of_domain_questions_are_not_found(index: FaqIndex, question: str) -> None:
    candidates = index.search(question, 1)
    assert not (candidates and is_match(candidates[0])), (question, candidates[:1])


# Questions the bot itself suggests typing: a quoted example after "ví dụ" / "e.g." / "for example" in a
# catalogue text about asking (/help, /faq, /faq_add…). Each must be answered by the entry meant; a new
# example added to the catalogue fails the test below until it is mapped here.
SUGGESTED_QUESTIONS: dict[str, str] = {
    "hạn nộp báo cáo khi nào": "deadline_school_submit",
    "when is the report due": "deadline_school_submit",
    "chương trình hỗ trợ những đối tượng nào": "program_who_qualifies",
    "which students does the programme support": "program_who_qualifies",
    "Máy cho mượn tạm có được tính là học sinh đã có máy không?": "devices_loan",
    "Does a loaned laptop count as the student having a device?": "devices_loan",
}
_QUOTE = r"(?:«[^»]+»|“[^”]+”|\"[^\"]+\")"
_EXAMPLES = re.compile(
    rf"(?:ví dụ|e\.g\.|for example)[:,]?\s*((?:{_QUOTE}(?:\s*(?:,|/|hoặc|or)\s*)?)+)", re.IGNORECASE
)
_QUOTED = re.compile(r"«([^»]+)»|“([^”]+)”|\"([^\"]+)\"")
_ABOUT_ASKING = re.compile(r"câu hỏi|\bhỏi\b|question|\bask", re.IGNORECASE)


def suggested_questions() -> dict[str, list[str]]:
    """Every example question of the catalogue, both languages: example -> where ("language:key")."""
    found: dict[str, list[str]] = {}
    for language in LANGUAGES:
        for key, text in load(language).items():
            if not _ABOUT_ASKING.search(text):
                continue
            for examples in _EXAMPLES.finditer(text):
                for groups in _QUOTED.findall(examples.group(1)):
                    example = next(group for group in groups if group)
                    found.setdefault(example, []).append(f"{language}:{key}")
    return found


def test_the_catalogue_scan_finds_the_known_examples() -> None:
    found = suggested_questions()
    assert "vi:core.help_footer" in found["hạn nộp báo cáo khi nào"]
    assert "en:core.help_footer" in found["when is the report due"]
    assert "vi:faq.menu_title" in found["chương trình hỗ trợ những đối tượng nào"]
    assert "thiếu 2 biên bản bàn giao lớp 4A1" not in found, "an example reason is not a question"


def test_every_question_the_bot_suggests_is_answered_by_its_entry(index: FaqIndex) -> None:
    found = suggested_questions()
    unmapped = {example: where for example, where in found.items() if example not in SUGGESTED_QUESTIONS}
    assert unmapped == {}, "map each example question to the entry meant to answer it (SUGGESTED_QUESTIONS)"
    assert set(SUGGESTED_QUESTIONS) <= set(found), "an example no longer in the catalogue"
    for example, key in SUGGESTED_QUESTIONS.items():
        # As shown, and as a teacher types it without diacritics.
        for form in {example, fold(example)}:
            assert _top(index, form) == key, (form, found[example], index.search(form, 3))


def test_case_diacritics_and_word_order_do_not_matter(index: FaqIndex) -> None:
    forms = [
        "Nhập mũi tiêm vắc xin ở mục nào?",
        "nhap mui tiem vac xin o muc nao",
        "NHẬP MŨI TIÊM VẮC XIN Ở MỤC NÀO",
        "ở mục nào nhập vắc xin mũi tiêm",
        "Nha\u0302\u0323p mu\u0303i tie\u0302m va\u0306\u0301c xin o\u031b\u0309 mu\u0323c na\u0300o",  # NFD
    ]
    assert {_top(index, form) for form in forms} == {"vaccine_where"}


@pytest.mark.parametrize(
    ("question", "key"),
    [
        ("nhapp mui tiemm o dau", "vaccine_where"),  # doubled letters
        ("dealine nop bao cao cua truong", "deadline_school_submit"),  # a letter missing
        ("hocj sinh muwownj mays cos tinhs laf cos thieets bij khoong", "devices_loan"),  # Telex left on
        ("vacxinn tiem o phuong co nhap ko", "vaccine_outside_school"),
    ],
)
def test_typos_are_tolerated(index: FaqIndex, question: str, key: str) -> None:
    assert _top(index, question) == key


def test_diacritics_that_change_the_meaning_are_used_when_typed(index: FaqIndex) -> None:
    # "mượn" (borrow), "muộn" (late) and "muốn" (want) all fold to "muon".
    assert "muontam" in analyse("học sinh mượn máy")
    assert "tre" in analyse("nhập muộn")
    assert "muon" not in analyse("tôi muốn hỏi")
    assert _top(index, "Em mượn máy của trường có tính là có máy không") == "devices_loan"
    assert _top(index, "Nhập muộn hai ngày có được không") == "deadline_one_day"


def test_a_question_without_content_words_matches_nothing(index: FaqIndex) -> None:
    assert index.search("ạ ơi cho em hỏi với") == []
    assert index.search("   ") == []


# --- the shipped knowledge base --------------------------------------------------------------------


def test_knowledge_base_is_complete() -> None:
    entries = shipped_entries()
    assert len(entries) >= 30
    assert len({entry.key for entry in entries}) == len(entries)
    for entry in entries:
        assert 3 <= len(entry.alternatives) <= 8, entry.key
        assert entry.topic in TOPICS
        assert entry.contact_topic in ENTRY_CONTACT_TOPICS
        assert len(entry.answer) <= 700, entry.key  # short enough to read on a phone
    assert {entry.topic for entry in entries} == set(TOPICS), "every topic has entries"


def test_every_topic_and_contact_role_has_titles_in_both_languages() -> None:
    for language in LANGUAGES:
        texts = load(language)
        for topic in TOPICS:
            assert texts[f"faq.topic.{topic}"]
        for topic in CONTACT_TOPICS:
            assert texts[f"faq.contact_role.{topic}"]
    faq_keys = {key for key in load("vi") if key.startswith(("faq.", "errors.faq."))}
    assert faq_keys == {key for key in load("en") if key.startswith(("faq.", "errors.faq."))}
    for key in faq_keys:
        assert placeholders(load("vi")[key]) == placeholders(load("en")[key]), key


def _answer(key: str) -> str:
    return next(entry.answer for entry in shipped_entries() if entry.key == key)


def test_answers_are_correct_to_the_directive() -> None:
    assert "4.8.1. Cập nhật nhu cầu cần hỗ trợ → Cập nhật từ Excel (khuyến nghị)" in _answer(
        "needs_where_update"
    )
    assert "4.8.2. Thống kê, báo cáo nhu cầu hỗ trợ" in _answer("needs_where_send")
    assert '"Gửi dữ liệu"' in _answer("needs_where_send")
    assert "4.8.3. Tiếp nhận thiết bị tài trợ" in _answer("devices_program_where")
    assert "4.8.3.1" in _answer("devices_program_where")
    assert "4.8.3.2" in _answer("devices_other_where")
    assert "4.9. Quản lý tiêm vắc-xin của học sinh → 4.9.1. Nhập hồ sơ tiêm vắc-xin" in _answer(
        "vaccine_where"
    )
    assert "01 ngày" in _answer("deadline_one_day")
    assert "05 ngày" in _answer("deadline_five_days")
    assert "15 giờ 30 phút thứ Hai, ngày 15/11/2021" in _answer("deadline_school_submit")
    assert "do Phòng cấu hình" in _answer("deadline_school_submit")  # rounds recur
    review = _answer("deadline_review_compile")
    assert "buổi sáng thứ Ba 16/11/2021" in review and "buổi chiều 16/11/2021" in review
    assert "KHÔNG tính là học sinh đã có thiết bị" in _answer("devices_loan")
    assert "tại cộng đồng hoặc nơi khác" in _answer("vaccine_outside_school")
    for group in ("hộ nghèo", "hộ cận nghèo", "tử vong do dịch COVID-19", "khó khăn khác"):
        assert group in _answer("program_who_qualifies")
    assert "cơ sở vật chất" in _answer("program_figures_match")
    assert "sheet hướng dẫn" in _answer("excel_recommended")


def test_every_bot_command_is_explained() -> None:
    text = " ".join(entry.answer for entry in shipped_entries())
    commands = [
        *("start", "me", "help", "cancel", "resume", "lang", "donation", "handover", "return", "my"),
        *("vaccine", "vaccine_round", "need", "need_summary", "template", "report", "submit", "review"),
        *("compile", "progress", "history", "faq", "contacts"),
    ]
    missing = [c for c in commands if not re.search(rf"/{c}(?![a-z_])", text)]
    assert missing == []


def test_knowledge_base_file_round_trips() -> None:
    entries = list(shipped_entries())
    assert parse_knowledge_base(dump_knowledge_base(entries)) == entries


# --- the file formats -----------------------------------------------------------------------------

ENTRY_ITEM = """
  - key: {key}
    topic: {topic}
    contact_topic: vaccine
    question: Câu hỏi?
    alternatives: [một, hai, ba]
    answer: Trả lời.
"""


def _entries_yaml(*items: str) -> str:
    return "entries:" + "".join(items)


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (_entries_yaml(ENTRY_ITEM.format(key="Bad Key", topic="vaccine")), "faq.entry_invalid"),
        (_entries_yaml(ENTRY_ITEM.format(key="ok_key", topic="weather")), "faq.entry_invalid"),
        (_entries_yaml(*[ENTRY_ITEM.format(key="a1", topic="vaccine")] * 2), "faq.key_duplicate"),
        ("entries: [", "faq.yaml_invalid"),
        ("just text", "faq.knowledge_file_invalid"),
        ("a: &x [1, 2]\nb: *x\n", "faq.yaml_invalid"),  # aliases could expand into a huge structure
    ],
)
def test_bad_knowledge_files_say_what_is_wrong(content: str, code: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_knowledge_base(content.encode())
    assert caught.value.code == code


def test_contacts_from_csv_with_vietnamese_headers() -> None:
    content = (
        "Chủ đề;Vai trò;Họ tên;Số điện thoại;Telegram\n"
        "vaccine;Y tế trường học;Nguyễn Thị A;0909 123 456;@yte_nhabe\n"
        "technical;;Trần Văn B;+84 28 3873 0000;https://t.me/kythuat_csdl\n"
    ).encode("utf-8-sig")
    contacts = parse_contacts_file(content, "lien_he.csv")
    assert [(c.topic, c.name, c.phone, c.telegram_username) for c in contacts] == [
        ("vaccine", "Nguyễn Thị A", "0909 123 456", "yte_nhabe"),
        ("technical", "Trần Văn B", "+84 28 3873 0000", "kythuat_csdl"),
    ]


@pytest.mark.parametrize(
    ("content", "filename", "code"),
    [
        (b"topic,name,phone\nweather,A,0909\n", "c.csv", "faq.contacts_row_invalid"),
        (b"topic,name,phone\nvaccine,A,call me\n", "c.csv", "faq.contacts_row_invalid"),
        (b"name,phone\nA,0909\n", "c.csv", "faq.contacts_no_topic_column"),
        (b"- {topic: vaccine}\n- {topic: vaccine}\n", "c.yaml", "faq.contacts_duplicate_topic"),
        (b"contacts: 5\n", "c.yaml", "faq.contacts_file_invalid"),
    ],
)
def test_bad_contacts_files_say_what_is_wrong(content: bytes, filename: str, code: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_contacts_file(content, filename)
    assert caught.value.code == code


# --- rendering ------------------------------------------------------------------------------------


def _entry(answer: str = "Vào mục <4.9.1> & nhập.") -> FaqEntryOut:
    return FaqEntryOut(
        key="vaccine_where",
        topic="vaccine",
        question="Nhập tiêm ở đâu?",
        alternatives=[],
        answer=answer,
        contact_topic="vaccine",
        source="shipped",
    )


def test_a_matched_answer_escapes_text_and_names_the_contact_role_when_nobody_is_filled() -> None:
    answer = FaqAnswer(
        question="nhap tiem o dau",
        matched=True,
        score=0.9,
        entry=_entry(),
        related=[FaqRelated(key="vaccine_what_info", question="Cần nhập gì?")],
        topic="vaccine",
        contacts=[ContactOut(topic="vaccine")],
    )
    text = render_answer(answer, "vi")
    assert text.startswith("❓ <b>Nhập tiêm ở đâu?</b>\n\nVào mục &lt;4.9.1&gt; &amp; nhập.")
    # Nobody filled in: "ask the office" once, never the administrator's hint.
    assert "📞 Cần hỏi thêm: hỏi Phòng GD&ĐT (người phụ trách Y tế trường học)." in text
    assert text.count("Phòng GD&ĐT") == 1
    assert "quản trị viên" not in text and "chưa có tên" not in text
    assert "Câu hỏi liên quan" in text
    english = render_answer(answer, "en")
    assert "For more, contact the District Office of Education (the school-health officer)." in english
    assert "administrator" not in english


def test_unfilled_contacts_of_an_answer_are_named_once_and_without_the_admin_hint() -> None:
    both = [ContactOut(topic="program_primary"), ContactOut(topic="program_secondary")]
    answer = FaqAnswer(
        question="q", matched=True, score=0.9, entry=_entry("A"), topic="program", contacts=both
    )
    text = render_answer(answer, "vi")
    assert text.endswith(
        "📞 Cần hỏi thêm: hỏi Phòng GD&ĐT (chuyên viên phụ trách Tiểu học hoặc chuyên viên phụ trách THCS)."
    )
    # One filled, one not: the filled one with its details, the other by its role only.
    mixed = [ContactOut(topic="program_primary", name="Trần Lê Hồng Phúc"), both[1]]
    text = render_answer(answer.model_copy(update={"contacts": mixed}), "vi")
    assert "• Chuyên viên phụ trách Tiểu học, Phòng GD&amp;ĐT: Trần Lê Hồng Phúc" in text
    assert "• Chuyên viên phụ trách THCS, Phòng GD&amp;ĐT" in text
    assert "quản trị viên" not in text and "chưa có tên" not in text


def test_a_filled_contact_shows_name_phone_and_username() -> None:
    contact = ContactOut(
        topic="vaccine", role="", name="Nguyễn Thị A", phone="0909 123 456", telegram_username="yte"
    )
    answer = FaqAnswer(
        question="q", matched=True, score=0.9, entry=_entry("A"), topic="vaccine", contacts=[contact]
    )
    assert (
        "• Phụ trách Y tế trường học, Phòng GD&amp;ĐT: Nguyễn Thị A · 0909 123 456 · @yte"
        in render_answer(answer)
    )


def test_the_not_found_reply_says_so_and_points_to_a_contact_and_to_browsing() -> None:
    answer = FaqAnswer(
        question="thời tiết?",
        matched=False,
        score=0.1,
        topic="",
        contacts=[ContactOut(topic="general")],
        unanswered_id=7,
    )
    text = render_answer(answer, "vi")
    assert text.startswith("Xin lỗi, bot chưa có câu trả lời cho câu hỏi này.")
    assert "📞 Bạn có thể liên hệ Phòng GD&ĐT (Phó Trưởng phòng)." in text
    assert text.endswith("Gõ /faq để xem các câu hỏi theo chủ đề.")
    guessed = render_answer(answer.model_copy(update={"topic": "vaccine"}), "vi")
    assert "«Tiêm vắc-xin (4.9.1)»" in guessed


def test_contacts_and_unanswered_lists() -> None:
    text = render_contacts([ContactOut(topic=topic) for topic in CONTACT_TOPICS], "vi")
    assert "schoolbot contacts import" in text
    assert render_unanswered([], "vi") == "Không có câu hỏi nào đang chờ trả lời."
    assert topic_title("excel", "en") == "Entering data with Excel"
