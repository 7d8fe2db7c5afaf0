"""The compiled reports' workbooks: which sheets, which columns, which words.

`write_report(kind, data, streams, target)` is a plain function: `data` holds the small tables the
database aggregated (per school, per level, the whole scope; batches; inconsistencies; metadata), and
`streams` hands over the long per-student lists one after another, in the order of `STREAMS[kind]`,
as iterators of tuples whose fields are named by `STREAM_KEYS[name]`. Nothing here adds up a total:
every total row is a value the database computed, and the tests check that each one matches the rows
of the detail sheets.

All words come from the catalogue (`bot/texts/<lang>/reports.toml`), through the translator the
caller passes in (`meta["translate"]`, see exports/labels.py); the workbook is in Vietnamese unless
another language is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import IO, Any, Protocol
from zoneinfo import ZoneInfo

from exports.labels import Labels
from exports.xlsx import (
    BOOL,
    DATE,
    DATETIME,
    INT,
    LABEL,
    LINE_POINTS,
    PERCENT,
    TEXT,
    Column,
    KeyValueSheet,
    Percent,
    PrintSetup,
    SignatureBlock,
    TableSheet,
    Workbook,
    ratio,
    wrapped_lines,
    write_value,
)
from storage.enums import (
    NEED_GROUPS,
    DeviceType,
    DonationSource,
    DosePlace,
    Gender,
    HandoverKind,
    PriorityGroup,
    SchoolLevel,
    SubmissionStatus,
)
from storage.rules.dates import show_date
from storage.rules.numbers import show_number, show_percent

NEEDS = "needs"
DEVICES = "devices"
VACCINATION = "vaccination"
TIMELINESS = "timeliness"
DISTRICT = "district"
KINDS = (NEEDS, DEVICES, VACCINATION, TIMELINESS, DISTRICT)


def _values(members: Iterable[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in members)


# The domain's values as the rows carry them (plain strings): storage.enums is a leaf, so the report
# writer's worker process still loads no ORM.
PRIORITY_GROUPS = _values(NEED_GROUPS)
SOURCES = _values(DonationSource)
PLACES = _values(DosePlace)

# The small tables each report needs (keys of `data`), and its long lists in the order they stream.
AREAS: dict[str, tuple[str, ...]] = {
    NEEDS: ("needs", "issues"),
    DEVICES: ("devices", "batches", "issues"),
    VACCINATION: ("vaccination", "issues"),
    TIMELINESS: ("timeliness",),
    DISTRICT: ("needs", "devices", "batches", "vaccination", "timeliness", "issues", "round_status"),
}
# Which inconsistencies each report lists (the district report: all of them).
ISSUE_AREAS: dict[str, tuple[str, ...]] = {
    NEEDS: ("needs",),
    DEVICES: ("devices",),
    VACCINATION: ("vaccination",),
    TIMELINESS: (),
    DISTRICT: ("needs", "devices", "vaccination"),
}
LATE_STREAMS = ("late_batches", "late_handovers", "late_returns", "late_doses")
STREAMS: dict[str, tuple[str, ...]] = {
    NEEDS: ("needs_students",),
    DEVICES: ("device_gifts", "device_loans"),
    VACCINATION: ("vaccination_doses",),
    TIMELINESS: LATE_STREAMS,
    DISTRICT: ("needs_students", "device_gifts", "device_loans", "vaccination_doses", *LATE_STREAMS),
}

_HANDOVER_KEYS = (
    "school_code",
    "school_name",
    "batch_id",
    "source",
    "donor_name",
    "device_type",
    "make_model",
    "student_code",
    "full_name",
    "class_name",
    "handed_on",
)
_LATE_KEYS = (
    "record_type",
    "school_code",
    "school_name",
    "subject_code",
    "subject_name",
    "event_on",
    "entered_at",
    "entered_by",
)
# The fields of each streamed row, in order (the database query labels its columns with these).
STREAM_KEYS: dict[str, tuple[str, ...]] = {
    "needs_students": (
        "school_code",
        "school_name",
        "student_code",
        "full_name",
        "date_of_birth",
        "gender",
        "grade",
        "class_name",
        "priority_group",
        "category",
        "needs_device",
        "needs_connectivity",
        "gift_on",
        "loan_on",
        "note",
        "entered_late",
    ),
    "device_gifts": (*_HANDOVER_KEYS, "entered_late", "note"),
    "device_loans": (*_HANDOVER_KEYS, "returned_on", "loan_status", "entered_late", "note"),
    "vaccination_doses": (
        "school_code",
        "school_name",
        "student_code",
        "full_name",
        "date_of_birth",
        "grade",
        "class_name",
        "dose_number",
        "given_on",
        "product_name",
        "product_other_name",
        "place",
        "entered_late",
    ),
    **{name: _LATE_KEYS for name in LATE_STREAMS},
}


class StreamSource(Protocol):
    def rows(self, name: str, keys: Sequence[str]) -> Iterator[Sequence[Any]]:
        """The rows of stream `name`, whose fields are `keys`; streams are asked for in order."""
        ...


class MappingStreams:
    """Streams given as ready lists or iterators (tests, benchmarks, small reports)."""

    def __init__(self, streams: Mapping[str, Any]) -> None:
        self.streams = streams

    def rows(self, name: str, keys: Sequence[str]) -> Iterator[Sequence[Any]]:
        return iter(self.streams.get(name, ()))


# --- words ----------------------------------------------------------------------------------------


class Words:
    """Catalogue texts of the reports in one language."""

    def __init__(self, catalogue: Labels) -> None:
        self.catalogue = catalogue
        self.language = catalogue.language

    def __call__(self, key: str, **values: object) -> str:
        return self.catalogue(f"reports.{key}", **values)

    def labels(self, group: str, values: Sequence[str]) -> dict[Any, str]:
        return {value: self(f"label.{group}.{value}") for value in values}

    def yes(self) -> dict[Any, str]:
        return {True: self("label.yes"), False: ""}

    def number(self, value: int | float | None) -> str:
        return show_number(value, self.language)

    def percent(self, fraction: float | None) -> str:
        return show_percent(fraction, self.language)

    def day(self, value: date | None) -> str:
        return show_date(value) if value else ""


LEVELS = _values(SchoolLevel)
GENDERS = _values(Gender)
DEVICE_TYPES = _values(DeviceType)
LOAN_STATUSES = ("open", "returned")
DEADLINE_STATUSES = ("met", "partial", "none", "pending")
REPORT_STATUSES = ("on_time", "late", "not_reported", "pending")
SUBMISSION_STATUSES = _values(SubmissionStatus)
RECORD_TYPES = ("batch", "handover", "return", "dose")
HANDOVER_KINDS = _values(HandoverKind)
ISSUE_CODES = (
    "over_given",
    "allocated_mismatch",
    "two_program_devices",
    "handover_before_receipt",
    "handover_other_school",
    "device_no_need",
    "dose_not_enrolled",
    "dose_gap",
    "dose_order",
    "need_category_mismatch",
    "need_not_enrolled",
)


# --- columns --------------------------------------------------------------------------------------


def _col(
    words: Words, key: str, kind: str = TEXT, width: float = 12.0, labels: Any = None, *, header: str = ""
) -> Column:
    return Column(key=key, header=words(header or f"col.{key}"), kind=kind, width=width, labels=labels)


# Widths are in Excel's character units; every table of the printed report must fit A4 landscape
# at a scale that keeps 11 pt text at 8 pt or more (exports.xlsx.print_scale, tested).
def _school_cols(words: Words, *, level: bool = True, name_width: float = 26) -> list[Column]:
    columns = [_col(words, "school_code", TEXT, 9), _col(words, "school_name", TEXT, name_width)]
    if level:
        columns.append(_col(words, "level", LABEL, 8, words.labels("level", LEVELS)))
    return columns


def needs_columns(words: Words) -> list[Column]:
    columns = _school_cols(words, name_width=24)
    columns += [_col(words, "students", INT, 8), _col(words, "students_priority", INT, 8)]
    for group in PRIORITY_GROUPS:
        columns.append(_col(words, f"device_{group}", INT, 7.5))
        columns.append(_col(words, f"connectivity_{group}", INT, 7.5))
    columns += [
        _col(words, "device_program", INT, 8),
        _col(words, "device_total", INT, 8),
        _col(words, "device_met", INT, 8),
        _col(words, "device_unmet", INT, 9),
        _col(words, "connectivity_total", INT, 8),
        _col(words, "needs_total", INT, 8),
    ]
    return columns


def devices_columns(words: Words) -> list[Column]:
    return [
        *_school_cols(words),
        _col(words, "source", LABEL, 14, words.labels("source", SOURCES)),
        _col(words, "batches", INT, 8),
        _col(words, "donors", INT, 9),
        _col(words, "received", INT, 9),
        _col(words, "given", INT, 9),
        _col(words, "lent", INT, 9),
        _col(words, "returned", INT, 9),
        _col(words, "on_loan", INT, 10),
        _col(words, "left", INT, 10),
    ]


def batch_columns(words: Words) -> list[Column]:
    return [
        _col(words, "batch_number", INT, 6, header="col.batch_id"),  # the school's own number
        *_school_cols(words, level=False, name_width=20),
        _col(words, "source", LABEL, 12, words.labels("source", SOURCES)),
        _col(words, "donor_name", TEXT, 18),
        _col(words, "received_on", DATE, 10.5),
        _col(words, "device_type", LABEL, 11, words.labels("device_type", DEVICE_TYPES)),
        _col(words, "quantity", INT, 7),
        _col(words, "given", INT, 7),
        _col(words, "on_loan", INT, 7),
        _col(words, "returned", INT, 7),
        _col(words, "left", INT, 7),
        _col(words, "report_deadline", DATE, 10.5),
        _col(words, "handed_by_deadline", INT, 9),
        _col(words, "deadline_status", LABEL, 12, words.labels("deadline_status", DEADLINE_STATUSES)),
        _col(words, "reported_on", DATE, 10.5),
        _col(words, "report_status", LABEL, 12, words.labels("report_status", REPORT_STATUSES)),
    ]


def vaccination_columns(words: Words) -> list[Column]:
    return [
        *_school_cols(words),
        *_coverage_cols(words),
        _col(words, "doses", INT, 10),
        _col(words, "at_school", INT, 10),
        _col(words, "in_community", INT, 10),
        _col(words, "elsewhere", INT, 10),
    ]


def grade_columns(words: Words) -> list[Column]:
    return [
        *_school_cols(words, level=False),
        _col(words, "grade", INT, 7),
        *_coverage_cols(words),
    ]


def _coverage_cols(words: Words) -> list[Column]:
    """Enrolled, with ≥1/≥2/≥3 doses, and coverage: the same columns per school and per grade."""
    return [
        _col(words, "enrolled", INT, 10),
        _col(words, "dose1", INT, 10),
        _col(words, "dose2", INT, 10),
        _col(words, "dose3", INT, 10),
        _col(words, "coverage1", PERCENT, 10),
        _col(words, "coverage2", PERCENT, 10),
    ]


def _dose_split_cols(words: Words) -> list[Column]:
    return [
        _col(words, "doses", INT, 10),
        _col(words, "first_doses", INT, 10),
        _col(words, "second_doses", INT, 10),
        _col(words, "booster_doses", INT, 12),
    ]


def product_columns(words: Words) -> list[Column]:
    return [_col(words, "product_name", TEXT, 32), *_dose_split_cols(words)]


def place_columns(words: Words) -> list[Column]:
    return [_col(words, "place", LABEL, 24, words.labels("place", PLACES)), *_dose_split_cols(words)]


def timeliness_columns(words: Words) -> list[Column]:
    columns = _school_cols(words, name_width=24)
    for record in ("batches", "handovers", "returns", "doses", "records"):
        for part in ("total", "late"):
            key = f"{record}_{part}"
            columns.append(_col(words, key, INT, 8, header=f"timely.{key}"))
    columns.append(_col(words, "on_time_rate", PERCENT, 9))
    columns.append(_col(words, "needs_recorded", INT, 9, header="timely.needs_recorded"))
    columns.append(_col(words, "not_in_csdl", INT, 10, header="csdl.not_in_csdl"))
    return columns


def issue_columns(words: Words) -> list[Column]:
    return [
        _col(words, "area", LABEL, 12, words.labels("area", ("needs", "devices", "vaccination"))),
        _col(words, "issue", LABEL, 24, words.labels("issue", ISSUE_CODES)),
        *_school_cols(words, level=False, name_width=20),
        _col(words, "subject", TEXT, 24),
        Column("detail", words("col.detail"), TEXT, 50, wrap=True),
    ]


def round_status_columns(words: Words) -> list[Column]:
    statuses = words.labels("submission", SUBMISSION_STATUSES)
    return [
        *_school_cols(words),
        _col(words, "program_status", LABEL, 14, statuses),
        _col(words, "program_submitted_at", DATETIME, 16),
        _col(words, "vaccine_status", LABEL, 14, statuses),
        _col(words, "vaccine_submitted_at", DATETIME, 16),
    ]


def stream_columns(words: Words, name: str) -> list[Column]:
    yes = words.yes()
    if name == "needs_students":
        groups = words.labels("priority", _values(PriorityGroup))
        return [
            *_school_cols(words, level=False, name_width=18),
            _col(words, "student_code", TEXT, 11),
            _col(words, "full_name", TEXT, 22),
            _col(words, "date_of_birth", DATE, 10.5),
            _col(words, "gender", LABEL, 6, words.labels("gender", GENDERS)),
            _col(words, "grade", INT, 5),
            _col(words, "class_name", TEXT, 6),
            _col(words, "priority_group", LABEL, 14, groups),
            _col(words, "category", LABEL, 14, groups),
            _col(words, "needs_device", BOOL, 7, yes),
            _col(words, "needs_connectivity", BOOL, 7, yes),
            _col(words, "gift_on", DATE, 10.5),
            _col(words, "loan_on", DATE, 10.5),
            Column("note", words("col.note"), TEXT, 14, wrap=True),
            _col(words, "entered_late", BOOL, 7, yes),
        ]
    if name in ("device_gifts", "device_loans"):
        columns = [
            *_school_cols(words, level=False, name_width=18),
            _col(words, "batch_id", INT, 6),
            _col(words, "source", LABEL, 12, words.labels("source", SOURCES)),
            _col(words, "donor_name", TEXT, 16),
            _col(words, "device_type", LABEL, 11, words.labels("device_type", DEVICE_TYPES)),
            _col(words, "make_model", TEXT, 12),
            _col(words, "student_code", TEXT, 11),
            _col(words, "full_name", TEXT, 22),
            _col(words, "class_name", TEXT, 6),
            _col(words, "handed_on", DATE, 10.5),
        ]
        if name == "device_loans":
            columns += [
                _col(words, "returned_on", DATE, 10.5),
                _col(words, "loan_status", LABEL, 10, words.labels("loan_status", LOAN_STATUSES)),
            ]
        note = Column("note", words("col.note"), TEXT, 14, wrap=True)
        return [*columns, _col(words, "entered_late", BOOL, 7, yes), note]
    if name == "vaccination_doses":
        return [
            *_school_cols(words, level=False, name_width=18),
            _col(words, "student_code", TEXT, 11),
            _col(words, "full_name", TEXT, 22),
            _col(words, "date_of_birth", DATE, 10.5),
            _col(words, "grade", INT, 5),
            _col(words, "class_name", TEXT, 6),
            _col(words, "dose_number", INT, 6),
            _col(words, "given_on", DATE, 10.5),
            _col(words, "product_name", TEXT, 16),
            _col(words, "product_other_name", TEXT, 12),
            _col(words, "place", LABEL, 12, words.labels("place", PLACES)),
            _col(words, "entered_late", BOOL, 7, yes),
        ]
    if name == "late":
        return [
            _col(words, "record_type", LABEL, 14, words.labels("record_type", RECORD_TYPES)),
            *_school_cols(words, level=False),
            _col(words, "subject_code", TEXT, 14),
            _col(words, "subject_name", TEXT, 30),
            _col(words, "event_on", DATE, 12),
            _col(words, "entered_at", DATETIME, 16),
            _col(words, "days_after", INT, 9),
            _col(words, "entered_by", TEXT, 24),
        ]
    raise KeyError(name)


# --- the writer -----------------------------------------------------------------------------------

# The summary sheets of each report, in tab order (after the cover and the round's status).
SUMMARY_SHEETS: dict[str, tuple[str, ...]] = {
    NEEDS: ("needs",),
    DEVICES: ("devices", "batches"),
    VACCINATION: (
        "vaccination",
        "coverage_chart",
        "vaccination_grades",
        "vaccination_products",
        "vaccination_places",
    ),
    TIMELINESS: ("timeliness",),
    DISTRICT: (
        "needs",
        "devices",
        "batches",
        "vaccination",
        "coverage_chart",
        "vaccination_grades",
        "vaccination_products",
        "vaccination_places",
        "timeliness",
    ),
}
_SUMMARY_COLUMNS = {
    "needs": needs_columns,
    "devices": devices_columns,
    "batches": batch_columns,
    "vaccination": vaccination_columns,
    "vaccination_grades": grade_columns,
    "vaccination_products": product_columns,
    "vaccination_places": place_columns,
    "timeliness": timeliness_columns,
    "issues": issue_columns,
    "round_status": round_status_columns,
}
_NOTED = {
    "needs",
    "devices",
    "batches",
    "vaccination",
    "vaccination_grades",
    "vaccination_products",
    "vaccination_places",
    "timeliness",
    "issues",
}
_PORTRAIT = {"vaccination_products", "vaccination_places"}


class ReportWriter:
    """Lays out one report in three steps, so that the long lists can be written while the database
    is still adding up the small tables:

    1. `open()` creates every sheet in tab order (cover, summaries, lists, metadata) with its title
       and header row;
    2. `write_streams()` fills the long lists as their rows arrive;
    3. `write_summaries(data)` fills the summary tables, the chart, the cover and the metadata, and
       closes the workbook.

    In constant-memory mode each sheet is written top to bottom, but sheets are independent, so the
    order of the steps does not change the tab order."""

    def __init__(
        self, kind: str, meta: Mapping[str, Any], target: str | IO[bytes], *, tmpdir: str | None = None
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown report kind {kind!r}")
        self.kind = kind
        self.words = Words(Labels(meta["translate"], meta.get("language", "vi")))
        self.meta: Mapping[str, Any] = {**meta, "scope_label": scope_label(meta, self.words)}
        self.tz = ZoneInfo(self.meta.get("tz", "Asia/Ho_Chi_Minh"))
        self.book = Workbook(target, tz=self.tz, tmpdir=tmpdir)
        self.rows: dict[str, int] = {}
        self.printed = kind == DISTRICT  # the district report is printed, signed and stamped
        self.sheets: dict[str, TableSheet] = {}
        self.details: dict[str, tuple[str, TableSheet]] = {}
        self.cover: Any = None
        self.chart_sheet: Any = None
        self.meta_ws: Any = None
        self.data: Mapping[str, Any] = {}

    # -- common pieces -----------------------------------------------------------------------------

    def subtitle(self) -> str:
        return self.words("subtitle", scope=self.meta["scope_label"], period=self.period_text())

    def period_text(self, *, with_round: bool = True) -> str:
        w, meta = self.words, self.meta
        date_from, date_to = meta.get("date_from"), meta.get("date_to")
        if date_from and date_to:
            span = w("period.range", date_from=w.day(date_from), date_to=w.day(date_to))
        elif date_from:
            span = w("period.since", date_from=w.day(date_from))
        elif date_to:
            span = w("period.until", date_to=w.day(date_to))
        else:
            span = w("period.all", today=w.day(meta.get("today")))
        if with_round and meta.get("round_name"):
            return w("period.round", round=meta["round_name"], span=span)
        return span

    def table(self, key: str, columns: list[Column], *, note: str = "", detail: bool = False) -> TableSheet:
        w = self.words
        return self.book.table(
            w(f"sheet.{key}"),
            columns,
            title=w(f"title.{key}"),
            subtitle=self.subtitle(),
            note=note,
            print_setup=PrintSetup(landscape=key not in _PORTRAIT, footer=w("page_footer")),
            # Every table cell is bordered when printed, the long lists' empty cells too.
            borders_on_blanks=True,
        )

    def signature(self) -> SignatureBlock:
        w, meta = self.words, self.meta
        today = meta["today"]
        return SignatureBlock(
            place_date=w(
                "signature.place_date",
                place=meta.get("place_name", ""),
                day=f"{today.day:02d}",
                month=f"{today.month:02d}",
                year=today.year,
            ),
            left_title=w("signature.preparer"),
            left_hint=w("signature.preparer_hint"),
            left_name=meta.get("prepared_by") or "",
            right_title=meta.get("head_title") or w("signature.head"),
            right_hint=w("signature.head_hint"),
            right_name=meta.get("head_name") or "",
        )

    def close_summary(self, sheet: TableSheet) -> None:
        if self.printed:
            sheet.signature_block(self.signature())
        sheet.finish()

    def level_totals(self, rollup: Mapping[str, Any], *, by_source: bool = False) -> list[dict[str, Any]]:
        """The database's totals per level and for the whole scope, labelled for total rows."""
        w = self.words
        level_names = w.labels("level", LEVELS)
        rows: list[dict[str, Any]] = []
        for record in rollup.get("levels", []):
            rows.append(
                {**record, "school_name": w("total_level", level=level_names.get(record["level"], ""))}
            )
        for record in rollup.get("total", []):
            label = w("total_all")
            if by_source and record.get("source") is None:
                label = w("total_all_sources")
            rows.append({**record, "level": None, "school_name": label})
        return rows

    # -- step 1: every sheet, in tab order ---------------------------------------------------------

    def open(self) -> None:
        w, kind = self.words, self.kind
        if kind == DISTRICT:
            self.cover = self.book.add_sheet(w("sheet.cover"))
            if self.meta.get("round_id") is not None:
                self.sheets["round_status"] = self.table("round_status", round_status_columns(w))
        keys = list(SUMMARY_SHEETS[kind]) + (["issues"] if ISSUE_AREAS[kind] else [])
        for key in keys:
            if key == "coverage_chart":
                self.chart_sheet = self.book.add_sheet(w("sheet.coverage_chart"))
                continue
            note = w(f"note.{key}") if key in _NOTED else ""
            self.sheets[key] = self.table(key, _SUMMARY_COLUMNS[key](w), note=note)
        late_sheet: TableSheet | None = None
        for name in STREAMS[kind]:
            if name in LATE_STREAMS:
                if late_sheet is None:
                    late_sheet = self.table(
                        "late", stream_columns(w, "late"), note=w("note.late"), detail=True
                    )
                self.details[name] = ("late", late_sheet)
            else:
                sheet = self.table(name, stream_columns(w, name), note=w(f"note.{name}"), detail=True)
                self.details[name] = (name, sheet)
        self.meta_ws = self.book.add_sheet(w("sheet.meta"))

    # -- step 2: the long lists --------------------------------------------------------------------

    def write_streams(self, streams: StreamSource) -> None:
        for name in STREAMS[self.kind]:
            key, sheet = self.details[name]
            rows = streams.rows(name, STREAM_KEYS[name])
            if name in LATE_STREAMS:
                rows = self._late_rows(rows)
            self.rows[key] = self.rows.get(key, 0) + sheet.write_rows(rows)
        for sheet in {id(sheet): sheet for _, sheet in self.details.values()}.values():
            sheet.finish()

    def _late_rows(self, rows: Iterator[Sequence[Any]]) -> Iterator[tuple[Any, ...]]:
        tz = self.tz
        for record_type, school_code, school_name, code, name, event_on, entered_at, entered_by in rows:
            days = None
            if event_on is not None and entered_at is not None:
                days = (entered_at.astimezone(tz).date() - event_on).days
            yield (record_type, school_code, school_name, code, name, event_on, entered_at, days, entered_by)

    # -- step 3: the small tables, the cover, the metadata -----------------------------------------

    def write_summaries(self, data: Mapping[str, Any]) -> dict[str, int]:
        self.data = data
        fill = {
            "round_status": self.fill_round_status,
            "needs": self.fill_needs,
            "devices": self.fill_devices,
            "batches": self.fill_batches,
            "vaccination": self.fill_vaccination,
            "vaccination_grades": self.fill_grades,
            "vaccination_products": self.fill_products,
            "vaccination_places": self.fill_places,
            "timeliness": self.fill_timeliness,
            "issues": self.fill_issues,
        }
        for key, sheet in self.sheets.items():
            fill[key](sheet)
            self.close_summary(sheet)
        if self.chart_sheet is not None:
            self.coverage_chart()
        if self.cover is not None:
            self.cover_sheet(self.cover)
        self.meta_sheet(self.meta_ws)
        self.book.close()
        return self.rows

    def _records(self, key: str, sheet: TableSheet, records: Any) -> None:
        self.rows[key] = sheet.write_records(records)

    def fill_round_status(self, sheet: TableSheet) -> None:
        self._records("round_status", sheet, self.data.get("round_status") or [])

    def fill_needs(self, sheet: TableSheet) -> None:
        rollup = self.data["needs"]
        self._records("needs", sheet, rollup["rows"])
        sheet.write_totals(self.level_totals(rollup))

    def fill_devices(self, sheet: TableSheet) -> None:
        rollup = self.data["devices"]
        self._records("devices", sheet, rollup["rows"])
        sheet.write_totals(self.level_totals(rollup, by_source=True))

    def fill_batches(self, sheet: TableSheet) -> None:
        self._records("batches", sheet, self.data["batches"])

    def fill_vaccination(self, sheet: TableSheet) -> None:
        data = self.data["vaccination"]
        rows = [_with_coverage(r) for r in data["rows"]]
        self._records("vaccination", sheet, rows)
        self._chart_rows = (sheet.row - len(rows), sheet.row - 1)
        sheet.write_totals(_with_coverage(r) for r in self.level_totals(data))

    def fill_grades(self, sheet: TableSheet) -> None:
        w, data = self.words, self.data["vaccination"]
        self._records("vaccination_grades", sheet, (_with_coverage(r) for r in data["grades"]))
        totals = [
            {**_with_coverage(r), "school_name": w("total_grade", grade=r["grade"])}
            for r in data["grade_totals"]
        ]
        totals += [_with_coverage(r) for r in self.level_totals({"total": data["total"]})]
        sheet.write_totals(totals)

    def fill_products(self, sheet: TableSheet) -> None:
        data = self.data["vaccination"]
        self._records("vaccination_products", sheet, data["products"])
        sheet.write_totals([{**data["doses_total"], "product_name": self.words("total_all")}])

    def fill_places(self, sheet: TableSheet) -> None:
        data = self.data["vaccination"]
        self._records("vaccination_places", sheet, data["places"])
        sheet.write_totals([{**data["doses_total"], "place": self.words("total_all")}])

    def fill_timeliness(self, sheet: TableSheet) -> None:
        rollup = self.data["timeliness"]
        self._records("timeliness", sheet, (_with_on_time(r) for r in rollup["rows"]))
        sheet.write_totals(_with_on_time(r) for r in self.level_totals(rollup))

    def fill_issues(self, sheet: TableSheet) -> None:
        areas = ISSUE_AREAS[self.kind]
        issues = [i for i in self.data.get("issues", []) if i["area"] in areas]
        self._records("issues", sheet, [{**issue, "detail": self.issue_detail(issue)} for issue in issues])
        if not issues:
            sheet.write_note_line(self.words("issues_none"))

    def issue_detail(self, issue: Mapping[str, Any]) -> str:
        w = self.words
        groups = w.labels("priority", _values(PriorityGroup))
        kinds = w.labels("handover_kind", HANDOVER_KINDS)
        params: dict[str, Any] = {}
        for name, value in issue["params"].items():
            if isinstance(value, date):
                value = w.day(value)
            elif name in ("category", "group"):
                value = groups.get(value, value)
            elif name == "kind":
                value = kinds.get(value, value)
            params[name] = value
        return w(f"issue_detail.{issue['issue']}", **params)

    def coverage_chart(self) -> None:
        """A bar per school: the share of enrolled students with at least one / two doses."""
        w, formats = self.words, self.book.formats
        chart_sheet = self.chart_sheet
        chart_sheet.write_string(0, 0, w("title.coverage_chart"), formats.title)
        self.book.write_text(chart_sheet, 1, 0, self.subtitle(), formats.subtitle)
        chart_sheet.set_paper(9)
        chart_sheet.set_landscape()
        chart_sheet.fit_to_pages(1, 0)
        chart_sheet.set_footer(f"&C{w('page_footer')}")
        first, last = getattr(self, "_chart_rows", (0, -1))
        if last < first:
            chart_sheet.write_string(3, 0, w("chart_empty"), formats.note)
            return
        table = self.sheets["vaccination"]
        columns = [c.key for c in table.columns]
        name_col = columns.index("school_name")
        chart = self.book.book.add_chart({"type": "bar"})
        for key, color in (("coverage1", "#2E75B6"), ("coverage2", "#A9D18E")):
            col = columns.index(key)
            chart.add_series(
                {
                    "name": w(f"col.{key}"),
                    "categories": [table.sheet.name, first, name_col, last, name_col],
                    "values": [table.sheet.name, first, col, last, col],
                    "fill": {"color": color},
                    "gap": 60,
                }
            )
        chart.set_title({"name": w("title.coverage_chart"), "name_font": {"size": 12}})
        chart.set_x_axis({"min": 0, "max": 1, "num_format": "0%", "major_gridlines": {"visible": True}})
        chart.set_y_axis({"reverse": True, "num_font": {"size": 8}})
        chart.set_legend({"position": "top"})
        schools = last - first + 1
        chart.set_size({"width": 900, "height": max(320, 60 + 26 * schools)})
        chart_sheet.insert_chart(3, 0, chart)

    # cover and metadata

    def deadline_counts(self) -> dict[str, int]:
        """The 5-day rule over the batches of Biểu 3: not-yet-due batches are counted apart."""
        batches = self.data.get("batches", [])
        counts = {f"handed_{k}": 0 for k in DEADLINE_STATUSES} | {f"report_{k}": 0 for k in REPORT_STATUSES}
        for batch in batches:
            counts[f"handed_{batch['deadline_status']}"] += 1
            counts[f"report_{batch['report_status']}"] += 1
        counts["due"] = len(batches) - counts["handed_pending"]
        counts["report_due"] = len(batches) - counts["report_pending"]
        return counts

    def key_figures(self) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
        """The cover's figures: (stock as of the period's end, events within the period)."""
        w, data = self.words, self.data
        needs = _total(data.get("needs"))
        devices = _total(data.get("devices"), source=None)
        vaccination = _total(data.get("vaccination"))
        timeliness = _total(data.get("timeliness"))
        issues = [i for i in data.get("issues", []) if i["area"] in ISSUE_AREAS[self.kind]]
        deadline = self.deadline_counts()
        total, late = timeliness.get("records_total", 0), timeliness.get("records_late", 0)
        coverage = ratio(vaccination.get("dose1"), vaccination.get("enrolled")) or 0.0
        stock = [
            (w("figure.schools"), needs.get("schools", 0)),
            (w("figure.students"), needs.get("students", 0)),
            (w("figure.device_program"), needs.get("device_program", 0)),
            (w("figure.device_total"), needs.get("device_total", 0)),
            (w("figure.device_met"), needs.get("device_met", 0)),
            (w("figure.device_unmet"), needs.get("device_unmet", 0)),
            (w("figure.connectivity_total"), needs.get("connectivity_total", 0)),
            (w("figure.on_loan"), devices.get("on_loan", 0)),
            (w("figure.left"), devices.get("left", 0)),
            (w("figure.dose1"), vaccination.get("dose1", 0)),
            (w("figure.dose2"), vaccination.get("dose2", 0)),
            (w("figure.dose3"), vaccination.get("dose3", 0)),
            (w("figure.coverage1"), Percent(coverage)),
        ]
        events = [
            (w("figure.batches"), devices.get("batches", 0)),
            (w("figure.donors"), devices.get("donors", 0)),
            (w("figure.received"), devices.get("received", 0)),
            (w("figure.given"), devices.get("given", 0)),
            (w("figure.lent"), devices.get("lent", 0)),
            (w("figure.returned"), devices.get("returned", 0)),
            (w("figure.batches_met"), w("figure.of", part=deadline["handed_met"], whole=deadline["due"])),
            (
                w("figure.batches_reported"),
                w("figure.of", part=deadline["report_on_time"], whole=deadline["report_due"]),
            ),
            (w("figure.batches_pending"), deadline["handed_pending"]),
            (w("figure.doses"), vaccination.get("doses", 0)),
            (w("figure.records_late"), w("figure.of", part=late, whole=total)),
            (w("figure.on_time_rate"), Percent(ratio(total - late, total) or 0.0)),
            (w("figure.needs_recorded"), timeliness.get("needs_recorded", 0)),
            (w("figure.issues"), len(issues)),
        ]
        return stock, events

    def approved_line(self) -> str | None:
        """«Đã duyệt X/Y trường» for a round's report (the programme data decides, as in /compile)."""
        statuses = self.data.get("round_status")
        if not statuses:
            return None
        approved = sum(1 for row in statuses if row.get("program_status") == "approved")
        return self.words("cover.approved", approved=approved, total=len(statuses))

    def cover_sheet(self, sheet: Any) -> None:
        w, meta, formats, book = self.words, self.meta, self.book.formats, self.book
        for col, width in enumerate((34, 14, 30, 14)):
            sheet.set_column(col, col, width)
        sheet.set_paper(9)
        sheet.set_portrait()
        sheet.fit_to_pages(1, 1)  # a letter to sign: one page, the signature under the figures
        sheet.set_margins(left=0.7, right=0.5, top=0.6, bottom=0.6)
        sheet.center_horizontally()
        sheet.set_footer(f"&C{w('page_footer')}")
        district = meta.get("district_name", "")
        self._merged(sheet, 0, 0, 1, w("cover.authority", district=district.upper()), formats.center)
        self._merged(sheet, 0, 2, 3, w("cover.nation"), formats.center_bold)
        self._merged(sheet, 1, 0, 1, w("cover.office"), formats.center_bold)
        self._merged(sheet, 1, 2, 3, w("cover.motto"), formats.center_bold)
        number = meta.get("document_number") or "\u00a0" * 8  # blank: the clerk writes it when issuing
        suffix = meta.get("number_suffix") or ""
        self._merged(sheet, 3, 0, 1, w("cover.number", number=number, suffix=suffix), formats.center)
        self._merged(sheet, 3, 2, 3, self.signature().place_date, formats.center_italic)
        sheet.set_row(5, 28)
        self._merged(sheet, 5, 0, 3, w("cover.title"), formats.center_title)
        sheet.set_row(6, 48)
        self._merged(sheet, 6, 0, 3, w("cover.subtitle"), formats.center_bold)
        sheet.set_row(8, 32)
        self._merged(
            sheet, 8, 0, 3, w("cover.addressee", province=meta.get("province", "")), formats.center_bold
        )
        row = 10
        lines = [
            (w("cover.from"), w("cover.from_value", district=district)),
            (w("meta.scope"), meta["scope_label"]),
            (w("meta.round"), meta.get("round_name") or "–"),
            (w("meta.period"), self.period_text(with_round=False)),
        ]
        approved = self.approved_line()
        if approved:
            lines.append((w("cover.approved_label"), approved))
        lines += [
            (w("meta.generated_at"), meta["generated_at"]),
            (w("meta.prepared_by"), meta.get("prepared_by") or "–"),
        ]
        for label, value in lines:
            sheet.write_string(row, 0, label, formats.key)
            sheet.merge_range(row, 1, row, 3, None, formats.value_text)
            if isinstance(value, str):
                sheet.set_row(row, wrapped_lines(value, 56) * LINE_POINTS + 2)
            write_value(book, sheet, row, 1, value)
            row += 1
        stock, events = self.key_figures()
        end = meta.get("date_to") or meta.get("today")
        for heading, figures in (
            (w("cover.figures_stock", day=w.day(end)), stock),
            (w("cover.figures_events", period=self.period_text(with_round=False)), events),
        ):
            row += 1
            self._merged(sheet, row, 0, 3, heading, formats.plain_bold)
            row += 1
            for label, value in figures:
                sheet.merge_range(row, 0, row, 2, None, formats.key)
                sheet.write_string(row, 0, label, formats.key)
                if isinstance(value, str):
                    book.write_text(sheet, row, 3, value, formats.value_right)
                else:
                    write_value(book, sheet, row, 3, value)
                row += 1
        row += 1
        self._merged(sheet, row, 0, 3, w("cover.contents"), formats.note)
        row += 2
        # Nơi nhận (left) beside the head of office's signature (right), as an official letter ends;
        # row by row, since the workbook is written in constant-memory mode.
        block = self.signature()
        left = [(w("cover.recipients"), formats.plain_bold)]
        left += [(line, formats.plain) for line in w("cover.recipients_lines").split("\n")]
        right = {0: (block.right_title, formats.center_bold), 1: (block.right_hint, formats.center_italic)}
        right[6] = (block.right_name, formats.center_bold)
        for offset in range(max(len(left), 7)):
            if offset < len(left):
                self._merged(sheet, row + offset, 0, 1, *left[offset])
            if offset in right and right[offset][0]:
                self._merged(sheet, row + offset, 2, 3, *right[offset])

    def _merged(self, sheet: Any, row: int, first: int, last: int, text: str, fmt: Any) -> None:
        sheet.merge_range(row, first, row, last, None, fmt)
        self.book.write_text(sheet, row, first, text, fmt)

    def meta_sheet(self, sheet: Any) -> None:
        w, meta = self.words, self.meta
        pairs = KeyValueSheet(self.book, sheet)
        pairs.heading(w("title.meta"))
        pairs.pair(w("meta.report"), w(f"kind.{self.kind}"))
        pairs.pair(w("meta.district"), meta.get("district_name", ""))
        pairs.pair(w("meta.scope"), meta["scope_label"])
        pairs.pair(w("meta.round"), meta.get("round_name") or "–")
        pairs.pair(w("meta.date_from"), meta.get("date_from") or "–")
        pairs.pair(w("meta.date_to"), meta.get("date_to") or "–")
        pairs.pair(w("meta.generated_at"), meta["generated_at"])
        pairs.pair(w("meta.prepared_by"), meta.get("prepared_by") or w("meta.command_line"))
        pairs.pair(w("meta.language"), w("meta.language_name"))
        pairs.pair(w("meta.timezone"), str(self.tz))
        for key, count in self.rows.items():
            pairs.pair(w("meta.rows", sheet=w(f"sheet.{key}")), count)
        pairs.row += 1
        pairs.heading(w("meta.rules"))
        for rule in RULES:
            text = w(f"rule.{rule}.text")
            # Wrapped rule texts need their own height: rows are not measured when the file opens.
            sheet.set_row(pairs.row, wrapped_lines(text, pairs.widths[1]) * LINE_POINTS + 2)
            pairs.pair(w(f"rule.{rule}.name"), text)
        sheet.set_paper(9)
        sheet.fit_to_pages(1, 0)
        sheet.set_footer(f"&C{w('page_footer')}")


