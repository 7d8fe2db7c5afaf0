"""A realistic, deterministic demo district (`schoolbot demo-data`), for demos, the sandbox and benchmarks.

Same seed and sizes give exactly the same rows: one `random.Random` per concern, seeded from `--seed`,
and every timestamp derived from the scenario's dates (the directive's round, 15 Nov 2021), never from
the wall clock. Rows go in with bulk Core inserts, school by school, in one transaction.

The generator writes one audit row (for the district, with the seed and the counts), not one per
generated row: the rows are synthetic, and a hundred thousand audit rows would only slow demos down.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import (
    AuditAction,
    DeviceCondition,
    DeviceType,
    DonationSource,
    DonorKind,
    DosePlace,
    Gender,
    HandoverKind,
    PriorityGroup,
    Role,
    RoundStatus,
    SchoolLevel,
    SubmissionStatus,
    SubmissionTrack,
)
from storage.errors import Conflict, DomainError
from storage.models import (
    AuditLog,
    Base,
    District,
    DonationBatch,
    Donor,
    Handover,
    NeedHistory,
    NeedRecord,
    ReportingRound,
    RoundSubmission,
    School,
    Staff,
    Student,
    VaccineDose,
    VaccineProduct,
)
from storage.repositories import audit
from storage.rules import is_late_entry
from storage.schemas.demo import DemoAccountOut, DemoDataIn, DemoDataOut
from storage.services.base import ServiceBase
from storage.text import fold

# --- the scenario: directive No. 1128/GDĐT, school year 2021-2022 ----------------------------------

# The directive's deadlines are local times of Ho Chi Minh City, whatever the bot's own setting.
DIRECTIVE_TIMEZONE = "Asia/Ho_Chi_Minh"
PERIOD_START = date(2021, 9, 1)
PERIOD_END = date(2021, 11, 15)
# The data stands as on the morning the schools' deadline falls.
AS_OF_LOCAL = (PERIOD_END, time(8, 30))
# HCMC began vaccinating 12-17 year olds at schools on 27 Oct 2021.
SCHOOL_CAMPAIGN_START = date(2021, 10, 27)
# Ministry-like codes: HCMC's province code, then a 3-digit district number.
PROVINCE_CODE = "79"
KNOWN_DISTRICT_NUMBERS = {"NB": 786}  # Huyện Nhà Bè
FAKE_TELEGRAM_BASE = 900_000_000
FAKE_TELEGRAM_CEILING = 900_999_999
CHUNK_ROWS = 2_000
# The tables the generator writes, in the order it writes them (the result's counts follow it).
TABLES_IN_ORDER = (
    "district",
    "school",
    "staff",
    "donor",
    "student",
    "need_record",
    "donation_batch",
    "handover",
    "vaccine_dose",
    "reporting_round",
    "round_submission",
    "audit_log",
)

PRIORITY_RATES = (
    (PriorityGroup.POOR, 0.030),
    (PriorityGroup.NEAR_POOR, 0.040),
    (PriorityGroup.COVID_ORPHAN, 0.008),
    (PriorityGroup.OTHER_HARDSHIP, 0.060),
)
NEED_SHARE = 0.7  # of the students in a priority group, those whose need was recorded
LATE_SHARE = {"batch": 0.06, "handover": 0.04, "dose": 0.03}
# How often a product is chosen for a child old enough for it; products not listed are not generated.
PRODUCT_WEIGHTS = {"COMIRNATY": 70, "SPIKEVAX": 14, "VEROCELL": 6, "ABDALA": 5, "NUVAXOVID": 3, "COVAXIN": 2}
PRODUCT_DOSES = {"ABDALA": 3}  # a three-dose schedule; the others take two
PROGRAM_DONOR = ("Chương trình «Sóng và máy tính cho em» (Bộ GD&ĐT, Bộ TT&TT)", DonorKind.AGENCY)

# --- names -----------------------------------------------------------------------------------------

FAMILY_NAMES = (
    ("Nguyễn", 380), ("Trần", 110), ("Lê", 95), ("Phạm", 70), ("Huỳnh", 40), ("Võ", 40), ("Phan", 45),
    ("Hoàng", 30), ("Vũ", 20), ("Đặng", 20), ("Bùi", 20), ("Đỗ", 14), ("Hồ", 13), ("Ngô", 13),
    ("Dương", 10), ("Trương", 10), ("Đinh", 8), ("Đoàn", 6), ("Lâm", 6), ("Lý", 5), ("Mai", 5),
    ("Hà", 5), ("Châu", 4), ("Cao", 4), ("Tô", 3), ("Lưu", 3), ("Thái", 3), ("Tạ", 2), ("La", 2),
    ("Quách", 2), ("Kiều", 1), ("Triệu", 1),
)  # fmt: skip
MIDDLE_NAMES = {
    Gender.MALE: (
        "Văn", "Minh", "Hoàng", "Quốc", "Đức", "Gia", "Anh", "Thành", "Hữu", "Công", "Tuấn", "Nhật",
        "Bảo", "Đăng", "Trọng", "Thanh", "Hải", "Phúc", "Duy", "Tấn", "Khánh", "Trung", "Quang",
    ),
    Gender.FEMALE: (
        "Thị", "Ngọc", "Thanh", "Thu", "Bảo", "Khánh", "Minh", "Phương", "Mai", "Hoài", "Gia", "Quỳnh",
        "Kim", "Mỹ", "Hồng", "Diệu", "Thảo", "Tường", "Yến", "Ánh", "Nhã", "Tuệ",
    ),
}  # fmt: skip
GIVEN_NAMES = {
    Gender.MALE: (
        "An", "Bình", "Cường", "Dũng", "Duy", "Đạt", "Đức", "Hải", "Hào", "Hiếu", "Hoàng", "Huy", "Hùng",
        "Khang", "Khánh", "Khoa", "Khôi", "Kiên", "Lâm", "Long", "Lộc", "Minh", "Nam", "Nghĩa", "Nhân",
        "Phát", "Phong", "Phúc", "Quân", "Quang", "Sơn", "Tài", "Tâm", "Thắng", "Thịnh", "Trí", "Trung",
        "Tuấn", "Vinh", "Vũ", "Bảo", "Thiện", "Tín", "Toàn", "Việt", "Hưng", "Kiệt", "Luân", "Nguyên",
    ),
    Gender.FEMALE: (
        "Anh", "Châu", "Chi", "Diệp", "Dung", "Giang", "Hà", "Hân", "Hằng", "Hạnh", "Hiền", "Hoa",
        "Hương", "Huyền", "Lan", "Linh", "Loan", "My", "Ngân", "Ngọc", "Nhi", "Như", "Oanh", "Phương",
        "Quỳnh", "Tâm", "Thảo", "Thư", "Trang", "Trâm", "Uyên", "Vân", "Vy", "Yến", "Trân", "Khuê",
        "Mai", "Nhung", "Thùy", "Tiên", "Xuân", "Đào", "Diễm",
    ),
}  # fmt: skip
SCHOOL_NAMESAKES = (
    "Lê Văn Lương", "Nguyễn Bỉnh Khiêm", "Phạm Hữu Lầu", "Trần Quốc Toản", "Lê Lợi", "Nguyễn Trãi",
    "Trần Hưng Đạo", "Lý Thường Kiệt", "Quang Trung", "Ngô Quyền", "Đinh Tiên Hoàng", "Lê Quý Đôn",
    "Chu Văn An", "Nguyễn Du", "Nguyễn Đình Chiểu", "Phan Bội Châu", "Phan Chu Trinh", "Huỳnh Thúc Kháng",
    "Võ Thị Sáu", "Nguyễn Thị Minh Khai", "Lê Thị Hồng Gấm", "Trần Văn Ơn", "Nguyễn Văn Trỗi",
    "Lý Tự Trọng", "Kim Đồng", "Hai Bà Trưng", "Bà Triệu", "Hoàng Hoa Thám", "Trương Định",
    "Nguyễn Trung Trực", "Lê Lai", "Phạm Ngũ Lão", "Yết Kiêu", "Trần Quang Khải", "Trần Nhân Tông",
    "Lý Công Uẩn", "Tô Hiến Thành", "Mạc Đĩnh Chi", "Nguyễn Hiền", "Lương Thế Vinh", "Đoàn Thị Điểm",
    "Bùi Thị Xuân", "Nguyễn Khuyến", "Hàm Nghi", "Phan Đình Phùng", "Cao Bá Quát", "Nguyễn Công Trứ",
    "Lê Hồng Phong", "Trần Phú", "Nguyễn Văn Cừ", "Tôn Đức Thắng", "Võ Văn Tần", "Nguyễn An Ninh",
    "Nguyễn Thái Bình", "Phan Văn Trị", "Huỳnh Tấn Phát", "Nguyễn Hữu Thọ", "Trương Vĩnh Ký",
    "Lê Văn Tám", "Nguyễn Trường Tộ", "Đào Duy Từ", "Lê Văn Hưu", "Phù Đổng", "Văn Lang", "Hồng Bàng",
    "Nguyễn Văn Quỳ", "Bùi Văn Ba", "Phước Kiển", "Phước Lộc", "Nhơn Đức", "Long Thới", "Hiệp Phước",
    "Phú Xuân", "Lê Thánh Tông", "Nguyễn Chí Thanh", "Võ Trường Toản", "Đặng Trần Côn", "Tuệ Tĩnh",
    "Hải Thượng Lãn Ông", "Nguyễn Thượng Hiền", "Phan Huy Ích", "Ngô Thời Nhiệm", "Trần Bình Trọng",
    "Lê Ngọc Hân", "Nguyễn Đức Cảnh", "Nguyễn Văn Linh", "Tạ Quang Bửu", "Trần Đại Nghĩa",
)  # fmt: skip
SCHOOL_KIND_NAMES = {
    SchoolLevel.PRIMARY: "Trường Tiểu học",
    SchoolLevel.LOWER_SECONDARY: "Trường Trung học cơ sở",
    SchoolLevel.COMBINED: "Trường Tiểu học và Trung học cơ sở",
}
SCHOOL_GRADES = {
    SchoolLevel.PRIMARY: (1, 2, 3, 4, 5),
    SchoolLevel.LOWER_SECONDARY: (6, 7, 8, 9),
    SchoolLevel.COMBINED: (1, 2, 3, 4, 5, 6, 7, 8, 9),
}
STREETS = (
    "Nguyễn Hữu Thọ", "Huỳnh Tấn Phát", "Nguyễn Bình", "Lê Văn Lương", "Nguyễn Văn Tạo", "Đào Sư Tích",
    "Phạm Hữu Lầu", "Dương Cát Lợi", "Nguyễn Lương Bằng", "Lê Thị Kim", "Mai Văn Vĩnh", "Nguyễn Văn Quỳ",
)  # fmt: skip

# The demo accounts, in the order their fake Telegram ids are given (issue 10's sandbox uses them).
DEMO_ACCOUNTS = (
    ("teacher_th", Role.TEACHER, SchoolLevel.PRIMARY, "Nguyễn Thị Thu Hà"),
    ("principal_th", Role.PRINCIPAL, SchoolLevel.PRIMARY, "Trần Văn Hùng"),
    ("teacher_thcs", Role.TEACHER, SchoolLevel.LOWER_SECONDARY, "Lê Thị Ngọc Ánh"),
    ("principal_thcs", Role.PRINCIPAL, SchoolLevel.LOWER_SECONDARY, "Phạm Minh Tuấn"),
    ("primary_specialist", Role.PRIMARY_SPECIALIST, None, "Huỳnh Thị Kim Loan"),
    ("secondary_specialist", Role.SECONDARY_SPECIALIST, None, "Võ Thanh Sơn"),
    ("health_officer", Role.HEALTH_OFFICER, None, "Đặng Thị Mỹ Duyên"),
    ("statistics_officer", Role.STATISTICS_OFFICER, None, "Bùi Quốc Bảo"),
    ("deputy_head", Role.DEPUTY_HEAD, None, "Hồ Văn Phước"),
    ("admin", Role.ADMIN, None, "Ngô Thị Hồng Nhung"),
)

SCHOOL_ACCOUNT_LEVELS = (SchoolLevel.PRIMARY, SchoolLevel.LOWER_SECONDARY)

# --- donors and devices ----------------------------------------------------------------------------

DONOR_NAMES = {
    DonorKind.ORGANISATION: (
        "Hội Chữ thập đỏ",
        "Hội Khuyến học",
        "Đoàn Thanh niên Cộng sản Hồ Chí Minh",
        "Hội Liên hiệp Phụ nữ",
        "Quỹ Vì người nghèo",
        "Câu lạc bộ Doanh nhân trẻ",
        "Hội Cựu giáo chức",
        "Ban Đại diện Cha mẹ học sinh",
    ),
    DonorKind.AGENCY: (
        "Ủy ban nhân dân xã",
        "Ủy ban Mặt trận Tổ quốc Việt Nam xã",
        "Công an huyện",
        "Ban Chỉ huy Quân sự huyện",
        "Chi cục Thuế",
        "Bưu điện huyện",
    ),
    DonorKind.BUSINESS: (
        "Công ty TNHH Thép Nhà Bè",
        "Công ty Cổ phần Cảng Sài Gòn Hiệp Phước",
        "Ngân hàng TMCP Ngoại thương chi nhánh Nam Sài Gòn",
        "Công ty Cổ phần FPT",
        "Tập đoàn Công nghiệp – Viễn thông Quân đội (Viettel)",
        "Công ty TNHH Điện tử Samsung Vina",
        "Công ty Cổ phần Thế Giới Di Động",
        "Ngân hàng TMCP Á Châu chi nhánh Nhà Bè",
        "Công ty TNHH Thực phẩm Sài Gòn Food",
    ),
}
DONOR_PLACES = ("Phước Kiển", "Phước Lộc", "Nhơn Đức", "Long Thới", "Hiệp Phước", "Phú Xuân")
DONOR_KIND_WEIGHTS = ((DonorKind.ORGANISATION, 35), (DonorKind.INDIVIDUAL, 30), (DonorKind.AGENCY, 15),
                      (DonorKind.BUSINESS, 20))  # fmt: skip
DEVICE_MODELS = {
    DeviceType.LAPTOP: (
        ("Dell Latitude 3420", "Core i3-1115G4, RAM 8 GB, SSD 256 GB, Windows 10"),
        ("HP 240 G8", "Core i3-1005G1, RAM 4 GB, SSD 256 GB, Windows 10"),
        ("Lenovo IdeaPad 3 15ITL6", "Core i3-1115G4, RAM 8 GB, SSD 512 GB, Windows 11"),
        ("Asus VivoBook 15 X515EA", "Core i3-1115G4, RAM 4 GB, SSD 256 GB, Windows 10"),
        ("Acer Aspire 3 A315-56", "Core i3-1005G1, RAM 4 GB, SSD 256 GB, Windows 10"),
    ),
    DeviceType.TABLET: (
        ("Samsung Galaxy Tab A7 Lite", "8,7 inch, RAM 3 GB, 32 GB, 4G"),
        ("Lenovo Tab M8", "8 inch, RAM 2 GB, 32 GB, Wi-Fi"),
        ("Masstel Tab 10 Pro", "10,1 inch, RAM 2 GB, 32 GB, 4G"),
        ("iPad 10.2 (thế hệ 9)", "10,2 inch, 64 GB, Wi-Fi"),
    ),
    DeviceType.DESKTOP: (
        ("Dell OptiPlex 3080", "Core i3-10100, RAM 8 GB, SSD 256 GB, màn hình 21,5 inch"),
        ("HP ProDesk 400 G7", "Core i3-10100, RAM 4 GB, HDD 1 TB, màn hình 19,5 inch"),
    ),
    DeviceType.PHONE: (
        ("Samsung Galaxy A03s", "6,5 inch, RAM 3 GB, 32 GB, kèm SIM 4G"),
        ("Xiaomi Redmi 9A", "6,53 inch, RAM 2 GB, 32 GB, kèm SIM 4G"),
        ("Vsmart Joy 4", "6,53 inch, RAM 3 GB, 64 GB"),
    ),
    DeviceType.OTHER: (("Bộ phát Wi-Fi di động TP-Link M7200 kèm SIM 4G", "Gói cước 4G 12 tháng"),),
}
PROGRAM_DEVICE_WEIGHTS = ((DeviceType.LAPTOP, 75), (DeviceType.TABLET, 25))
OTHER_DEVICE_WEIGHTS = ((DeviceType.LAPTOP, 45), (DeviceType.TABLET, 25), (DeviceType.PHONE, 15),
                        (DeviceType.DESKTOP, 10), (DeviceType.OTHER, 5))  # fmt: skip
NEED_NOTES = {
    PriorityGroup.POOR: ("Gia đình không có máy tính", "Học trực tuyến bằng điện thoại của mẹ", ""),
    PriorityGroup.NEAR_POOR: ("Hai anh em dùng chung một điện thoại", "Nhà chưa có mạng Internet", ""),
    PriorityGroup.COVID_ORPHAN: ("Cha mất do COVID-19, ở với bà ngoại", "Mẹ mất do COVID-19", ""),
    PriorityGroup.OTHER_HARDSHIP: ("Ba mẹ mất việc trong đợt giãn cách", "Nhà trọ, không có Internet", ""),
}
LOAN_NOTE = "Cho mượn đến khi kết thúc học trực tuyến"


def add_years(day: date, years: int) -> date:
    """The same day `years` later; 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def split(total: int, weights: Sequence[float]) -> list[int]:
    """`total` split in proportion to `weights`, exactly (largest remainder, ties to the first)."""
    whole = sum(weights)
    shares = [total * w / whole for w in weights]
    parts = [int(s) for s in shares]
    order = sorted(range(len(weights)), key=lambda i: (parts[i] - shares[i], i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


T = TypeVar("T")


def weighted(rng: random.Random, choices: Sequence[tuple[T, float]]) -> T:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def random_day(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randint(0, max(0, (last - first).days)))


@dataclass
class _School:
    index: int
    id: int
    code: str
    level: SchoolLevel
    students: int
    teacher_id: int | None = None  # the demo teacher enters its records; other schools' entries: None

    @property
    def showcase(self) -> bool:
        # The first school shows every case (each priority group, a gift, an open and a returned loan),
        # so that even a small demo covers them.
        return self.index == 0


class _Scenario:
    """Timestamps derived from event dates, never from the wall clock."""

    def __init__(self) -> None:
        self.tz = ZoneInfo(DIRECTIVE_TIMEZONE)
        self.as_of = datetime.combine(*AS_OF_LOCAL, tzinfo=self.tz)

    def local(self, day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=self.tz).astimezone(UTC)

    def entered(self, rng: random.Random, event_on: date, late_share: float) -> tuple[datetime, bool]:
        """When a record of an event was entered, and whether that was late (after the end of D+1)."""
        start = datetime.combine(event_on, time(7, 0), tzinfo=self.tz)
        late_possible = start + timedelta(days=8) <= self.as_of
        if late_possible and rng.random() < late_share:
            moment = start + timedelta(days=rng.randint(2, 6), minutes=rng.randint(0, 12 * 60))
        else:
            # Same day or the next, up to 19:00, and not after the moment the data stands at.
            room = int((self.as_of - start).total_seconds() // 60)
            moment = start + timedelta(minutes=rng.randint(0, max(0, min(36 * 60, room))))
        return moment.astimezone(UTC), is_late_entry(event_on, moment, self.tz)


class DemoDataService(ServiceBase):
    async def generate(self, data: DemoDataIn) -> DemoDataOut:
        """Fill one new district; refuses when its code exists. One transaction: all or nothing."""
        try:
            async with self.sessionmaker.begin() as session:
                return await _Generator(session, data).run()
        except IntegrityError as exc:
            # Someone else wrote the same codes at the same moment (PostgreSQL); nothing was written.
            raise Conflict("demo.conflict", code=data.district_code) from exc


class _Generator:
    def __init__(self, session: AsyncSession, data: DemoDataIn) -> None:
        self.session = session
        self.data = data
        self.scenario = _Scenario()
        self.counts: dict[str, int] = {}
        self.products: list[VaccineProduct] = []
        self.student_seq = 0

    def rng(self, *parts: object) -> random.Random:
        """An independent stream per concern, so one change does not reshuffle everything else."""
        return random.Random(":".join(str(p) for p in (self.data.seed, *parts)))

    async def insert(self, model: type[Base], rows: list[dict[str, Any]], *, ids: bool = False) -> list[int]:
        """Bulk insert in chunks; with `ids`, the rows get their ids first (children refer to them)."""
        table_name = model.__tablename__
        self.counts[table_name] = self.counts.get(table_name, 0) + len(rows)
        new_ids = await self.reserve_ids(model, len(rows)) if ids else []
        for row, row_id in zip(rows, new_ids, strict=False):
            row["id"] = row_id
        for start in range(0, len(rows), CHUNK_ROWS):
            await self.session.execute(insert(model), rows[start : start + CHUNK_ROWS])
        return new_ids

    async def reserve_ids(self, model: type[Base], count: int) -> list[int]:
        """Ids for `count` new rows, taken before the insert: a plain executemany is several times faster
        than RETURNING, which SQLite answers one row at a time."""
        if count == 0:
            return []
        table = model.__table__
        if self.session.get_bind().dialect.name == "postgresql":
            sequence = func.pg_get_serial_sequence(table.name, "id")
            numbers = select(func.nextval(sequence)).select_from(func.generate_series(1, count))
            return sorted(await self.session.scalars(numbers))
        # SQLite: this transaction holds the write lock (BEGIN IMMEDIATE), so the next ids stay ours,
        # and they are the ones SQLite itself would give.
        last = await self.session.scalar(select(func.max(table.c.id))) or 0
        return list(range(last + 1, last + count + 1))

    async def run(self) -> DemoDataOut:
        data = self.data
        session = self.session
        if await session.scalar(select(District.id).where(District.code == data.district_code)):
            raise DomainError("demo.district_exists", code=data.district_code)
        self.counts = dict.fromkeys(TABLES_IN_ORDER, 0)
        self.products = list(
            await session.scalars(
                select(VaccineProduct).where(VaccineProduct.active).order_by(VaccineProduct.sort_order)
            )
        )
        prefix = await self.free_code_prefix()
        # The scenario's time, not the clock's: the same seed gives the same rows, audit row included.
        created_at = self.scenario.local(date(2021, 8, 16), 8)
        district = District(
            code=data.district_code, name=data.district_name, province=data.province, created_at=created_at
        )
        session.add(district)
        await session.flush()
        self.counts["district"] = 1

        schools = await self.add_schools(district.id, prefix)
        accounts = await self.add_staff(district.id, schools)
        program_donor_id = await self.program_donor()
        for school in schools:
            await self.fill_school(school, prefix, program_donor_id)
        deputy = next(a.staff_id for a in accounts if a.role is Role.DEPUTY_HEAD)
        round_id = await self.add_round(district.id, schools, deputy)

        self.counts["audit_log"] = 1
        session.add(
            AuditLog(
                at=created_at,
                actor_id=None,
                action=AuditAction.CREATE,
                entity=District.__tablename__,
                entity_id=str(district.id),
                after={**audit.snapshot(district), "demo": {"seed": data.seed, "counts": dict(self.counts)}},
            )
        )
        await session.flush()
        return DemoDataOut(
            district_id=district.id,
            district_code=district.code,
            district_name=district.name,
            seed=data.seed,
            counts=dict(self.counts),
            accounts=accounts,
            round_id=round_id,
        )

    async def free_code_prefix(self) -> str:
        """`79` + a district number no school or student code uses yet (Nhà Bè's own is 786)."""
        code = self.data.district_code
        number = KNOWN_DISTRICT_NUMBERS.get(code, 100 + zlib.crc32(code.encode()) % 900)
        used_school = {c[:5] for c in await self.session.scalars(select(School.code))}
        for step in range(900):
            prefix = f"{PROVINCE_CODE}{100 + (number - 100 + step) % 900:03d}"
            if prefix in used_school:
                continue
            taken = await self.session.scalar(
                select(Student.id).where(Student.code.startswith(prefix)).limit(1)
            )
            if taken is None:
                return prefix
        raise DomainError("demo.no_free_codes")

    async def add_schools(self, district_id: int, prefix: str) -> list[_School]:
        rng = self.rng("schools")
        count = self.data.schools
        combined = max(1, round(count * 0.07)) if count >= 3 else 0
        secondary = max(1, round((count - combined) * 0.4))
        primary = count - combined - secondary
        # The first is a TH school and the second a THCS school: they carry the demo accounts.
        rest = [SchoolLevel.PRIMARY] * (primary - 1) + [SchoolLevel.LOWER_SECONDARY] * (secondary - 1)
        rest += [SchoolLevel.COMBINED] * combined
        rng.shuffle(rest)
        levels = [SchoolLevel.PRIMARY, SchoolLevel.LOWER_SECONDARY, *rest]
        size_factor = {SchoolLevel.PRIMARY: 1.0, SchoolLevel.LOWER_SECONDARY: 1.2, SchoolLevel.COMBINED: 0.9}
        sizes = split(self.data.students, [size_factor[lv] * rng.uniform(0.6, 1.4) for lv in levels])
        namesakes = list(SCHOOL_NAMESAKES)
        rng.shuffle(namesakes)
        created_at = self.scenario.local(date(2021, 8, 16), 8)  # with the district
        rows: list[dict[str, Any]] = []
        for index, level in enumerate(levels):
            round_no, position = divmod(index, len(namesakes))
            name = f"{SCHOOL_KIND_NAMES[level]} {namesakes[position]}"
            if round_no:
                name += f" số {round_no + 1}"
            rows.append(
                {
                    "district_id": district_id,
                    "code": f"{prefix}{index + 1:03d}",
                    "name": name,
                    "level": level,
                    "address": f"Số {rng.randint(1, 999)} {rng.choice(STREETS)}, {self.data.district_name}",
                    "active": True,
                    "created_at": created_at,
                }
            )
        ids = await self.insert(School, rows, ids=True)
        return [
            _School(index=i, id=ids[i], code=row["code"], level=row["level"], students=sizes[i])
            for i, row in enumerate(rows)
        ]

    async def add_staff(self, district_id: int, schools: list[_School]) -> list[DemoAccountOut]:
        # Fake Telegram ids 900000001, 900000002, … (after any a previous demo district took).
        taken = await self.session.scalars(
            select(Staff.telegram_user_id).where(
                Staff.telegram_user_id > FAKE_TELEGRAM_BASE, Staff.telegram_user_id <= FAKE_TELEGRAM_CEILING
            )
        )
        base = max([FAKE_TELEGRAM_BASE, *(t for t in taken if t is not None)])
        # School accounts go to the first TH and the first THCS school (indexes 0 and 1).
        first_of = {level: next(s for s in schools if s.level is level) for level in SCHOOL_ACCOUNT_LEVELS}
        created_at = self.scenario.local(date(2021, 9, 6), 8)
        rows: list[dict[str, Any]] = []
        for offset, (_key, role, level, full_name) in enumerate(DEMO_ACCOUNTS, start=1):
            telegram_user_id = base + offset
            rows.append(
                {
                    "telegram_user_id": telegram_user_id,
                    "full_name": full_name,
                    "phone": f"0900{telegram_user_id % 1_000_000:06d}",
                    "telegram_username": "",
                    "role": role,
                    "school_id": first_of[level].id if level else None,
                    "district_id": district_id,
                    "language": "vi",
                    "active": True,
                    "created_at": created_at,
                }
            )
        ids = await self.insert(Staff, rows, ids=True)
        accounts = []
        for (key, role, level, _name), staff_id, row in zip(DEMO_ACCOUNTS, ids, rows, strict=True):
            school = first_of[level] if level else None
            if school is not None and role is Role.TEACHER:
                school.teacher_id = staff_id
            accounts.append(
                DemoAccountOut(
                    key=key,
                    role=role,
                    telegram_user_id=row["telegram_user_id"],
                    full_name=row["full_name"],
                    staff_id=staff_id,
                    school_code=school.code if school else None,
                )
            )
        return accounts

    async def program_donor(self) -> int:
        """The programme is one district-wide donor (no school); reused when an earlier demo made it."""
        name, kind = PROGRAM_DONOR
        existing = await self.session.scalar(
            select(Donor.id).where(Donor.school_id.is_(None), Donor.name == name).order_by(Donor.id).limit(1)
        )
        if existing is not None:
            return existing
        row = {
            "school_id": None,
            "name": name,
            "kind": kind,
            "contact": "Bộ Giáo dục và Đào tạo – Bộ Thông tin và Truyền thông",
            "entered_by_id": None,
            "entered_at": self.scenario.local(date(2021, 9, 6), 8),
        }
        return (await self.insert(Donor, [row], ids=True))[0]

    # --- one school ------------------------------------------------------------------------------

    async def fill_school(self, school: _School, prefix: str, program_donor_id: int) -> None:
        students = self.make_students(school, prefix)
        await self.insert(Student, students, ids=True)
        needs = self.make_needs(school, students)
        await self.insert(NeedRecord, needs)
        # Each need stands from the day it was recorded (its history's first state).
        states: tuple[str, ...] = ("student_id", "category", "needs_device", "needs_connectivity")
        states += ("entered_by_id", "entered_at")
        history = [{**{k: row[k] for k in states}, "changed_on": row["opened_on"]} for row in needs]
        await self.insert(NeedHistory, history)
        device_needers = {row["student_id"] for row in needs if row["needs_device"]}
        donor_ids, donor_kinds = await self.add_donors(school)
        await self.add_batches(school, students, device_needers, program_donor_id, donor_ids, donor_kinds)
        await self.insert(VaccineDose, self.make_doses(school, students))

    def make_students(self, school: _School, prefix: str) -> list[dict[str, Any]]:
        rng = self.rng("students", school.index)
        grades = SCHOOL_GRADES[school.level]
        per_grade = split(school.students, [rng.uniform(0.85, 1.15) for _ in grades])
        enrolled_on = random_day(rng, date(2021, 9, 1), date(2021, 9, 10))
        entered_at = self.scenario.local(enrolled_on, rng.randint(8, 16), rng.randint(0, 59))
        rows: list[dict[str, Any]] = []
        for grade, count in zip(grades, per_grade, strict=True):
            classes = max(1, round(count / rng.randint(35, 45)))
            grade_rows = []
            for position in range(count):
                gender = Gender.MALE if rng.random() < 0.51 else Gender.FEMALE
                family = weighted(rng, FAMILY_NAMES)
                middle = rng.choice(MIDDLE_NAMES[gender])
                if rng.random() < 0.12:
                    second = rng.choice(MIDDLE_NAMES[gender][1:])
                    if second != middle:
                        middle += " " + second
                given = rng.choice(GIVEN_NAMES[gender])
                while given in middle.split():  # "Nguyễn Thảo Thảo" is no name
                    given = rng.choice(GIVEN_NAMES[gender])
                full_name = f"{family} {middle} {given}"
                search_name = fold(full_name)
                # Grade 1 in 2021-2022: born in 2015 (6 in the calendar year of entry); a few a year older.
                birth_year = 2016 - grade - (1 if rng.random() < 0.03 else 0)
                born = date(birth_year, 1, 1) + timedelta(days=rng.randint(0, 364))
                grade_rows.append(
                    (
                        position % classes + 1,
                        fold(given),
                        search_name,
                        {
                            "school_id": school.id,
                            "full_name": full_name,
                            "search_name": search_name,
                            "date_of_birth": born,
                            "gender": gender,
                            "grade": grade,
                            "class_name": f"{grade}A{position % classes + 1}",
                            "priority_group": self.priority_group(rng),
                            "active": True,
                            "entered_by_id": school.teacher_id,
                            "entered_at": entered_at,
                        },
                    )
                )
            # Class lists are in the order Vietnamese schools use: by given name, then full name.
            grade_rows.sort(key=lambda item: item[:3])
            rows.extend(row for *_, row in grade_rows)
        for row in rows:
            self.student_seq += 1
            row["code"] = f"{prefix}{self.student_seq:07d}"
        if school.showcase:
            present = {row["priority_group"] for row in rows}
            plain = [row for row in rows if row["priority_group"] is PriorityGroup.NONE]
            for group, _rate in PRIORITY_RATES:
                if group not in present and len(plain) > 1:
                    plain.pop(rng.randrange(len(plain)))["priority_group"] = group
        return rows

    @staticmethod
    def priority_group(rng: random.Random) -> PriorityGroup:
        draw = rng.random()
        for group, rate in PRIORITY_RATES:
            if draw < rate:
                return group
            draw -= rate
        return PriorityGroup.NONE

    def make_needs(self, school: _School, students: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rng = self.rng("needs", school.index)
        rows = []
        for student in students:
            group = student["priority_group"]
            if group is PriorityGroup.NONE or (rng.random() >= NEED_SHARE and not school.showcase):
                continue
            needs_device = rng.random() < 0.85
            needs_connectivity = rng.random() < 0.35 or not needs_device
            recorded_on = random_day(rng, date(2021, 9, 6), date(2021, 10, 29))
            rows.append(
                {
                    "student_id": student["id"],
                    "category": group,
                    "needs_device": needs_device,
                    "needs_connectivity": needs_connectivity,
                    "note": rng.choice(NEED_NOTES[group]),
                    "entered_by_id": school.teacher_id,
                    "entered_at": self.scenario.local(recorded_on, rng.randint(8, 16), rng.randint(0, 59)),
                    "entered_late": False,  # needs have no event date: the 1-day rule does not apply
                    "opened_on": recorded_on,
                    "changed_on": recorded_on,
                }
            )
        return rows

    async def add_donors(self, school: _School) -> tuple[list[int], list[DonorKind]]:
        rng = self.rng("donors", school.index)
        if school.showcase:
            kinds = list(DonorKind)
        else:
            kinds = [weighted(rng, DONOR_KIND_WEIGHTS) for _ in range(rng.choice((0, 1, 1, 2, 2, 3)))]
        rows: list[dict[str, Any]] = []
        names: set[str] = set()
        for kind in kinds:
            name, contact = self.donor_identity(rng, kind)
            while name in names:  # one name per school (a database constraint)
                name, contact = self.donor_identity(rng, kind)
            names.add(name)
            rows.append(
                {
                    "school_id": school.id,
                    "name": name,
                    "kind": kind,
                    "contact": contact,
                    "entered_by_id": school.teacher_id,
                    "entered_at": self.scenario.local(date(2021, 9, 6), 8),
                }
            )
        return await self.insert(Donor, rows, ids=True), kinds

    def donor_identity(self, rng: random.Random, kind: DonorKind) -> tuple[str, str]:
        phone = f"09{rng.randint(0, 99_999_999):08d}"
        if kind is DonorKind.INDIVIDUAL:
            gender = rng.choice((Gender.MALE, Gender.FEMALE))
            title = "Ông" if gender is Gender.MALE else "Bà"
            family = weighted(rng, FAMILY_NAMES)
            middle, given = rng.choice(MIDDLE_NAMES[gender]), rng.choice(GIVEN_NAMES[gender])
            while given == middle:
                given = rng.choice(GIVEN_NAMES[gender])
            return f"{title} {family} {middle} {given}", phone
        base = rng.choice(DONOR_NAMES[kind])
        if kind is DonorKind.AGENCY and base.endswith("xã"):
            base = f"{base} {rng.choice(DONOR_PLACES)}"
        elif kind is DonorKind.ORGANISATION and rng.random() < 0.6:
            base = f"{base} xã {rng.choice(DONOR_PLACES)}"
        return base, f"Điện thoại: {phone}"

    async def add_batches(
        self,
        school: _School,
        students: list[dict[str, Any]],
        device_needers: set[int],
        program_donor_id: int,
        donor_ids: list[int],
        donor_kinds: list[DonorKind],
    ) -> None:
        rng = self.rng("devices", school.index)
        # Who gets a device: students needing one first, then the rest of the priority groups.
        pool = [s["id"] for s in students if s["priority_group"] is not PriorityGroup.NONE]
        rng.shuffle(pool)
        pool.sort(key=lambda student_id: student_id not in device_needers)
        demand = max(1, len(device_needers))

        plans: list[dict[str, Any]] = []
        if school.showcase or rng.random() < 0.85:
            device_type = weighted(rng, PROGRAM_DEVICE_WEIGHTS)
            make_model, specs = rng.choice(DEVICE_MODELS[device_type])
            plans.append(
                {
                    "source": DonationSource.PROGRAM,
                    "donor_id": program_donor_id,
                    "received_on": random_day(rng, date(2021, 10, 4), date(2021, 11, 12)),
                    "quantity": max(2, min(300, round(demand * rng.uniform(0.3, 0.6)))),
                    "device_type": device_type,
                    "make_model": make_model,
                    "condition": DeviceCondition.NEW,
                    "specs": specs,
                    "note": "",
                }
            )
        quantity_range = {
            DonorKind.INDIVIDUAL: (1, 5),
            DonorKind.ORGANISATION: (2, 15),
            DonorKind.AGENCY: (3, 20),
            DonorKind.BUSINESS: (5, 30),
        }
        for donor_id, kind in zip(donor_ids, donor_kinds, strict=True):
            for _ in range(2 if rng.random() < 0.15 else 1):
                device_type = weighted(rng, OTHER_DEVICE_WEIGHTS)
                make_model, specs = rng.choice(DEVICE_MODELS[device_type])
                plans.append(
                    {
                        "source": DonationSource.OTHER,
                        "donor_id": donor_id,
                        "received_on": random_day(rng, date(2021, 9, 6), date(2021, 11, 12)),
                        # What a donor gives, within reason for the school's needs.
                        "quantity": min(
                            rng.randint(*quantity_range[kind]), 1 + round(demand * rng.uniform(0.2, 0.5))
                        ),
                        "device_type": device_type,
                        "make_model": make_model,
                        "condition": DeviceCondition.USED if rng.random() < 0.25 else DeviceCondition.NEW,
                        "specs": specs,
                        "note": "",
                    }
                )
        if not plans:
            return

        forced: dict[int, list[tuple[HandoverKind, bool]]] = {}
        if school.showcase:
            # A gift from the programme; an open loan and a returned one from another donor.
            first_other = next((i for i, p in enumerate(plans) if p["source"] is DonationSource.OTHER), None)
            forced[0] = [(HandoverKind.GIFT, False)]
            if first_other is not None:
                forced[first_other] = [(HandoverKind.LOAN, True), (HandoverKind.LOAN, False)]
                plans[first_other]["quantity"] = max(3, plans[first_other]["quantity"])
        handover_plans: list[list[dict[str, Any]]] = []
        # A plain INSERT gets no number from the session: the school's own, after any it has already.
        numbered = await self.session.scalar(
            select(func.coalesce(func.max(DonationBatch.number), 0)).where(
                DonationBatch.school_id == school.id
            )
        )
        for index, plan in enumerate(plans):
            handovers = self.plan_handovers(rng, plan, pool, forced.get(index, []))
            handover_plans.append(handovers)
            received_entered_at, late = self.scenario.entered(rng, plan["received_on"], LATE_SHARE["batch"])
            plan.update(
                school_id=school.id,
                number=int(numbered or 0) + index + 1,
                # Devices given or on open loan: what the database's guard keeps.
                allocated=sum(1 for h in handovers if h["returned_on"] is None),
                entered_by_id=school.teacher_id,
                entered_at=received_entered_at,
                entered_late=late,
            )
        batch_ids = await self.insert(DonationBatch, plans, ids=True)
        rows = []
        for batch_id, handovers in zip(batch_ids, handover_plans, strict=True):
            for handover in handovers:
                handover["batch_id"] = batch_id
                handover["entered_by_id"] = school.teacher_id
                rows.append(handover)
        await self.insert(Handover, rows)

    def plan_handovers(
        self,
        rng: random.Random,
        batch: dict[str, Any],
        pool: list[int],
        forced: list[tuple[HandoverKind, bool]],
    ) -> list[dict[str, Any]]:
        """Hand most of a batch's devices to students, one device each, mostly within 5 days."""
        received_on: date = batch["received_on"]
        loan_share = 0.08 if batch["source"] is DonationSource.PROGRAM else 0.35
        quantity = batch["quantity"]
        target = min(len(pool), max(len(forced), round(quantity * rng.uniform(0.55, 1.0))), quantity)
        rows = []
        for position in range(target):
            student_id = pool.pop(0)
            draw = rng.random()
            delay = (
                rng.randint(0, 3)
                if draw < 0.7
                else rng.randint(4, 10)
                if draw < 0.95
                else rng.randint(11, 25)
            )
            handed_on = min(received_on + timedelta(days=delay), PERIOD_END)
            if position < len(forced):
                kind, returned = forced[position]
                handed_on = received_on
            else:
                kind = HandoverKind.LOAN if rng.random() < loan_share else HandoverKind.GIFT
                returned = (
                    kind is HandoverKind.LOAN and rng.random() < 0.25 and (PERIOD_END - handed_on).days >= 7
                )
            returned_on = None
            if returned and handed_on < PERIOD_END:
                shortest = 1 if position < len(forced) else 7
                returned_on = handed_on + timedelta(
                    days=rng.randint(shortest, min(45, (PERIOD_END - handed_on).days))
                )
            entered_at, late = self.scenario.entered(rng, handed_on, LATE_SHARE["handover"])
            updated_at = None
            if returned_on is not None:
                updated_at = max(entered_at, self.scenario.entered(rng, returned_on, 0.0)[0])
            rows.append(
                {
                    "student_id": student_id,
                    "kind": kind,
                    "handed_on": handed_on,
                    "returned_on": returned_on,
                    "note": LOAN_NOTE if kind is HandoverKind.LOAN else "",
                    "entered_at": entered_at,
                    "updated_at": updated_at,
                    "entered_late": late,
                }
            )
        return rows

    def make_doses(self, school: _School, students: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rng = self.rng("doses", school.index)
        products = [p for p in self.products if PRODUCT_WEIGHTS.get(p.code)]
        rows: list[dict[str, Any]] = []
        if not products:
            return rows
        for student in students:
            born: date = student["date_of_birth"]
            teenager = add_years(born, 12) <= PERIOD_END
            if rng.random() >= (0.8 if teenager else 0.02):
                continue
            eligible = [p for p in products if add_years(born, p.min_age_years) <= PERIOD_END]
            if not eligible:
                continue
            product = weighted(rng, [(p, PRODUCT_WEIGHTS[p.code]) for p in eligible])
            earliest = max(PERIOD_START, add_years(born, product.min_age_years))
            at_school_campaign = (teenager and rng.random() < 0.65) or earliest >= SCHOOL_CAMPAIGN_START
            if at_school_campaign:
                given_on = random_day(rng, max(earliest, SCHOOL_CAMPAIGN_START), PERIOD_END)
            else:
                given_on = random_day(rng, earliest, SCHOOL_CAMPAIGN_START - timedelta(days=1))
            interval = max(1, product.min_interval_days)
            for dose_number in range(1, PRODUCT_DOSES.get(product.code, 2) + 1):
                if dose_number > 1:
                    extra = rng.randint(0, 7) if rng.random() < 0.8 else rng.randint(8, 30)
                    given_on += timedelta(days=interval + extra)
                    if given_on > PERIOD_END or rng.random() < 0.08:
                        break
                entered_at, late = self.scenario.entered(rng, given_on, LATE_SHARE["dose"])
                rows.append(
                    {
                        "student_id": student["id"],
                        "dose_number": dose_number,
                        "given_on": given_on,
                        "product_id": product.id,
                        "product_other_name": "",
                        "place": self.dose_place(rng, teenager and given_on >= SCHOOL_CAMPAIGN_START),
                        "entered_by_id": school.teacher_id,
                        "entered_at": entered_at,
                        "entered_late": late,
                    }
                )
        return rows

    @staticmethod
    def dose_place(rng: random.Random, campaign: bool) -> DosePlace:
        if campaign:
            return weighted(
                rng, ((DosePlace.SCHOOL, 80), (DosePlace.COMMUNITY, 15), (DosePlace.ELSEWHERE, 5))
            )
        return weighted(rng, ((DosePlace.COMMUNITY, 70), (DosePlace.ELSEWHERE, 30)))

    async def add_round(self, district_id: int, schools: list[_School], created_by_id: int) -> int:
        local = self.scenario.local
        row = {
            "district_id": district_id,
            "name": "Báo cáo Chương trình «Sóng và máy tính cho em» và tiêm vắc xin (CV 1128/GDĐT)",
            "period_start": PERIOD_START,
            "period_end": PERIOD_END,
            "submit_deadline": local(date(2021, 11, 15), 15, 30),
            "approve_deadline": local(date(2021, 11, 16), 12),
            "compile_deadline": local(date(2021, 11, 16), 17),
            "status": RoundStatus.OPEN,
            "created_by_id": created_by_id,
            "created_at": local(date(2021, 11, 14), 16),
        }
        round_id = (await self.insert(ReportingRound, [row], ids=True))[0]
        submissions = [
            {
                "round_id": round_id,
                "school_id": school.id,
                "track": track,
                "status": SubmissionStatus.NOT_SUBMITTED,
                "return_reason": "",
            }
            for school in schools
            for track in SubmissionTrack
        ]
        await self.insert(RoundSubmission, submissions)
        return round_id
