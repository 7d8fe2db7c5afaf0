"""Bulk entry by Excel: the kinds of file, their columns, how a cell becomes a value, and the verdict.

A column is matched by its header's `fold_key` (case, diacritics, spaces, line breaks, NFC/NFD and
punctuation ignored; a part in parentheses and the required mark `*` dropped), against the aliases
here: the ministry's own student lists, older template versions, and the catalogue's header of the
column in every language (a test keeps them in step). Aliases are folded keys, not user-facing text.

Cell values are turned into what the domain schemas expect (`StudentIn`, `NeedIn`, `DoseIn`,
`BatchIn`, `HandoverIn`), which then apply the same rules as the chat flows.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, TypeVar

from storage.enums import (
    DeviceCondition,
    DeviceType,
    DonationSource,
    DonorKind,
    DosePlace,
    HandoverKind,
    PriorityGroup,
    SchoolLevel,
)
from storage.errors import DomainError
from storage.rules.dates import show_date
from storage.schemas.devices import (
    CONDITION_WORDS,
    DEVICE_TYPE_WORDS,
    DONOR_KIND_WORDS,
    HANDOVER_KIND_WORDS,
    SOURCE_WORDS,
)
from storage.text import fold, fold_key, nfc

# Rows looked at when searching for the header row (the ministry's forms put titles above it).
HEADER_SCAN_ROWS = 30
# The first column of Vietnamese forms, "STT": a row whose STT cell says one of these is the
# template's example row and is skipped.
EXAMPLE_MARKS = frozenset({"vd", "vidu", "mau", "dongmau", "example", "sample"})
# The verdict column of the bot's own checked copy: a corrected copy sent back ignores it quietly.
VERDICT_HEADER_KEYS = frozenset({"ketquakiemtra", "checkresult"})
# A row whose first filled cell says one of these is a total line of a form, not data.
TOTAL_MARKS = frozenset({"tong", "tongcong", "cong", "total"})


class ImportKind(enum.StrEnum):
    STUDENTS = "students"
    NEEDS = "needs"
    BATCHES = "batches"
    HANDOVERS = "handovers"
    DOSES = "doses"


class Outcome(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


class ColumnType(enum.StrEnum):
    TEXT = "text"
    CODE = "code"  # a ministry code: kept as text ("0123" stays "0123")
    NAME = "name"
    DATE = "date"
    INT = "int"
    CODED = "coded"  # one of a list (a drop-down in the template)
    YES_NO = "yes_no"


class CodeList(enum.StrEnum):
    """Lists of codes the templates offer as drop-downs (labels: `excel.codes.<list>.<value>`)."""

    GENDER = "gender"
    GRADE = "grade"
    PRIORITY_GROUP = "priority_group"
    YES_NO = "yes_no"
    SOURCE = "source"
    DONOR_KIND = "donor_kind"
    DEVICE_TYPE = "device_type"
    CONDITION = "condition"
    HANDOVER_KIND = "handover_kind"
    PLACE = "place"
    PRODUCT = "product"  # from the vaccine_product table
    BATCH = "batch"  # the school's batches, when the template is made for one school


@dataclass(frozen=True)
class ColumnSpec:
    field: str  # names the catalogue texts `excel.column.<field>.*`
    type: ColumnType
    required: bool = False
    aliases: tuple[str, ...] = ()  # fold_key forms
    codes: CodeList | None = None
    width: int = 16
    # Shown to help people find the row (name, class) and checked against the student list.
    informative: bool = False


@dataclass(frozen=True)
class KindSpec:
    kind: ImportKind
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...]  # the natural key's fields (a second row with the same key is refused)
    # Columns that identify the kind (all must be present): the general student list comes last.
    signature: tuple[str, ...]

    def column(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.field == name:
                return column
        raise KeyError(name)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.field for c in self.columns if c.required)


ROW_NUMBER = ColumnSpec("row_number", ColumnType.TEXT, aliases=("stt", "sothutu", "tt", "no"), width=6)
SCHOOL_CODE = ColumnSpec(
    "school_code",
    ColumnType.CODE,
    aliases=("matruong", "madonvi", "matruonghoc", "schoolcode", "school"),
    width=12,
)
STUDENT_CODE = ColumnSpec(
    "student_code",
    ColumnType.CODE,
    required=True,
    aliases=("mahocsinh", "mahs", "mahsinh", "mahocsinhcsdl", "studentcode", "studentid"),
    width=16,
)
FULL_NAME = ColumnSpec(
    "full_name",
    ColumnType.NAME,
    required=True,
    aliases=("hovaten", "hoten", "hotenhocsinh", "hovatenhocsinh", "tenhocsinh", "fullname", "name"),
    width=28,
)
FULL_NAME_INFO = replace(FULL_NAME, required=False, informative=True)
DATE_OF_BIRTH = ColumnSpec(
    "date_of_birth",
    ColumnType.DATE,
    required=True,
    aliases=(
        "ngaysinh",
        "ngaythangnamsinh",
        "sinhngay",
        "ngaysinhhocsinh",
        "dateofbirth",
        "birthdate",
        "dob",
    ),
    width=14,
)
CLASS_NAME = ColumnSpec(
    "class_name", ColumnType.TEXT, required=True, aliases=("lop", "tenlop", "lophoc", "class"), width=10
)
CLASS_INFO = replace(CLASS_NAME, required=False, informative=True)
NOTE = ColumnSpec("note", ColumnType.TEXT, aliases=("ghichu", "note"), width=30)

SPECS: dict[ImportKind, KindSpec] = {
    ImportKind.STUDENTS: KindSpec(
        ImportKind.STUDENTS,
        (
            ROW_NUMBER,
            SCHOOL_CODE,
            STUDENT_CODE,
            FULL_NAME,
            DATE_OF_BIRTH,
            ColumnSpec(
                "gender",
                ColumnType.CODED,
                aliases=("gioitinh", "gt", "gender", "sex"),
                codes=CodeList.GENDER,
                width=10,
            ),
            CLASS_NAME,
            ColumnSpec(
                "grade", ColumnType.INT, aliases=("khoi", "khoilop", "grade"), codes=CodeList.GRADE, width=8
            ),
        ),
        key=("student_code",),
        signature=("student_code", "full_name", "date_of_birth", "class_name"),
    ),
    ImportKind.NEEDS: KindSpec(
        ImportKind.NEEDS,
        (
            ROW_NUMBER,
            SCHOOL_CODE,
            STUDENT_CODE,
            FULL_NAME_INFO,
            CLASS_INFO,
            ColumnSpec(
                "category",
                ColumnType.CODED,
                required=True,
                aliases=("nhomuutien", "doituong", "doituonguutien", "hoancanh", "prioritygroup", "category"),
                codes=CodeList.PRIORITY_GROUP,
                width=30,
            ),
            ColumnSpec(
                "needs_device",
                ColumnType.YES_NO,
                aliases=("canmaytinh", "nhucaumaytinh", "maytinh", "needsacomputer", "needsdevice"),
                codes=CodeList.YES_NO,
                width=14,
            ),
            ColumnSpec(
                "needs_connectivity",
                ColumnType.YES_NO,
                aliases=(
                    "canketnoiinternet",
                    "nhucauketnoiinternet",  # the CSDL upload layout (storage/data/csdl/needs.yaml)
                    "canketnoi",
                    "nhucauketnoi",
                    "internet",
                    "needsinternet",
                    "needsconnectivity",
                ),
                codes=CodeList.YES_NO,
                width=14,
            ),
            NOTE,
        ),
        key=("student_code",),
        signature=("student_code", "category"),
    ),
    ImportKind.BATCHES: KindSpec(
        ImportKind.BATCHES,
        (
            ROW_NUMBER,
            SCHOOL_CODE,
            ColumnSpec(
                "source",
                ColumnType.CODED,
                required=True,
                aliases=("nguon", "nguontaitro", "nguonthietbi", "source"),
                codes=CodeList.SOURCE,
                width=30,
            ),
            ColumnSpec(
                "donor_name",
                ColumnType.TEXT,
                aliases=("nhataitro", "tennhataitro", "donvitaitro", "donor", "donorname"),
                width=28,
            ),
            ColumnSpec(
                "donor_kind",
                ColumnType.CODED,
                aliases=("loainhataitro", "donorkind"),
                codes=CodeList.DONOR_KIND,
                width=16,
            ),
            ColumnSpec(
                "donor_contact",
                ColumnType.TEXT,
                aliases=("lienhe", "lienhenhataitro", "thongtinlienhe", "donorcontact", "contact"),
                width=22,
            ),
            ColumnSpec(
                "received_on",
                ColumnType.DATE,
                required=True,
                aliases=("ngaynhan", "ngaytiepnhan", "datereceived", "receivedon"),
                width=14,
            ),
            ColumnSpec(
                "device_type",
                ColumnType.CODED,
                required=True,
                aliases=("loaithietbi", "thietbi", "devicetype"),
                codes=CodeList.DEVICE_TYPE,
                width=22,
            ),
            ColumnSpec("quantity", ColumnType.INT, required=True, aliases=("soluong", "quantity"), width=10),
            ColumnSpec(
                "make_model",
                ColumnType.TEXT,
                aliases=("hangmodel", "hang", "model", "nhanhieu", "makeandmodel", "makemodel"),
                width=22,
            ),
            ColumnSpec(
                "condition",
                ColumnType.CODED,
                aliases=("tinhtrang", "condition"),
                codes=CodeList.CONDITION,
                width=16,
            ),
            ColumnSpec(
                "specs",
                ColumnType.TEXT,
                aliases=("cauhinh", "thongsokythuat", "specifications", "specs"),
                width=26,
            ),
            NOTE,
        ),
        key=("school_code", "donor_name", "received_on", "device_type"),
        signature=("source", "received_on", "device_type", "quantity"),
    ),
    ImportKind.HANDOVERS: KindSpec(
        ImportKind.HANDOVERS,
        (
            ROW_NUMBER,
            SCHOOL_CODE,
            ColumnSpec(
                "batch",
                ColumnType.TEXT,
                required=True,
                # "madottiepnhan", "madottaitro": the CSDL upload layouts (storage/data/csdl/*.yaml)
                aliases=(
                    "lo",
                    "solo",
                    "malo",
                    "lothietbi",
                    "madottiepnhan",
                    "madottaitro",
                    "devicebatch",
                    "batch",
                ),
                codes=CodeList.BATCH,
                width=40,
            ),
            STUDENT_CODE,
            FULL_NAME_INFO,
            CLASS_INFO,
            ColumnSpec(
                "handover_kind",
                ColumnType.CODED,
                required=True,
                aliases=("hinhthuc", "hinhthucbangiao", "tanghaymuon", "giftorloan", "handoverkind"),
                codes=CodeList.HANDOVER_KIND,
                width=18,
            ),
            ColumnSpec(
                "handed_on",
                ColumnType.DATE,
                required=True,
                aliases=("ngaybangiao", "ngaynhanmay", "datehandedover", "handedon"),
                width=14,
            ),
            NOTE,
        ),
        key=("batch", "student_code"),
        signature=("batch", "student_code", "handover_kind", "handed_on"),
    ),
    ImportKind.DOSES: KindSpec(
        ImportKind.DOSES,
        (
            ROW_NUMBER,
            SCHOOL_CODE,
            STUDENT_CODE,
            FULL_NAME_INFO,
            CLASS_INFO,
            ColumnSpec(
                "dose_number",
                ColumnType.INT,
                required=True,
                aliases=("muithu", "somui", "mui", "muitiem", "muitiemso", "dosenumber", "dose"),
                width=8,
            ),
            ColumnSpec(
                "given_on",
                ColumnType.DATE,
                required=True,
                aliases=("ngaytiem", "ngaytiemchung", "dategiven", "givenon"),
                width=14,
            ),
            ColumnSpec(
                "product",
                ColumnType.CODED,
                required=True,
                aliases=("loaivacxin", "vacxin", "tenvacxin", "loaivaccine", "vaccine", "product"),
                codes=CodeList.PRODUCT,
                width=28,
            ),
            ColumnSpec(
                "product_other_name",
                ColumnType.TEXT,
                aliases=("tenvacxinkhac", "vacxinkhac", "othervaccinename", "othervaccine"),
                width=20,
            ),
            ColumnSpec(
                "place",
                ColumnType.CODED,
                required=True,
                aliases=("noitiem", "diadiemtiem", "place"),
                codes=CodeList.PLACE,
                width=18,
            ),
        ),
        key=("student_code", "dose_number"),
        signature=("student_code", "dose_number", "given_on", "product", "place"),
    ),
}
# Recognition order: the specific kinds first; the plain student list matches files of every kind.
RECOGNITION_ORDER = (
    ImportKind.DOSES,
    ImportKind.HANDOVERS,
    ImportKind.BATCHES,
    ImportKind.NEEDS,
    ImportKind.STUDENTS,
)

# Where a rule's refusal belongs when it is not raised by a single field's validator.
ERROR_FIELDS: dict[str, str] = {
    "students.class_grade_mismatch": "class_name",
    "students.grade_not_in_school": "class_name",
    "students.grade_invalid": "class_name",
    "students.age_grade_mismatch": "date_of_birth",
    "students.birth_year_out_of_range": "date_of_birth",
    "students.code_in_other_school": "student_code",
    "students.code_repeated": "student_code",
    "needs.nothing_needed": "needs_device",
    "needs.category_required": "category",
    "devices.donor_required": "donor_name",
    "devices.donor_not_found": "donor_name",
    "devices.quantity_below_handed": "quantity",
    "devices.handed_before_received": "handed_on",
    "devices.batch_exhausted": "batch",
    "devices.second_program_device": "student_code",
    "vaccines.other_needs_name": "product_other_name",
    "vaccines.unknown_product": "product",
    "vaccines.dose_number_range": "dose_number",
    "vaccines.duplicate_dose": "dose_number",
    "vaccines.missing_earlier": "dose_number",
    "vaccines.future": "given_on",
    "vaccines.too_early": "given_on",
    "vaccines.same_day": "given_on",
    "vaccines.before_birth": "given_on",
    "vaccines.too_young": "given_on",
    "vaccines.before_previous": "given_on",
    "vaccines.after_next": "given_on",
    "vaccines.short_interval": "given_on",
}


# --- the words of each list -----------------------------------------------------------------------


def _keys(words: dict[str, Any]) -> dict[str, Any]:
    return {fold_key(word): value for word, value in words.items()}


PRIORITY_WORDS: dict[str, PriorityGroup] = {
    "hongheo": PriorityGroup.POOR,
    "ngheo": PriorityGroup.POOR,
    "hocanngheo": PriorityGroup.NEAR_POOR,
    "canngheo": PriorityGroup.NEAR_POOR,
    "chametuvongdocovid19": PriorityGroup.COVID_ORPHAN,
    "chahoacmetuvongdocovid19": PriorityGroup.COVID_ORPHAN,
    "chamemattdocovid19": PriorityGroup.COVID_ORPHAN,
    "mocoidocovid19": PriorityGroup.COVID_ORPHAN,
    "mocoidocovid": PriorityGroup.COVID_ORPHAN,
    "covid19": PriorityGroup.COVID_ORPHAN,
    "khokhankhac": PriorityGroup.OTHER_HARDSHIP,
    "khokhan": PriorityGroup.OTHER_HARDSHIP,
    "hoancanhkhokhan": PriorityGroup.OTHER_HARDSHIP,
    "poorhousehold": PriorityGroup.POOR,
    "nearpoorhousehold": PriorityGroup.NEAR_POOR,
    "nearpoor": PriorityGroup.NEAR_POOR,
    "parentdiedofcovid19": PriorityGroup.COVID_ORPHAN,
    "covid19orphan": PriorityGroup.COVID_ORPHAN,
}
YES_WORDS = frozenset({"co", "c", "x", "1", "yes", "y", "true", "dung", "can"})
NO_WORDS = frozenset({"khong", "k", "ko", "0", "no", "n", "false", "sai", ""})
PLACE_WORDS: dict[str, DosePlace] = {
    "taitruong": DosePlace.SCHOOL,
    "truong": DosePlace.SCHOOL,
    "truonghoc": DosePlace.SCHOOL,
    "taidiaphuong": DosePlace.COMMUNITY,
    "diaphuong": DosePlace.COMMUNITY,
    "congdong": DosePlace.COMMUNITY,
    "taicongdong": DosePlace.COMMUNITY,
    "tramyte": DosePlace.COMMUNITY,
    "taitramyte": DosePlace.COMMUNITY,
    "noikhac": DosePlace.ELSEWHERE,
    "khac": DosePlace.ELSEWHERE,
    "atschool": DosePlace.SCHOOL,
    "inthecommunity": DosePlace.COMMUNITY,
}
# The devices schema's own words, as folded keys, and the template's longer labels.
SOURCE_KEYS: dict[str, DonationSource] = {
    **_keys(SOURCE_WORDS),
    "chuongtrinhsongvamaytinhchoem": DonationSource.PROGRAM,
    "chuongtrinhsongvamaytinhchoem4831": DonationSource.PROGRAM,
    "songvamaytinhchoem4831": DonationSource.PROGRAM,
    "nguonkhac4832": DonationSource.OTHER,
    "programme": DonationSource.PROGRAM,
    "wavesandcomputersforchildrenprogramme": DonationSource.PROGRAM,
    "wavesandcomputersforchildrenprogramme4831": DonationSource.PROGRAM,
    "othersource": DonationSource.OTHER,
    "othersource4832": DonationSource.OTHER,
}
DONOR_KIND_KEYS: dict[str, DonorKind] = {
    **_keys(DONOR_KIND_WORDS),
    "organization": DonorKind.ORGANISATION,
    "agencyorunit": DonorKind.AGENCY,
    "unit": DonorKind.AGENCY,
}
DEVICE_TYPE_KEYS: dict[str, DeviceType] = {
    **_keys(DEVICE_TYPE_WORDS),
    "desktopcomputer": DeviceType.DESKTOP,
    "laptopcomputer": DeviceType.LAPTOP,
    "mobilephone": DeviceType.PHONE,
}
CONDITION_KEYS: dict[str, DeviceCondition] = _keys(CONDITION_WORDS)
HANDOVER_KIND_KEYS: dict[str, HandoverKind] = {
    **_keys(HANDOVER_KIND_WORDS),
    "chomuontamdenkhihethoctructuyen": HandoverKind.LOAN,
    "lent": HandoverKind.LOAN,
}


# --- cells to values ------------------------------------------------------------------------------


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def cell_text(value: Any) -> str:
    """A cell as text: whole numbers without ".0", dates as dd/mm/yyyy, text NFC and trimmed."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return show_date(value)
    return nfc(str(value))


