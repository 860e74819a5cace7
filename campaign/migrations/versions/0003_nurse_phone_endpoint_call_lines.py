"""nurse.phone_endpoint; the dialer's call_line and call_line_event tables

A nurse's phone (PJSIP endpoint, Twilio Client identity or number) is part of
her record. The dialer keeps each call's backend id and line state in its own
table, keyed to the attempt, so telephony ids stay out of the programme's
tables; call_line_event carries events that reached another process to the
call's owner.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # autogenerate renders sqlmodel.sql.sqltypes.AutoString / UTCDateTime
from alembic import op

revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('nurse', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone_endpoint', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
    op.create_table('call_line',
    sa.Column('attempt_id', sa.Integer(), nullable=False),
    sa.Column('backend', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('call_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('nurse_id', sa.Integer(), nullable=False),
    sa.Column('worker', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('cause', sa.Integer(), nullable=True),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('opened_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['call_attempt.id'], name=op.f('fk_call_line_attempt_id_call_attempt')),
    sa.PrimaryKeyConstraint('attempt_id', name=op.f('pk_call_line'))
    )
    with op.batch_alter_table('call_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_call_line_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_call_line_worker'), ['worker'], unique=False)
    op.create_table('call_line_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('worker', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('attempt_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('cause', sa.Integer(), nullable=True),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('voicemail_left', sa.Boolean(), nullable=False),
    sa.Column('call_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_line_event'))
    )
    with op.batch_alter_table('call_line_event', schema=None) as batch_op:
        batch_op.create_index('ix_call_line_event_worker_id', ['worker', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('call_line_event', schema=None) as batch_op:
        batch_op.drop_index('ix_call_line_event_worker_id')
    op.drop_table('call_line_event')
    with op.batch_alter_table('call_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_call_line_worker'))
        batch_op.drop_index(batch_op.f('ix_call_line_call_id'))
    op.drop_table('call_line')
    with op.batch_alter_table('nurse', schema=None) as batch_op:
        batch_op.drop_column('phone_endpoint')
