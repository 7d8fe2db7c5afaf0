"""Compiled Excel reports: needs, devices, vaccination, timeliness, and the district's report.

`build()` is what /report and `schoolbot report` call. It checks that the person may see the scope,
reads every figure from the database in one read-only snapshot (aggregates first, then the long
lists streamed in chunks), and hands the rows to a workbook writer that runs off the event loop — a
worker process by default (built with `executor="thread"`, in a thread instead) — so other people's
messages are answered while a district report is being written. At most `max_concurrent` reports are
written at once; more wait their turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from exports.labels import Translate
from storage.clock import Clock
from storage.enums import Role, SchoolLevel
from storage.errors import AccessDenied, DomainError, NotFound
from storage.models import CompiledReport, District, ReportingRound, School, Staff
from storage.permissions import ROLE_ACTIONS, SPECIALIST_LEVELS, Action
from storage.repositories import reports as queries
from storage.rules.timeliness import judge_five_days
from storage.schemas.reports import (
    LEVEL_SCOPE_LEVELS,
    ProgressCallback,
    ReportCover,
    ReportFile,
    ReportKind,
    ReportPeriod,
    ReportProgress,
    ReportScope,
    Requester,
    ResolvedPeriod,
    RoundOption,
    ScopeKind,
    ScopeOption,
    ScopeRights,
    parse_scope_text,
)
from storage.services.base import ServiceBase
from storage.services.csdl import csdl_cutoff

log = logging.getLogger(__name__)

PLACE_PREFIXES = ("Huyện ", "Quận ", "Thành phố ", "Thị xã ", "Thị trấn ")


# --- who may see which scope (pure rules) ---------------------------------------------------------


def allowed_scopes(role: Role | str | None, school_id: int | None, district_id: int | None) -> ScopeRights:
    """What a person of `role` (at `school_id` / in `district_id`) may report on.

    Teachers and technical support: nothing. A principal: their school. Specialists: the schools of
    their level (combined schools included), so a level or one of those schools, not the whole
    district. Other officers: their district. The command line (`role` None): everything."""
    if role is None:
        return ScopeRights(may_report=True, any_district=True)
    role = Role(role)
    if Action.REPORT not in ROLE_ACTIONS.get(role, frozenset()):
        return ScopeRights(may_report=False)
    any_district = district_id is None
    if role.is_school_scoped:
        if school_id is None:
            return ScopeRights(may_report=False)
        return ScopeRights(
            may_report=True, district_id=district_id, any_district=any_district, school_id=school_id
        )
    return ScopeRights(
        may_report=True,
        district_id=district_id,
        any_district=any_district,
        levels=SPECIALIST_LEVELS.get(role),
    )


def check_scope(
    role: Role | str | None,
    school_id: int | None,
    district_id: int | None,
    scope: ReportScope,
    *,
    school_level: SchoolLevel | None = None,
    active: bool = True,
) -> None:
    """Raise `AccessDenied` unless the person may have a report of `scope`. `school_level` is the
    level of the scope's school (a specialist may see only schools of their level)."""
    if not active:
        raise AccessDenied("reports.deactivated")
    rights = allowed_scopes(role, school_id, district_id)
    if not rights.may_report:
        raise AccessDenied("reports.not_allowed", role=str(role))
    if not rights.any_district and scope.district_id != rights.district_id:
        raise AccessDenied("reports.other_district")
    if rights.school_id is not None and (
        scope.kind is not ScopeKind.SCHOOL or scope.school_id != rights.school_id
    ):
        raise AccessDenied("reports.own_school_only")
    if rights.levels is not None:
        if scope.kind is ScopeKind.DISTRICT:
            raise AccessDenied("reports.own_level_only")
        if scope.kind is ScopeKind.LEVEL and not set(scope.levels or ()) <= rights.levels:
            raise AccessDenied("reports.own_level_only")
        if scope.kind is ScopeKind.SCHOOL and school_level not in rights.levels:
            raise AccessDenied("reports.own_level_only")


# --- the service ----------------------------------------------------------------------------------


