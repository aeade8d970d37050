"""Who may read and change the evidence: users, their web sessions, and API tokens.

Creating a user or a token, and every later change to one (a password, disabling, ending
sessions, revoking), is appended to the hash chain as an audit event, in the same
transaction; never a password hash or a token. Web sessions are scratch (not chained): the
user changes that end them are. Shared by both backends (portable SQL).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from consent_store.events import ApiToken, NewEvent, Role, User, WebSession
from consent_store.exceptions import ConflictingWrite, TokenExists, UnknownUser, UserExists
from consent_store.group_commit import SideWrite
from consent_store.registry import RegistryMixin
from consent_store.writing import utc_now


def _json_list(values: Sequence[str] | None) -> str | None:
    return None if values is None else json.dumps(list(values))


def _epoch_now() -> int:
    return int(time.time())


class AccessMixin(RegistryMixin):
    """Users, sessions and tokens, over the registry's primitives."""

    # -- users --------------------------------------------------------------

    async def add_user(
        self,
        name: str,
        role: Role,
        password_hash: str,
        author: str,
        businesses: Sequence[str] | None = None,
    ) -> User:
        """Create a user; `businesses` None: every business. Chained (never the password hash)."""
        if await self.get_user(name) is not None:
            raise UserExists(name)
        limited = None if businesses is None else tuple(sorted(set(businesses)))
        for business in limited or ():
            await self._require_business(business)
        event = NewEvent(
            kind="user",
            idempotency_key=f"user:{name}",
            fields={"name": name, "role": role, "author": author}
            | ({} if limited is None else {"businesses": list(limited)}),
        )
        try:
            await self._append(
                event,
                [
                    (
                        "INSERT INTO users (name, role, password_hash, created_at, businesses)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (name, role, password_hash, utc_now(), _json_list(limited)),
                    )
                ],
            )
        except ConflictingWrite as exc:
            raise UserExists(name) from exc
        return User(name, role, password_hash, businesses=limited)

    _USER_COLUMNS = "name, role, password_hash, disabled, businesses, last_sign_in"

    @staticmethod
    def _user_from_row(row: Any) -> User:
        limited = None if row[4] is None else tuple(json.loads(row[4]))
        return User(row[0], row[1], row[2], bool(row[3]), limited, row[5])

    async def get_user(self, name: str) -> User | None:
        row = await self._fetchone(f"SELECT {self._USER_COLUMNS} FROM users WHERE name = ?", (name,))
        return None if row is None else self._user_from_row(row)

    async def list_users(self) -> list[User]:
        rows = await self._fetchall(f"SELECT {self._USER_COLUMNS} FROM users ORDER BY name")
        return [self._user_from_row(row) for row in rows]

    async def _change_user(self, name: str, change: str, author: str, writes: list[SideWrite]) -> None:
        """Chain a change to a user (never a password hash) and end all their sessions with it."""
        if await self.get_user(name) is None:
            raise UnknownUser(name)
        event = NewEvent(
            kind="user",
            idempotency_key=f"user:{name}:{change}:{utc_now()}",
            fields={"name": name, "change": change, "author": author},
        )
        ended = (
            "UPDATE web_sessions SET ended_at = ? WHERE user_name = ? AND ended_at IS NULL",
            (_epoch_now(), name),
        )
        await self._append(event, [*writes, ended])

    async def set_password(self, name: str, password_hash: str, author: str = "cli") -> None:
        """A new password; every session of the user ends."""
        await self._change_user(
            name,
            "password",
            author,
            [("UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name))],
        )

    async def set_user_disabled(self, name: str, disabled: bool, author: str) -> None:
        """Disable (every session ends) or enable a user."""
        await self._change_user(
            name,
            "disabled" if disabled else "enabled",
            author,
            [("UPDATE users SET disabled = ? WHERE name = ?", (int(disabled), name))],
        )

    async def end_user_sessions(self, name: str, author: str) -> None:
        """End every session of a user at once (a lost laptop, a copied cookie)."""
        await self._change_user(name, "sessions_ended", author, [])

    # -- web sessions (scratch: not chained; the user changes that end them are) ---------

    async def start_session(self, id_sha256: str, user: str, now: int) -> None:
        await self._side_writes(
            [
                (
                    "INSERT INTO web_sessions (id_sha256, user_name, created_at, last_seen)"
                    " VALUES (?, ?, ?, ?)",
                    (id_sha256, user, now, now),
                ),
                ("UPDATE users SET last_sign_in = ? WHERE name = ?", (utc_now(), user)),
            ]
        )

    async def web_session(self, id_sha256: str) -> WebSession | None:
        row = await self._fetchone(
            "SELECT user_name, created_at, last_seen, ended_at FROM web_sessions WHERE id_sha256 = ?",
            (id_sha256,),
        )
        return None if row is None else WebSession(str(row[0]), int(row[1]), int(row[2]), row[3])

    async def touch_session(self, id_sha256: str, now: int) -> None:
        await self._side_writes(
            [
                (
                    "UPDATE web_sessions SET last_seen = ? WHERE id_sha256 = ? AND last_seen < ?",
                    (now, id_sha256, now),
                )
            ]
        )

    async def end_session(self, id_sha256: str, now: int) -> None:
        await self._side_writes(
            [
                (
                    "UPDATE web_sessions SET ended_at = ? WHERE id_sha256 = ? AND ended_at IS NULL",
                    (now, id_sha256),
                )
            ]
        )

    async def purge_sessions(self, before: int) -> None:
        """Forget sessions that ended, or were last seen, before `before` (they can never be used again)."""
        await self._side_writes(
            [("DELETE FROM web_sessions WHERE last_seen < ? OR ended_at < ?", (before, before))]
        )

    # -- API tokens -------------------------------------------------------------

    async def add_api_token(
        self, name: str, token_sha256: str, author: str, businesses: Sequence[str] | None = None
    ) -> None:
        """Keep a sender's token as its SHA-256 only; chained so every grant is on record.

        `businesses` None: the token answers for every business."""
        limited = None if businesses is None else tuple(sorted(set(businesses)))
        for business in limited or ():
            await self._require_business(business)
        existing = await self._fetchone("SELECT revoked_at FROM api_tokens WHERE name = ?", (name,))
        if existing is not None and existing[0] is None:
            raise TokenExists(name)
        event = NewEvent(
            kind="token",
            idempotency_key=f"token:{name}:{token_sha256}",
            fields={"change": "added", "name": name, "author": author}
            | ({} if limited is None else {"businesses": list(limited)}),
        )
        await self._append(
            event,
            [
                (
                    "INSERT INTO api_tokens (name, token_sha256, created_at, businesses) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET token_sha256 = excluded.token_sha256,"
                    " created_at = excluded.created_at, revoked_at = NULL, businesses = excluded.businesses",
                    (name, token_sha256, utc_now(), _json_list(limited)),
                )
            ],
        )

    async def revoke_api_token(self, name: str, author: str) -> bool:
        """Revoke a token; False if there is no live token by that name."""
        live = await self._fetchone(
            "SELECT token_sha256 FROM api_tokens WHERE name = ? AND revoked_at IS NULL", (name,)
        )
        if live is None:
            return False
        event = NewEvent(
            kind="token",
            idempotency_key=f"token:{name}:{live[0]}:revoked",
            fields={"change": "revoked", "name": name, "author": author},
        )
        await self._append(
            event, [("UPDATE api_tokens SET revoked_at = ? WHERE name = ?", (utc_now(), name))]
        )
        return True

    async def api_token_name(self, token_sha256: str) -> str | None:
        """The name of the live token with this hash, if any."""
        token = await self.api_token(token_sha256)
        return None if token is None else token.name

    async def api_token(self, token_sha256: str) -> ApiToken | None:
        """The live token with this hash (its name and businesses), if any."""
        row = await self._fetchone(
            "SELECT name, businesses FROM api_tokens WHERE token_sha256 = ? AND revoked_at IS NULL",
            (token_sha256,),
        )
        if row is None:
            return None
        return ApiToken(str(row[0]), None if row[1] is None else tuple(json.loads(row[1])))
