"""nurse presence and commands, user accounts, app secrets, inbound calls

A nurse's state is stored by the dialer process that owns her, so every
process (web, inbound, other dialers) sees one board; commands (ready, pause,
outcome…) wait in nurse_command until the owner takes them. Accounts of the
web consoles, the shared signing key of their sessions, and the calls to the
programme's inbound number.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:48:59.989803
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # autogenerate renders sqlmodel.sql.sqltypes.AutoString / UTCDateTime
from alembic import op

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('app_secret',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_app_secret'))
    )
    op.create_table('nurse_command',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('nurse_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('taken_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('taken_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('result', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.ForeignKeyConstraint(['nurse_id'], ['nurse.id'], name=op.f('fk_nurse_command_nurse_id_nurse')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nurse_command'))
    )
    with op.batch_alter_table('nurse_command', schema=None) as batch_op:
        batch_op.create_index('ix_nurse_command_pending', ['taken_at', 'nurse_id'], unique=False)

    op.create_table('nurse_presence',
    sa.Column('nurse_id', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('worker', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('attempt_id', sa.Integer(), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('call_state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['nurse_id'], ['nurse.id'], name=op.f('fk_nurse_presence_nurse_id_nurse')),
    sa.PrimaryKeyConstraint('nurse_id', name=op.f('pk_nurse_presence'))
    )
    op.create_table('user_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('nurse_id', sa.Integer(), nullable=True),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['nurse_id'], ['nurse.id'], name=op.f('fk_user_account_nurse_id_nurse')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_account')),
    sa.UniqueConstraint('nurse_id', name=op.f('uq_user_account_nurse_id'))
    )
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_account_username'), ['username'], unique=True)

    op.create_table('inbound_call',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('backend', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('call_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('caller', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('caller_key', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('nurse_id', sa.Integer(), nullable=True),
    sa.Column('attempt_id', sa.Integer(), nullable=True),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('wait_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('ended_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['nurse_id'], ['nurse.id'], name=op.f('fk_inbound_call_nurse_id_nurse')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_inbound_call_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_call'))
    )
    with op.batch_alter_table('inbound_call', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_call_call_id'), ['call_id'], unique=True)
        batch_op.create_index(batch_op.f('ix_inbound_call_patient_id'), ['patient_id'], unique=False)

    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_phone'), ['phone'], unique=False)
        batch_op.create_index(batch_op.f('ix_patient_phone_alt'), ['phone_alt'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_phone_alt'))
        batch_op.drop_index(batch_op.f('ix_patient_phone'))

    with op.batch_alter_table('inbound_call', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_call_patient_id'))
        batch_op.drop_index(batch_op.f('ix_inbound_call_call_id'))

    op.drop_table('inbound_call')
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_account_username'))

    op.drop_table('user_account')
    op.drop_table('nurse_presence')
    with op.batch_alter_table('nurse_command', schema=None) as batch_op:
        batch_op.drop_index('ix_nurse_command_pending')

    op.drop_table('nurse_command')
    op.drop_table('app_secret')
