"""The sector database (CSDL) upload files: menus, record fields, and the layouts (data, not code).

The CSDL's "Cập nhật từ Excel" templates change while the ministry finishes the system, so each menu's
layout — sheet names, title rows, the header row, column order, header texts and how each value is
spelt — is a YAML file (`storage/data/csdl/<menu>.yaml`), validated here at load; an admin replaces it
without a code change (`schoolbot csdl layout import`). The records' own fields are fixed here: what a
layout may put in a column, and what the "already uploaded" fingerprint covers.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from storage.enums import (
    CsdlRecordKind,
    DeviceCondition,
    DeviceType,
    DonationSource,
    DonorKind,
    DosePlace,
    Gender,
    HandoverKind,
    PriorityGroup,
)
from storage.errors import DomainError
from storage.schemas.yaml_safe import load_no_aliases
from storage.text import fold_key

LAYOUT_DIR = Path(__file__).resolve().parent.parent / "data" / "csdl"
# A layout is a small text file; anything bigger is not one.
MAX_LAYOUT_BYTES = 200_000
SHEET_NAME_MAX = 31


class CsdlMenu(enum.StrEnum):
    """The CSDL menus the directive names, one upload file each."""

    NEEDS = "needs"  # 4.8.1 Cập nhật nhu cầu cần hỗ trợ
    PROGRAM_HANDOVERS = "program_handovers"  # 4.8.3.1 devices allocated by the programme: handovers
    OTHER_DONATIONS = "other_donations"  # 4.8.3.2 other donors: donor, batch, devices, handovers
    DOSES = "doses"  # 4.9.1 Nhập hồ sơ tiêm vắc-xin


MENU_CODES: dict[CsdlMenu, str] = {
    CsdlMenu.NEEDS: "4.8.1",
    CsdlMenu.PROGRAM_HANDOVERS: "4.8.3.1",
    CsdlMenu.OTHER_DONATIONS: "4.8.3.2",
    CsdlMenu.DOSES: "4.9.1",
}
# The records of each menu's file, one sheet each, in this order.
MENU_RECORDS: dict[CsdlMenu, tuple[CsdlRecordKind, ...]] = {
    CsdlMenu.NEEDS: (CsdlRecordKind.NEED,),
    CsdlMenu.PROGRAM_HANDOVERS: (CsdlRecordKind.HANDOVER,),
    CsdlMenu.OTHER_DONATIONS: (CsdlRecordKind.BATCH, CsdlRecordKind.HANDOVER),
    CsdlMenu.DOSES: (CsdlRecordKind.DOSE,),
}


class FieldType(enum.StrEnum):
    TEXT = "text"
    INT = "int"
    DATE = "date"
    CODED = "coded"  # written through the layout's `words` of its list
    ROW_NUMBER = "row_number"


# The lists a coded field is written through (`words:` in a layout), and the values each must spell.
WORD_LISTS: dict[str, tuple[str, ...]] = {
    "priority_group": tuple(g.value for g in PriorityGroup if g is not PriorityGroup.NONE),
    "yes_no": ("yes", "no"),
    "gender": tuple(g.value for g in Gender),
    "handover_kind": tuple(k.value for k in HandoverKind),
    "device_type": tuple(d.value for d in DeviceType),
    "condition": tuple(c.value for c in DeviceCondition),
    "source": tuple(s.value for s in DonationSource),
    "donor_kind": tuple(k.value for k in DonorKind),
    "place": tuple(p.value for p in DosePlace),
    "product": (),  # vaccine product codes; a code without a spelling is written as the product's name
}


@dataclass(frozen=True)
class FieldSpec:
    type: FieldType
    words: str | None = None  # the WORD_LISTS list of a coded field


_T, _I, _D, _N = FieldSpec(FieldType.TEXT), FieldSpec(FieldType.INT), FieldSpec(FieldType.DATE), None


def _coded(words: str) -> FieldSpec:
    return FieldSpec(FieldType.CODED, words)


_STUDENT: dict[str, FieldSpec] = {
    "student_code": _T,
    "full_name": _T,
    "date_of_birth": _D,
    "gender": _coded("gender"),
    "grade": _I,
    "class_name": _T,
}
_BATCH: dict[str, FieldSpec] = {
    "batch_id": _I,
    "source": _coded("source"),
    "donor_name": _T,
    "donor_kind": _coded("donor_kind"),
    "donor_contact": _T,
    "received_on": _D,
    "device_type": _coded("device_type"),
    "make_model": _T,
    "condition": _coded("condition"),
}
# What a layout's column may show, per record.
FIELDS: dict[CsdlRecordKind, dict[str, FieldSpec]] = {
    CsdlRecordKind.NEED: {
        "row_number": FieldSpec(FieldType.ROW_NUMBER),
        **_STUDENT,
        "category": _coded("priority_group"),
        "needs_device": _coded("yes_no"),
        "needs_connectivity": _coded("yes_no"),
        "note": _T,
        "opened_on": _D,
    },
    CsdlRecordKind.BATCH: {
        "row_number": FieldSpec(FieldType.ROW_NUMBER),
        **_BATCH,
        "quantity": _I,
        "specs": _T,
        "handed": _I,
        "note": _T,
    },
    CsdlRecordKind.HANDOVER: {
        "row_number": FieldSpec(FieldType.ROW_NUMBER),
        **_BATCH,
        **_STUDENT,
        "handover_kind": _coded("handover_kind"),
        "handed_on": _D,
        "returned_on": _D,
        "note": _T,
    },
    CsdlRecordKind.DOSE: {
        "row_number": FieldSpec(FieldType.ROW_NUMBER),
        **_STUDENT,
        "dose_number": _I,
        "given_on": _D,
        "product": _coded("product"),
        "product_other_name": _T,
        "place": _coded("place"),
    },
}
# What "already in the CSDL" covers: the record's own fields and the student it is about. A change of
# any of these after marking puts the record back to "to upload"; the layout's looks (headers,
# spellings, informative columns) do not.
FINGERPRINT_FIELDS: dict[CsdlRecordKind, tuple[str, ...]] = {
    CsdlRecordKind.NEED: ("student_code", "category", "needs_device", "needs_connectivity", "note"),
    CsdlRecordKind.BATCH: (
        "source",
        "donor_name",
        "donor_kind",
        "donor_contact",
        "received_on",
        "device_type",
        "quantity",
        "make_model",
        "condition",
        "specs",
        "note",
    ),
    CsdlRecordKind.HANDOVER: (
        "student_code",
        "batch_id",
        "handover_kind",
        "handed_on",
        "returned_on",
        "note",
    ),
    CsdlRecordKind.DOSE: (
        "student_code",
        "dose_number",
        "given_on",
        "product",
        "product_other_name",
        "place",
    ),
}


def canonical(value: Any) -> Any:
    """A field's value as JSON: enums as their value, dates ISO, everything else as it is."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def fingerprint_fields(kind: CsdlRecordKind, row: dict[str, Any]) -> dict[str, Any]:
    return {name: canonical(row.get(name)) for name in FINGERPRINT_FIELDS[kind]}


