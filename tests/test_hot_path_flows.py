"""The /handover and /vaccine steps' reads and saves (issue 17, item 3): written once over a session
(`storage.db.read_core` / `write_core`), run in one thread hop on a SQLite file and through a session
elsewhere. Each answer is the same either way (the one-hop path switched off gives the session path
on SQLite too), the same as the services' older answers, on both databases; a save and the end of
its draft are one transaction."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from storage.db import direct_sqlite
from storage.enums import HandoverKind
from storage.errors import DomainError
from storage.models import AuditLog, ConversationDraft, Handover, VaccineDose
from storage.rules.findings import HandoverWarnings
from storage.schemas.devices import HandoverIn
from storage.schemas.vaccines import DoseIn
from storage.services import Services
from storage.services import vaccines as vaccines_module
from tests.factories import World, make_world
from tests.test_handover_flow import make_batch

TEACHER = 1001  # the teacher's Telegram id (tests.factories.TELEGRAM_IDS)
DAY = date(2021, 11, 13)


def one_hop_off(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite without its one-hop path: read_core / write_core run through sessions, as elsewhere."""
    monkeypatch.setattr(services.sessionmaker, "direct", None, raising=False)


async def reads(services: Services, world: World, batch_id: int) -> dict[str, Any]:
    school = world.primary_school_id
    an, binh = world.student_ids["HS0001"], world.student_ids["HS0002"]
    products = await services.vaccines.products()
    handover = HandoverIn(batch_id=batch_id, student_id=binh, kind=HandoverKind.GIFT, handed_on=DAY)
    dose = DoseIn(student_id=an, dose_number=2, given_on=DAY, product_id=products[0].id, place="school")
    found: dict[str, Any] = {
        "batches": await services.donations.batches_with_stock(school, with_stock_only=True),
        "batch": await services.donations.get_batch(batch_id, school_id=school),
        "search": await services.student_lookup.search(school, "nguyen van an"),
        "search page 2": await services.student_lookup.search(school, "hs0", 2, page_size=2),
        "student": await services.student_lookup.get(binh, school_id=school),
        "held": await services.handovers.held_from_batch(batch_id, an, school_id=school),
        "not held": await services.handovers.held_from_batch(batch_id, binh, school_id=school),
        "warnings": await services.handovers.check_handover(handover, school_id=school),
        "doses and next": await services.vaccines.doses_and_next(an, school_id=school),
        "doses": await services.vaccines.doses_of(an, school_id=school),
        "next": await services.vaccines.next_dose_number(an, school_id=school),
        "check": await services.vaccines.check_dose(dose, school_id=school),
        "products": products,
    }
    for name, call in {
        "another school's batch": services.donations.get_batch(batch_id, school_id=world.secondary_school_id),
        "another school's student": services.student_lookup.get(binh, school_id=world.secondary_school_id),
        "short query": services.student_lookup.search(school, "a"),
        "a future day": services.rounds.check_entry_day(school, "devices", date(2021, 11, 16)),
    }.items():
        try:
            found[name] = await call
        except DomainError as exc:
            found[name] = (type(exc).__name__, exc.code, exc.params)
    return found


async def world_with_records(services: Services) -> tuple[World, int]:
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=5, source="program", received_on=date(2021, 11, 1))
    school = world.primary_school_id
    an = world.student_ids["HS0001"]
    await services.handovers.create_handover(
        HandoverIn(batch_id=batch.id, student_id=an, kind=HandoverKind.GIFT, handed_on=DAY),
        school_id=school,
        actor_id=world.staff_ids["teacher"],
        request_key="h-1",
    )
    product = (await services.vaccines.products())[0]
    first = DoseIn(
        student_id=an, dose_number=1, given_on=date(2021, 10, 1), product_id=product.id, place="school"
    )
    await services.vaccines.record_dose(first, school_id=school, actor_id=None, request_key="d-1")
    return world, batch.id


