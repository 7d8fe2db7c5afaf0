"""Services: the domain's operations. They own transactions, write the audit log, return DTOs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from exports.labels import Translate
from storage.clock import Clock
from storage.schemas.reports import ReportCover
from storage.services.donations import DonationService
from storage.services.drafts import DraftService
from storage.services.entries import EntryService
from storage.services.faq import FaqService
from storage.services.handovers import HandoverService
from storage.services.imports import ImportService
from storage.services.inbox import InboxService
from storage.services.lease import LeaseService
from storage.services.needs import NeedService
from storage.services.organisation import OrganisationService
from storage.services.reports import ReportService
from storage.services.rounds import RoundService
from storage.services.staff import StaffService
from storage.services.student_lookup import StudentLookupService
from storage.services.students import StudentService
from storage.services.vaccines import VaccineService


@dataclass
class Services:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    clock: Clock
    organisation: OrganisationService
    staff: StaffService
    drafts: DraftService
    students: StudentService
    donations: DonationService
    handovers: HandoverService
    vaccines: VaccineService
    needs: NeedService
    entries: EntryService
    imports: ImportService
    reports: ReportService
    rounds: RoundService
    faq: FaqService
    inbox: InboxService
    lease: LeaseService
    student_lookup: StudentLookupService  # the picker's reads on a flow's hot path


def build_services(
    engine: AsyncEngine,
    clock: Clock,
    *,
    translate: Translate | None = None,
    report_executor: str = "process",
    report_chunk_rows: int = 1_000,
    report_cover: ReportCover | None = None,
    report_max_concurrent: int = 2,
) -> Services:
    """`translate`: the catalogue's translator (`bot.texts.t`), for the services that write workbooks;
    `report_executor`, `report_chunk_rows`, `report_cover`, `report_max_concurrent`: the
    `ReportService`'s writer ("process" or "thread"), fetch size, district cover (from settings:
    `Settings.report_cover()`) and how many reports it writes at once, fixed when it is built."""
    from storage.db import create_sessionmaker

    sessionmaker = create_sessionmaker(engine)
    args = (sessionmaker, clock)
    return Services(
        engine=engine,
        sessionmaker=sessionmaker,
        clock=clock,
        organisation=OrganisationService(*args),
        staff=StaffService(*args),
        drafts=DraftService(*args),
        students=StudentService(*args),
        donations=DonationService(*args),
        handovers=HandoverService(*args),
        vaccines=VaccineService(*args),
        needs=NeedService(*args),
        entries=EntryService(*args),
        imports=ImportService(*args, translate=translate),
        reports=ReportService(
            *args,
            translate=translate,
            executor=report_executor,
            chunk_rows=report_chunk_rows,
            cover=report_cover,
            max_concurrent=report_max_concurrent,
        ),
        rounds=RoundService(*args, translate=translate),
        faq=FaqService(*args),
        inbox=InboxService(*args),
        lease=LeaseService(*args),
        student_lookup=StudentLookupService(*args),
    )