def cell_date(value: Any) -> date | str:
    """A date cell as a date; text is handed to the schema's date parser (dd/mm/yyyy and the like)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A bare number: a date typed into a cell formatted as a number (or a serial): not a date.
        raise DomainError("date.invalid", value=cell_text(value))
    return cell_text(value)


def cell_int(value: Any) -> int:
    if isinstance(value, bool):
        raise DomainError("excel.cell.not_a_number", value=cell_text(value))
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise DomainError("excel.cell.not_a_whole_number", value=cell_text(value))
    text = re.sub(r"[\s.,]", "", cell_text(value))
    if not re.fullmatch(r"[+-]?\d+", text):
        raise DomainError("excel.cell.not_a_number", value=cell_text(value))
    return int(text)


def cell_yes_no(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    key = fold_key(cell_text(value))
    if key in YES_WORDS:
        return True
    if key in NO_WORDS:
        return False
    raise DomainError("excel.cell.yes_no_invalid", value=cell_text(value))


E = TypeVar("E", bound=enum.Enum)


def _coded(value: Any, words: Mapping[str, E], members: Iterable[E], error_code: str) -> E:
    text = cell_text(value)
    key = fold_key(text)
    for member in members:
        if key in (fold_key(str(member.value)), fold_key(member.name)):
            return member
    found = words.get(key)
    if found is None:
        raise DomainError(error_code, value=text)
    return found


def parse_priority(value: Any) -> PriorityGroup:
    groups = [g for g in PriorityGroup if g is not PriorityGroup.NONE]
    return _coded(value, PRIORITY_WORDS, groups, "excel.cell.priority_invalid")


def parse_place(value: Any) -> DosePlace:
    return _coded(value, PLACE_WORDS, DosePlace, "excel.cell.place_invalid")


def parse_source(value: Any) -> DonationSource:
    return _coded(value, SOURCE_KEYS, DonationSource, "devices.source_invalid")


def parse_donor_kind(value: Any) -> DonorKind:
    return _coded(value, DONOR_KIND_KEYS, DonorKind, "devices.donor_kind_invalid")


def parse_device_type(value: Any) -> DeviceType:
    return _coded(value, DEVICE_TYPE_KEYS, DeviceType, "devices.device_type_invalid")


def parse_condition(value: Any) -> DeviceCondition:
    return _coded(value, CONDITION_KEYS, DeviceCondition, "devices.condition_invalid")


def parse_handover_kind(value: Any) -> HandoverKind:
    return _coded(value, HANDOVER_KIND_KEYS, HandoverKind, "devices.handover_kind_invalid")


def parse_batch_ref(value: Any) -> int:
    """`12`, `Lô 12`, `Lô #12 · 20/10/2021 · Máy tính xách tay`: the batch's number in its school."""
    text = cell_text(value)
    match = re.match(r"^\D*?(\d+)", text)
    if match is None:
        raise DomainError("excel.batch.invalid", value=text)
    return int(match.group(1))


