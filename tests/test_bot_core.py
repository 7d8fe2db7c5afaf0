"""Transcripts of the bot core: registration, strangers, roles and menus, /help, /lang, /cancel."""

from __future__ import annotations

from datetime import timedelta

from storage.enums import Role
from storage.schemas.organisation import InviteIn
from tests.factories import make_world


async def invite(services, role: Role = Role.TEACHER, school: str | None = "79785001", days: int = 7) -> str:
    created = await services.staff.create_invite(InviteIn(role=role, school_code=school, valid_days=days))
    return created.code


async def test_register_with_valid_invite(services, harness):
    await make_world(services)
    code = await invite(services)
    newcomer = harness.person("5001", "Lan")
    await newcomer.send(f"/start {code}")
    text = newcomer.last_text()
    assert "Đăng ký thành công" in text
    assert "Trường TH Lê Văn Lương" in text and "giáo viên" in text
    staff = await services.staff.by_telegram_id(5001)
    assert staff is not None and staff.role is Role.TEACHER
    # The role's menu is on the keyboard, and the person's commands were published.
    assert "💉 Mũi tiêm" in newcomer.reply_keyboard()
    assert any('"chat_id": 5001' in key for key in harness.api.commands)


async def test_register_with_used_expired_and_unknown_codes(services, harness, clock):
    await make_world(services)
    code = await invite(services)
    await harness.person("5001").send(f"/start {code}")
    second = harness.person("5002")
    await second.send(f"/start {code}")
    assert "đã được dùng" in second.last_text()
    expired = await invite(services, days=1)
    clock.advance(timedelta(days=2))
    await second.send(f"/start {expired}")
    assert "hết hạn" in second.last_text()
    await second.send("/start khong-co-ma-nay")
    assert "Mã mời không đúng" in second.last_text()
    assert await services.staff.by_telegram_id(5002) is None


async def test_stranger_gets_explanation_and_no_data(services, harness):
    await make_world(services)
    stranger = harness.stranger()
    for text in ("/start", "xin chào", "/handover", "/report", "/me"):
        await stranger.send(text)
        assert "mã mời" in stranger.last_text()
    assert all("Lê Văn Lương" not in t for t in stranger.texts())


async def test_deactivated_staff_loses_access_at_once(services, harness):
    world = await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/me")
    assert "Đỗ Thị Hoa" in teacher.last_text()
    await services.staff.set_active(world.staff_ids["teacher"], False)
    await teacher.send("/me")
    assert "đã bị khoá" in teacher.last_text()


async def test_each_role_sees_its_own_menu_and_help(services, harness):
    await make_world(services)
    teacher, specialist = harness.person("teacher"), harness.person("primary_specialist")
    await teacher.send("/help")
    help_text = teacher.last_text()
    assert "/cancel" in help_text and "/faq" in help_text
    assert "/compile" not in help_text and "/review" not in help_text
    assert "💉 Mũi tiêm" in teacher.reply_keyboard()
    await specialist.send("/help")
    assert "/me" in specialist.last_text()
    assert "/handover" not in specialist.last_text() and "/vaccine" not in specialist.last_text()
    assert "💉 Mũi tiêm" not in specialist.reply_keyboard()


async def test_me_shows_who_the_bot_thinks_you_are(services, harness):
    await make_world(services)
    principal = harness.person("principal")
    await principal.send("/me")
    text = principal.last_text()
    assert "Ngô Văn Hải" in text and "Hiệu trưởng" in text and "Lê Văn Lương" in text


async def test_lang_switches_to_english_and_back(services, harness):
    world = await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/lang")
    await teacher.tap("English")
    assert teacher.last_text() == "Switched to English."
    assert (await services.staff.get(world.staff_ids["teacher"])).language == "en"
    await teacher.send("/me")
    assert "Role:" in teacher.last_text()
    await teacher.send("/lang")
    await teacher.tap("Tiếng Việt")
    assert "Tiếng Việt" in teacher.last_text()


async def test_cancel_and_resume_with_nothing_open(services, harness):
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/cancel")
    assert "Không có việc gì" in teacher.last_text()
    await teacher.send("/resume")
    assert "Không có việc nào" in teacher.last_text()


async def test_unknown_command_and_stale_button(services, harness):
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/khong_co_lenh_nay")
    assert "không có lệnh này" in teacher.last_text()
