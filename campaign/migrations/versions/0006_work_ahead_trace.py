"""work ahead: a task whose first call a nurse with nothing due made early keeps when it was planned

`patient why` says so, and the benchmark counts such calls from the database.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 03:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # autogenerate renders sqlmodel.sql.sqltypes.AutoString / UTCDateTime
from alembic import op


revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('call_task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ahead_of', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('call_task', schema=None) as batch_op:
        batch_op.drop_column('ahead_of')
