"""The domain's enumerations: the values the models' columns hold (stored as their short strings).

A leaf: no ORM and nothing of ours, so schemas, exports and the report writer's worker process can use
them without loading SQLAlchemy.
"""

from __future__ import annotations

import enum


class SchoolLevel(enum.StrEnum):
    PRIMARY = "TH"
    LOWER_SECONDARY = "THCS"
    COMBINED = "TH_THCS"


class Role(enum.StrEnum):
    TEACHER = "teacher"  # cán bộ phụ trách / giáo viên
    PRINCIPAL = "principal"  # hiệu trưởng
    PRIMARY_SPECIALIST = "primary_specialist"  # chuyên viên TH
    SECONDARY_SPECIALIST = "secondary_specialist"  # chuyên viên THCS
    HEALTH_OFFICER = "health_officer"  # y tế trường học
    STATISTICS_OFFICER = "statistics_officer"  # bộ phận thống kê
    DEPUTY_HEAD = "deputy_head"  # phó trưởng phòng
    TECH_SUPPORT = "tech_support"  # kỹ thuật CSDL
    ADMIN = "admin"

    @property
    def is_school_scoped(self) -> bool:
        return self in (Role.TEACHER, Role.PRINCIPAL)


class Gender(enum.StrEnum):
    MALE = "male"
    FEMALE = "female"


class PriorityGroup(enum.StrEnum):
    POOR = "poor"  # hộ nghèo
    NEAR_POOR = "near_poor"  # hộ cận nghèo
    COVID_ORPHAN = "covid_orphan"  # cha, mẹ tử vong do COVID-19
    OTHER_HARDSHIP = "other_hardship"  # khó khăn khác
    NONE = "none"


# The groups a need is counted in (every group but NONE), in the order forms and reports list them.
NEED_GROUPS = (
    PriorityGroup.POOR,
    PriorityGroup.NEAR_POOR,
    PriorityGroup.COVID_ORPHAN,
    PriorityGroup.OTHER_HARDSHIP,
)


class DonorKind(enum.StrEnum):
    ORGANISATION = "organisation"
    INDIVIDUAL = "individual"
    AGENCY = "agency"
    BUSINESS = "business"


class DonationSource(enum.StrEnum):
    PROGRAM = "program"  # 4.8.3.1, allocated by the Ministry's programme
    OTHER = "other"  # 4.8.3.2, other donors


class DeviceType(enum.StrEnum):
    LAPTOP = "laptop"
    DESKTOP = "desktop"
    TABLET = "tablet"
    PHONE = "phone"
    OTHER = "other"


class DeviceCondition(enum.StrEnum):
    NEW = "new"
    USED = "used"


class HandoverKind(enum.StrEnum):
    GIFT = "gift"
    LOAN = "loan"  # lent until online learning ends: does not count as having a device


class DosePlace(enum.StrEnum):
    SCHOOL = "school"
    COMMUNITY = "community"
    ELSEWHERE = "elsewhere"


class SubmissionTrack(enum.StrEnum):
    PROGRAM = "program"  # reviewed by the TH/THCS specialist
    VACCINE = "vaccine"  # reviewed by the school-health officer


class SubmissionStatus(enum.StrEnum):
    NOT_SUBMITTED = "not_submitted"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    RETURNED = "returned"


class RoundStatus(enum.StrEnum):
    OPEN = "open"
    COMPILED = "compiled"


class AuditAction(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class CsdlRecordKind(enum.StrEnum):
    """The records a CSDL upload file holds (menus 4.8.1, 4.8.3.1, 4.8.3.2, 4.9.1)."""

    NEED = "need"
    BATCH = "batch"
    HANDOVER = "handover"
    DOSE = "dose"


class InboxStatus(enum.StrEnum):
    PENDING = "pending"  # received, not yet handled
    HANDLING = "handling"  # handling started (attempts says how many times)
    HANDLED = "handled"
    FAILED = "failed"  # its handling ended the process twice: never tried again