def product_keys(code: str, name: str) -> set[str]:
    """What a product cell may say: its code, its name, the name without the part in parentheses,
    and each side of a bilingual name ("Khác / Other")."""
    keys = {fold_key(code), fold_key(name), fold_key(re.sub(r"\(.*?\)", "", name))}
    keys |= {fold_key(part) for part in name.split("/")}
    return {key for key in keys if key}


def header_key(text: str) -> str:
    """A header cell's matching key: without a part in parentheses, marks and punctuation."""
    return fold_key(re.sub(r"\(.*?\)|\[.*?\]", " ", text))


def is_example_mark(value: Any) -> bool:
    return isinstance(value, str) and fold_key(value) in EXAMPLE_MARKS


def is_total_mark(value: Any) -> bool:
    return isinstance(value, str) and fold_key(value) in TOTAL_MARKS


def same_name(a: str, b: str) -> bool:
    return fold(a) == fold(b)


# --- scope and the verdict ------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportScope:
    """Whose rows a file may hold. School staff (or the CLI's `--school`): one school, whose rows need
    no school column. District officers: the schools they see, and every row names its school."""

    school_id: int | None = None
    school_code: str | None = None
    district_id: int | None = None  # officers: their district (None with the CLI: any district)
    levels: frozenset[SchoolLevel] | None = None  # specialists: the levels they review

    @property
    def single_school(self) -> bool:
        return self.school_id is not None


