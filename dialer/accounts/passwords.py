"""Passwords: Argon2id through argon2-cffi, never stored or logged in clear.

argon2-cffi's `PasswordHasher` defaults are RFC 9106's low-memory profile
(Argon2id, 64 MiB, 3 passes): a stolen table costs an attacker that much per
guess. A hash made with weaker parameters is upgraded at the next good log-in.
An unknown user name is checked against a dummy hash, so a log-in attempt takes
about as long whether the account exists or not.
"""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from campaign.errors import InvalidArgument

MIN_LENGTH = 10  # NIST SP 800-63B asks for at least 8; nurses share workstations
MAX_LENGTH = 256  # beyond this a "password" is a denial-of-service attempt on the hasher


@lru_cache(maxsize=1)
def hasher() -> PasswordHasher:
    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hasher().hash("carecall: no such account, same work")


def check_new_password(password: str) -> None:
    """A password an account may be given, or InvalidArgument saying why not (never echoing it)."""
    if len(password) < MIN_LENGTH:
        raise InvalidArgument(f"the password must be at least {MIN_LENGTH} characters long")
    if len(password) > MAX_LENGTH:
        raise InvalidArgument(f"the password must be at most {MAX_LENGTH} characters long")
    if not password.strip():
        raise InvalidArgument("the password must not be blank")


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify(stored_hash: str | None, password: str) -> bool:
    """Whether `password` matches; with no hash (unknown account), the same work and False."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return hasher().verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return hasher().check_needs_rehash(stored_hash)
