"""Transcripts of the FAQ in the chat: questions typed outside any flow, /faq by topic, /contacts,
/faq_unanswered, /faq_add and uploading the knowledge-base file."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from bot.faq_render import button_label, render_answer, topic_title
from bot.texts import t
from conversations.faq import TOPIC_PAGE_SIZE, Step
from storage.models import FaqEntry, FaqQuestion
from storage.schemas.faq import ContactIn
from storage.services import Services
from storage.text import fold
from tests.chat import BACK, CONFIRM, EDIT, Harness, Person, label
from tests.factories import World, make_world

REFUSED = "Vai trò của bạn không được làm việc này"
NOT_FOUND = "Xin lỗi, bot chưa có câu trả lời"
VACCINE_CONTACT = ContactIn(
    topic="vaccine",
    role="Y tế trường học, Phòng GD&ĐT",
    name="Nguyễn Thị Thanh Thủy",
    phone="0283 873 0000",
    telegram_username="@yte_nhabe",
)
PRIMARY_CONTACT = ContactIn(topic="program_primary", name="Trần Lê Hồng Phúc", phone="0283 873 1111")
SECONDARY_CONTACT = ContactIn(
    topic="program_secondary", name="Cam Văn Võ Kiêm Toàn", phone="0283 873 2222", telegram_username="thcs_nb"
)
# A question the shipped knowledge base cannot answer (checked in the tests), and an entry that does.
STICKER_QUESTION = "nha truong co duoc dan tem so tai san len may khong"
STICKER_YAML = """\
version: 1
entries:
  - key: devices_asset_sticker
    topic: devices
    contact_topic: program
    question: Trường có được dán tem tài sản lên máy tính tặng học sinh không?
    alternatives:
      - dán tem tài sản lên laptop được không
      - co duoc dan tem tai san len may tinh khong
      - ghi so tai san tren may tang hoc sinh
    answer: >
      Không dán tem tài sản của trường: máy tặng là tài sản của học sinh từ ngày bàn giao.
