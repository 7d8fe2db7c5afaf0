"""A small hand-built district for tests: two schools, one account per role, a few students."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from storage.enums import Gender, PriorityGroup, Role, SchoolLevel
from storage.models import District, School, Staff, Student
from storage.services import Services
from storage.text import fold

# Telegram user ids of the world's accounts: tests talk as these people.
TELEGRAM_IDS = {
    "teacher": 1001,
    "principal": 1002,
    "teacher_thcs": 1003,
    "principal_thcs": 1004,
    "primary_specialist": 2001,
    "secondary_specialist": 2002,
    "health_officer": 2003,
    "statistics_officer": 2004,
    "deputy_head": 2005,
    "admin": 2006,
}

# Students of STUDENTS as the student picker shows them (conversations/widgets/student_picker.py).
AN = "Nguyễn Văn An · 4A1 · 14/03/2012"  # HS0001, poor household
BINH = "Trần Thị Bình · 4A1 · 02/07/2012"  # HS0002, near-poor
AN_3A2 = "Nguyễn Văn An · 3A2 · 20/01/2013"  # HS0003, same name, no priority group
CUONG = "Lê Hoàng Cường · 5A1 · 05/11/2011"  # HS0004


@dataclass
class World:
    district_id: int
    primary_school_id: int  # Trường TH Lê Văn Lương (TH)
    secondary_school_id: int  # Trường THCS Nguyễn Bỉnh Khiêm (THCS)
    staff_ids: dict[str, int] = field(default_factory=dict)  # key of TELEGRAM_IDS -> staff.id
    student_ids: dict[str, int] = field(default_factory=dict)  # student code -> student.id


STUDENTS = [
    # code, name, date of birth, gender, grade, class, priority group, school ("primary"/"secondary")
    ("HS0001", "Nguyễn Văn An", date(2012, 3, 14), Gender.MALE, 4, "4A1", PriorityGroup.POOR, "primary"),
    (
        "HS0002",
        "Trần Thị Bình",
        date(2012, 7, 2),
        Gender.FEMALE,
        4,
        "4A1",
        PriorityGroup.NEAR_POOR,
        "primary",
    ),
    ("HS0003", "Nguyễn Văn An", date(2013, 1, 20), Gender.MALE, 3, "3A2", PriorityGroup.NONE, "primary"),
    (
        "HS0004",
        "Lê Hoàng Cường",
        date(2011, 11, 5),
        Gender.MALE,
        5,
        "5A1",
        PriorityGroup.COVID_ORPHAN,
        "primary",
    ),
    (
        "HS0005",
        "Phạm Thị Dung",
        date(2008, 9, 9),
        Gender.FEMALE,
        8,
        "8A3",
        PriorityGroup.OTHER_HARDSHIP,
        "secondary",
    ),
    ("HS0006", "Võ Minh Đức", date(2009, 4, 30), Gender.MALE, 7, "7A1", PriorityGroup.POOR, "secondary"),
]


async def make_world(services: Services) -> World:
    async with services.sessionmaker.begin() as session:
        district = District(code="NB", name="Huyện Nhà Bè", province="TP. Hồ Chí Minh")
        session.add(district)
        await session.flush()
        primary = School(
            district_id=district.id, code="79785001", name="Trường TH Lê Văn Lương", level=SchoolLevel.PRIMARY
        )
        secondary = School(
            district_id=district.id,
            code="79785101",
            name="Trường THCS Nguyễn Bỉnh Khiêm",
            level=SchoolLevel.LOWER_SECONDARY,
        )
        session.add_all([primary, secondary])
        await session.flush()
        world = World(district.id, primary.id, secondary.id)
        accounts = {
            "teacher": (Role.TEACHER, primary.id, "Đỗ Thị Hoa"),
            "principal": (Role.PRINCIPAL, primary.id, "Ngô Văn Hải"),
            "teacher_thcs": (Role.TEACHER, secondary.id, "Bùi Thị Lan"),
            "principal_thcs": (Role.PRINCIPAL, secondary.id, "Đặng Quốc Khánh"),
            "primary_specialist": (Role.PRIMARY_SPECIALIST, None, "Trần Lê Hồng Phúc"),
            "secondary_specialist": (Role.SECONDARY_SPECIALIST, None, "Cam Văn Võ Kiêm Toàn"),
            "health_officer": (Role.HEALTH_OFFICER, None, "Nguyễn Thị Thanh Thủy"),
            "statistics_officer": (Role.STATISTICS_OFFICER, None, "Lý Thị Mai"),
            "deputy_head": (Role.DEPUTY_HEAD, None, "Võ Văn Chiến"),
            "admin": (Role.ADMIN, None, "Trần Kim Ngân"),
        }
        for key, (role, school_id, name) in accounts.items():
            staff = Staff(
                telegram_user_id=TELEGRAM_IDS[key],
                full_name=name,
                role=role,
                school_id=school_id,
                district_id=district.id,
            )
            session.add(staff)
            await session.flush()
            world.staff_ids[key] = staff.id
        for code, name, born, gender, grade, class_name, group, where in STUDENTS:
            student = Student(
                school_id=primary.id if where == "primary" else secondary.id,
                code=code,
                full_name=name,
                search_name=fold(name),
                date_of_birth=born,
                gender=gender,
                grade=grade,
                class_name=class_name,
                priority_group=group,
            )
            session.add(student)
            await session.flush()
            world.student_ids[code] = student.id
    return world