def fingerprint(fields: dict[str, Any]) -> str:
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [name for name in after if before.get(name) != after.get(name)]


# --- layouts --------------------------------------------------------------------------------------

_DATE_TOKENS = {"dd": "%d", "mm": "%m", "yyyy": "%Y", "yy": "%y"}
_DATE_FORMAT = re.compile(r"^(dd|mm|yyyy|yy)([./-])(dd|mm|yyyy|yy)\2(dd|mm|yyyy|yy)$")


def strftime_pattern(date_format: str) -> str:
    """`dd/mm/yyyy` -> `%d/%m/%Y` (the spellings a layout may give)."""
    match = _DATE_FORMAT.match(date_format)
    if match is None:
        raise ValueError(f"date_format {date_format!r}: use dd, mm and yyyy separated by / . or -")
    first, separator, second, third = match.groups()
    return separator.join(_DATE_TOKENS[token] for token in (first, second, third))


class LayoutColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    header: str = Field(min_length=1, max_length=200)
    # The record's field shown; None: a column the CSDL has and the bot has no value for (left blank).
    field: str | None = None
    width: float = Field(default=16, gt=0, le=100)
    # This column's spellings of its list, over the layout's `words`.
    words: dict[str, str] | None = None


class LayoutSheet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=SHEET_NAME_MAX)
    records: CsdlRecordKind
    title_rows: list[str] = Field(default_factory=list)  # rows 1, 2, … above the header
    header_row: int = Field(ge=1, le=30)  # 1-based, as Excel shows it
    columns: list[LayoutColumn] = Field(min_length=1, max_length=200)

    @field_validator("name")
    @classmethod
    def _sheet_name(cls, value: str) -> str:
        if any(char in value for char in "[]:*?/\\"):
            raise ValueError(f"sheet name {value!r}: Excel refuses [ ] : * ? / \\")
        return value

    @model_validator(mode="after")
    def _columns(self) -> LayoutSheet:
        if len(self.title_rows) >= self.header_row:
            raise ValueError(f"sheet {self.name!r}: {len(self.title_rows)} title rows above header_row")
        known = FIELDS[self.records]
        seen_fields: set[str] = set()
        seen_headers: set[str] = set()
        for column in self.columns:
            if column.field is not None:
                if column.field not in known:
                    raise ValueError(
                        f"sheet {self.name!r}: unknown field {column.field!r} for {self.records.value} "
                        f"(known: {', '.join(known)})"
                    )
                if column.field in seen_fields:
                    raise ValueError(f"sheet {self.name!r}: field {column.field!r} twice")
                seen_fields.add(column.field)
            key = fold_key(column.header)
            if key in seen_headers:
                raise ValueError(f"sheet {self.name!r}: header {column.header!r} twice")
            seen_headers.add(key)
        return self


