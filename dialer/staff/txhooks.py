"""What to do when a session's transaction commits, or ends without committing.

The dialer writes presence rows, command results and notifications inside
transactions that the campaign's services open and commit; it learns their
fate here. Three listeners on the Session class, installed once, look in
`session.info`: a session that asked for nothing costs a dictionary lookup,
where a listener per session would cost SQLAlchemy's event registry on every
transaction of a busy dialer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

_KEY = "carecall_tx_hooks"
Hook = Callable[[Any], None]  # given the session


@dataclass(slots=True)
class TxHooks:
    before_commit: list[Hook] = field(default_factory=list)  # in the transaction, before it commits
    committed: list[Hook] = field(default_factory=list)  # after it committed
    lost: list[Hook] = field(default_factory=list)  # it ended without committing (rolled back, closed)


def hooks(session: Session) -> TxHooks:
    """This session's hooks for the transaction under way (made on first use)."""
    h: TxHooks | None = session.info.get(_KEY)
    if h is None:
        h = session.info[_KEY] = TxHooks()
    return h


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    h: TxHooks | None = session.info.get(_KEY)
    if h is not None:
        for fn in h.before_commit:
            fn(session)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    h: TxHooks | None = session.info.pop(_KEY, None)
    if h is not None:
        for fn in h.committed:
            fn(session)


@event.listens_for(Session, "after_transaction_end")
def _after_end(session: Session, transaction: Any) -> None:
    if transaction.parent is not None:
        return  # a savepoint: the transaction goes on
    h: TxHooks | None = session.info.pop(_KEY, None)
    if h is not None:
        for fn in h.lost:
            fn(session)