RULES = (
    "period", "stock", "events", "scope", "loan", "deadline", "late", "coverage", "distinct", "totals", "text"
)  # fmt: skip


def scope_label(meta: Mapping[str, Any], words: Words) -> str:
    """ "Toàn Huyện Nhà Bè", "Cấp Tiểu học – Huyện Nhà Bè", "Trường TH Lê Văn Lương (79785001)"."""
    kind = meta.get("scope_kind", "district")
    if kind == "school":
        return words("scope.school", school=meta.get("school_name", ""), code=meta.get("school_code", ""))
    if kind == "level":
        level = words.labels("level_scope", LEVELS).get(meta.get("scope_level"), "")
        return words("scope.level", level=level, district=meta.get("district_name", ""))
    return words("scope.district", district=meta.get("district_name", ""))


def _with_coverage(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **record,
        "coverage1": ratio(record.get("dose1"), record.get("enrolled")),
        "coverage2": ratio(record.get("dose2"), record.get("enrolled")),
    }


def _with_on_time(record: Mapping[str, Any]) -> dict[str, Any]:
    total = record.get("records_total") or 0
    late = record.get("records_late") or 0
    return {**record, "on_time_rate": ratio(total - late, total)}


def _total(rollup: Mapping[str, Any] | None, **match: Any) -> Mapping[str, Any]:
    """The whole-scope total row of a rollup (for devices: the row of all sources)."""
    if not rollup:
        return {}
    records: list[Mapping[str, Any]] = rollup.get("total", [])
    for record in records:
        if all(record.get(k) == v for k, v in match.items()):
            return record
    return {}


