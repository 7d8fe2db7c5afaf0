"""Fuzz the upload checks with hand-written sheets (zipfile, so every dimension ref and cell ref is
ours): sparse, huge, lying, positionless. Every file must end in a refusal or a table — never in a
dead worker — and the reading process's peak RSS stays bounded (printed; run with -s to see it)."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exports.reader import sheet_row_limit
from exports.upload_worker import read_in_worker
from storage.schemas.imports import ReadLimits
from tests import excel_files as files

LIMITS = ReadLimits(max_bytes=10 * 2**20, max_rows=50_000)
HEADER = ["STT", "Mã học sinh", "Họ và tên", "Ngày sinh", "Lớp"]
ROW = [1, "HS9001", "Nguyễn Thị Hồng", "04/04/2013", "3A1"]
# A refusal is decided by the scan, before any grid: the worker stays near its start-up size.
REFUSAL_RSS_KB = 150 * 1024
PEAKS: list[int] = []

rows = st.integers(1, 1_100_000)
columns = st.integers(1, 17_000)
near_rows = st.integers(1, 60_000)
near_columns = st.integers(1, 260)
far_cells = st.lists(
    st.tuples(st.one_of(rows, near_rows), st.one_of(columns, near_columns), st.sampled_from(["x", 1, ""])),
    max_size=3,
)


def _reference(row: int, column: int) -> str:
    return f"{files.column_letters(column)}{row}"


dimensions = st.one_of(
    st.none(),
    st.builds(
        lambda r, c: f"A1:{_reference(r, c)}", st.one_of(rows, near_rows), st.one_of(columns, near_columns)
    ),
    st.sampled_from(["A1", "A1:XFD1048576", "B2:A1", "garbage", ""]),
)


@st.composite
def positionless(draw: st.DrawFn) -> str:
    """A sheetData of rows and cells that leave out `r` (calamine counts on from the previous)."""
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        row = draw(st.one_of(st.none(), near_rows))
        cells = "".join(
            '<c t="inlineStr"><is><t>v</t></is></c>' if draw(st.booleans()) else "<c/>"
            for _ in range(draw(st.integers(0, 220)))
        )
        attribute = f' r="{row}"' if row is not None else ""
        parts.append(f"<row{attribute}>{cells}</row>")
    return "".join(parts)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(cells=far_cells, dimension=dimensions, data=st.one_of(st.none(), positionless()))
def test_any_sheet_is_refused_or_read_within_bounds(
    cells: list[tuple[int, int, object]], dimension: str | None, data: str | None
) -> None:
    content = files.raw_xlsx([HEADER, ROW], far_cells=cells, dimension=dimension, sheet_data=data)
    outcome = asyncio.run(read_in_worker(content, "fuzz.xlsx", LIMITS))
    PEAKS.append(outcome.peak_rss_kb)
    print(
        f"{len(content):6} B, dimension {dimension!r}, "
        f"{'positionless rows' if data else f'cells {cells}'}: "
        f"{outcome.error.code if outcome.error else 'read'}, peak RSS {outcome.peak_rss_kb // 1024} MB"
    )
    assert outcome.returncode == 0, "the checks let a sheet through that killed the worker"
    assert 0 < outcome.peak_rss_kb < LIMITS.worker_max_mb * 1024
    if outcome.error is not None:
        assert outcome.error.code.startswith("excel.")
        if outcome.error.code == "excel.file.sheet_too_large":
            assert outcome.peak_rss_kb < REFUSAL_RSS_KB
    else:
        table = outcome.table
        assert table is not None
        assert len(table.grid) <= sheet_row_limit(LIMITS) and table.width <= LIMITS.max_columns


def test_print_the_peak() -> None:
    if PEAKS:
        print(f"fuzz: {len(PEAKS)} files, reading process's peak RSS at most {max(PEAKS) // 1024} MB")
