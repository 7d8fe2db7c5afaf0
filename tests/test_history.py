"""/history in words (issue 16, item 6): what each record is and what changed, under the chat's labels;
a picker of the officer's schools (paged, typed part of a name without diacritics); a principal's own
school; refusals. On SQLite and PostgreSQL (clock frozen at Mon 15 Nov 2021, 09:00)."""

from __future__ import annotations

import re
from datetime import date

from bot.texts import load
from storage.enums import AuditAction, DosePlace, PriorityGroup, SchoolLevel, SubmissionTrack
from storage.models import School
from storage.schemas.history import FIELDS, SUBJECTS, HistoryNames, ValueKind, describe_audit
from storage.schemas.vaccines import DoseChange, DoseIn
from storage.services import Services
from tests.chat import Harness, label
from tests.factories import World, make_world
from tests.helpers import laptops_with_one_gift
from tests.test_round_flow import directive_round, record_need

TH = "79785001 · Trường TH Lê Văn Lương"
THCS = "79785101 · Trường THCS Nguyễn Bỉnh Khiêm"
COLUMNS = ("given_on", "request_key", "student_id", "batch_id", "entered_by_id", "dose_number", "handed_on")


async def records(services: Services, world: World) -> None:
    """The primary school: a programme batch (lô #1) with a gift to Nguyễn Văn An; Trần Thị Bình's
    second dose, given 12/11 and corrected to 13/11. The lower-secondary school: Phạm Thị Dung's need."""
    await laptops_with_one_gift(services, world)
    products = {p.code: p.id for p in await services.vaccines.products()}
    school, teacher = world.primary_school_id, world.staff_ids["teacher"]
    for number, given_on in ((1, date(2021, 10, 1)), (2, date(2021, 11, 12))):
        saved = await services.vaccines.record_dose(
            DoseIn(
                student_id=world.student_ids["HS0002"],
                dose_number=number,
                given_on=given_on,
                product_id=products["COMIRNATY"],
                place=DosePlace.SCHOOL,
            ),
            school_id=school,
            actor_id=teacher,
            request_key=None,
            confirm_warnings=True,
        )
    await services.vaccines.update_dose(
        saved.id,
        DoseChange(given_on=date(2021, 11, 13)),
        school_id=school,
        actor_id=teacher,
        confirm_warnings=True,
    )
    await record_need(services, world, "HS0005", PriorityGroup.OTHER_HARDSHIP)


def assert_in_words(text: str) -> None:
    """No internal id and no column name reaches the person."""
    assert not re.search(r"#\d{2,}", text) and "lô #" not in text.replace("lô #1", ""), text
    for column in COLUMNS:
        assert column not in text, (column, text)


async def more_schools(services: Services, world: World, count: int) -> None:
    async with services.sessionmaker.begin() as session:
        for n in range(count):
            session.add(
                School(
                    district_id=world.district_id,
                    code=f"7978520{n:02d}",
                    name=f"Trường TH Số {n + 1} Hiệp Phước",
                    level=SchoolLevel.PRIMARY,
                )
            )