# Columns a sheet may span: the widest real list (the ministry's export) has well under 100; a sheet
# spanning thousands of columns is a grid calamine would allocate cell by cell (32 bytes each).
MAX_COLUMNS = 200
# The address space of the process that reads an upload (exports.upload_worker), in MiB.
WORKER_MAX_MB = 1024


@dataclass(frozen=True)
class ReadLimits:
    max_bytes: int
    max_rows: int  # data rows; a sheet may span this many plus the header and blank-row slack
    max_columns: int = MAX_COLUMNS
    worker_max_mb: int = WORKER_MAX_MB


@dataclass
class CellIssue:
    """A problem of one cell (`field`) or of the row (`field=None`); `code` names `errors.<code>`."""

    field: str | None
    code: str
    # dataclasses.field by its full name: `field` in this class body is the attribute above.
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    warning: bool = False  # the row is still imported; the person is told


@dataclass
class RowResult:
    row: int  # the row's number in the sheet, as Excel shows it (1-based)
    outcome: Outcome = Outcome.REJECTED
    issues: list[CellIssue] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        return self.outcome is Outcome.REJECTED

    @property
    def warned(self) -> bool:
        return not self.rejected and any(i.warning for i in self.issues)


@dataclass
class ImportCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    warned: int = 0

    @property
    def to_write(self) -> int:
        """Rows the import would write: «Nhập N dòng hợp lệ»."""
        return self.created + self.updated

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + self.rejected