async def test_reads_are_the_same_either_way(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    world, batch_id = await world_with_records(services)
    school = world.primary_school_id
    an = world.student_ids["HS0001"]
    direct = direct_sqlite(services.sessionmaker)
    monkeypatch.setattr(vaccines_module, "PRODUCTS_CACHE_SECONDS", 1e9)  # read once, below
    await services.vaccines.products()
    calls = direct.calls if direct is not None else 0
    one_hop = await reads(services, world, batch_id)
    if direct is not None:  # SQLite: each read above one call of the one-hop path (a short query and
        # the products, read in the last PRODUCTS_CACHE_SECONDS: none)
        assert direct.calls - calls == len(one_hop) - 2
    # The answers the flows had before (the student service, the list of the student's handovers).
    assert one_hop["search"] == await services.students.search(school, "nguyen van an")
    assert one_hop["search page 2"] == await services.students.search(school, "hs0", 2, page_size=2)
    assert one_hop["student"] == await services.students.get(world.student_ids["HS0002"], school_id=school)
    held = [h for h in await services.handovers.handovers_of_student(an, school_id=school) if h.active]
    assert one_hop["held"] == held[0].handed_on == DAY and one_hop["not held"] is None
    assert one_hop["doses and next"] == (one_hop["doses"], one_hop["next"]) and one_hop["next"] == 2
    assert [w.code for w in one_hop["warnings"]] == []  # Bình: a priority group, no device yet
    assert one_hop["another school's batch"][1] == "not_found.batch"
    assert one_hop["short query"][1] == "students.query_too_short"
    assert one_hop["a future day"] is None  # no lock; the day itself is the save's business
    assert len(one_hop["batches"]) == 1 and one_hop["batch"].handed_over == 1
    one_hop_off(services, monkeypatch)
    calls = direct.calls if direct is not None else 0
    assert await reads(services, world, batch_id) == one_hop
    assert (direct.calls if direct is not None else 0) == calls  # through sessions this time


async def saved_rows(services: Services, key: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The saved row (by request key) and its audit entry's snapshot, without what differs between two
    records of the same kind (ids, the student, the key, when it was entered)."""
    skip = {"id", "student_id", "request_key", "entered_at", "batch_id"}
    async with services.sessionmaker() as session:
        row = await session.scalar(
            select(Handover).where(Handover.request_key == key)
        ) or await session.scalar(select(VaccineDose).where(VaccineDose.request_key == key))
        assert row is not None
        entry = await session.scalar(
            select(AuditLog).where(
                AuditLog.entity == type(row).__tablename__, AuditLog.entity_id == str(row.id)
            )
        )
    assert entry is not None and entry.before is None
    values = {c.key: getattr(row, c.key) for c in type(row).__table__.columns if c.key not in skip}
    after = {k: v for k, v in (entry.after or {}).items() if k not in skip}
    assert set(entry.after or {}) == {c.key for c in type(row).__table__.columns}
    return values | {"audit": (entry.action, entry.actor_id, entry.school_id)}, after


async def drafts_of(services: Services) -> list[str]:
    async with services.sessionmaker() as session:
        return list(
            await session.scalars(
                select(ConversationDraft.flow).where(ConversationDraft.telegram_user_id == TEACHER)
            )
        )


async def save_both(services: Services, world: World, batch_id: int, student: str, key: str) -> list[Any]:
    """A handover and a dose for `student`, each finishing its draft; returns what the saves said."""
    school, student_id = world.primary_school_id, world.student_ids[student]
    actor = world.staff_ids["teacher"]
    product = (await services.vaccines.products())[0]
    await services.drafts.save(TEACHER, "handover", {"request_key": f"h-{key}"}, 8)
    await services.drafts.save(TEACHER, "vaccine", {"request_key": f"d-{key}"}, 11)
    handover = await services.handovers.create_handover(
        HandoverIn(batch_id=batch_id, student_id=student_id, kind=HandoverKind.LOAN, handed_on=DAY),
        school_id=school,
        actor_id=actor,
        request_key=f"h-{key}",
        confirm_second_program_device=True,  # HS0003 has no group and no need: checked
        finish_draft=(TEACHER, "handover"),
    )
    dose = await services.vaccines.record_dose(
        DoseIn(student_id=student_id, dose_number=1, given_on=DAY, product_id=product.id, place="school"),
        school_id=school,
        actor_id=actor,
        request_key=f"d-{key}",
        finish_draft=(TEACHER, "vaccine"),
    )
    assert await drafts_of(services) == []  # each draft ended with its record
    # The same confirm again (a repeated update): the record already saved, nothing added.
    again = await services.handovers.create_handover(
        HandoverIn(batch_id=batch_id, student_id=student_id, kind=HandoverKind.LOAN, handed_on=DAY),
        school_id=school,
        actor_id=actor,
        request_key=f"h-{key}",
    )
    assert again.replayed and again.id == handover.id
    assert (
        await services.vaccines.record_dose(
            DoseIn(student_id=student_id, dose_number=1, given_on=DAY, product_id=product.id, place="school"),
            school_id=school,
            actor_id=actor,
            request_key=f"d-{key}",
        )
    ).id == dose.id
    shown = handover.model_dump(
        exclude={
            "id",
            "student_id",
            "student_code",
            "student_name",
            "class_name",
            "student_date_of_birth",
            "entered_at",
            "batch_left",
        }
    )
    shown_dose = dose.model_dump(
        exclude={"id", "student_id", "student_code", "student_name", "class_name", "entered_at"}
    )
    return [shown, shown_dose, await saved_rows(services, f"h-{key}"), await saved_rows(services, f"d-{key}")]


async def test_saves_are_the_same_either_way_and_end_their_drafts(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, batch_id = await world_with_records(services)
    one_hop = await save_both(services, world, batch_id, "HS0002", "a")
    one_hop_off(services, monkeypatch)
    assert await save_both(services, world, batch_id, "HS0003", "b") == one_hop
    async with services.sessionmaker() as session:
        assert len(list(await session.scalars(select(Handover)))) == 3
        assert len(list(await session.scalars(select(VaccineDose)))) == 3


@pytest.mark.parametrize("one_hop", [True, False])
async def test_a_refused_save_keeps_its_draft(
    services: Services, monkeypatch: pytest.MonkeyPatch, one_hop: bool
) -> None:
    world, batch_id = await world_with_records(services)
    if not one_hop:
        one_hop_off(services, monkeypatch)
    school, an = world.primary_school_id, world.student_ids["HS0001"]
    await services.drafts.save(TEACHER, "handover", {"request_key": "h-x"}, 8)
    await services.drafts.save(TEACHER, "vaccine", {"request_key": "d-x"}, 11)
    with pytest.raises(DomainError) as refused:  # An already holds a device of this batch
        await services.handovers.create_handover(
            HandoverIn(batch_id=batch_id, student_id=an, kind=HandoverKind.GIFT, handed_on=DAY),
            school_id=school,
            actor_id=None,
            request_key="h-x",
            finish_draft=(TEACHER, "handover"),
        )
    assert refused.value.code == "devices.already_handed_from_batch"
    # Hoa (HS0003): no priority group, no need: the warning needs the person's check first.
    with pytest.raises(HandoverWarnings):
        await services.handovers.create_handover(
            HandoverIn(batch_id=batch_id, student_id=world.student_ids["HS0003"], kind="gift", handed_on=DAY),
            school_id=school,
            actor_id=None,
            request_key="h-x",
            finish_draft=(TEACHER, "handover"),
        )
    product = (await services.vaccines.products())[0]
    with pytest.raises(DomainError) as duplicate:
        await services.vaccines.record_dose(
            DoseIn(student_id=an, dose_number=1, given_on=DAY, product_id=product.id, place="school"),
            school_id=school,
            actor_id=None,
            request_key="d-x",
            finish_draft=(TEACHER, "vaccine"),
        )
    assert duplicate.value.code == "vaccines.duplicate_dose"
    assert sorted(await drafts_of(services)) == ["handover", "vaccine"]
    async with services.sessionmaker() as session:
        assert len(list(await session.scalars(select(Handover)))) == 1
        assert (await services.donations.get_batch(batch_id, school_id=school)).handed_over == 1


async def test_the_search_finds_what_the_clause_finds(services: Services) -> None:
    """The picker's search (its statements built once, the words bound, the total counted by the page
    itself) against `search_conditions` (the clause built from the typed words), on queries with LIKE's
    own characters too, and pages past the end; as ORM objects and as Core's rows."""
    from sqlalchemy import case

    from storage.models import Student
    from storage.repositories.students import search_conditions, search_rows_sync, search_sync
    from storage.text import fold

    world = await make_world(services)
    school = world.primary_school_id
    async with services.sessionmaker.begin() as session:
        for n, name in enumerate(["Lê 100% An", "Trần_Thị An", "Võ/An Bình", "An Nguyễn"], 1):
            session.add(
                Student(
                    school_id=school,
                    code=f"X_{n}%",
                    full_name=name,
                    search_name=fold(name),
                    date_of_birth=date(2012, 1, n),
                    grade=4,
                    class_name="4A2",
                )
            )
    queries = ["nguyen van an", "HS0001", "hs0", "an", "100%", "_t", "/an", "x_1%", "Văn  An", "x%", "zz"]
    for query in queries:
        for offset, limit in ((0, 8), (2, 2), (40, 5)):  # the last past the end of every query
            clause, folded, code_query = search_conditions(school, query)
            reference = (
                select(Student)
                .where(clause)
                .order_by(
                    case((Student.code == code_query, 0), else_=1),
                    case((Student.search_name.startswith(folded, autoescape=True), 0), else_=1),
                    Student.search_name,
                    Student.class_name,
                    Student.date_of_birth,
                    Student.id,
                )
                .offset(offset)
                .limit(limit)
            )
            async with services.sessionmaker() as session:
                expected = [s.id for s in await session.scalars(reference)]
                total = len(list(await session.scalars(select(Student.id).where(clause))))
                found, count = await session.run_sync(search_sync, school, query, offset=offset, limit=limit)
                rows, counted = await session.run_sync(
                    lambda s, q=query, o=offset, n=limit: search_rows_sync(
                        s.connection(), school, q, offset=o, limit=n
                    )
                )
            assert ([s.id for s in found], count) == (expected, total), query
            assert ([r.id for r in rows], counted) == (expected, total), query  # Core's rows: the same page