class ReportService(ServiceBase):
    progress_step: float = 0.02  # call `progress` again after this share of the rows

    _slots: asyncio.Semaphore | None = None

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        translate: Translate | None = None,
        executor: str = "process",
        chunk_rows: int = 1_000,
        cover: ReportCover | None = None,
        max_concurrent: int = 2,
    ) -> None:
        """`executor`: where the workbook is written, "process" (a worker process) or "thread";
        `chunk_rows`: how many rows of a long list are fetched at a time; `cover`: the district
        report's signer, document symbol and place (the bot, the CLI and the sandbox read it from
        settings); `max_concurrent`: how many reports are written at once. All are fixed for the
        service's life (Final: the type checker refuses an assignment from outside); a caller wanting
        another builds the service with it."""
        super().__init__(sessionmaker, clock, translate=translate)
        if executor not in ("process", "thread"):
            raise ValueError(f"executor must be 'process' or 'thread', not {executor!r}")
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, not {max_concurrent}")
        self.executor: Final = executor
        self.chunk_rows: Final = chunk_rows
        self.cover: Final = cover if cover is not None else ReportCover()
        self.max_concurrent: Final = max_concurrent

    # -- choices for the chat ----------------------------------------------------------------------

    async def requester(self, staff_id: int) -> Requester:
        async with self.sessionmaker() as session:
            staff = await session.get(Staff, staff_id)
            if staff is None:
                raise NotFound("staff")
            return Requester(
                staff_id=staff.id,
                full_name=staff.full_name,
                role=Role(staff.role),
                school_id=staff.school_id,
                district_id=staff.district_id,
                active=staff.active,
            )

    async def available_scopes(self, staff_id: int) -> list[ScopeOption]:
        """The scopes this person may pick, in the order to show them: district, levels, schools."""
        who = await self.requester(staff_id)
        rights = allowed_scopes(who.role, who.school_id, who.district_id)
        if not rights.may_report or not who.active:
            return []
        async with self.sessionmaker() as session:
            query = select(School).where(School.active).order_by(School.level, School.code)
            if who.district_id is not None:
                query = query.where(School.district_id == who.district_id)
            if rights.school_id is not None:
                query = query.where(School.id == rights.school_id)
            schools = list(await session.scalars(query))
            districts = {d.id: d for d in await session.scalars(select(District))}
        options: list[ScopeOption] = []
        district_ids = sorted({s.district_id for s in schools})
        for district_id in district_ids:
            in_district = [s for s in schools if s.district_id == district_id]
            name = districts[district_id].name
            candidates = [ReportScope.district(district_id)]
            present = {SchoolLevel(s.level) for s in in_district}
            for level in (SchoolLevel.PRIMARY, SchoolLevel.LOWER_SECONDARY):
                if present & set(LEVEL_SCOPE_LEVELS[level]):
                    candidates.append(ReportScope.for_level(district_id, level))
            for scope in candidates:
                if _permitted(who, scope, None):
                    options.append(
                        ScopeOption(scope=scope, label=name if scope.level is None else str(scope.level))
                    )
            for school in in_district:
                scope = ReportScope.for_school(district_id, school.id)
                if _permitted(who, scope, SchoolLevel(school.level)):
                    options.append(ScopeOption(scope=scope, label=school.name, school_code=school.code))
        return options

    async def rounds(self, district_id: int) -> list[RoundOption]:
        async with self.sessionmaker() as session:
            rows = await session.scalars(
                select(ReportingRound)
                .where(ReportingRound.district_id == district_id)
                .order_by(ReportingRound.period_end.desc(), ReportingRound.id.desc())
            )
            return [
                RoundOption(id=r.id, name=r.name, period_start=r.period_start, period_end=r.period_end)
                for r in rows
            ]

    async def resolve_scope(self, text: str, *, district_code: str | None = None) -> ReportScope:
        """`district` | `level:TH` | `level:THCS` | `school:CODE` as a scope. The district is
        `district_code`, the school's district, or the only district there is."""
        kind, value = parse_scope_text(text)
        async with self.sessionmaker() as session:
            district_id: int | None = None
            if district_code:
                district_id = await session.scalar(
                    select(District.id).where(District.code == district_code.strip().upper())
                )
                if district_id is None:
                    raise NotFound("district", code=district_code)
            if kind is ScopeKind.SCHOOL:
                school = await session.scalar(select(School).where(School.code == value.strip().upper()))
                if school is None or (district_id is not None and school.district_id != district_id):
                    raise NotFound("school", code=value)
                return ReportScope.for_school(school.district_id, school.id)
            if district_id is None:
                ids = list(await session.scalars(select(District.id).limit(2)))
                if len(ids) != 1:
                    raise DomainError("reports.district_required" if ids else "reports.no_district")
                district_id = ids[0]
        if kind is ScopeKind.LEVEL:
            return ReportScope.for_level(district_id, value)
        return ReportScope.district(district_id)

    # -- building ----------------------------------------------------------------------------------

    async def build(
        self,
        kind: ReportKind | str,
        scope: ReportScope,
        period: ReportPeriod | None = None,
        language: str = "vi",
        *,
        actor_id: int | None = None,
        prepared_by: str | None = None,
        progress: ProgressCallback | None = None,
        store: bool = False,
        number: str | None = None,
    ) -> ReportFile:
        """Build one workbook. `actor_id` is the staff member asking (None: the command line); their
        scope is checked. `progress` is called with `ReportProgress` as rows are written (sync or
        async; errors in it are logged, never fatal). `store` keeps a copy as a CompiledReport.
        `number` is the document's number on the cover ("Số: 15/BC-GDĐT"); none leaves it blank for
        the clerk to fill in when the signed paper is issued."""
        try:
            kind = ReportKind(kind)
        except ValueError:
            raise DomainError("reports.kind_invalid", value=str(kind)) from None
        period = period or ReportPeriod()
        who = await self.requester(actor_id) if actor_id is not None else None
        slots = self._concurrency()
        async with slots:
            return await self._build(
                kind, scope, period, language, who, prepared_by, progress, store, (number or "").strip()
            )

    def _concurrency(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrent)
        return self._slots

    async def _build(
        self,
        kind: ReportKind,
        scope: ReportScope,
        period: ReportPeriod,
        language: str,
        who: Requester | None,
        prepared_by: str | None,
        progress: ProgressCallback | None,
        store: bool,
        number: str = "",
    ) -> ReportFile:
        from exports import reports as layout
        from exports.worker import WriterJob

        reporter = _Progress(progress, self.progress_step)
        generated_at = self.clock.now()
        async with self._read_session() as session:
            words = layout.Words(self.labels(language))
            meta, report_filter, resolved = await self._prepare(session, kind, scope, period, language, who)
            meta["translate"] = words.catalogue.translate  # the writer's words (pickled by reference)
            meta["generated_at"] = generated_at
            meta["prepared_by"] = prepared_by if prepared_by is not None else (who.full_name if who else "")
            meta["document_number"] = number
            statements = {
                name: self._stream_statement(name, report_filter) for name in layout.STREAMS[kind.value]
            }
            handle, path = tempfile.mkstemp(prefix="schoolbot-report-", suffix=".xlsx")
            os.close(handle)
            job: WriterJob | None = None
            try:
                # The writer opens every sheet now, and writes the long lists while they stream in;
                # the small tables are added up afterwards, while it is still busy writing.
                job = await self._start_writer(kind.value, meta, path)
                total = 0
                if progress is not None:
                    await reporter.report("summary", 0, 0, force=True)
                    for statement in statements.values():
                        total += await queries.count_rows(session, statement)
                reporter.total = total
                done = 0
                for name, statement in statements.items():
                    await job.begin(name, layout.STREAM_KEYS[name])
                    await reporter.report(name, done, total, force=True)
                    result = await session.stream(statement.execution_options(yield_per=self.chunk_rows))
                    async for partition in result.partitions():
                        await job.rows(partition)
                        done += len(partition)
                        await reporter.report(name, done, total)
                    await job.end()
                await reporter.report("summary", done, total, force=True)
                data = await self._small_tables(session, kind.value, report_filter, resolved)
                await job.data(data)
                await reporter.report("finishing", done, total, force=True)
                written = await job.finish()
            except BaseException:
                if job is not None:
                    await job.abort()
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise
        data["meta"] = meta
        try:
            content = await asyncio.to_thread(Path(path).read_bytes)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
        summary = layout.summary_line(kind.value, data, words)
        filename = layout.filename(
            kind.value, meta["scope_token"], generated_at.astimezone(self.clock.tz), words
        )
        report = ReportFile(
            filename=filename,
            content=content,
            summary=summary,
            kind=kind,
            scope=scope,
            generated_at=generated_at,
            rows=written.rows,
            writer_peak_rss_kb=written.peak_rss_kb,
            writer_cpu_seconds=written.cpu_seconds,
            writer_wait_seconds=written.wait_seconds,
        )
        if store:
            report.report_id = await self._store(report, resolved.round_id, who)
        await reporter.report("done", reporter.total, reporter.total, force=True)
        return report

    async def _start_writer(self, kind: str, meta: dict[str, Any], path: str) -> Any:
        from exports.worker import THREAD, WriterJob

        try:
            return await WriterJob.start(self.executor, kind, meta, path)
        except OSError:  # no worker process here (a sandbox without fork/exec): write in a thread
            if self.executor == THREAD:
                raise
            log.warning("report worker process could not start; writing in a thread", exc_info=True)
            return await WriterJob.start(THREAD, kind, meta, path)

    async def _prepare(
        self,
        session: AsyncSession,
        kind: ReportKind,
        scope: ReportScope,
        period: ReportPeriod,
        language: str,
        who: Requester | None,
    ) -> tuple[dict[str, Any], queries.ReportFilter, ResolvedPeriod]:
        district = await session.get(District, scope.district_id)
        if district is None:
            raise NotFound("district", code=str(scope.district_id))
        school = None
        if scope.kind is ScopeKind.SCHOOL:
            school = await session.get(School, scope.school_id)
            if school is None or school.district_id != scope.district_id:
                raise NotFound("school", code=str(scope.school_id))
        if who is not None:
            check_scope(
                who.role,
                who.school_id,
                who.district_id,
                scope,
                school_level=SchoolLevel(school.level) if school else None,
                active=who.active,
            )
        resolved = await self._resolve_period(session, period, scope.district_id)
        levels = scope.levels
        report_filter = queries.ReportFilter(
            district_id=scope.district_id,
            levels=levels,
            school_id=scope.school_id,
            date_from=resolved.date_from,
            date_to=resolved.date_to,
            tz=self.clock.tz,
        )
        meta: dict[str, Any] = {
            "language": language,
            "tz": str(self.clock.tz),
            "kind": kind.value,
            "district_name": district.name,
            "district_code": district.code,
            "province": district.province,
            "place_name": _place_name(district.name),
            "scope_kind": scope.kind.value,
            "scope_level": scope.level.value if scope.level else None,
            "school_name": school.name if school else None,
            "school_code": school.code if school else None,
            "scope_token": _scope_token(scope, district.code, school.code if school else None),
            "round_id": resolved.round_id,
            "round_name": resolved.round_name,
            "date_from": resolved.date_from,
            "date_to": resolved.date_to,
            "today": self.clock.today(),
            "head_name": self.cover.head_name,
            "head_title": self.cover.head_title,
            "number_suffix": self.cover.number_suffix,
        }
        if self.cover.place:
            meta["place_name"] = self.cover.place
        return meta, report_filter, resolved

    async def _resolve_period(
        self, session: AsyncSession, period: ReportPeriod, district_id: int
    ) -> ResolvedPeriod:
        if period.round_id is None:
            return ResolvedPeriod(period.date_from, period.date_to)
        reporting_round = await queries.round_by_id(session, period.round_id)
        if reporting_round is None or reporting_round.district_id != district_id:
            raise DomainError("reports.round_not_found", id=period.round_id)
        return ResolvedPeriod(
            reporting_round.period_start,
            reporting_round.period_end,
            round_id=reporting_round.id,
            round_name=reporting_round.name,
        )

    async def _small_tables(
        self, session: AsyncSession, kind: str, f: queries.ReportFilter, period: ResolvedPeriod
    ) -> dict[str, Any]:
        from exports import reports as layout

        areas = layout.AREAS[kind]
        data: dict[str, Any] = {}
        if "needs" in areas:
            data["needs"] = await queries.needs_rollup(session, f)
        if "devices" in areas:
            data["devices"] = await queries.devices_rollup(session, f)
        if "batches" in areas:
            days = await queries.batch_handover_days(session, f)
            data["batches"] = [
                self._with_deadline(row, days.get(row["batch_id"], []))
                for row in await queries.batch_rows(session, f)
            ]
        if "vaccination" in areas:
            data["vaccination"] = await queries.vaccination_rollup(session, f)
        if "timeliness" in areas:
            data["timeliness"] = await queries.timeliness_rollup(session, f)
            await queries.add_not_in_csdl(session, data["timeliness"], csdl_cutoff(self.clock))
        if "issues" in areas:
            issues: list[dict[str, Any]] = []
            issue_areas = layout.ISSUE_AREAS[kind]
            if "needs" in issue_areas:
                issues += await queries.needs_issues(session, f)
            if "devices" in issue_areas:
                issues += await queries.device_issues(session, f)
            if "vaccination" in issue_areas:
                issues += await queries.vaccination_issues(session, f)
            data["issues"] = issues
        if "round_status" in areas:
            data["round_status"] = (
                await queries.round_status(session, f, period.round_id)
                if period.round_id is not None
                else None
            )
        return data

    def _with_deadline(self, row: dict[str, Any], days: list[tuple[date, int]]) -> dict[str, Any]:
        """The district's 5-day rule for one batch (see docs/reports.md): the whole batch handed over
        (gifts and loans) by received_on + 5 days, and the district's report upward by then.
        Before the deadline, a batch not yet met is "pending": shown apart, outside the rates."""
        row = {k: v for k, v in row.items() if k != "last_entered_at"}
        reported_at = row.pop("reported_at", None)
        reported_on: date | None = reported_at.astimezone(self.clock.tz).date() if reported_at else None
        verdict = judge_five_days(row["received_on"], row["quantity"], days, reported_on, self.clock.today())
        return {
            **row,
            "report_deadline": verdict.deadline,
            "handed_by_deadline": verdict.handed,
            "deadline_status": verdict.status,
            "reported_on": reported_on,
            "report_status": verdict.report_status,
        }

    @staticmethod
    def _stream_statement(name: str, f: queries.ReportFilter) -> Any:
        from storage.enums import HandoverKind

        if name == "needs_students":
            return queries.needs_students(f)
        if name == "device_gifts":
            return queries.device_handovers(f, HandoverKind.GIFT)
        if name == "device_loans":
            return queries.device_handovers(f, HandoverKind.LOAN)
        if name == "vaccination_doses":
            return queries.vaccination_doses(f)
        late = {
            "late_batches": "batch",
            "late_handovers": "handover",
            "late_returns": "return",
            "late_doses": "dose",
        }
        if name in late:
            return queries.late_records(f, late[name])
        raise KeyError(name)

    async def _store(self, report: ReportFile, round_id: int | None, who: Requester | None) -> int:
        async with self.sessionmaker.begin() as session:
            row = CompiledReport(
                round_id=round_id,
                kind=report.kind.value,
                filename=report.filename,
                content=report.content,
                created_by_id=who.staff_id if who else None,
                created_at=report.generated_at,
            )
            session.add(row)
            await session.flush()
            return row.id

    # -- a consistent read snapshot that never blocks writers --------------------------------------

    @contextlib.asynccontextmanager
    async def _read_session(self) -> AsyncIterator[AsyncSession]:
        """One read transaction for the whole report, so totals and lists agree even while people
        keep entering records: SQLite's read sessions begin DEFERRED (a WAL snapshot that holds no
        lock, see storage.db); PostgreSQL gets a REPEATABLE READ, READ ONLY transaction."""
        async with self.sessionmaker() as session:
            bind = session.bind
            if bind is not None and bind.dialect.name == "postgresql":
                await session.connection(
                    execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
                )
            yield session


