"""Who may log in to the consoles, with which role: accounts, Argon2id passwords, lock-out.

model      the tables (user_account, app_secret) and Role
passwords  hashing and checking (argon2-cffi's PasswordHasher)
store      every query on those tables
service    create, authenticate (lock-out, audit), unlock, list; the session key
"""

from dialer.accounts.model import AppSecret, Role, UserAccount
from dialer.accounts.service import (
    LoginOutcome,
    LoginResult,
    authenticate,
    create_account,
    list_accounts,
    normalise_username,
    session_key,
    unlock_account,
)

__all__ = [
    "AppSecret",
    "LoginOutcome",
    "LoginResult",
    "Role",
    "UserAccount",
    "authenticate",
    "create_account",
    "list_accounts",
    "normalise_username",
    "session_key",
    "unlock_account",
]