class CsdlLayoutSpec(BaseModel):
    """One menu's upload file."""

    model_config = ConfigDict(extra="forbid")

    menu: CsdlMenu
    version: str = Field(default="", max_length=100)  # which CSDL template it follows
    title: str = Field(default="", max_length=300)
    date_format: str = "dd/mm/yyyy"
    words: dict[str, dict[str, str]] = Field(default_factory=dict)
    sheets: list[LayoutSheet] = Field(min_length=1)

    @field_validator("date_format")
    @classmethod
    def _date_format(cls, value: str) -> str:
        strftime_pattern(value)
        return value

    @model_validator(mode="after")
    def _complete(self) -> CsdlLayoutSpec:
        wanted = MENU_RECORDS[self.menu]
        got = tuple(sheet.records for sheet in self.sheets)
        if got != wanted:
            raise ValueError(
                f"menu {self.menu.value}: sheets must hold {', '.join(k.value for k in wanted)} in this order"
            )
        if len({sheet.name for sheet in self.sheets}) != len(self.sheets):
            raise ValueError("two sheets with the same name")
        for name, spellings in self.words.items():
            if name not in WORD_LISTS:
                raise ValueError(f"words: unknown list {name!r} (known: {', '.join(WORD_LISTS)})")
            unknown = set(spellings) - set(WORD_LISTS[name]) if WORD_LISTS[name] else set()
            if unknown:
                raise ValueError(f"words.{name}: unknown values {', '.join(sorted(unknown))}")
        # Every value a coded column can take has a spelling (products may fall back to their name).
        for sheet in self.sheets:
            for column in sheet.columns:
                spec = FIELDS[sheet.records].get(column.field or "")
                if spec is None or spec.type is not FieldType.CODED or not WORD_LISTS[spec.words or ""]:
                    continue
                assert spec.words is not None
                spelt = {**self.words.get(spec.words, {}), **(column.words or {})}
                missing = [v for v in WORD_LISTS[spec.words] if not spelt.get(v, "").strip()]
                if missing:
                    raise ValueError(
                        f"sheet {sheet.name!r}, column {column.header!r}: no spelling for "
                        f"{', '.join(missing)} (words.{spec.words})"
                    )
        return self

    @property
    def strftime(self) -> str:
        return strftime_pattern(self.date_format)

    def spelling(self, sheet: LayoutSheet, column: LayoutColumn, value: str) -> str | None:
        spec = FIELDS[sheet.records][column.field or ""]
        if column.words and value in column.words:
            return column.words[value]
        return self.words.get(spec.words or "", {}).get(value)


