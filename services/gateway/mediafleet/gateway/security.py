"""Password hashing: argon2id through pwdlib."""

from __future__ import annotations

import functools
import secrets

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

_hasher = PasswordHash((Argon2Hasher(),))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return _hasher.verify(password, password_hash)
    except UnknownHashError:  # "!" marks an account with no password (embedded local user)
        return False


@functools.cache
def dummy_hash() -> str:
    """An argon2id hash of a random password: checked for unknown usernames, so a login costs
    the same whether the user exists or not."""
    return hash_password(secrets.token_hex(16))
