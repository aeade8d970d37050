"""Passwords and user names: argon2 hashes checked off the event loop, a strength rule, safe names.

A password must be at least 12 characters and not easy to guess: zxcvbn (Dropbox's estimator,
which ships lists of common passwords, names and words) must score it 3 of 4 or more. User names
are normalised (Unicode NFKC, trimmed, lower case) and limited to a safe set, so `Carol`,
` carol` and `carol` are one user and `<script>` is none.
"""

from __future__ import annotations

import asyncio
import functools
import re
import secrets
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.concurrency import run_in_threadpool
from zxcvbn import zxcvbn

from ivr.exceptions import BadUserName, WeakPassword

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; a bound keeps a 10 MB "password" out
MIN_PASSWORD_SCORE = 3
USER_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")

_hasher = PasswordHasher()
# Each argon2 check takes 64 MiB and a core for ~0.1 s: a few at once, off the event loop.
CHECKS_AT_ONCE = 2


def normal_user_name(raw: str) -> str:
    """The user name as stored: NFKC, trimmed, lower case; BadUserName if outside the safe set."""
    name = unicodedata.normalize("NFKC", raw).strip().casefold()
    if not USER_NAME.fullmatch(name):
        raise BadUserName(
            "a user name is 1 to 64 characters: lower-case letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return name


def check_password_strength(password: str, user_name: str = "") -> None:
    """WeakPassword naming what is wrong, in words a person can act on."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"the password must be at most {MAX_PASSWORD_LENGTH} characters")
    verdict = zxcvbn(password[:100], user_inputs=[user_name] if user_name else [])
    if verdict["score"] < MIN_PASSWORD_SCORE:
        warning = verdict["feedback"].get("warning") or "it is too easy to guess"
        raise WeakPassword(
            f"the password is too easy to guess ({warning.rstrip('.')}); try a few unusual words"
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password[:MAX_PASSWORD_LENGTH])
    except (VerificationError, InvalidHashError):
        return False


# A valid hash of a random password: checking it costs what a real check costs, so the time
# taken does not reveal whether a user name exists.
@functools.cache
def _dummy_hash() -> str:
    # Made on first need, not at import: it costs 64 MiB and 0.1 s that no CLI command needs.
    return _hasher.hash(secrets.token_hex(16))


async def password_matches_async(password_hash: str | None, password: str, checks: asyncio.Semaphore) -> bool:
    """Check a password in a worker thread (never on the event loop), at most `checks` at once;
    None: an unknown user, checked against a dummy hash so it takes as long."""
    async with checks:
        if password_hash is None:
            await run_in_threadpool(password_matches, _dummy_hash(), password)
            return False
        return await run_in_threadpool(password_matches, password_hash, password)