"""


async def stored_questions(services: Services) -> list[str]:
    async with services.sessionmaker() as session:
        return list(await session.scalars(select(FaqQuestion.question).order_by(FaqQuestion.id)))


async def custom_entries(services: Services) -> int:
    async with services.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(FaqEntry)) or 0


async def expected_reply(services: Services, world: World, person: str, question: str) -> str:
    """What `schoolbot faq ask` would print for this person (without storing anything)."""
    answer = await services.faq.ask(question, world.staff_ids[person], record_unanswered=False)
    return render_answer(answer)


async def entry_question(services: Services, key: str) -> str:
    return (await services.faq.entry(key)).question


# --- asking -----------------------------------------------------------------------------------------


async def test_questions_with_and_without_diacritics_get_their_entry(services: Services, harness: Harness):
    world = await make_world(services)
    teacher = harness.person("teacher")
    cases = [
        ("Nhập thông tin tiêm vắc xin cho học sinh ở mục nào trên CSDL?", "vaccine_where"),
        ("may cho muon tam co tinh vao so hoc sinh da co thiet bi khong", "devices_loan"),
        ("Công ty tặng trường 20 laptop thì khai báo ở mục nào", "devices_other_where"),
        ("xoa ban ghi nhap sai o dau", "devices_fix_mistake"),
    ]
    for question, key in cases:
        await teacher.send(question)
        text = teacher.last_text()
        assert text == await expected_reply(services, world, "teacher", question), question
        assert (await entry_question(services, key)) in text, question
    assert "4.9.1" in teacher.texts()[0]
    assert await stored_questions(services) == [], "answered questions are not stored"


async def test_related_questions_are_buttons_that_open_their_entry(services: Services, harness: Harness):
    world = await make_world(services)
    teacher = harness.person("teacher")
    question = "cap nhat mui tiem cho hs o muc nao tren he thong"
    answer = await services.faq.ask(question, world.staff_ids["teacher"], record_unanswered=False)
    assert answer.related, "this question has related entries"
    await teacher.send(question)
    assert "Câu hỏi liên quan" in teacher.last_text()
    labels = [button_label(related.question) for related in answer.related]
    assert teacher.buttons() == labels
    first = answer.related[0]
    await teacher.tap(labels[0])
    shown = await services.faq.answer_for_entry(first.key, world.staff_ids["teacher"])
    assert teacher.last_text() == render_answer(shown)
    # From a button, the answer also leads back to its topic.
    back = t("faq_chat.back_to_topic", "vi", title=topic_title(shown.topic))
    assert back in teacher.buttons()
    await teacher.tap(back)
    assert topic_title(shown.topic) in teacher.last_text()
    assert shown.entry is not None and button_label(shown.entry.question) in teacher.buttons()


async def test_off_domain_question_is_not_found_stored_listed_and_resolved(
    services: Services, harness: Harness
):
    await make_world(services)
    teacher, officer = harness.person("teacher"), harness.person("primary_specialist")
    await teacher.send("Cách nấu phở bò ngon tại nhà")
    text = teacher.last_text()
    assert text.startswith(NOT_FOUND)
    assert "Bạn có thể liên hệ" in text and "/faq" in text
    await teacher.send("Giá vàng hôm nay bao nhiêu một chỉ")
    assert teacher.last_text().startswith(NOT_FOUND)
    assert await stored_questions(services) == [
        "Cách nấu phở bò ngon tại nhà",
        "Giá vàng hôm nay bao nhiêu một chỉ",
    ]

    await officer.send("/faq_unanswered")
    listing = officer.last_text()
    assert "Câu hỏi chưa có câu trả lời" in listing and "(2)" in listing
    assert listing.index("Giá vàng") < listing.index("phở bò"), "newest first"
    open_ = await services.faq.unanswered()
    pho = next(item for item in open_ if "phở" in item.question)
    gold = next(item for item in open_ if "vàng" in item.question)
    assert officer.buttons() == [f"✅ Đã xử lý #{gold.id}", f"✅ Đã xử lý #{pho.id}"]
    await officer.tap(f"✅ Đã xử lý #{pho.id}")
    text = officer.last_text()
    assert f"#{pho.id} là đã xử lý" in text
    assert "phở bò" not in text and "Giá vàng" in text
    assert [item.question for item in await services.faq.unanswered()] == [
        "Giá vàng hôm nay bao nhiêu một chỉ"
    ]
    await officer.tap(f"✅ Đã xử lý #{gold.id}")
    assert "Không có câu hỏi nào đang chờ trả lời" in officer.last_text()
    assert await services.faq.unanswered() == []


async def test_a_teacher_cannot_list_unanswered_questions_nor_edit_the_faq(
    services: Services, harness: Harness
):
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("Thời tiết ngày mai ở Nhà Bè có mưa không?")
    for command in ("/faq_unanswered", "/faq_add"):
        await teacher.send(command)
        assert REFUSED in teacher.last_text(), command
        assert "Thời tiết" not in teacher.last_text()
    assert await services.drafts.get(teacher.id, "faq_add") is None
    # Officers' commands are not in a teacher's /help either.
    await teacher.send("/help")
    assert "/faq_unanswered" not in teacher.last_text() and "/faq_add" not in teacher.last_text()
    assert "/faq " in teacher.last_text() and "/contacts" in teacher.last_text()


async def test_a_stranger_asking_gets_the_stranger_text(services: Services, harness: Harness):
    await make_world(services)
    stranger = harness.stranger()
    for text in ("tiem vac xin nhap o dau", "/faq", "/contacts"):
        await stranger.send(text)
        assert "mã mời" in stranger.last_text(), text
    assert await stored_questions(services) == []


async def test_text_inside_a_running_flow_is_not_a_question(services: Services, harness: Harness):
    await make_world(services)
    assert harness.app is not None and "vaccine" in harness.app.registered_commands
    teacher = harness.person("teacher")
    await teacher.send("/vaccine")
    await teacher.send("tiem vac xin nhap o dau")
    text = teacher.last_text()
    assert "Không tìm thấy học sinh" in text, "the flow's student search took the text"
    assert not text.startswith("❓") and NOT_FOUND not in text
    assert await stored_questions(services) == []
    await teacher.send("/cancel")
    await teacher.send("tiem vac xin nhap o dau")
    assert teacher.last_text().startswith("❓"), "outside the flow it is a question again"


# --- browsing and contacts ----------------------------------------------------------------------------


async def test_browsing_by_topic_down_to_an_answer_and_back(services: Services, harness: Harness):
    world = await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/me")
    await teacher.tap(label("menu.faq.button"))  # the menu button opens the same topic menu as /faq
    assert "Câu hỏi thường gặp" in teacher.last_text()
    topics = await services.faq.topics()
    assert len(teacher.buttons()) == len(topics)
    vaccine = next(topic for topic in topics if topic.topic == "vaccine")
    await teacher.tap(f"{topic_title('vaccine')} ({vaccine.entries})")
    assert topic_title("vaccine") in teacher.last_text()
    entries = await services.faq.entries_for_topic("vaccine")
    labels = [button_label(entry.question) for entry in entries]
    assert teacher.buttons()[: len(labels)] == labels
    await teacher.tap(button_label(entries[2].question))
    shown = await services.faq.answer_for_entry(entries[2].key, world.staff_ids["teacher"])
    assert teacher.last_text() == render_answer(shown)
    await teacher.tap(t("faq_chat.back_to_topic", "vi", title=topic_title("vaccine")))
    await teacher.tap(label("faq_chat.back_to_menu"))
    assert "Câu hỏi thường gặp" in teacher.last_text()
    await teacher.send("/faq")
    assert "Câu hỏi thường gặp" in teacher.last_text()
    assert await stored_questions(services) == []


async def test_a_long_topic_is_paged(services: Services, harness: Harness):
    await make_world(services)
    extra = "\n".join(
        f"""  - key: bot_extra_{n}
    topic: bot
    question: Câu hỏi bổ sung số {n} về bot?
    answer: Trả lời số {n}.
