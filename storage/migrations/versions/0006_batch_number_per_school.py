"""a batch's number within its school (issue 16, item 4)

- donation_batch.number: the school's own batch number (1, 2, …), what people see as «lô #…» instead
  of the district-wide id; unique per school. Existing batches are numbered per school in order of
  id (the order they were entered).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-14 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 1_000


def upgrade() -> None:
    with op.batch_alter_table("donation_batch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("number", sa.Integer(), nullable=True))
    connection = op.get_bind()
    batches = sa.table("donation_batch", sa.column("id", sa.Integer()), sa.column("school_id", sa.Integer()))
    rows = connection.execute(
        sa.select(batches.c.id, batches.c.school_id).order_by(batches.c.school_id, batches.c.id)
    ).all()
    numbers: dict[int, int] = {}
    values = []
    for batch_id, school_id in rows:
        numbers[school_id] = numbers.get(school_id, 0) + 1
        values.append({"batch_id": batch_id, "number": numbers[school_id]})
    update = sa.text("UPDATE donation_batch SET number = :number WHERE id = :batch_id")
    for start in range(0, len(values), CHUNK):
        connection.execute(update, values[start : start + CHUNK])
    with op.batch_alter_table("donation_batch", schema=None) as batch_op:
        batch_op.alter_column("number", existing_type=sa.Integer(), nullable=False)
        batch_op.create_unique_constraint("uq_donation_batch_school_number", ["school_id", "number"])


def downgrade() -> None:
    with op.batch_alter_table("donation_batch", schema=None) as batch_op:
        batch_op.drop_constraint("uq_donation_batch_school_number", type_="unique")
        batch_op.drop_column("number")