def _permitted(who: Requester, scope: ReportScope, school_level: SchoolLevel | None) -> bool:
    try:
        check_scope(
            who.role, who.school_id, who.district_id, scope, school_level=school_level, active=who.active
        )
    except AccessDenied:
        return False
    return True


def _place_name(district_name: str) -> str:
    for prefix in PLACE_PREFIXES:
        if district_name.startswith(prefix):
            return district_name[len(prefix) :]
    return district_name


def _scope_token(scope: ReportScope, district_code: str, school_code: str | None) -> str:
    if scope.kind is ScopeKind.SCHOOL:
        return school_code or str(scope.school_id)
    if scope.kind is ScopeKind.LEVEL:
        return f"{district_code}-{scope.level}"
    return district_code


class _Progress:
    """Calls the caller's progress callback at most every `step` of the rows (and at each stage)."""

    def __init__(self, callback: ProgressCallback | None, step: float) -> None:
        self.callback = callback
        self.step = step
        self.total = 0
        self._last_fraction = -1.0
        self._last_stage = ""

    async def report(self, stage: str, done: int, total: int, *, force: bool = False) -> None:
        if self.callback is None:
            return
        update = ReportProgress(stage=stage, done=done, total=total)
        if not force and stage == self._last_stage and update.fraction - self._last_fraction < self.step:
            return
        self._last_stage, self._last_fraction = stage, update.fraction
        try:
            result = self.callback(update)
            if inspect.isawaitable(result):
                await result
        except Exception:  # a failed "progress" edit must not lose the report
            log.warning("report progress callback failed", exc_info=True)