"""
        for n in range(TOPIC_PAGE_SIZE)
    )
    await services.faq.import_entries(f"entries:\n{extra}".encode())
    entries = await services.faq.entries_for_topic("bot")
    assert TOPIC_PAGE_SIZE < len(entries) <= 2 * TOPIC_PAGE_SIZE
    teacher = harness.person("teacher")
    await teacher.send("/faq")
    await teacher.tap(f"{topic_title('bot')} ({len(entries)})")
    assert "Trang 1/2" in teacher.last_text()
    first = [button_label(entry.question) for entry in entries[:TOPIC_PAGE_SIZE]]
    assert teacher.buttons() == [*first, label("core.more"), label("faq_chat.back_to_menu")]
    await teacher.tap(label("core.more"))
    assert "Trang 2/2" in teacher.last_text()
    second = [button_label(entry.question) for entry in entries[TOPIC_PAGE_SIZE:]]
    assert teacher.buttons() == [*second, BACK, label("faq_chat.back_to_menu")]
    await teacher.tap(second[-1])
    assert "Trả lời số" in teacher.last_text()


async def test_an_entry_with_a_key_too_long_for_button_data_still_opens(services: Services, harness: Harness):
    await make_world(services)
    key = "contact_" + "x" * 56  # 64 characters: the longest key the schema allows
    content = f"""entries:
  - key: {key}
    topic: contacts
    question: Ai phụ trách cấp tài khoản cho giáo viên mới?
    answer: Bộ phận quản trị hệ thống của Phòng GD&ĐT.
