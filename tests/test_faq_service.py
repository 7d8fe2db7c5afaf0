"""FaqService on both databases: asking, the not-found path, browsing, editing, contacts; and the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.cli import main
from bot.faq_render import render_answer
from storage.clock import Clock
from storage.db import create_engine
from storage.errors import DomainError
from storage.faq_index import shipped_entries
from storage.models import AuditLog, FaqEntry, FaqQuestion
from storage.schemas.faq import TOPICS, ContactIn, FaqEntryIn, dump_knowledge_base
from storage.services import Services, build_services
from tests.factories import make_world
from tests.faq_questions import OUT_OF_DOMAIN

VACCINE_CONTACT = ContactIn(
    topic="vaccine", name="Nguyễn Thị Thanh Thủy", phone="0283 873 0000", telegram_username="@yte_nhabe"
)


async def _count(services: Services, model: type) -> int:
    async with services.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


# --- asking ---------------------------------------------------------------------------------------


async def test_a_known_question_gets_its_entry_related_questions_and_contact(services: Services) -> None:
    answer = await services.faq.ask("nhap mui tiem cho hoc sinh o muc nao tren csdl")
    assert answer.matched and answer.entry is not None
    assert answer.entry.key == "vaccine_where"
    assert 1 <= len(answer.related) <= 3
    assert "vaccine_where" not in {related.key for related in answer.related}
    assert [contact.topic for contact in answer.contacts] == ["vaccine"]
    assert answer.unanswered_id is None
    assert await _count(services, FaqQuestion) == 0, "answered questions are not stored"


async def test_out_of_domain_questions_take_the_not_found_path_and_are_stored(services: Services) -> None:
    world = await make_world(services)
    asker = world.staff_ids["teacher"]
    for question in OUT_OF_DOMAIN[:8]:
        answer = await services.faq.ask(question, asker)
        assert not answer.matched and answer.entry is None, question
        assert answer.unanswered_id is not None
        assert answer.contacts, "the reply still says whom to contact"
        assert render_answer(answer).startswith("Xin lỗi, bot chưa có câu trả lời")
    async with services.sessionmaker() as session:
        rows = list(await session.scalars(select(FaqQuestion).order_by(FaqQuestion.id)))
        audited = await session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.entity == "faq_question")
        )
    assert [row.question for row in rows] == OUT_OF_DOMAIN[:8]
    assert {row.asked_by_id for row in rows} == {asker}
    assert audited == 8
    listed = await services.faq.unanswered()
    assert {item.question for item in listed} == set(OUT_OF_DOMAIN[:8])


async def test_the_same_question_asked_again_is_listed_once_and_resolved_together(services: Services) -> None:
    await services.faq.ask("Thời tiết mai thế nào?")
    await services.faq.ask("thoi tiet mai the nao?")
    await services.faq.ask("Giá vàng hôm nay")
    listed = await services.faq.unanswered()
    assert [(item.question, item.times_asked) for item in listed] == [
        ("Giá vàng hôm nay", 1),
        ("thoi tiet mai the nao?", 2),
    ]
    assert await services.faq.resolve_question(listed[1].id) == 2
    assert [item.question for item in await services.faq.unanswered()] == ["Giá vàng hôm nay"]
    with pytest.raises(DomainError) as caught:
        await services.faq.resolve_question(999_999)
    assert caught.value.code == "faq.question_not_found"


async def test_a_near_miss_guesses_the_topic_for_its_contact(services: Services) -> None:
    answer = await services.faq.ask("vắc xin")
    # A single topic word: answered or not, the vaccine contact is the one shown.
    assert [contact.topic for contact in answer.contacts] == ["vaccine"]
    weak = await services.faq.ask("tiêm phòng cho chó mèo ở đâu")
    assert not weak.matched
    assert [contact.topic for contact in weak.contacts] == ["vaccine"]


async def test_an_empty_question_is_refused(services: Services) -> None:
    with pytest.raises(DomainError) as caught:
        await services.faq.ask("   ")
    assert caught.value.code == "faq.question_empty"


# --- contacts -------------------------------------------------------------------------------------


async def test_the_contact_shown_matches_the_topic_filled_or_not(services: Services) -> None:
    question = "tiem o tram y te phuong co phai nhap khong"
    empty = await services.faq.ask(question)
    assert empty.entry is not None and empty.entry.key == "vaccine_outside_school"
    assert [(c.topic, c.is_filled) for c in empty.contacts] == [("vaccine", False)]
    text = render_answer(empty, "vi")
    assert "hỏi Phòng GD&ĐT (người phụ trách Y tế trường học)" in text
    assert "quản trị viên" not in text

    result = await services.faq.import_contacts([VACCINE_CONTACT])
    assert (result.created, result.updated, result.unchanged) == (1, 0, 0)
    filled = await services.faq.ask(question)
    assert [(c.topic, c.name, c.telegram_username) for c in filled.contacts] == [
        ("vaccine", "Nguyễn Thị Thanh Thủy", "yte_nhabe")
    ]
    assert "Nguyễn Thị Thanh Thủy · 0283 873 0000 · @yte_nhabe" in render_answer(filled, "vi")

    technical = await services.faq.ask("he thong csdl bao loi khong luu duoc thi goi ai")
    assert [c.topic for c in technical.contacts] == ["technical"]


async def test_program_questions_go_to_the_specialist_of_the_askers_level(services: Services) -> None:
    world = await make_world(services)
    question = "cho hoc sinh muon may co tinh la co thiet bi khong"
    primary = await services.faq.ask(question, world.staff_ids["teacher"])
    secondary = await services.faq.ask(question, world.staff_ids["teacher_thcs"])
    officer = await services.faq.ask(question, world.staff_ids["deputy_head"])
    specialist = await services.faq.ask(question, world.staff_ids["secondary_specialist"])
    assert primary.entry is not None and primary.entry.key == "devices_loan"
    assert [c.topic for c in primary.contacts] == ["program_primary"]
    assert [c.topic for c in secondary.contacts] == ["program_secondary"]
    assert [c.topic for c in officer.contacts] == ["program_primary", "program_secondary"]
    assert [c.topic for c in specialist.contacts] == ["program_secondary"]


async def test_contacts_import_updates_by_topic_and_is_audited(services: Services) -> None:
    assert [c.topic for c in await services.faq.contacts()] == [
        "program_primary",
        "program_secondary",
        "vaccine",
        "technical",
        "general",
    ]
    assert not any(c.is_filled for c in await services.faq.contacts()), "shipped empty"
    await services.faq.import_contacts([VACCINE_CONTACT])
    changed = VACCINE_CONTACT.model_copy(update={"phone": "0909 000 111"})
    result = await services.faq.import_contacts([changed, ContactIn(topic="technical", name="Trần Kim Ngân")])
    assert (result.created, result.updated, result.unchanged) == (1, 1, 0)
    again = await services.faq.import_contacts([changed])
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
    assert (await services.faq.contact("vaccine")).phone == "0909 000 111"
    async with services.sessionmaker() as session:
        audited = await session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.entity == "contact")
        )
    assert audited == 3


# --- browsing -------------------------------------------------------------------------------------


async def test_browsing_by_topic(services: Services) -> None:
    topics = await services.faq.topics()
    assert [item.topic for item in topics] == list(TOPICS)
    assert sum(item.entries for item in topics) == len(shipped_entries())
    vaccine = await services.faq.entries_for_topic("vaccine")
    assert vaccine and {entry.topic for entry in vaccine} == {"vaccine"}
    assert "vaccine_where" in {entry.key for entry in vaccine}
    picked = await services.faq.answer_for_entry("vaccine_where")
    assert picked.matched and picked.entry is not None and picked.entry.key == "vaccine_where"
    assert [c.topic for c in picked.contacts] == ["vaccine"]
    assert "vaccine_where" not in {related.key for related in picked.related}
    with pytest.raises(DomainError) as caught:
        await services.faq.entries_for_topic("weather")
    assert caught.value.code == "faq.topic_unknown"
    with pytest.raises(DomainError) as caught:
        await services.faq.entry("no_such_entry")
    assert caught.value.code == "faq.entry_not_found"


# --- editing the knowledge base -------------------------------------------------------------------


async def test_an_added_entry_is_answered_at_once_and_an_override_replaces_the_shipped_text(
    services: Services,
) -> None:
    world = await make_world(services)
    admin = world.staff_ids["admin"]
    before = await services.faq.ask("Máy tính bảng bị vỡ màn hình thì bảo hành ở đâu?")
    assert not before.matched
    added = await services.faq.add_or_update_entry(
        FaqEntryIn(
            key="device_warranty",
            topic="devices",
            question="Máy tài trợ bị hỏng thì bảo hành ở đâu?",
            alternatives=["máy bị vỡ màn hình", "may hu thi sua o dau", "bảo hành máy tính bảng"],
            answer="Liên hệ nhà tài trợ theo phiếu bảo hành kèm máy.",
            contact_topic="program",
        ),
        actor_id=admin,
    )
    assert added.source == "custom" and added.updated_by_id == admin
    after = await services.faq.ask("Máy tính bảng bị vỡ màn hình thì bảo hành ở đâu?")
    assert after.matched and after.entry is not None and after.entry.key == "device_warranty"

    shipped = await services.faq.entry("devices_loan")
    override = FaqEntryIn(**{**shipped.model_dump(), "answer": "Không tính. (Bản sửa của Phòng.)"})
    await services.faq.add_or_update_entry(override, actor_id=admin)
    loan = await services.faq.ask("may cho muon tam co tinh la co thiet bi khong")
    assert loan.entry is not None and loan.entry.answer == "Không tính. (Bản sửa của Phòng.)"
    assert loan.entry.source == "custom"
    assert len(await services.faq.entries()) == len(shipped_entries()) + 1

    reverted = await services.faq.remove_entry("devices_loan", actor_id=admin)
    assert reverted is not None and reverted.answer == shipped.answer
    assert (await services.faq.entry("devices_loan")).source == "shipped"
    with pytest.raises(DomainError) as caught:
        await services.faq.remove_entry("devices_loan")
    assert caught.value.code == "faq.entry_shipped_only"
    async with services.sessionmaker() as session:
        actions = list(
            await session.scalars(
                select(AuditLog.action).where(AuditLog.entity == "faq_entry").order_by(AuditLog.id)
            )
        )
    assert [action.value for action in actions] == ["create", "create", "delete"]


async def test_importing_a_knowledge_file_creates_updates_and_skips_unchanged(services: Services) -> None:
    # The shipped file as it is changes nothing and stores nothing: the file stays the source.
    first = await services.faq.import_entries(await services.faq.export_entries())
    assert (first.created, first.updated, first.unchanged) == (0, 0, len(shipped_entries()))
    assert await _count(services, FaqEntry) == 0

    entries = list(shipped_entries())
    entries[0] = entries[0].model_copy(update={"answer": "Câu trả lời mới."})
    new = FaqEntryIn(
        key="school_year_plan",
        topic="deadlines",
        question="Kế hoạch báo cáo năm học có mấy đợt?",
        alternatives=["bao nhiêu đợt báo cáo", "lịch các đợt báo cáo", "dot bao cao tiep theo"],
        answer="Theo kế hoạch Phòng gửi đầu năm học.",
        contact_topic="general",
    )
    content = dump_knowledge_base([*entries, new])
    second = await services.faq.import_entries(content)
    assert (second.created, second.updated, second.unchanged) == (2, 0, len(entries) - 1)
    third = await services.faq.import_entries(content)
    assert (third.created, third.updated, third.unchanged) == (0, 0, len(entries) + 1)
    assert (await services.faq.entry(entries[0].key)).answer == "Câu trả lời mới."
    assert any(entry.key == "school_year_plan" for entry in await services.faq.entries_for_topic("deadlines"))

    with pytest.raises(DomainError) as caught:
        await services.faq.import_entries(b"entries:\n  - key: x\n")
    assert caught.value.code == "faq.entry_invalid"


async def test_a_change_made_by_another_process_is_seen(services: Services, engine, clock: Clock) -> None:
    await services.faq.ask("nhap mui tiem o dau")  # builds this service's index
    other = build_services(engine, clock)  # e.g. `schoolbot faq import` while the bot runs
    await other.faq.add_or_update_entry(
        FaqEntryIn(
            key="lunch_menu",
            topic="bot",
            question="Thực đơn bữa trưa của trường xem ở đâu?",
            alternatives=["thuc don bua trua", "bữa trưa hôm nay ăn gì", "menu ăn trưa"],
            answer="Trên bảng tin của trường.",
        )
    )
    answer = await services.faq.ask("thuc don bua trua xem o dau")
    assert answer.entry is not None and answer.entry.key == "lunch_menu"


# --- the command line (SQLite file, as `schoolbot` runs it) ---------------------------------------


@pytest.fixture
def cli_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'schoolbot.sqlite3'}"
    for name in ("TELEGRAM_BOT_TOKEN", "BOT_TIMEZONE", "LOG_LEVEL", "TELEGRAM_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)  # no developer .env
    assert main(["db", "upgrade"]) == 0
    return url


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def _expected(url: str, question: str) -> str:
    async def ask() -> str:
        engine = create_engine(url)
        try:
            services = build_services(engine, Clock())
            return render_answer(await services.faq.ask(question, record_unanswered=False), "vi")
        finally:
            await engine.dispose()

    return asyncio.run(ask())


def test_cli_ask_prints_exactly_what_the_bot_sends(
    cli_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    question = "hoc sinh muon may cua truong co tinh la co thiet bi khong"
    out = _run(capsys, "faq", "ask", question)
    assert out == _expected(cli_database, question) + "\n"
    assert out.startswith("❓ <b>Cho học sinh mượn tạm máy có tính là học sinh đã có thiết bị không?</b>")

    data = json.loads(_run(capsys, "faq", "ask", question, "--json"))
    assert set(data) == {"answer", "entry", "score"}
    assert data["entry"] == "devices_loan"
    assert data["answer"] == _expected(cli_database, question)
    assert isinstance(data["score"], float) and 0 < data["score"] <= 1


def test_cli_not_found_is_json_null_and_listed(cli_database: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(_run(capsys, "faq", "ask", "Cách nấu phở bò ngon tại nhà", "--json"))
    assert data["entry"] is None
    assert data["answer"] == _expected(cli_database, "Cách nấu phở bò ngon tại nhà")
    assert "Cách nấu phở bò ngon tại nhà" in _run(capsys, "faq", "unanswered")
    listed = json.loads(_run(capsys, "faq", "unanswered", "--json"))
    assert [item["question"] for item in listed] == ["Cách nấu phở bò ngon tại nhà"]
    _run(capsys, "faq", "ask", "Giá vàng hôm nay", "--no-record")
    assert len(json.loads(_run(capsys, "faq", "unanswered", "--json"))) == 1


def test_cli_contacts_import_and_list(
    cli_database: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text(
        "topic,role,name,phone,telegram_username\n"
        "program_primary,Chuyên viên Tiểu học,Trần Lê Hồng Phúc,0283 111 222,@th_nhabe\n"
        "vaccine,,Nguyễn Thị Thanh Thủy,0283 333 444,\n",
        encoding="utf-8",
    )
    assert json.loads(_run(capsys, "contacts", "import", str(csv_file), "--json")) == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
    }
    yaml_file = tmp_path / "contacts.yaml"
    yaml_file.write_text(
        "contacts:\n  - topic: technical\n    name: Trần Kim Ngân\n    telegram_username: kythuat_nb\n",
        encoding="utf-8",
    )
    _run(capsys, "contacts", "import", str(yaml_file))
    listed = {item["topic"]: item for item in json.loads(_run(capsys, "contacts", "list", "--json"))}
    assert listed["program_primary"]["name"] == "Trần Lê Hồng Phúc"
    assert listed["program_primary"]["telegram_username"] == "th_nhabe"
    assert listed["technical"]["telegram_username"] == "kythuat_nb"
    assert listed["general"]["name"] == ""
    text = _run(capsys, "contacts", "list")
    assert (
        "vaccine: Phụ trách Y tế trường học, Phòng GD&ĐT · Nguyễn Thị Thanh Thủy · 0283 333 444 · –" in text
    )
    # The answer now shows the filled contact.
    out = _run(capsys, "faq", "ask", "hoc sinh tiem o tram y te phuong co nhap khong")
    assert "Nguyễn Thị Thanh Thủy · 0283 333 444" in out


def test_cli_export_and_import_round_trip(
    cli_database: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "faq.yaml"
    _run(capsys, "faq", "export", "--out", str(target))
    content = target.read_text(encoding="utf-8")
    assert content.count("- key: ") == len(shipped_entries())
    edited = content.replace("Kỹ thuật cập nhật", "Kỹ thuật cập nhật").replace(
        "question: Lấy mẫu Excel của bot ở đâu?", "question: Lấy mẫu Excel của bot ở chỗ nào?"
    )
    target.write_text(edited, encoding="utf-8")
    result = json.loads(_run(capsys, "faq", "import", str(target), "--json"))
    assert result == {"created": 1, "updated": 0, "unchanged": len(shipped_entries()) - 1}
    assert "excel_template_bot [excel] Lấy mẫu Excel của bot ở chỗ nào? (" in _run(capsys, "faq", "list")
