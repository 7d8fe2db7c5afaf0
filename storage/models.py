"""The whole domain as SQLAlchemy 2 typed models. Later features add behaviour, not tables.

Enumerations (storage/enums.py) are stored as short strings with CHECK constraints (no PostgreSQL
ENUM types), so both databases hold the same schema and migrations stay simple.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    func,
    select,
    text,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

# The columns' enumerations live in the leaf storage.enums (import them from there).
from storage.enums import (
    AuditAction,
    CsdlRecordKind,
    DeviceCondition,
    DeviceType,
    DonationSource,
    DonorKind,
    DosePlace,
    Gender,
    HandoverKind,
    InboxStatus,
    PriorityGroup,
    Role,
    RoundStatus,
    SchoolLevel,
    SubmissionStatus,
    SubmissionTrack,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite keeps no zone, so we add it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def str_enum(enum_cls: type[enum.Enum], name: str) -> SAEnum:
    return SAEnum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}
    if TYPE_CHECKING:
        # Every model is mapped to a Table (none to a select), which the core statements' insert(),
        # update() and delete() take; DeclarativeBase types it as any FromClause.
        __table__: ClassVar[Table]


# --- mixins ---------------------------------------------------------------------------------------


class EnteredMixin:
    """Who entered a record and when (UTC), so the 1-day rule can be judged and shown."""

    entered_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    entered_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=None, onupdate=utcnow)


class LateMixin(EnteredMixin):
    """Entered more than one day after the event: still accepted, flagged."""

    entered_late: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # The draft's key: a second confirm (double tap, repeated update) finds the saved row.
    request_key: Mapped[str | None] = mapped_column(String(64), unique=True)


# --- organisation ---------------------------------------------------------------------------------


class District(Base):
    __tablename__ = "district"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    province: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    schools: Mapped[list[School]] = relationship(back_populates="district")


class School(Base):
    __tablename__ = "school"

    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("district.id", ondelete="RESTRICT"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # ministry school code
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[SchoolLevel] = mapped_column(str_enum(SchoolLevel, "school_level"))
    address: Mapped[str] = mapped_column(String(300), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    district: Mapped[District] = relationship(back_populates="schools")


class Staff(Base):
    __tablename__ = "staff"
    __table_args__ = (
        CheckConstraint(
            "role NOT IN ('teacher', 'principal') OR school_id IS NOT NULL", name="school_roles_have_school"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32), default="")
    telegram_username: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[Role] = mapped_column(str_enum(Role, "staff_role"))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("school.id", ondelete="RESTRICT"), index=True)
    district_id: Mapped[int | None] = mapped_column(
        ForeignKey("district.id", ondelete="RESTRICT"), index=True
    )
    language: Mapped[str] = mapped_column(String(8), default="vi")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    school: Mapped[School | None] = relationship()
    district: Mapped[District | None] = relationship()


class Invite(Base):
    __tablename__ = "invite"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(str_enum(Role, "invite_role"))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("school.id", ondelete="CASCADE"))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("district.id", ondelete="CASCADE"))
    full_name: Mapped[str] = mapped_column(String(200), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    used_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))


# --- students and needs ---------------------------------------------------------------------------


class Student(EnteredMixin, Base):
    __tablename__ = "student"
    __table_args__ = (
        CheckConstraint("grade BETWEEN 1 AND 12", name="grade_range"),
        Index("ix_student_school_search", "school_id", "search_name"),
        Index("ix_student_school_class", "school_id", "class_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id", ondelete="RESTRICT"))
    code: Mapped[str] = mapped_column(String(32), unique=True)  # mã học sinh
    full_name: Mapped[str] = mapped_column(String(200))
    # Lower case, no diacritics: "nguyen van an" finds "Nguyễn Văn An".
    search_name: Mapped[str] = mapped_column(String(200))
    date_of_birth: Mapped[date] = mapped_column(Date)
    gender: Mapped[Gender | None] = mapped_column(str_enum(Gender, "gender"))
    grade: Mapped[int] = mapped_column(Integer)
    class_name: Mapped[str] = mapped_column(String(32))
    priority_group: Mapped[PriorityGroup] = mapped_column(
        str_enum(PriorityGroup, "priority_group"), default=PriorityGroup.NONE
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))

    school: Mapped[School] = relationship()


class NeedRecord(LateMixin, Base):
    """A student's need for a computer (4.8.1); one per student, updated in place."""

    __tablename__ = "need_record"
    __table_args__ = (
        CheckConstraint("needs_device OR needs_connectivity", name="needs_something"),
        CheckConstraint("category <> 'none'", name="category_is_a_group"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("student.id", ondelete="CASCADE"), unique=True)
    category: Mapped[PriorityGroup] = mapped_column(str_enum(PriorityGroup, "need_category"))
    needs_device: Mapped[bool] = mapped_column(Boolean, default=True)
    needs_connectivity: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(Text, default="")
    # A need has no event day: it stands from `opened_on`; its current state from `changed_on`
    # (local days). Its earlier states are in NeedHistory, so a period counts it as it stood then.
    opened_on: Mapped[date] = mapped_column(Date)
    changed_on: Mapped[date] = mapped_column(Date)

    student: Mapped[Student] = relationship()


class NeedHistory(Base):
    """One state of a student's need from a day on: opened, changed, or closed (`closed`). Needs are
    counted as they stood at a period's end: per student, the latest state dated on or before it."""

    __tablename__ = "need_history"
    __table_args__ = (
        Index("ix_need_history_student_day", "student_id", "changed_on"),
        CheckConstraint("closed OR needs_device OR needs_connectivity", name="open_needs_something"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("student.id", ondelete="CASCADE"))
    changed_on: Mapped[date] = mapped_column(Date)
    category: Mapped[PriorityGroup] = mapped_column(str_enum(PriorityGroup, "need_history_category"))
    needs_device: Mapped[bool] = mapped_column(Boolean, default=True)
    needs_connectivity: Mapped[bool] = mapped_column(Boolean, default=False)
    closed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    entered_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    entered_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- devices --------------------------------------------------------------------------------------


class Donor(EnteredMixin, Base):
    __tablename__ = "donor"
    __table_args__ = (
        UniqueConstraint("school_id", "name", name="uq_donor_school_name"),
        # NULLs are distinct in a unique constraint: district-wide donors need their own index.
        Index(
            "uq_donor_district_name",
            "name",
            unique=True,
            sqlite_where=text("school_id IS NULL"),
            postgresql_where=text("school_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # A donor known to one school; NULL = known district-wide (e.g. the Ministry's programme).
    school_id: Mapped[int | None] = mapped_column(ForeignKey("school.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[DonorKind] = mapped_column(str_enum(DonorKind, "donor_kind"))
    contact: Mapped[str] = mapped_column(String(300), default="")


class DonationBatch(LateMixin, Base):
    __tablename__ = "donation_batch"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("allocated >= 0 AND allocated <= quantity", name="not_over_allocated"),
        Index("ix_donation_batch_school_received", "school_id", "received_on"),
        UniqueConstraint("school_id", "number", name="uq_donation_batch_school_number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id", ondelete="RESTRICT"))
    # The school's own batch number (1, 2, …, in order of entry): «lô #6» to people, while buttons
    # and links keep the id. Given at creation (`repositories.devices.next_batch_number`).
    number: Mapped[int] = mapped_column(Integer)
    source: Mapped[DonationSource] = mapped_column(str_enum(DonationSource, "donation_source"))
    donor_id: Mapped[int | None] = mapped_column(ForeignKey("donor.id", ondelete="RESTRICT"), index=True)
    received_on: Mapped[date] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(Integer)
    device_type: Mapped[DeviceType] = mapped_column(str_enum(DeviceType, "device_type"))
    make_model: Mapped[str] = mapped_column(String(200), default="")
    condition: Mapped[DeviceCondition] = mapped_column(
        str_enum(DeviceCondition, "device_condition"), default=DeviceCondition.NEW
    )
    specs: Mapped[str] = mapped_column(Text, default="")
    receipt_photo_file_id: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    # Devices given or on open loan; kept by the same UPDATE that guards over-allocation.
    allocated: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    school: Mapped[School] = relationship()
    donor: Mapped[Donor | None] = relationship()


@event.listens_for(Session, "before_flush")
def _number_new_batches(session: Session, flush_context: Any, instances: Any) -> None:
    """A new batch without a number gets its school's next one, in the order the batches were added
    (the import's, a test's world). The services give it themselves, under the school's row lock."""
    pending = [o for o in session.new if isinstance(o, DonationBatch) and o.number is None]
    if not pending:
        return
    with session.no_autoflush:
        for school_id in dict.fromkeys(b.school_id for b in pending):
            numbered = [
                o.number
                for o in session.new
                if isinstance(o, DonationBatch) and o.school_id == school_id and o.number is not None
            ]
            stored = session.scalar(
                select(func.max(DonationBatch.number)).where(DonationBatch.school_id == school_id)
            )
            highest = max([stored or 0, *numbered])
            for batch in (b for b in pending if b.school_id == school_id):
                highest += 1
                batch.number = highest


class Handover(LateMixin, Base):
    __tablename__ = "handover"
    __table_args__ = (
        CheckConstraint("kind = 'loan' OR returned_on IS NULL", name="only_loans_return"),
        CheckConstraint("returned_on IS NULL OR returned_on >= handed_on", name="returned_after_handed"),
        # One active handover per student per batch.
        Index(
            "uq_handover_active_student_batch",
            "batch_id",
            "student_id",
            unique=True,
            sqlite_where=text("returned_on IS NULL"),
            postgresql_where=text("returned_on IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("donation_batch.id", ondelete="RESTRICT"), index=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("student.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[HandoverKind] = mapped_column(str_enum(HandoverKind, "handover_kind"))
    handed_on: Mapped[date] = mapped_column(Date)
    returned_on: Mapped[date | None] = mapped_column(Date)
    receipt_photo_file_id: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    # A return is an event of its own: when it was entered, and whether after the 1-day rule (issue 15).
    return_entered_at: Mapped[datetime | None] = mapped_column(default=None)
    return_entered_late: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    batch: Mapped[DonationBatch] = relationship()
    student: Mapped[Student] = relationship()


# --- vaccines -------------------------------------------------------------------------------------


class VaccineProduct(Base):
    """The maintained list of products, with the rules the dose checks use (data, not code)."""

    __tablename__ = "vaccine_product"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    min_age_years: Mapped[int] = mapped_column(Integer, default=0)
    min_interval_days: Mapped[int] = mapped_column(Integer, default=0)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


class VaccineDose(LateMixin, Base):
    __tablename__ = "vaccine_dose"
    __table_args__ = (
        UniqueConstraint("student_id", "dose_number", name="uq_vaccine_dose_student_number"),
        CheckConstraint("dose_number BETWEEN 1 AND 10", name="dose_number_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("student.id", ondelete="CASCADE"), index=True)
    dose_number: Mapped[int] = mapped_column(Integer)
    given_on: Mapped[date] = mapped_column(Date, index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("vaccine_product.id", ondelete="RESTRICT"))
    product_other_name: Mapped[str] = mapped_column(String(200), default="")
    place: Mapped[DosePlace] = mapped_column(str_enum(DosePlace, "dose_place"))

    student: Mapped[Student] = relationship()
    product: Mapped[VaccineProduct] = relationship()


# --- reporting rounds -----------------------------------------------------------------------------


class ReportingRound(Base):
    __tablename__ = "reporting_round"
    __table_args__ = (
        CheckConstraint("approve_deadline >= submit_deadline", name="approve_after_submit"),
        CheckConstraint("compile_deadline >= approve_deadline", name="compile_after_approve"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("district.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    submit_deadline: Mapped[datetime] = mapped_column()
    approve_deadline: Mapped[datetime] = mapped_column()
    compile_deadline: Mapped[datetime] = mapped_column()
    status: Mapped[RoundStatus] = mapped_column(
        str_enum(RoundStatus, "round_status"), default=RoundStatus.OPEN
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    compiled_at: Mapped[datetime | None] = mapped_column(default=None)
    compiled_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))


class RoundSubmission(Base):
    """One school's submission in a round, per track (programme data, vaccine data)."""

    __tablename__ = "round_submission"
    __table_args__ = (
        UniqueConstraint("round_id", "school_id", "track", name="uq_round_submission_round_school_track"),
        CheckConstraint("status <> 'returned' OR return_reason <> ''", name="return_has_reason"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("reporting_round.id", ondelete="CASCADE"))
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id", ondelete="CASCADE"), index=True)
    track: Mapped[SubmissionTrack] = mapped_column(str_enum(SubmissionTrack, "submission_track"))
    status: Mapped[SubmissionStatus] = mapped_column(
        str_enum(SubmissionStatus, "submission_status"), default=SubmissionStatus.NOT_SUBMITTED
    )
    submitted_at: Mapped[datetime | None] = mapped_column(default=None)
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None] = mapped_column(default=None)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    return_reason: Mapped[str] = mapped_column(Text, default="")
    # The school's figures when it last submitted, to show the reviewer what changed.
    figures: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class SubmissionEvent(Base):
    """Status history of a submission."""

    __tablename__ = "submission_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("round_submission.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[SubmissionStatus] = mapped_column(str_enum(SubmissionStatus, "event_from_status"))
    to_status: Mapped[SubmissionStatus] = mapped_column(str_enum(SubmissionStatus, "event_to_status"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")
    figures: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class SubmissionSnapshot(Base):
    """The school's figures of one part as submitted: frozen at submit, approved as they are.

    A new snapshot is taken at every submit (`number` 1, 2, …); approval stamps the one submitted,
    and a reopen stamps the approved one as reopened. Compile reads approved, not reopened snapshots.
    """

    __tablename__ = "submission_snapshot"
    __table_args__ = (
        UniqueConstraint("submission_id", "number", name="uq_submission_snapshot_submission_number"),
        CheckConstraint("reopened_at IS NULL OR reopen_reason <> ''", name="reopen_has_reason"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("round_submission.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    taken_at: Mapped[datetime] = mapped_column(default=utcnow)
    taken_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    late: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    figures: Mapped[dict[str, Any]] = mapped_column()  # SchoolFigures as JSON
    approved_at: Mapped[datetime | None] = mapped_column(default=None)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    reopened_at: Mapped[datetime | None] = mapped_column(default=None)
    reopened_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    reopen_reason: Mapped[str] = mapped_column(Text, default="")


class SentReminder(Base):
    """A reminder already sent; survives restarts so nobody is reminded twice."""

    __tablename__ = "sent_reminder"
    __table_args__ = (UniqueConstraint("round_id", "staff_id", "reminder_key", name="uq_sent_reminder_once"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("reporting_round.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    reminder_key: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)


class CompiledReport(Base):
    __tablename__ = "compiled_report"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int | None] = mapped_column(
        ForeignKey("reporting_round.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BatchReport(Base):
    """The district reported a batch's handovers to the province (the 5-day rule): by `/compile` of a
    round holding the batch, or by the statistics officer's "đã báo cáo Sở" (issue 15)."""

    __tablename__ = "batch_report"

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("donation_batch.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    reported_at: Mapped[datetime] = mapped_column()
    reported_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("reporting_round.id", ondelete="SET NULL"))


# --- audit, FAQ, conversations --------------------------------------------------------------------


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    action: Mapped[AuditAction] = mapped_column(str_enum(AuditAction, "audit_action"))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    school_id: Mapped[int | None] = mapped_column(Integer, index=True)  # for /history; no FK, outlives rows
    before: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class Contact(Base):
    """Whom to call per topic (FAQ); filled by an admin, shipped empty of personal data."""

    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(200), default="")
    name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    telegram_username: Mapped[str] = mapped_column(String(64), default="")


class FaqEntry(Base):
    """Entries added or edited by officers; they override the shipped knowledge base by `key`."""

    __tablename__ = "faq_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    topic: Mapped[str] = mapped_column(String(64))
    question: Mapped[str] = mapped_column(Text)
    alternatives: Mapped[list[Any]] = mapped_column(default=list)
    answer: Mapped[str] = mapped_column(Text)
    contact_topic: Mapped[str] = mapped_column(String(64), default="")
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class FaqQuestion(Base):
    """A question the knowledge base could not answer, kept for officers."""

    __tablename__ = "faq_question"

    id: Mapped[int] = mapped_column(primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    guessed_topic: Mapped[str] = mapped_column(String(64), default="")
    asked_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class PersistedData(Base):
    """PTB user/chat/bot data and callback data, as JSON."""

    __tablename__ = "persisted_data"
    __table_args__ = (UniqueConstraint("kind", "key", name="uq_persisted_data_kind_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # user / chat / bot / callback
    key: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConversationDraft(Base):
    """The record a person is entering: written on every step so a restart loses nothing."""

    __tablename__ = "conversation_draft"
    __table_args__ = (UniqueConstraint("telegram_user_id", "flow", name="uq_conversation_draft_user_flow"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    flow: Mapped[str] = mapped_column(String(64))
    step: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PendingUpload(Base):
    """A checked Excel upload waiting for the person's confirmation."""

    __tablename__ = "pending_upload"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    school_id: Mapped[int | None] = mapped_column(ForeignKey("school.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- the sector database (CSDL): upload files and what is already there ----------------------------


class CsdlLayout(Base):
    """A menu's upload layout replaced by an admin (YAML text); without a row the shipped file counts."""

    __tablename__ = "csdl_layout"

    menu: Mapped[str] = mapped_column(String(32), primary_key=True)
    content: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))


class CsdlExport(Base):
    """One upload file handed out: which records it held and their fields then, so «Đã tải lên CSDL»
    (or the file itself, by its token) marks exactly those, as they were in the file."""

    __tablename__ = "csdl_export"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id", ondelete="CASCADE"), index=True)
    menu: Mapped[str] = mapped_column(String(32))
    # [{"kind": …, "id": …, "fingerprint": …, "fields": {…}}, …]
    items: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    marked_at: Mapped[datetime | None] = mapped_column(default=None)
    marked_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))


class CsdlMark(Base):
    """A record is in the CSDL as it was at `fields_at`: its fields then and their fingerprint. A record
    whose fields no longer give that fingerprint is "to upload" again (what changed: `fields`)."""

    __tablename__ = "csdl_mark"
    __table_args__ = (UniqueConstraint("record_kind", "record_id", name="uq_csdl_mark_record"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    record_kind: Mapped[CsdlRecordKind] = mapped_column(str_enum(CsdlRecordKind, "csdl_record_kind"))
    record_id: Mapped[int] = mapped_column(Integer)
    school_id: Mapped[int] = mapped_column(ForeignKey("school.id", ondelete="CASCADE"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fields_at: Mapped[datetime] = mapped_column()  # when the fields were read (the file's export)
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)
    marked_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    export_id: Mapped[int | None] = mapped_column(ForeignKey("csdl_export.id", ondelete="SET NULL"))


# --- running: the update inbox and the leader lease -----------------------------------------------


class UpdateInbox(Base):
    """Every update Telegram gave us, written before Telegram is told it was received (the next
    getUpdates offset, the webhook's 200), so a killed process loses none; handled from here."""

    __tablename__ = "update_inbox"
    __table_args__ = (Index("ix_update_inbox_status", "status", "update_id"),)

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    # The update as JSON; cleared once handled (it holds what people typed).
    payload: Mapped[dict[str, Any] | None] = mapped_column()
    status: Mapped[InboxStatus] = mapped_column(str_enum(InboxStatus, "inbox_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(default=None)


class LeaderLease(Base):
    """Which instance polls Telegram and runs the jobs: the holder until `expires_at` (renewed every few
    seconds). `term` grows with every new holder: writes of a former leader are refused by it."""

    __tablename__ = "leader_lease"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    term: Mapped[int] = mapped_column(Integer, default=1)
    acquired_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
