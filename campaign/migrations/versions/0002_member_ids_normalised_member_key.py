"""member ids upper case without spaces; patient.member_key (without leading zeros), indexed

Imports now store member ids upper case without spaces, so 'hx0002' and
'HX0002' are one patient, and find ids equal once Excel's dropped leading zeros
are put aside by patient.member_key, a column the database computes and indexes:
adding it fills it for every row (stored on PostgreSQL; virtual on a migrated
SQLite file, the only kind SQLite adds without copying the table).

Stored ids written otherwise are upper-cased here, unless that would give an id
another patient has (or two stored ids would become one): those are probable
duplicates of one person, whose calls and outcomes no migration can merge. They
are left as they are, and counted in a warning for the supervisor to resolve.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 17:37:10.751108
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate renders sqlmodel.sql.sqltypes.AutoString / UTCDateTime)
from alembic import op

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")
_PATIENT = sa.table("patient", sa.column("id", sa.Integer), sa.column("member_id", sa.String))


def upgrade() -> None:
    _normalise_member_ids()
    # SQLite adds only a virtual computed column in place (a stored one would copy the table)
    persisted = None if op.get_bind().dialect.name == "sqlite" else True
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.add_column(sa.Column('member_key', sa.String(length=32), sa.Computed("ltrim(member_id, '0')", persisted=persisted), nullable=True))
        batch_op.create_index(batch_op.f('ix_patient_member_key'), ['member_key'], unique=False)


def downgrade() -> None:
    # member ids stay upper case: the lower-case spelling they had is not kept
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_member_key'))
        batch_op.drop_column('member_key')


def _normalise_member_ids() -> None:
    conn = op.get_bind()
    member_id = _PATIENT.c.member_id
    canonical = sa.func.upper(sa.func.replace(member_id, " ", ""))
    rows = conn.execute(sa.select(_PATIENT.c.id, member_id).where(member_id != canonical)).all()
    if not rows:
        return
    wanted: dict[str, list[int]] = {}
    for patient_id, old in rows:
        wanted.setdefault("".join(old.split()).upper(), []).append(patient_id)
    taken: set[str] = set()
    targets = list(wanted)
    for start in range(0, len(targets), 500):
        chunk = targets[start : start + 500]
        taken.update(m for (m,) in conn.execute(sa.select(member_id).where(member_id.in_(chunk))))
    updates = [
        {"patient_id": ids[0], "canonical": new}
        for new, ids in wanted.items()
        if len(ids) == 1 and new not in taken
    ]
    if updates:
        conn.execute(
            sa.update(_PATIENT)
            .where(_PATIENT.c.id == sa.bindparam("patient_id"))
            .values(member_id=sa.bindparam("canonical")),
            updates,
        )
    left = len(rows) - len(updates)
    if left:
        log.warning(
            "%d member ids left as they are: upper case without spaces they would equal another "
            "patient's (probable duplicates, to be resolved by hand)",
            left,
        )
