"""The workbook writer off the event loop: the worker process, errors, the loop staying free, safe text."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import threading
from datetime import UTC, date, datetime
from typing import Any

import pytest
from openpyxl import load_workbook

from bot.texts import t
from exports import worker
from exports.reports import MappingStreams, needs_columns, stream_columns, timeliness_columns, write_report
from exports.worker import ReportWriterError, WriterJob
from exports.xlsx import workbook_options
from storage.schemas.reports import ReportScope
from storage.services import Services
from storage.services.reports import ReportService
from tests.reports_world import ReportWorld, make_report_world, open_workbook, read_table, words

W = words()


@pytest.fixture
async def rw(services: Services) -> ReportWorld:
    return await make_report_world(services)


async def test_worker_process_writes_the_same_workbook_as_a_thread(
    services: Services, rw: ReportWorld
) -> None:
    scope = ReportScope.district(rw.district_id)
    assert services.reports.executor == "process"
    in_process = await services.reports.build("district", scope)
    threaded = ReportService(services.sessionmaker, services.clock, translate=t, executor="thread")
    in_thread = await threaded.build("district", scope)
    assert in_process.rows == in_thread.rows and in_process.summary == in_thread.summary
    assert in_process.writer_peak_rss_kb > 0
    a, b = open_workbook(in_process.content), open_workbook(in_thread.content)
    assert a.sheetnames == b.sheetnames
    for name in a.sheetnames:
        assert [list(r) for r in a[name].iter_rows(values_only=True)] == [
            list(r) for r in b[name].iter_rows(values_only=True)
        ], name


HOLD_BOUND = 60  # seconds: a bound so that a blocked event loop fails the test instead of hanging it


@pytest.mark.parametrize("report_executor", ["thread", "process"])
async def test_other_people_are_answered_while_a_report_is_written(
    services: Services, rw: ReportWorld, report_executor: str, monkeypatch: Any
) -> None:
    """While the writer is busy with the workbook, the event loop answers someone else's message.

    Deterministic: the writer is held until that answer has arrived, so the report can only be sent
    after it, however busy the machine is. In a thread, the writer waits on a threading.Event before
    it writes; in a worker process, the process is stopped (SIGSTOP) once it started, and continued
    after the answer. Both holds are bounded: if the loop were blocked, the writer would be let go
    after HOLD_BOUND seconds, the report would come first, and the order below would fail."""
    mode = report_executor
    events: list[str] = []
    writing = asyncio.Event()
    released = threading.Event()
    held_too_long: list[bool] = []
    jobs: list[WriterJob] = []
    timers: list[threading.Timer] = []

    if mode == "thread":
        original_write = worker._write

        def held_write(*args: Any) -> dict[str, int]:
            if not released.wait(HOLD_BOUND):
                held_too_long.append(True)
            return original_write(*args)

        monkeypatch.setattr(worker, "_write", held_write)
    else:
        original_start = WriterJob.start

        async def start(*args: Any, **kwargs: Any) -> WriterJob:
            job = await original_start(*args, **kwargs)
            jobs.append(job)
            return job

        monkeypatch.setattr(WriterJob, "start", start)

    def release() -> None:
        released.set()
        for job in jobs:
            if job._process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(job._process.pid, signal.SIGCONT)

    def progress(update: Any) -> None:
        if writing.is_set():
            return
        for job in jobs:  # the worker process has started: stop it until the answer has arrived
            assert job._process is not None
            os.kill(job._process.pid, signal.SIGSTOP)
        timer = threading.Timer(HOLD_BOUND, lambda: (held_too_long.append(True), release()))
        timer.daemon = True
        timer.start()
        timers.append(timer)
        writing.set()

    async def someone_else() -> None:
        await writing.wait()  # the writer is held now
        counts = await services.organisation.counts()  # a quick question to the bot
        assert counts["schools"] == 3
        events.append("answered")
        release()

    async def officer() -> None:
        await services.reports.build("district", ReportScope.district(rw.district_id), progress=progress)
        events.append("report sent")

    try:
        await asyncio.wait_for(asyncio.gather(officer(), someone_else()), HOLD_BOUND * 2)
    finally:
        for timer in timers:
            timer.cancel()
        release()
    assert not held_too_long, "the writer was let go by the bound, not by the answer"
    assert events == ["answered", "report sent"]


def _meta(**extra: Any) -> dict[str, Any]:
    return {
        "language": "vi",
        "translate": t,
        "tz": "Asia/Ho_Chi_Minh",
        "district_name": "Huyện Nhà Bè",
        "scope_kind": "district",
        "today": date(2021, 11, 15),
        "generated_at": datetime(2021, 11, 15, 2, 0, tzinfo=UTC),
        "prepared_by": "=cmd|' /C calc'!A0",
        **extra,
    }


@pytest.mark.parametrize("mode", ["thread", "process"])
async def test_writer_errors_reach_the_caller(mode: str, tmp_path: Any) -> None:
    job = await WriterJob.start(mode, "needs", _meta(), str(tmp_path / "x.xlsx"))
    with pytest.raises(ReportWriterError) as failure:
        await job.begin("needs_students", ("not", "the", "fields"))
        await job.rows([("a", "b", "c")])
        await job.end()
        await job.data({})
        await job.finish()
    assert "fields of 'needs_students'" in str(failure.value)
    await job.abort()


async def test_abort_stops_the_worker_process(tmp_path: Any) -> None:
    job = await WriterJob.start("process", "needs", _meta(), str(tmp_path / "x.xlsx"))
    await job.begin("needs_students", stream_columns_keys("needs_students"))
    process = job._process
    assert process is not None and process.returncode is None
    await job.abort()
    assert process.returncode is not None


def stream_columns_keys(name: str) -> tuple[str, ...]:
    from exports.reports import STREAM_KEYS

    return STREAM_KEYS[name]


def test_write_report_is_a_plain_function_and_text_is_never_a_formula() -> None:
    """exports.reports over plain rows: no database, no service."""
    assert workbook_options()["strings_to_formulas"] is False
    school = {"school_id": 1, "school_code": "79785001", "school_name": "@Trường thử", "level": "TH"}
    zero = {
        f"{r}_{p}": 0
        for r in ("batches", "handovers", "doses", "needs", "records")
        for p in ("total", "late")
    }
    data = {
        "meta": _meta(),
        "timeliness": {
            "rows": [
                {
                    **school,
                    **zero,
                    "handovers_total": 2,
                    "handovers_late": 1,
                    "records_total": 2,
                    "records_late": 1,
                }
            ],
            "levels": [{"level": "TH", "schools": 1, **zero, "handovers_total": 2, "handovers_late": 1}],
            "total": [{"schools": 1, **zero, "handovers_total": 2, "handovers_late": 1, "records_total": 2}],
        },
    }
    late = [
        (
            "handover",
            "79785001",
            "@Trường thử",
            "HS0001",
            '=HYPERLINK("http://x","y")',
            date(2021, 11, 4),
            datetime(2021, 11, 12, 10, 0, tzinfo=UTC),
            "+84 90 000 0000",
        )
    ]
    out = io.BytesIO()
    rows = write_report("timeliness", data, MappingStreams({"late_handovers": late}), out)
    assert rows == {"late": 1, "timeliness": 1}
    wb = load_workbook(io.BytesIO(out.getvalue()))
    table = read_table(wb, "timeliness", timeliness_columns(W))
    assert table.rows[0]["school_name"] == "@Trường thử" and table.cells[0][1].data_type == "s"
    assert table.cells[0][1].quotePrefix
    assert table.rows[0]["on_time_rate"] == pytest.approx(0.5)
    detail = read_table(wb, "late", stream_columns(W, "late"))
    row, cells = detail.rows[0], detail.cells[0]
    assert row["subject_name"] == '=HYPERLINK("http://x","y")'
    assert row["entered_by"] == "+84 90 000 0000"
    assert all(c.data_type == "s" for c in cells if isinstance(c.value, str))
    assert not any(c.data_type == "f" for line in wb["DS nhập muộn"].iter_rows() for c in line)
    assert row["entered_at"] == datetime(2021, 11, 12, 17, 0) and row["days_after"] == 8
    assert cells[5].number_format == "dd/mm/yyyy" and cells[6].number_format == "dd/mm/yyyy hh:mm"
    meta = {r[0]: r[1] for r in wb["Thông tin báo cáo"].iter_rows(values_only=True) if r[0]}
    assert meta["Người lập"] == "=cmd|' /C calc'!A0"


def test_needs_columns_are_named_in_both_languages() -> None:
    vi, en = needs_columns(words("vi")), needs_columns(words("en"))
    assert [c.key for c in vi] == [c.key for c in en]
    assert vi[0].header == "Mã trường" and en[0].header == "School code"


async def test_a_cancelled_build_stops_its_worker(
    services: Services, rw: ReportWorld, monkeypatch: Any
) -> None:
    assert services.reports.executor == "process"
    jobs: list[WriterJob] = []
    original_start = WriterJob.start

    async def start(*args: Any, **kwargs: Any) -> WriterJob:
        job = await original_start(*args, **kwargs)
        jobs.append(job)
        return job

    monkeypatch.setattr(WriterJob, "start", start)
    streaming = asyncio.Event()

    def progress(update: Any) -> None:
        if update.stage == "vaccination_doses":
            streaming.set()

    task = asyncio.create_task(
        services.reports.build("district", ReportScope.district(rw.district_id), progress=progress)
    )
    await streaming.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(jobs) == 1 and jobs[0]._process is not None
    assert jobs[0]._process.returncode is not None  # killed, not left behind


@pytest.mark.parametrize(("report_executor", "report_max_concurrent"), [("thread", 1)])
async def test_reports_wait_their_turn_and_unknown_kinds_are_refused(
    services: Services, rw: ReportWorld
) -> None:
    from storage.errors import DomainError

    assert services.reports.max_concurrent == 1
    scope = ReportScope.district(rw.district_id)
    first, second = await asyncio.gather(
        services.reports.build("needs", scope), services.reports.build("vaccination", scope)
    )
    assert first.kind == "needs" and second.kind == "vaccination"
    with pytest.raises(DomainError) as unknown:
        await services.reports.build("weather", scope)
    assert unknown.value.code == "reports.kind_invalid"
