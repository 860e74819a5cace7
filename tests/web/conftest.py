"""tests/web: the web application in process. Passwords are hashed with Argon2id at a test cost
(one pass, 8 MiB) so that log-ins take milliseconds; the production parameters are checked by
test_users_cli through the console script, which runs unpatched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

from dialer.accounts import passwords

_CHEAP = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(passwords, "hasher", lambda: _CHEAP)
    passwords._dummy_hash.cache_clear()
    yield
    passwords._dummy_hash.cache_clear()  # the next tests hash for real again