"""
    await services.faq.import_entries(content.encode())
    teacher = harness.person("teacher")
    await teacher.send("/faq")
    count = len(await services.faq.entries_for_topic("contacts"))
    await teacher.tap(f"{topic_title('contacts')} ({count})")
    await teacher.tap("Ai phụ trách cấp tài khoản cho giáo viên mới?")
    assert "Bộ phận quản trị hệ thống của Phòng GD&amp;ĐT." in teacher.last_text()


async def test_the_contact_shown_matches_the_topic_and_the_school_level(services: Services, harness: Harness):
    await make_world(services)
    await services.faq.import_contacts([VACCINE_CONTACT, PRIMARY_CONTACT, SECONDARY_CONTACT])
    teacher, teacher_thcs = harness.person("teacher"), harness.person("teacher_thcs")

    await teacher.send("nhap thong tin tiem vac xin o muc nao")
    text = teacher.last_text()
    assert "Nguyễn Thị Thanh Thủy" in text and "0283 873 0000" in text and "@yte_nhabe" in text
    assert "Phòng GD&amp;ĐT" in text, "the role is escaped for HTML"
    assert "Trần Lê Hồng Phúc" not in text

    loan = "may cho muon tam co tinh la hoc sinh da co may chua"
    await teacher.send(loan)  # a program question: the specialist of the teacher's level (primary)
    text = teacher.last_text()
    assert "Trần Lê Hồng Phúc" in text and "Cam Văn Võ Kiêm Toàn" not in text
    await teacher_thcs.send(loan)
    text = teacher_thcs.last_text()
    assert "Cam Văn Võ Kiêm Toàn" in text and "@thcs_nb" in text and "Trần Lê Hồng Phúc" not in text

    await teacher.send("/contacts")
    text = teacher.last_text()
    assert "Danh bạ liên hệ" in text
    for name in ("Nguyễn Thị Thanh Thủy", "Trần Lê Hồng Phúc", "Cam Văn Võ Kiêm Toàn"):
        assert name in text
    assert "chưa có tên, số điện thoại" in text, "the unfilled topics say so"


async def test_contacts_when_nobody_is_filled_in(services: Services, harness: Harness):
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/contacts")
    text = teacher.last_text()
    assert "Chuyên viên phụ trách Tiểu học" in text
    assert "schoolbot contacts import" in text


# --- /faq_add -----------------------------------------------------------------------------------------


async def add_sticker_entry(officer: Person) -> None:
    await officer.send("/faq_add")
    await officer.tap(label("faq_chat.add.new_button"))
    await officer.tap(topic_title("devices"))
    await officer.send("Trường có được dán tem tài sản lên máy tính tặng học sinh không?")
    await officer.send(
        "dán tem tài sản lên laptop được không\nco duoc dan tem tai san len may tinh khong\n\n"
    )
    await officer.send(
        "Không dán tem tài sản của trường.\nMáy tặng là tài sản của học sinh từ ngày bàn giao."
    )
    await officer.tap(t("faq_chat.add.contact.program", "vi"))


async def test_faq_add_creates_an_entry_that_answers_at_once(services: Services, harness: Harness):
    world = await make_world(services)
    teacher, officer = harness.person("teacher"), harness.person("primary_specialist")
    before = await services.faq.ask(STICKER_QUESTION, record_unanswered=False)
    assert not before.matched

    await add_sticker_entry(officer)
    summary = officer.last_text()
    assert "Mục hỏi – đáp mới" in summary
    assert "Tiếp nhận, bàn giao thiết bị" in summary and "Cách hỏi khác (2)" in summary
    assert "co duoc dan tem tai san len may tinh khong" in summary
    assert "Máy tặng là tài sản" in summary
    # Change one answer from the summary, then save.
    await officer.tap(EDIT)
    await officer.tap(label("faq_chat.add.field.question"))
    assert "Hiện tại: Trường có được dán tem" in officer.last_text()
    await officer.tap(label("faq_chat.add.keep"))
    assert "Lưu mục này?" in officer.last_text(), "keep goes back to the summary"
    await officer.tap(CONFIRM)
    assert "Đã lưu mục" in officer.last_text()
    assert await services.drafts.get(officer.id, "faq_add") is None

    [entry] = [entry for entry in await services.faq.entries() if entry.source == "custom"]
    assert entry.key == "devices_truong_co_duoc_dan_tem_tai_san", "a readable key from the question"
    assert entry.topic == "devices" and entry.contact_topic == "program"
    assert entry.alternatives == [
        "dán tem tài sản lên laptop được không",
        "co duoc dan tem tai san len may tinh khong",
    ]
    assert entry.answer.splitlines()[1] == "Máy tặng là tài sản của học sinh từ ngày bàn giao."
    assert entry.updated_by_id == world.staff_ids["primary_specialist"]

    await teacher.send(STICKER_QUESTION)
    text = teacher.last_text()
    assert text.startswith("❓ <b>Trường có được dán tem tài sản")
    assert "Máy tặng là tài sản của học sinh" in text
    assert await stored_questions(services) == []
    # The new entry is listed under its topic as well.
    await teacher.send("/faq")
    devices = len(await services.faq.entries_for_topic("devices"))
    await teacher.tap(f"{topic_title('devices')} ({devices})")
    assert button_label(entry.question) in teacher.buttons()


async def test_faq_add_edits_an_existing_entry_found_by_typing(services: Services, harness: Harness):
    await make_world(services)
    teacher, officer = harness.person("teacher"), harness.person("admin")
    await officer.send("/faq_add")
    await officer.send("nhap mui tiem o muc nao")
    where = await entry_question(services, "vaccine_where")
    assert button_label(f"{where} (vaccine_where)") in officer.buttons()
    assert label("faq_chat.add.new_button") in officer.buttons()
    await officer.tap(button_label(f"{where} (vaccine_where)"))
    assert "Sửa mục <b>vaccine_where</b>" in officer.texts()[-2]
    for _ in range(3):  # topic, question, other phrasings: unchanged
        await officer.tap(label("faq_chat.add.keep"))
    answer_prompt = officer.bot_messages()[-1]
    await officer.send("Vào mục 4.9.1 trên CSDL ngành; nhập chậm nhất 1 ngày sau khi tiêm.")
    # «Keep» under the answer's question (still there: it was answered by typing) keeps nothing now.
    [keep] = [b for row in answer_prompt["reply_markup"]["inline_keyboard"] for b in row]
    await harness.deliver(harness.api.callback_query(officer.user, answer_prompt, keep["callback_data"]))
    assert "thuộc một câu hỏi trước" in officer.alerts()[-1]
    assert (await services.drafts.get(officer.id, "faq_add")).step == Step.CONTACT
    await officer.tap(label("faq_chat.add.keep"))  # contact
    assert "Sửa mục hỏi – đáp vaccine_where" in officer.last_text()
    await officer.tap(CONFIRM)
    assert "Đã lưu mục <b>vaccine_where</b>" in officer.last_text()
    assert await custom_entries(services) == 1
    await teacher.send("cap nhat tiem vac xin cho hoc sinh o dau")
    assert "nhập chậm nhất 1 ngày sau khi tiêm" in teacher.last_text()


async def test_faq_add_says_what_is_wrong_at_the_step(services: Services, harness: Harness):
    await make_world(services)
    officer = harness.person("health_officer")
    await officer.send("/faq_add")
    await officer.tap(label("faq_chat.add.new_button"))
    await officer.send("chủ đề gõ tay")
    assert "Bấm một nút" in officer.last_text()
    await officer.tap(topic_title("vaccine"))
    await officer.send("x" * 400)
    assert "quá dài" in officer.last_text()
    await officer.send("Học sinh <b>tiêm</b> ở đâu?")
    await officer.tap(label("faq_chat.add.skip"))
    await officer.send("Ở trường & ở phường.")
    await officer.tap(t("faq_chat.add.contact.vaccine", "vi"))
    summary = officer.last_text()
    assert "&lt;b&gt;tiêm&lt;/b&gt;" in summary and "Ở trường &amp; ở phường." in summary
    assert "Cách hỏi khác (0)" in summary
    await officer.send("/cancel")
    assert await custom_entries(services) == 0


# --- uploading the knowledge-base file ----------------------------------------------------------------


async def test_an_officer_uploads_a_yaml_file_and_it_answers_at_once(services: Services, harness: Harness):
    await make_world(services)
    teacher, officer = harness.person("teacher"), harness.person("deputy_head")
    await officer.upload("faq.yaml", STICKER_YAML.encode(), "application/x-yaml")
    text = officer.last_text()
    assert "Đã nhập tệp hỏi – đáp «faq.yaml»" in text and "1 mục mới" in text
    assert await custom_entries(services) == 1
    await teacher.send(STICKER_QUESTION)
    assert "máy tặng là tài sản của học sinh" in teacher.last_text()
    # The same file again changes nothing; a broken file changes nothing and says where it is broken.
    await officer.upload("faq.yml", STICKER_YAML.encode())
    assert "1 mục không đổi" in officer.last_text()
    await officer.upload("hong.yaml", b"entries:\n  - key: x\n   topic: [")
    text = officer.last_text()
    assert "Không nhập được tệp «hong.yaml»" in text and "dòng" in text
    await officer.upload("sai.yaml", b"entries:\n  - key: Sai Ma\n    topic: devices\n")
    assert "Không nhập được tệp «sai.yaml»" in officer.last_text()
    assert await custom_entries(services) == 1


async def test_a_teacher_uploading_a_yaml_file_is_refused(services: Services, harness: Harness):
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.upload("faq.yaml", STICKER_YAML.encode(), "application/x-yaml")
    assert REFUSED in teacher.last_text()
    assert await custom_entries(services) == 0
    await teacher.send(STICKER_QUESTION)
    assert teacher.last_text().startswith(NOT_FOUND)


async def test_faq_add_summary_of_the_longest_entry_fits_one_message(services: Services, harness: Harness):
    await make_world(services)
    officer = harness.person("admin")
    await officer.send("/faq_add")
    await officer.tap(label("faq_chat.add.new_button"))
    await officer.tap(topic_title("excel"))
    await officer.send("<" * 300)
    await officer.send("\n".join(f"{n} " + "&" * 297 for n in range(20)))
    await officer.send("&" * 2000)
    await officer.tap(t("faq_chat.add.contact.technical", "vi"))
    summary = officer.last_text()
    assert "Lưu mục này?" in summary and "Cách hỏi khác (20)" in summary
    assert len(summary) <= 4096
    await officer.tap(CONFIRM)
    assert "Đã lưu mục" in officer.last_text()
    [entry] = [entry for entry in await services.faq.entries() if entry.source == "custom"]
    assert entry.answer == "&" * 2000, "only the summary is shortened, not the entry"
    assert entry.key == "excel", "a question without letters: the topic is the key"
    # Shown, the same entry (over 4096 characters once escaped for HTML) comes in two messages.
    teacher = harness.person("teacher")
    await teacher.send("/faq")
    excel = len(await services.faq.entries_for_topic("excel"))
    await teacher.tap(f"{topic_title('excel')} ({excel})")
    teacher.new_texts()
    await teacher.tap(button_label("<" * 300))
    answer = teacher.new_texts()
    assert len(answer) >= 2 and all(len(text) <= 4096 for text in answer)
    assert "&amp;" * 2000 in "".join(answer), "cut between entities, nothing lost"


async def test_the_frame_follows_the_persons_language(services: Services, harness: Harness):
    world = await make_world(services)
    await services.staff.set_language(world.staff_ids["principal"], "en")
    principal = harness.person("principal")
    await principal.send("/faq")
    assert "Frequently asked questions" in principal.last_text()
    vaccine = len(await services.faq.entries_for_topic("vaccine"))
    assert f"{topic_title('vaccine', 'en')} ({vaccine})" in principal.buttons()
    await principal.send("where do I enter vaccination records")
    assert "For more, contact" in principal.last_text()
    await principal.send("how to cook rice")
    assert principal.last_text().startswith("Sorry, the bot has no answer")


async def test_the_example_question_of_help_gets_the_round_deadlines_and_whom_to_ask(
    services: Services, harness: Harness
):
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/help")
    example = re.search(r"«([^»]+)»", teacher.last_text())
    assert example is not None, "/help suggests a question"
    for question in (example.group(1), fold(example.group(1))):
        await teacher.send(question)
        text = teacher.last_text()
        assert text.startswith("❓ <b>Hạn nộp báo cáo của đợt là khi nào?</b>"), text
        assert "15 giờ 30 phút thứ Hai, ngày 15/11/2021" in text and "buổi chiều 16/11/2021" in text
        assert "05 ngày" not in text, "not the district's 5-day rule"
        # Nobody filled in the contacts: "ask the office" once, no administrator's hint.
        assert "hỏi Phòng GD&ĐT (Phó Trưởng phòng)" in text
        assert "quản trị viên" not in text and "chưa có tên" not in text


async def test_who_the_programme_supports_is_answered_with_the_eligible_groups(
    services: Services, harness: Harness
):
    await make_world(services)
    teacher = harness.person("teacher")
    for question in ("chương trình hỗ trợ những đối tượng nào", "chuong trinh ho tro nhung doi tuong nao"):
        await teacher.send(question)
        text = teacher.last_text()
        for group in ("hộ nghèo", "hộ cận nghèo", "cha, mẹ tử vong do dịch", "khó khăn khác"):
            assert group in text, (question, text)
        assert "Là chương trình quốc gia" not in text, "not what the programme is"