def parse_layout(text: str | bytes, menu: CsdlMenu | None = None) -> CsdlLayoutSpec:
    """A layout file, validated; `menu` (when given) must be the file's."""
    if isinstance(text, bytes):
        if len(text) > MAX_LAYOUT_BYTES:
            raise DomainError("csdl.layout_too_big", maximum=MAX_LAYOUT_BYTES)
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DomainError("csdl.layout_invalid", problem="not UTF-8 text") from exc
    try:
        data = load_no_aliases(text)  # a layout has no use for aliases
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise DomainError(
            "csdl.layout_invalid", problem=f"{where}{getattr(exc, 'problem', '') or exc}"
        ) from exc
    if not isinstance(data, dict):
        raise DomainError("csdl.layout_invalid", problem="the file is not a mapping (menu:, sheets:, …)")
    try:
        layout = CsdlLayoutSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise DomainError(
            "csdl.layout_invalid", problem=f"{where}: {first.get('msg', '')}".strip(": ")
        ) from exc
    if menu is not None and layout.menu is not menu:
        raise DomainError("csdl.layout_other_menu", menu=layout.menu.value, wanted=menu.value)
    return layout


def layout_yaml(layout: CsdlLayoutSpec) -> str:
    """A layout as YAML (what `layout show` prints and a template import stores)."""
    data = layout.model_dump(mode="json", exclude_defaults=False)
    for sheet in data["sheets"]:
        sheet["columns"] = [
            {k: v for k, v in column.items() if v is not None and not (k == "width" and v == 16)}
            for column in sheet["columns"]
        ]
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=110)


@cache
def shipped_layout_text(menu: CsdlMenu) -> str:
    return (LAYOUT_DIR / f"{menu.value}.yaml").read_text(encoding="utf-8")


def shipped_layout(menu: CsdlMenu) -> CsdlLayoutSpec:
    return parse_layout(shipped_layout_text(menu), menu)


# --- what services return -------------------------------------------------------------------------


class CsdlState(enum.StrEnum):
    NEW = "new"  # never marked as uploaded
    CHANGED = "changed"  # marked, then changed in the bot
    UPLOADED = "uploaded"  # marked, unchanged since


@dataclass
class CsdlRecord:
    """One record as an upload row: its values by field name, its state and, if changed, what."""

    kind: CsdlRecordKind
    id: int
    values: dict[str, Any]
    fields: dict[str, Any]  # the fingerprinted fields (canonical JSON values)
    state: CsdlState = CsdlState.NEW
    changed: list[str] = field(default_factory=list)
    marked_at: datetime | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.fields)

    @property
    def who(self) -> str:
        """A short name for lists: the student, or the donor and day of a batch."""
        name = self.values.get("full_name") or self.values.get("donor_name") or ""
        code = self.values.get("student_code")
        return f"{name} ({code})" if code else str(name)


@dataclass
class CsdlExportOut:
    id: int
    token: str
    menu: CsdlMenu
    school_id: int
    school_code: str
    school_name: str
    everything: bool  # every record, or only those not yet uploaded
    created_at: datetime
    sheets: list[tuple[CsdlRecordKind, list[CsdlRecord]]]

    @property
    def records(self) -> list[CsdlRecord]:
        return [record for _, records in self.sheets for record in records]

    @property
    def count(self) -> int:
        return len(self.records)

    def count_of(self, state: CsdlState) -> int:
        return sum(1 for record in self.records if record.state is state)


@dataclass
class MenuStatus:
    menu: CsdlMenu
    new: int = 0
    changed: int = 0
    uploaded: int = 0
    overdue: int = 0  # new or changed, in the bot for more than a day (the 1-day rule)

    @property
    def to_upload(self) -> int:
        return self.new + self.changed


@dataclass
class CsdlStatus:
    school_id: int
    school_code: str
    school_name: str
    menus: list[MenuStatus]
    last_marked_at: datetime | None = None

    @property
    def overdue(self) -> int:
        return sum(m.overdue for m in self.menus)


@dataclass
class MarkResult:
    export_id: int
    menu: CsdlMenu
    school_code: str
    school_name: str
    marked: int  # records marked now
    already: bool  # the file had been marked before (nothing new to do)
    marked_at: datetime
    marked_by: str = ""


@dataclass(frozen=True)
class SchoolRef:
    id: int
    code: str
    name: str


@dataclass
class OverdueSchool:
    """Records of a school not in the CSDL a day after they were entered (or changed) in the bot."""

    school_id: int
    count: int = 0
    names: list[str] = field(default_factory=list)  # the first few, for reminders
