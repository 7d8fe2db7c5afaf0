"""docs/csdl-4.9.1.png: a CSDL upload file of the test school (tests/csdl_world.py), its cells as openpyxl
reads them back, drawn as a table (LibreOffice is not needed).

    .venv/bin/python docs/csdl_picture.py doses docs/csdl-4.9.1.png
"""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def render(menu_name: str, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from openpyxl import load_workbook
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.csdl_texts import export_workbook
    from storage.clock import Clock
    from storage.db import create_engine
    from storage.models import Base, VaccineProduct
    from storage.schemas.csdl import CsdlMenu
    from storage.services import build_services
    from storage.services.csdl import CsdlService
    from tests.conftest import FROZEN_AT, TZ
    from tests.csdl_world import make_csdl_world

    menu = CsdlMenu(menu_name)
    engine = create_engine(f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/picture.sqlite3")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with AsyncSession(engine) as session, session.begin():
        products = [("COMIRNATY", "Comirnaty (Pfizer-BioNTech)"), ("OTHER", "Khác / Other")]
        session.add_all([VaccineProduct(code=c, name=n, sort_order=i) for i, (c, n) in enumerate(products)])
    clock = Clock(tz=TZ)
    clock.freeze(FROZEN_AT)
    services = build_services(engine, clock)
    await make_csdl_world(services)
    csdl = CsdlService.of(services)
    school = await csdl.school_by_code("79785001")
    export = await csdl.export(school, menu)
    content = export_workbook(export, await csdl.layout(menu), "vi", TZ)
    await engine.dispose()

    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    width = max(len(row) for row in rows)
    letters = [chr(ord("A") + i) for i in range(width)]
    cells = [[str(i + 1), *row, *[""] * (width - len(row))] for i, row in enumerate(rows)]
    widths = [0.035] + [max(0.05, min(0.2, (sheet.column_dimensions[c].width or 13) / 160)) for c in letters]
    figure, axes = plt.subplots(figsize=(15, 2.6))
    axes.axis("off")
    axes.set_title(f"{sheet.title} — {export.school_name}", fontsize=11, loc="left")
    table = axes.table(
        cellText=cells, colLabels=["", *letters], colWidths=widths, loc="upper left", cellLoc="left"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.35)
    header = next(i for i, row in enumerate(rows) if row and row[0] == "STT") + 1
    for (r, c), cell in table.get_celld().items():
        cell.set_edgecolor("#BBBBBB")
        if r == 0 or c == 0:
            cell.set_facecolor("#EEEEEE")
        elif r == header:
            cell.set_facecolor("#DDEBF7")
            cell.get_text().set_fontweight("bold")
        elif r < header:  # title rows overflow into the empty cells, as Excel shows them
            cell.set_edgecolor("#F4F4F4")
            cell.set_facecolor("none")
            cell.get_text().set_clip_on(False)
            cell.get_text().set_zorder(10)
            if r == 1:
                cell.get_text().set_fontweight("bold")
    figure.savefig(out, dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    asyncio.run(render(sys.argv[1], sys.argv[2]))
