"""sector database (CSDL) upload files and marks (issue 19)

- csdl_layout: a menu's upload layout replaced by an admin (the shipped YAML counts without a row);
- csdl_export: each upload file handed out, with the records it held and their fields then;
- csdl_mark: a record marked as uploaded to the CSDL, with the fingerprint of its fields at the time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "csdl_layout",
        sa.Column("menu", sa.String(length=32), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["staff.id"],
            name=op.f("fk_csdl_layout_updated_by_id_staff"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("menu", name=op.f("pk_csdl_layout")),
    )
    op.create_table(
        "csdl_export",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("menu", sa.String(length=32), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("marked_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["staff.id"],
            name=op.f("fk_csdl_export_created_by_id_staff"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["marked_by_id"],
            ["staff.id"],
            name=op.f("fk_csdl_export_marked_by_id_staff"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"], ["school.id"], name=op.f("fk_csdl_export_school_id_school"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_csdl_export")),
        sa.UniqueConstraint("token", name=op.f("uq_csdl_export_token")),
    )
    with op.batch_alter_table("csdl_export", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_csdl_export_school_id"), ["school_id"], unique=False)
    op.create_table(
        "csdl_mark",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "record_kind",
            sa.Enum(
                "need",
                "batch",
                "handover",
                "dose",
                name="csdl_record_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("fields_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("marked_by_id", sa.Integer(), nullable=True),
        sa.Column("export_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["export_id"],
            ["csdl_export.id"],
            name=op.f("fk_csdl_mark_export_id_csdl_export"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["marked_by_id"], ["staff.id"], name=op.f("fk_csdl_mark_marked_by_id_staff"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["school_id"], ["school.id"], name=op.f("fk_csdl_mark_school_id_school"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_csdl_mark")),
        sa.UniqueConstraint("record_kind", "record_id", name="uq_csdl_mark_record"),
    )
    with op.batch_alter_table("csdl_mark", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_csdl_mark_school_id"), ["school_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("csdl_mark", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_csdl_mark_school_id"))
    op.drop_table("csdl_mark")
    with op.batch_alter_table("csdl_export", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_csdl_export_school_id"))
    op.drop_table("csdl_export")
    op.drop_table("csdl_layout")
