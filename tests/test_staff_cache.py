"""The staff record is read once and kept (issue 17): every update needs it, so it is cached, and every
change made through the service — deactivation, language — drops it at once."""

from __future__ import annotations

from sqlalchemy import event

from storage.services import Services
from tests.chat import Harness
from tests.factories import make_world
from tests.test_handover_flow import batch_label, make_batch


def statements(services: Services) -> list[str]:
    """SQL statements run from now on (appended as they run)."""
    seen: list[str] = []
    event.listen(services.engine.sync_engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


async def test_the_account_is_read_once_for_many_updates(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/me")
    seen = statements(services)
    for _ in range(3):
        await teacher.send("/me")
    assert not [s for s in seen if "FROM staff" in s]


async def test_deactivated_mid_flow_the_next_tap_is_refused_at_once(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    batch = await make_batch(services, world)
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    await services.staff.set_active(world.staff_ids["teacher"], False)
    await teacher.tap(batch_label(batch))
    assert "đã bị khoá" in teacher.last_text()
    await services.staff.set_active(world.staff_ids["teacher"], True)
    await teacher.send("/me")
    assert "Đỗ Thị Hoa" in teacher.last_text()


async def test_a_language_change_applies_to_the_next_reply(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/me")
    await services.staff.set_language(world.staff_ids["teacher"], "en")
    await teacher.send("/me")
    assert "Đỗ Thị Hoa" in teacher.last_text() and "Giáo viên" not in teacher.last_text()
