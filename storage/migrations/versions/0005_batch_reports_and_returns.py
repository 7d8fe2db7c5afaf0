"""the district's report of a batch upward, and when a return was entered (issue 15)

- batch_report: when the district reported a batch's handovers to the province (the 5-day rule), by
  `/compile` or the statistics officer's "đã báo cáo Sở"; who, and the round if any;
- handover.return_entered_at / return_entered_late: a return is a record of the 1-day rule too.
  Returns entered before this migration have no entry time and count as on time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-12 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batch_report",
        sa.Column("batch_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reported_by_id", sa.Integer(), nullable=True),
        sa.Column("round_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["donation_batch.id"],
            name=op.f("fk_batch_report_batch_id_donation_batch"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reported_by_id"],
            ["staff.id"],
            name=op.f("fk_batch_report_reported_by_id_staff"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["reporting_round.id"],
            name=op.f("fk_batch_report_round_id_reporting_round"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_batch_report")),
    )
    with op.batch_alter_table("handover", schema=None) as batch_op:
        batch_op.add_column(sa.Column("return_entered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("return_entered_late", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("handover", schema=None) as batch_op:
        batch_op.drop_column("return_entered_late")
        batch_op.drop_column("return_entered_at")
    op.drop_table("batch_report")
