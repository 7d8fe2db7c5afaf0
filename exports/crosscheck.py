"""The cross-sheet check: does every sheet of a district workbook give the same answer?

`check_workbook(content, translate, languages)` reads a workbook written by `exports.reports` (any
kind, either language) back from its bytes and compares, figure by figure, what two sheets say about
the same thing under the counting model of docs/reports.md: totals against the school rows, each
table against the list it summarises (Biểu 1 / the needs list, Biểu 2 / Biểu 3 / the gift and loan
lists, Biểu 4–7 / the dose list, Biểu 8 / the lists and the late entries), and the cover's figures
against the tables.
It returns one line per disagreement; an empty list means the workbook agrees with itself. Plain
functions over bytes: the tests run it on the hand-built district and on demo districts.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any

from openpyxl import load_workbook

from exports import reports as layout
from exports.labels import Labels, Translate

Row = dict[str, Any]
# Figures that add up from the school rows to the totals (donors are counted distinct: never summed).
ADDITIVE = {
    "needs": layout.needs_columns,
    "devices": layout.devices_columns,
    "vaccination": layout.vaccination_columns,
    "timeliness": layout.timeliness_columns,
}
NOT_SUMMED = {"donors", "coverage1", "coverage2", "on_time_rate"}


class _Table:
    def __init__(self, rows: list[Row], totals: list[Row]) -> None:
        self.rows, self.totals = rows, totals


def _day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else None


class _Reader:
    def __init__(self, content: bytes, translate: Translate, languages: Sequence[str]) -> None:
        self.book = load_workbook(io.BytesIO(content))
        names = set(self.book.sheetnames)
        found = (lang for lang in languages if translate("reports.sheet.meta", lang) in names)
        self.language = next(found, "vi")
        self.words = layout.Words(Labels(translate, self.language))
        self.meta = self._meta()

    def has(self, key: str) -> bool:
        return self.words(f"sheet.{key}") in self.book.sheetnames

    def _meta(self) -> dict[str, Any]:
        w = self.words
        ws = self.book[w("sheet.meta")]
        pairs = {row[0]: row[1] for row in ws.iter_rows(values_only=True) if row and row[0]}
        return {
            "date_from": _day(pairs.get(w("meta.date_from"))),
            "date_to": _day(pairs.get(w("meta.date_to"))),
        }

    def table(self, key: str, columns: Callable[[layout.Words], list[Any]] | list[Any]) -> _Table:
        cols = columns(self.words) if callable(columns) else columns
        ws = self.book[self.words(f"sheet.{key}")]
        by_header = {c.header: c for c in cols}
        header = [cell.value for cell in ws[4]]
        keys = [by_header[h].key if h in by_header else None for h in header]
        labels = {c.key: {v: k for k, v in (c.labels or {}).items()} for c in cols if c.labels}
        ref = ws.auto_filter.ref or "A4:A4"
        row_number = re.search(r"(\d+)$", ref)
        assert row_number is not None, f"the sheet's filter {ref!r} ends in a row number"
        last = int(row_number.group(1))

        def record(values: Iterable[Any]) -> Row:
            out: Row = {}
            for key, value in zip(keys, values, strict=False):
                if key is None:
                    continue
                out[key] = labels[key].get(value, value) if key in labels else value
            return out

        rows = [record(v) for v in ws.iter_rows(min_row=5, max_row=last, values_only=True)]
        totals = []
        for values in ws.iter_rows(min_row=last + 1, max_col=len(keys), values_only=True):
            if all(v is None for v in values):
                break
            totals.append(record(values))
        return _Table(rows, totals)

    def list_rows(self, key: str) -> list[Row]:
        return self.table(key, layout.stream_columns(self.words, key)).rows


def _num(value: Any) -> int:
    return int(value or 0)


def check_workbook(content: bytes, translate: Translate, languages: Sequence[str]) -> list[str]:
    """Every disagreement between two sheets of the workbook, one line each ([] when it agrees).
    `translate` is the catalogue's (`bot.texts.t`), `languages` those the workbook may be written in."""
    r = _Reader(content, translate, languages)
    problems: list[str] = []
    start, end = r.meta["date_from"], r.meta["date_to"]

    def within(day: Any) -> bool:
        day = _day(day)
        return day is not None and (start is None or day >= start) and (end is None or day <= end)

    def same(what: str, left: Any, right: Any) -> None:
        if left != right:
            problems.append(f"{what}: {left!r} ≠ {right!r}")

    tables: dict[str, _Table] = {}
    for key, columns in ADDITIVE.items():
        if r.has(key):
            tables[key] = r.table(key, columns)
            table = tables[key]
            grand = [
                row
                for row in table.totals
                if row.get("level") is None and (key != "devices" or row.get("source") is None)
            ]
            if grand:
                for metric, value in grand[-1].items():
                    if metric in NOT_SUMMED or not isinstance(value, int | float):
                        continue
                    if metric in ("school_code", "school_name", "level", "source"):
                        continue
                    same(
                        f"{key}: total {metric} vs the school rows",
                        _num(value),
                        sum(_num(x.get(metric)) for x in table.rows),
                    )

    def per_school(
        rows: Iterable[Row], predicate: Callable[[Row], bool] = lambda _: True, *, by_source: bool = False
    ) -> Counter[Any]:
        counted: Counter[Any] = Counter()
        for row in rows:
            if predicate(row):
                counted[(row["school_code"], row["source"]) if by_source else row["school_code"]] += 1
        return counted

    def compare(
        what: str, table_rows: list[Row], metric: str, counted: Counter[Any], *, by_source: bool = False
    ) -> None:
        for row in table_rows:
            key = (row["school_code"], row["source"]) if by_source else row["school_code"]
            same(f"{what} ({key})", _num(row.get(metric)), counted.get(key, 0))

    yes = r.words("label.yes")
    if "needs" in tables and r.has("needs_students"):
        needs = r.list_rows("needs_students")
        rows = tables["needs"].rows
        compare("Biểu 1 needs_total vs the needs list", rows, "needs_total", per_school(needs))
        compare(
            "Biểu 1 device_total vs the needs list",
            rows,
            "device_total",
            per_school(needs, lambda x: x["needs_device"] is True or x["needs_device"] == yes),
        )
        compare(
            "Biểu 1 device_met vs the needs list's gifts",
            rows,
            "device_met",
            per_school(
                needs,
                lambda x: (
                    (x["needs_device"] is True or x["needs_device"] == yes) and x["gift_on"] is not None
                ),
            ),
        )
        compare(
            "Biểu 1 connectivity_total vs the needs list",
            rows,
            "connectivity_total",
            per_school(needs, lambda x: x["needs_connectivity"] is True or x["needs_connectivity"] == yes),
        )

    batches: list[Row] = r.table("batches", layout.batch_columns).rows if r.has("batches") else []
    if "devices" in tables and r.has("batches"):
        rows = tables["devices"].rows
        compare(
            "Biểu 2 batches vs Biểu 3", rows, "batches", per_school(batches, by_source=True), by_source=True
        )
        received: Counter[Any] = Counter()
        for batch in batches:
            received[(batch["school_code"], batch["source"])] += _num(batch["quantity"])
        compare("Biểu 2 received vs Biểu 3", rows, "received", received, by_source=True)
    if "devices" in tables and r.has("device_gifts"):
        rows = tables["devices"].rows
        gifts = r.list_rows("device_gifts")
        loans = r.list_rows("device_loans")
        compare(
            "Biểu 2 given vs the gift list", rows, "given", per_school(gifts, by_source=True), by_source=True
        )
        compare(
            "Biểu 2 lent vs the loan list",
            rows,
            "lent",
            per_school(loans, lambda x: within(x["handed_on"]), by_source=True),
            by_source=True,
        )
        compare(
            "Biểu 2 on_loan vs the loan list",
            rows,
            "on_loan",
            per_school(loans, lambda x: x["loan_status"] == "open", by_source=True),
            by_source=True,
        )
        compare(
            "Biểu 2 returned vs the loan list",
            rows,
            "returned",
            per_school(loans, lambda x: within(x["returned_on"]), by_source=True),
            by_source=True,
        )
        if "timeliness" in tables:
            handed = per_school(gifts) + per_school(loans, lambda x: within(x["handed_on"]))
            compare(
                "Biểu 8 handovers vs the gift and loan lists",
                tables["timeliness"].rows,
                "handovers_total",
                handed,
            )
            compare(
                "Biểu 8 returns vs the loan list",
                tables["timeliness"].rows,
                "returns_total",
                per_school(loans, lambda x: within(x["returned_on"])),
            )
    if "timeliness" in tables and r.has("batches"):
        compare("Biểu 8 batches vs Biểu 3", tables["timeliness"].rows, "batches_total", per_school(batches))

    if "vaccination" in tables:
        rows = tables["vaccination"].rows
        total = sum(_num(x.get("doses")) for x in rows)
        if r.has("vaccination_doses"):
            doses = r.list_rows("vaccination_doses")
            compare("Biểu 4 doses vs the dose list", rows, "doses", per_school(doses))
            for place, metric in (
                ("school", "at_school"),
                ("community", "in_community"),
                ("elsewhere", "elsewhere"),
            ):
                compare(
                    f"Biểu 4 {metric} vs the dose list",
                    rows,
                    metric,
                    per_school(x for x in doses if x["place"] == place),
                )
            if r.has("vaccination_products"):
                products = r.table("vaccination_products", layout.product_columns)
                numbers = Counter(_num(d["dose_number"]) for d in doses)
                all_products = products.totals[-1] if products.totals else {}
                same("Biểu 6 first doses vs the dose list", _num(all_products.get("first_doses")), numbers[1])
                same(
                    "Biểu 6 second doses vs the dose list", _num(all_products.get("second_doses")), numbers[2]
                )
                same(
                    "Biểu 6 boosters vs the dose list",
                    _num(all_products.get("booster_doses")),
                    sum(n for k, n in numbers.items() if k >= 3),
                )
        for key, columns in (
            ("vaccination_products", layout.product_columns),
            ("vaccination_places", layout.place_columns),
        ):
            if r.has(key):
                grand = r.table(key, columns).totals
                same(f"{key} total vs Biểu 4", _num(grand[-1].get("doses")) if grand else 0, total)
        if r.has("vaccination_grades"):
            grades = r.table("vaccination_grades", layout.grade_columns).rows
            for metric in ("enrolled", "dose1", "dose2", "dose3"):
                summed: Counter[Any] = Counter()
                for row in grades:
                    summed[row["school_code"]] += _num(row.get(metric))
                compare(f"Biểu 5 {metric} vs Biểu 4", rows, metric, summed)
        if "timeliness" in tables:
            doses_by_school = Counter({x["school_code"]: _num(x.get("doses")) for x in rows})
            compare("Biểu 8 doses vs Biểu 4", tables["timeliness"].rows, "doses_total", doses_by_school)

    if "timeliness" in tables and r.has("late"):
        late = r.list_rows("late")
        rows = tables["timeliness"].rows
        for record, metric in (
            ("batch", "batches_late"),
            ("handover", "handovers_late"),
            ("return", "returns_late"),
            ("dose", "doses_late"),
        ):
            compare(
                f"Biểu 8 {metric} vs the late list",
                rows,
                metric,
                per_school(x for x in late if x["record_type"] == record),
            )

    if r.has("cover"):
        problems += _check_cover(r, tables, batches)
    return problems


