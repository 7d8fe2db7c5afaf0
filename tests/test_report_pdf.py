"""Issue 15, item 8: the district report printed, as LibreOffice prints it.

The hand-built district's report (tests.reports_world) goes through `soffice --headless --convert-to
pdf` (Debian's `libreoffice-calc`, with the metric-compatible fonts `fonts-crosextra-carlito` and
`fonts-liberation2`, so Calibri and Times New Roman keep Excel's widths). Then:

- pages: every sheet starts a page of its own, in tab order; a table running on starts the next page
  with its repeated header row; the cover (the letter to sign) is one page with the signature on it;
  the small district needs at most two pages a sheet;
- fonts: no text is printed under 8 pt (the sizes LibreOffice writes in the PDF's `Tf` operators,
  times any text-matrix scale), i.e. no page is scaled below what keeps 11 pt text readable.

Skipped with the reason when `soffice` or poppler's `pdftotext` is missing, but failing under CI=true
(.ci/run installs them). soffice runs with its own profile directory and a timeout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import openpyxl
import pytest

from storage.schemas.reports import ReportPeriod, ReportScope
from storage.services import Services
from tests.reports_world import make_report_world

MIN_POINTS = 8.0
# LibreOffice writes sizes with three decimals after scaling: 8 pt can come out as 7.994.
ROUNDING = 0.01
CONVERT_TIMEOUT = 240


def _tools() -> tuple[str, str]:
    soffice, pdftotext = shutil.which("soffice"), shutil.which("pdftotext")
    if soffice and pdftotext:
        return soffice, pdftotext
    missing = "soffice (libreoffice-calc)" if not soffice else "pdftotext (poppler-utils)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{missing} is missing: .ci/run installs it")
    pytest.skip(f"{missing} is not installed")


def to_pdf(soffice: str, xlsx: Path, workdir: Path) -> Path:
    """LibreOffice's own PDF of the workbook: a private profile, so parallel runs never share one."""
    profile = workdir / "lo-profile"
    result = subprocess.run(
        [
            soffice,
            f"-env:UserInstallation={profile.as_uri()}",
            "--headless",
            "--norestore",
            "--convert-to",
            "pdf",
            "--outdir",
            str(workdir),
            str(xlsx),
        ],
        capture_output=True,
        text=True,
        timeout=CONVERT_TIMEOUT,
        env={**os.environ, "HOME": str(workdir)},
    )
    pdf = workdir / (xlsx.stem + ".pdf")
    assert pdf.exists(), f"soffice made no PDF: {result.stdout} {result.stderr}"
    return pdf


def page_texts(pdftotext: str, pdf: Path) -> list[str]:
    out = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True)
    pages = out.stdout.split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


def font_sizes_by_page(pdf: Path) -> list[list[float]]:
    """The printed size of every piece of text, per page, from the PDF's content streams."""
    data = pdf.read_bytes()
    streams = {
        int(number): body
        for number, body in re.findall(
            rb"(\d+) 0 obj\s*<<[^>]*?/Filter/FlateDecode[^>]*>>\s*stream\r?\n(.*?)endstream", data, re.S
        )
    }
    contents = dict(re.findall(rb"(\d+) 0 obj\s*<</Type/Page/[^>]*?/Contents (\d+) 0 R", data))
    kids = re.search(rb"/Type/Pages.*?/Kids\[(.*?)\]", data, re.S)
    assert kids is not None
    order = [int(n) for n in re.findall(rb"(\d+) 0 R", kids.group(1))]
    pages = []
    for page in order:
        stream = zlib.decompress(streams[int(contents[str(page).encode()])])
        sizes = []
        scale = 1.0
        operators = rb"(?:([-\d.]+ [-\d.]+ [-\d.]+ [-\d.]+) [-\d.]+ [-\d.]+ Tm)|/F\d+ ([\d.]+) Tf"
        for matrix, size in re.findall(operators, stream):
            if matrix:  # a text matrix scales the next texts' size
                a, b, c, d = (float(v) for v in matrix.split())
                scale = abs(a * d - b * c) ** 0.5
            else:
                sizes.append(float(size) * scale)
        pages.append(sizes)
    return pages


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def words_of(text: str, count: int = 4) -> str:
    return " ".join(text.split()[:count])


@pytest.fixture
def report_executor() -> str:
    return "thread"  # the layout does not depend on where the workbook is written


@pytest.mark.parametrize("backend", ["sqlite"])  # the layout does not depend on the database
async def test_the_district_report_prints_on_a4_at_8_pt_or_more(services: Services, tmp_path: Path) -> None:
    soffice, pdftotext = _tools()
    world = await make_report_world(services)
    report = await services.reports.build(
        "district",
        ReportScope.district(world.district_id),
        ReportPeriod(round_id=world.round_id),
        prepared_by="Nguyễn Thị Thu",
        number="125",
    )
    xlsx = tmp_path / "district.xlsx"
    xlsx.write_bytes(report.content)
    pdf = to_pdf(soffice, xlsx, tmp_path)

    # The sheets imply the pages: each sheet's first page starts with its title (cell A1), in tab
    # order; a table running on to another page starts it with its repeated header row (A4).
    book = openpyxl.load_workbook(xlsx)
    titles = [str(ws["A1"].value or "") for ws in book.worksheets]
    headers = [str(ws["A4"].value or "") for ws in book.worksheets]
    texts = page_texts(pdftotext, pdf)
    owners: list[int] = []
    for text in texts:
        line = first_line(text)
        starts = [i for i, title in enumerate(titles) if title and line.startswith(words_of(title))]
        if starts and (not owners or starts[0] > owners[-1]):
            owners.append(starts[0])
            continue
        assert owners, f"the first page starts with {line!r}"
        sheet = owners[-1]
        meta = sheet == len(titles) - 1
        assert meta or line.startswith(words_of(headers[sheet], 2)), (titles[sheet], line)
        owners.append(sheet)
    assert sorted(set(owners)) == list(range(len(titles))), (owners, titles)
    pages_of = {i: owners.count(i) for i in set(owners)}
    assert pages_of[0] == 1, "the cover must be one page, signature included"
    # The hand-built district is small: no sheet needs more than two pages.
    assert max(pages_of.values()) <= 2, {titles[i][:30]: n for i, n in pages_of.items()}
    assert len(texts) == sum(pages_of.values())
    assert "Số: 125/BC-GDĐT" in texts[0] and "Nguyễn Thị Thu" in texts[0]
    assert "TRƯỞNG PHÒNG" in texts[0]  # the head's signature is on the cover's page

    # No page is scaled below what keeps the text at 8 pt.
    sizes = font_sizes_by_page(pdf)
    assert len(sizes) == len(texts)
    small = {
        f"page {n} ({words_of(first_line(texts[n - 1]), 6)})": min(page)
        for n, page in enumerate(sizes, 1)
        if page and min(page) < MIN_POINTS - ROUNDING
    }
    assert small == {}
