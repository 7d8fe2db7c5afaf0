"""period locks, need history, submission snapshots (issue 14)

- need_record.opened_on / changed_on: the local day the need stands from (existing needs: the day they
  were entered);
- need_history: every state of a need with its day (existing needs: one state, that day);
- submission_snapshot: the school's figures frozen at submit. Submissions already submitted or approved
  get theirs from the data as it stands at upgrade time (their records were locked since they were
  submitted), approved ones stamped approved by their reviewer.

Local days are taken in BOT_TIMEZONE (default Asia/Ho_Chi_Minh), as the bot does.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00
"""

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tz() -> ZoneInfo:
    return ZoneInfo(os.environ.get("BOT_TIMEZONE") or "Asia/Ho_Chi_Minh")


def _aware(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def upgrade() -> None:
    bind = op.get_bind()
    tz = _tz()
    with op.batch_alter_table("need_record", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opened_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("changed_on", sa.Date(), nullable=True))
    need_record = sa.table(
        "need_record",
        sa.column("id", sa.Integer()),
        sa.column("student_id", sa.Integer()),
        sa.column("category", sa.String()),
        sa.column("needs_device", sa.Boolean()),
        sa.column("needs_connectivity", sa.Boolean()),
        sa.column("entered_by_id", sa.Integer()),
        sa.column("entered_at", sa.DateTime(timezone=True)),
        sa.column("opened_on", sa.Date()),
        sa.column("changed_on", sa.Date()),
    )
    needs = [dict(row._mapping) for row in bind.execute(sa.select(need_record))]
    for need in needs:
        need["day"] = _aware(need["entered_at"]).astimezone(tz).date()
        bind.execute(
            need_record.update()
            .where(need_record.c.id == need["id"])
            .values(opened_on=need["day"], changed_on=need["day"])
        )
    with op.batch_alter_table("need_record", schema=None) as batch_op:
        batch_op.alter_column("opened_on", existing_type=sa.Date(), nullable=False)
        batch_op.alter_column("changed_on", existing_type=sa.Date(), nullable=False)

    need_history = op.create_table(
        "need_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("student_id", sa.Integer(), nullable=False),
        sa.Column("changed_on", sa.Date(), nullable=False),
        sa.Column(
            "category",
            sa.Enum(
                "poor",
                "near_poor",
                "covid_orphan",
                "other_hardship",
                "none",
                name="need_history_category",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("needs_device", sa.Boolean(), nullable=False),
        sa.Column("needs_connectivity", sa.Boolean(), nullable=False),
        sa.Column("closed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("entered_by_id", sa.Integer(), nullable=True),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "closed OR needs_device OR needs_connectivity", name=op.f("ck_need_history_open_needs_something")
        ),
        sa.ForeignKeyConstraint(
            ["entered_by_id"],
            ["staff.id"],
            name=op.f("fk_need_history_entered_by_id_staff"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["student.id"],
            name=op.f("fk_need_history_student_id_student"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_need_history")),
    )
    with op.batch_alter_table("need_history", schema=None) as batch_op:
        batch_op.create_index("ix_need_history_student_day", ["student_id", "changed_on"], unique=False)
    if needs:
        op.bulk_insert(
            need_history,
            [
                {
                    "student_id": need["student_id"],
                    "changed_on": need["day"],
                    "category": need["category"],
                    "needs_device": need["needs_device"],
                    "needs_connectivity": need["needs_connectivity"],
                    "closed": False,
                    "entered_by_id": need["entered_by_id"],
                    "entered_at": _aware(need["entered_at"]),
                }
                for need in needs
            ],
        )

    snapshot = op.create_table(
        "submission_snapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_by_id", sa.Integer(), nullable=True),
        sa.Column("late", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_by_id", sa.Integer(), nullable=True),
        sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reopened_by_id", sa.Integer(), nullable=True),
        sa.Column("reopen_reason", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "reopened_at IS NULL OR reopen_reason <> ''",
            name=op.f("ck_submission_snapshot_reopen_has_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["approved_by_id"],
            ["staff.id"],
            name=op.f("fk_submission_snapshot_approved_by_id_staff"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["reopened_by_id"],
            ["staff.id"],
            name=op.f("fk_submission_snapshot_reopened_by_id_staff"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["round_submission.id"],
            name=op.f("fk_submission_snapshot_submission_id_round_submission"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["taken_by_id"],
            ["staff.id"],
            name=op.f("fk_submission_snapshot_taken_by_id_staff"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_snapshot")),
        sa.UniqueConstraint("submission_id", "number", name="uq_submission_snapshot_submission_number"),
    )
    with op.batch_alter_table("submission_snapshot", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_submission_snapshot_submission_id"), ["submission_id"], unique=False
        )
    _snapshot_submitted(bind, snapshot, tz)


def _snapshot_submitted(bind: sa.Connection, snapshot: sa.Table, tz: ZoneInfo) -> None:
    """Submissions already submitted or approved: their snapshot from the data as it stands now."""
    submission = sa.table(
        "round_submission",
        sa.column("id", sa.Integer()),
        sa.column("round_id", sa.Integer()),
        sa.column("school_id", sa.Integer()),
        sa.column("status", sa.String()),
        sa.column("submitted_at", sa.DateTime(timezone=True)),
        sa.column("submitted_by_id", sa.Integer()),
        sa.column("reviewed_at", sa.DateTime(timezone=True)),
        sa.column("reviewed_by_id", sa.Integer()),
        sa.column("figures", sa.JSON()),
    )
    rows = list(bind.execute(sa.select(submission).where(submission.c.status.in_(("submitted", "approved")))))
    if not rows:
        return
    # The figures are the application's own (one definition of every figure); only an existing
    # database with submissions gets here, when these modules match this revision's schema.
    from storage.models import ReportingRound, School
    from storage.repositories.rounds import figure_statements, figure_values, report_filter
    from storage.schemas.rounds import SchoolFigures

    for row in rows:
        rnd = bind.execute(sa.select(ReportingRound).where(ReportingRound.id == row.round_id)).one()
        school = bind.execute(sa.select(School).where(School.id == row.school_id)).one()
        f = report_filter(rnd, tz, school_id=school.id)
        found = {
            name: [dict(r._mapping) for r in bind.execute(statement)]
            for name, statement in figure_statements(f, schema_before_0005=True).items()
        }
        figures = SchoolFigures(
            round_id=rnd.id,
            school_id=school.id,
            school_code=school.code,
            school_name=school.name,
            level=school.level,
            period_start=rnd.period_start,
            period_end=rnd.period_end,
            values=figure_values(found),
        )
        stored = row.figures or {}
        if isinstance(stored, str):
            import json

            stored = json.loads(stored)
        submitted_at = _aware(row.submitted_at) if row.submitted_at else datetime.now(UTC)
        approved = row.status == "approved"
        bind.execute(
            snapshot.insert().values(
                submission_id=row.id,
                number=1,
                taken_at=submitted_at,
                taken_by_id=row.submitted_by_id,
                late=bool(stored.get("late", False)),
                figures=figures.model_dump(mode="json"),
                approved_at=(_aware(row.reviewed_at) if row.reviewed_at else submitted_at)
                if approved
                else None,
                approved_by_id=row.reviewed_by_id if approved else None,
                reopen_reason="",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("submission_snapshot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submission_snapshot_submission_id"))
    op.drop_table("submission_snapshot")
    with op.batch_alter_table("need_history", schema=None) as batch_op:
        batch_op.drop_index("ix_need_history_student_day")
    op.drop_table("need_history")
    with op.batch_alter_table("need_record", schema=None) as batch_op:
        batch_op.drop_column("changed_on")
        batch_op.drop_column("opened_on")