def write_report(
    kind: str,
    data: Mapping[str, Any],
    streams: StreamSource,
    target: str | IO[bytes],
    *,
    tmpdir: str | None = None,
) -> dict[str, int]:
    """Write report `kind` to `target` (a path or a binary file); returns data rows per sheet key.
    `data` holds "meta" and the small tables; `streams` the long lists."""
    writer = ReportWriter(kind, data["meta"], target, tmpdir=tmpdir)
    writer.open()
    writer.write_streams(streams)
    return writer.write_summaries(data)


# --- the one-line summary -------------------------------------------------------------------------


def summary_line(kind: str, data: Mapping[str, Any], w: Words) -> str:
    """The line the bot sends with the file: «32 trường, 18.402 học sinh, …»."""
    n = w.number
    needs = _total(data.get("needs"))
    devices = _total(data.get("devices"), source=None)
    vaccination = _total(data.get("vaccination"))
    timeliness = _total(data.get("timeliness"))
    issues = [i for i in data.get("issues", []) if i["area"] in ISSUE_AREAS[kind]]
    common = {"schools": n(needs.get("schools")), "students": n(needs.get("students"))}
    if kind == NEEDS:
        return w(
            "summary.needs",
            **common,
            device=n(needs.get("device_total")),
            program=n(needs.get("device_program")),
            connectivity=n(needs.get("connectivity_total")),
            issues=n(len(issues)),
        )
    if kind == DEVICES:
        return w(
            "summary.devices",
            schools=n(devices.get("schools")),
            batches=n(devices.get("batches")),
            received=n(devices.get("received")),
            given=n(devices.get("given")),
            on_loan=n(devices.get("on_loan")),
            left=n(devices.get("left")),
            issues=n(len(issues)),
        )
    if kind == VACCINATION:
        return w(
            "summary.vaccination",
            schools=n(vaccination.get("schools")),
            students=n(vaccination.get("enrolled")),
            dose1=n(vaccination.get("dose1")),
            dose2=n(vaccination.get("dose2")),
            coverage=w.percent(ratio(vaccination.get("dose1"), vaccination.get("enrolled"))),
        )
    if kind == TIMELINESS:
        total = timeliness.get("records_total") or 0
        late = timeliness.get("records_late") or 0
        return w(
            "summary.timeliness",
            schools=n(timeliness.get("schools")),
            records=n(total),
            late=n(late),
            on_time=w.percent(ratio(total - late, total)),
        )
    return w(
        "summary.district",
        **common,
        device=n(needs.get("device_total")),
        given=n(devices.get("given")),
        on_loan=n(devices.get("on_loan")),
        coverage=w.percent(ratio(vaccination.get("dose1"), vaccination.get("enrolled"))),
        late=n(timeliness.get("records_late")),
        issues=n(len(issues)),
    )


def filename(kind: str, scope_token: str, generated_at: datetime, words: Words) -> str:
    """An ASCII file name: bao-cao-thiet-bi_NB_20211115-0900.xlsx."""
    stem = words(f"filename.{kind}")
    safe_scope = "".join(ch if ch.isalnum() else "-" for ch in scope_token).strip("-")
    return f"{stem}_{safe_scope}_{generated_at:%Y%m%d-%H%M}.xlsx"