def _check_cover(r: _Reader, tables: dict[str, _Table], batches: list[Row]) -> list[str]:
    w = r.words
    ws = r.book[w("sheet.cover")]
    figures = {
        row[0]: row[3]
        for row in ws.iter_rows(values_only=True)
        if len(row) > 3 and row[0] and row[3] is not None
    }

    def grand(key: str, **match: Any) -> Row:
        table = tables.get(key)
        for row in reversed(table.totals if table else []):
            if row.get("level") is None and all(row.get(k) == v for k, v in match.items()):
                return row
        return {}

    problems: list[str] = []
    expected = {
        "figure.device_total": grand("needs").get("device_total"),
        "figure.device_met": grand("needs").get("device_met"),
        "figure.device_unmet": grand("needs").get("device_unmet"),
        "figure.batches": grand("devices", source=None).get("batches"),
        "figure.donors": grand("devices", source=None).get("donors"),
        "figure.received": grand("devices", source=None).get("received"),
        "figure.given": grand("devices", source=None).get("given"),
        "figure.lent": grand("devices", source=None).get("lent"),
        "figure.returned": grand("devices", source=None).get("returned"),
        "figure.on_loan": grand("devices", source=None).get("on_loan"),
        "figure.left": grand("devices", source=None).get("left"),
        "figure.dose1": grand("vaccination").get("dose1"),
        "figure.dose2": grand("vaccination").get("dose2"),
        "figure.dose3": grand("vaccination").get("dose3"),
        "figure.doses": grand("vaccination").get("doses"),
    }
    for key, value in expected.items():
        if value is not None and figures.get(w(key)) != value:
            problems.append(f"cover {key}: {figures.get(w(key))!r} ≠ {value!r}")
    due = [b for b in batches if b["deadline_status"] != "pending"]
    met = sum(1 for b in due if b["deadline_status"] == "met")
    shown = figures.get(w("figure.batches_met"))
    if batches and shown != w("figure.of", part=met, whole=len(due)):
        problems.append(f"cover batches_met: {shown!r} ≠ {met}/{len(due)}")
    timeliness = grand("timeliness")
    if timeliness:
        shown = figures.get(w("figure.records_late"))
        want = w("figure.of", part=timeliness.get("records_late"), whole=timeliness.get("records_total"))
        if shown != want:
            problems.append(f"cover records_late: {shown!r} ≠ {want!r}")
    return problems