@dataclass
class ImportCheck:
    """What importing a file does (or did): one result per data row, in sheet order."""

    kind: ImportKind
    filename: str
    sheet: str
    header_row: int  # 1-based
    columns: dict[str, int]  # field -> 0-based column index in the sheet
    rows: list[RowResult]
    ignored_headers: list[str] = field(default_factory=list)
    pending_id: int | None = None  # the stored upload awaiting confirmation (chat)
    written: bool = False  # True after the rows were saved
    table: Any = None  # exports.reader.Table: the values read, for the annotated copy

    @property
    def counts(self) -> ImportCounts:
        counts = ImportCounts()
        for row in self.rows:
            if row.outcome is Outcome.CREATED:
                counts.created += 1
            elif row.outcome is Outcome.UPDATED:
                counts.updated += 1
            elif row.outcome is Outcome.UNCHANGED:
                counts.unchanged += 1
            else:
                counts.rejected += 1
            if row.warned:
                counts.warned += 1
        return counts

    @property
    def needs_annotated_copy(self) -> bool:
        return any(row.rejected or row.warned for row in self.rows)

    def as_dict(self) -> dict[str, Any]:
        counts = self.counts
        return {
            "kind": self.kind.value,
            "filename": self.filename,
            "sheet": self.sheet,
            "header_row": self.header_row,
            "columns": dict(self.columns),
            "ignored_headers": list(self.ignored_headers),
            "written": self.written,
            "counts": {
                "created": counts.created,
                "updated": counts.updated,
                "unchanged": counts.unchanged,
                "rejected": counts.rejected,
                "warned": counts.warned,
            },
        }


@dataclass(frozen=True)
class BatchChoice:
    """A batch offered in the handover template's drop-down."""

    id: int
    number: int  # the school's own batch number: what the template shows and the import reads
    received_on: date
    device_type: DeviceType
    donor_name: str | None
    left: int


@dataclass(frozen=True)
class TemplateFile:
    """A template workbook as sent: its bytes and the row where the person starts filling it in."""

    content: bytes
    first_row: int


@dataclass
class TemplateContext:
    """What a template shows beyond the fixed words: the person's school, the products, the batches."""

    kind: ImportKind
    with_school_column: bool
    school_code: str | None = None
    school_name: str | None = None
    products: list[str] = field(default_factory=list)  # names, in list order
    batches: list[BatchChoice] = field(default_factory=list)  # the school's batches with devices left