async def test_an_officer_picks_the_school_and_reads_what_changed(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    await records(services, world)
    await more_schools(services, world, 9)  # 11 schools: two pages of 8
    deputy = harness.person("deputy_head")

    await deputy.send("/history")
    question = deputy.last_text()
    assert "chọn một trường (11 trường, trang 1/2)" in question
    assert "79785001" not in question.split("ví dụ")[0]  # no code to type: buttons
    example = question.split("<code>")[1].split("</code>")[0]
    assert example and example.isascii()  # part of a real school's name, typed as people type it
    first_page = [b for b in deputy.buttons() if " · " in b]
    assert len(first_page) == 8 and label("rounds_chat.history.page_next") in deputy.buttons()
    await deputy.tap(label("rounds_chat.history.page_next"))
    assert (
        "trang 2/2" in deputy.last_text() and label("rounds_chat.history.page_previous") in deputy.buttons()
    )
    second_page = [b for b in deputy.buttons() if " · " in b]
    assert len(second_page) == 3 and {TH, THCS} <= {*first_page, *second_page}
    if TH not in second_page:
        await deputy.tap(label("rounds_chat.history.page_previous"))
    await deputy.tap(TH)
    assert deputy.last_text().startswith("🕘 Lịch sử của Trường TH Lê Văn Lương (79785001)")

    # Typed part of a name, without diacritics: the one school that matches.
    await deputy.send("/history")
    await deputy.send("le van luong")
    history = deputy.last_text()
    assert history.startswith("🕘 Lịch sử của Trường TH Lê Văn Lương (79785001), mới nhất trước:")
    lines = history.split("\n")[1:]
    dose_lines = [line for line in lines if "mũi 2 của Trần Thị Bình" in line]
    assert any(
        "Đỗ Thị Hoa: sửa mũi 2 của Trần Thị Bình (tiêm ngày 13/11/2021) — Ngày tiêm: 12/11/2021 → 13/11/2021"
        in line
        for line in dose_lines
    ), dose_lines
    assert any("thêm mũi 2 của Trần Thị Bình (tiêm ngày 12/11/2021)" in line for line in dose_lines)
    assert any("thêm lô #1: 3 máy tính xách tay, nhận ngày 10/11/2021" in line for line in lines), lines
    assert any(
        "thêm bàn giao máy lô #1 cho Nguyễn Văn An (tặng, ngày 14/11/2021)" in line for line in lines
    ), lines
    assert_in_words(history)

    # A part of a name several schools share: the picker, filtered; then the whole list again.
    await deputy.send("/history hiep phuoc")
    assert "Các trường khớp «hiep phuoc» (9 trường, trang 1/2)" in deputy.last_text()
    assert label("rounds_chat.history.all_schools") in deputy.buttons()
    await deputy.send("nguyen binh khiem")
    history = deputy.last_text()
    assert history.startswith("🕘 Lịch sử của Trường THCS Nguyễn Bỉnh Khiêm (79785101)")
    assert "Bùi Thị Lan: thêm nhu cầu hỗ trợ của Phạm Thị Dung (khó khăn khác)" in history
    assert_in_words(history)

    # Nothing matches: said, and the picker stays.
    await deputy.send("/history")
    await deputy.send("tran hung dao")
    assert "Không có trường nào khớp «tran hung dao»" in deputy.last_text()
    await deputy.send("79785001")
    assert deputy.last_text().startswith("🕘 Lịch sử của Trường TH Lê Văn Lương")


async def test_submission_steps_and_english(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    await records(services, world)
    rnd = await services.rounds.create_round(
        directive_round(), district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )
    result = await services.rounds.submit(
        rnd.id,
        SubmissionTrack.PROGRAM,
        school_id=world.primary_school_id,
        actor_id=world.staff_ids["principal"],
    )
    await services.rounds.send_back(
        result.submission.id, reviewer_id=world.staff_ids["primary_specialist"], reason="Thiếu ảnh <biên bản>"
    )
    specialist = harness.person("primary_specialist")
    await specialist.send("/history le van")
    history = specialist.last_text()
    assert (
        "Trần Lê Hồng Phúc: Chương trình «Sóng và máy tính cho em» · đợt «Báo cáo CV 1128/GDĐT»: " in history
    )
    assert "chờ duyệt → <b>trả lại</b> — lý do: «Thiếu ảnh &lt;biên bản&gt;»" in history
    assert_in_words(history)

    # English-speaking staff read the same lines in English.
    await specialist.send("/lang")
    await specialist.tap("English")
    await specialist.send("/history 79785001")
    english = specialist.last_text()
    assert english.startswith("🕘 History of Trường TH Lê Văn Lương (79785001), newest first:")
    assert (
        "changed dose 2 of Trần Thị Bình (given 13/11/2021) — Date given: 12/11/2021 → 13/11/2021" in english
    )
    assert "added batch #1: 3 " in english and "reason: «Thiếu ảnh &lt;biên bản&gt;»" in english
    assert_in_words(english)


async def test_who_sees_which_school(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    await records(services, world)

    # A principal: their own school at once; another school's code is refused.
    principal = harness.person("principal")
    await principal.send("/history")
    own = principal.last_text()
    assert own.startswith("🕘 Lịch sử của Trường TH Lê Văn Lương (79785001)")
    assert "sửa mũi 2 của Trần Thị Bình" in own and principal.buttons() == []
    await principal.send("/history 79785101")
    assert "chỉ xem và sửa được dữ liệu của trường" in principal.last_text()

    # A teacher has no /history.
    teacher = harness.person("teacher")
    await teacher.send("/history")
    assert "Lịch sử" not in teacher.last_text()

    # A specialist of the other level: only their level's schools are offered; another's code refused.
    secondary = harness.person("secondary_specialist")
    await secondary.send("/history")
    assert secondary.last_text().startswith("🕘 Lịch sử của Trường THCS Nguyễn Bỉnh Khiêm")  # the only one
    await secondary.send("/history 79785001")
    assert "chỉ xem và sửa được dữ liệu của trường" in secondary.last_text()
    await secondary.send("/history le van luong")  # not one of theirs: not found among them
    assert "Không có trường nào khớp «le van luong»" in secondary.last_text()


def test_every_shown_field_and_subject_has_its_words() -> None:
    texts = load("vi")
    for entity, fields in FIELDS.items():
        for column in fields:
            assert f"rounds_chat.history.field.{entity}.{column}" in texts, (entity, column)
    for entity, subject in SUBJECTS.items():
        template = texts[f"rounds_chat.history.subject.{entity}"]
        for name in subject:
            assert "{" + name + "}" in template, (entity, name)
    for shown in [
        *[h for f in FIELDS.values() for h in f.values()],
        *[h for s in SUBJECTS.values() for _, h in s.values()],
    ]:
        if isinstance(shown, tuple):
            assert any(key.startswith(shown[1] + ".") for key in texts), shown


def test_describe_audit_is_the_rule() -> None:
    names = HistoryNames(students={7: "Trần Thị Bình"}, batches={3: 1}, products={2: "Comirnaty"})
    before = {
        "id": 258,
        "student_id": 7,
        "dose_number": 2,
        "given_on": "2021-11-12",
        "product_id": 2,
        "place": "school",
        "request_key": "abc",
        "updated_at": None,
    }
    after = before | {"given_on": "2021-11-13", "request_key": "def", "updated_at": "2021-11-15T02:00:00"}
    key, subject, changes = describe_audit("vaccine_dose", AuditAction.UPDATE, before, after, names)
    assert key == "vaccine_dose" and subject["student"].value == "Trần Thị Bình"
    assert [(c.field, c.old.value, c.new.value) for c in changes] == [
        ("given_on", "2021-11-12", "2021-11-13")
    ]
    # A batch row written before per-school numbers: its number today; a deleted student: said so.
    key, subject, _ = describe_audit(
        "donation_batch", AuditAction.CREATE, None, {"id": 3, "quantity": 3}, names, "3"
    )
    assert subject["batch"].kind is ValueKind.BATCH and subject["batch"].value == 1
    _, subject, _ = describe_audit("need_record", AuditAction.DELETE, {"student_id": 99}, None, names)
    assert subject["student"].kind is ValueKind.GONE
    assert describe_audit("faq_entry", AuditAction.CREATE, None, {"id": 1}, names) == ("other", {}, [])
