"""Checking X-Twilio-Signature: which secrets may sign a request, and checking it fast.

Twilio signs each webhook with HMAC-SHA1 over the URL it called followed by the sorted
parameter names and values, keyed with the Auth Token of the account the request is for
(https://www.twilio.com/docs/usage/webhooks/webhooks-security). When a Webhook Rule
matches the URL, it signs with that Setting's SharedKey and algorithm instead, and says
so in `X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=HMAC_SHA256`
(https://www.twilio.com/docs/usage/webhooks/webhook-shared-keys; twilio-python's
request_validator.get_signature_algorithm reads the header, HMAC_SHA1 when it names none).

So the secrets tried are chosen by the request's AccountSid and that header, never all
of them: the main account's primary and secondary tokens, a subaccount's own token for
its AccountSid only, or the one shared key the header names (a shared secret never signs
a request without its header). The common case costs one HMAC-SHA1 over the exact URL;
twilio's own validator (which also tries the URL with and without a port) runs only when
that does not match. A refusal says which secrets were tried, never their values.

The signature joins names and values with no separator, so it never proves where one parameter
ends: what a signed request names (a CallSid, a RecordingSid) must also be of Twilio's form.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.datastructures import FormData, UploadFile
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

__all__ = [
    "HMAC_SHA1",
    "HMAC_SHA256",
    "SIGNATURE_SETTINGS_HEADER",
    "Secret",
    "Verdict",
    "WebhookSecrets",
    "expected_signature",
    "signature_ok",
    "signature_settings",
    "twilio_sid_ok",
]

_HASHES = {HMAC_SHA1: hashlib.sha1, HMAC_SHA256: hashlib.sha256}
# Each byte XORed with HMAC's inner and outer pads, for bytes.translate.
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


@functools.lru_cache(maxsize=64)
def _keyed(key: bytes, algorithm: str) -> tuple[Hash, Hash]:
    """The HMAC's inner and outer hashes with the key already in (RFC 2104, as `hmac` builds them)."""
    new = _HASHES[algorithm]
    block = new().block_size
    if len(key) > block:
        key = new(key).digest()
    key = key.ljust(block, b"\0")
    return new(key.translate(_IPAD)), new(key.translate(_OPAD))


def expected_signature(
    token: bytes, url: str, items: Sequence[tuple[str, str]], algorithm: str = HMAC_SHA1
) -> str:
    """Twilio's scheme: the URL, then each parameter name and value, sorted, as an HMAC in base64."""
    # Names sorted, each name's values sorted, a pair given twice once (twilio-python sorts the
    # distinct names, then each name's distinct values).
    parts = [url]
    previous = None
    for pair in sorted(items):
        if pair != previous:
            parts += pair
            previous = pair
    # hmac.digest, from the keyed hashes copied (the key is not hashed again for each request).
    inner, outer = _keyed(token, algorithm)
    inner = inner.copy()
    inner.update("".join(parts).encode("utf-8"))
    outer = outer.copy()
    outer.update(inner.digest())
    return base64.b64encode(outer.digest()).decode()


def signature_ok(
    validator: RequestValidator,
    token: bytes,
    url: str,
    items: Sequence[tuple[str, str]],
    signature: str,
    algorithm: str = HMAC_SHA1,
) -> bool:
    """True if `signature` is the token's over `url` exactly, or over it with or without its port."""
    if hmac.compare_digest(expected_signature(token, url, items, algorithm), signature):
        return True
    form = FormData(list[tuple[str, str | UploadFile]](items))
    return bool(validator.validate(url, form, signature, algorithm))


def signature_settings(header: str) -> tuple[str, str]:
    """(key id, algorithm) named by X-Twilio-Webhooks-Signature-Settings; key '' when it names none."""
    key = ""
    for part in header.split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "key":
            key = value.strip()
    return key, get_signature_algorithm(header)


@dataclass(frozen=True)
class Secret:
    """One secret that may sign webhooks, and the name a log line gives it (never its value)."""

    name: str
    key: bytes = field(repr=False)

    @property
    def validator(self) -> RequestValidator:
        return RequestValidator(self.key.decode("utf-8"))


@dataclass(frozen=True)
class Verdict:
    """Whether a request was signed by a secret configured for it; when not, why and what to do."""

    ok: bool
    account_sid: str
    tried: tuple[str, ...]
    algorithm: str = HMAC_SHA1
    signed_by: str | None = None
    problem: str = ""
    fix: str = ""


# Other URLs the request may have been signed for (e.g. its Host header's) and what it
# means when one of them validates; computed only for a refusal.
AlternativeUrls = Callable[[], Sequence[tuple[str, str]]]


class WebhookSecrets:
    """The secrets configured for each account, and the check of one request against them."""

    def __init__(
        self,
        primary: Secret,
        *,
        account_sid: str | None = None,
        secondary: Secret | None = None,
        subaccounts: Mapping[str, Secret] | None = None,
        shared_keys: Mapping[str, Secret] | None = None,
        primary_is_local: bool = False,
    ) -> None:
        self.primary = primary
        self.account_sid = account_sid
        self.main = (primary,) if secondary is None else (primary, secondary)
        self.subaccounts = dict(subaccounts or {})
        self.shared_keys = dict(shared_keys or {})
        self.primary_is_local = primary_is_local
        self._validators: dict[bytes, RequestValidator] = {}
        # The fast path's lookups, built once: each AccountSid's tokens (None: any AccountSid
        # not listed), and the verdict returned when one of them signed the request.
        self._tokens: dict[str | None, tuple[Secret, ...]] = {
            sid: (s,) for sid, s in self.subaccounts.items()
        }
        self._tokens[account_sid] = self.main
        self._accepted = {
            (sid, secret.key): Verdict(True, sid or "", tuple(s.name for s in tokens), HMAC_SHA1, secret.name)
            for sid, tokens in self._tokens.items()
            for secret in tokens
        }

    @classmethod
    def from_tokens(
        cls,
        token: str,
        *,
        local: bool = False,
        account_sid: str | None = None,
        secondary: str | None = None,
        subaccount_tokens: Sequence[tuple[str, str]] = (),
        shared_keys: Sequence[tuple[str, str]] = (),
    ) -> WebhookSecrets:
        return cls(
            Secret("local token" if local else "primary", token.encode("utf-8")),
            account_sid=account_sid,
            secondary=Secret("secondary", secondary.encode("utf-8")) if secondary else None,
            subaccounts={sid: Secret(f"{sid}'s token", t.encode("utf-8")) for sid, t in subaccount_tokens},
            shared_keys={k: Secret(f"shared key {k}", s.encode("utf-8")) for k, s in shared_keys},
            primary_is_local=local,
        )

    def _validator(self, secret: Secret) -> RequestValidator:
        validator = self._validators.get(secret.key)
        if validator is None:
            validator = self._validators[secret.key] = secret.validator
        return validator

    def _known_account(self, account_sid: str) -> bool:
        return self.account_sid is None or account_sid == self.account_sid or account_sid in self.subaccounts

    def tokens_for(self, account_sid: str) -> tuple[Secret, ...]:
        """The tokens that sign this AccountSid's requests (none: the account is not ours)."""
        sub = self.subaccounts.get(account_sid)
        if sub is not None:
            return (sub,)
        return self.main if self._known_account(account_sid) else ()

    def check(
        self,
        url: str,
        items: Sequence[tuple[str, str]],
        signature: str,
        account_sid: str,
        settings_header: str = "",
        alternatives: AlternativeUrls | None = None,
    ) -> Verdict:
        """Check one request's X-Twilio-Signature against the secrets configured for it."""
        if signature and not settings_header:
            # The common case: a token over the exact URL, one HMAC-SHA1 per token at most.
            group = account_sid if account_sid in self._tokens else None
            for secret in self._tokens.get(group, ()):
                if hmac.compare_digest(expected_signature(secret.key, url, items), signature):
                    return self._accepted[group, secret.key]
        algorithm = HMAC_SHA1
        if settings_header:
            key_id, algorithm = signature_settings(settings_header)
            shared = self.shared_keys.get(key_id)
            configured = ", ".join(self.shared_keys) or "none"
            if shared is None:
                problem = f"{SIGNATURE_SETTINGS_HEADER} names " + (
                    f"shared key {key_id[:64]!r}" if key_id else "no key"
                )
                fix = f"add that key's secret to TWILIO_SHARED_KEYS (configured: {configured})"
                return Verdict(False, account_sid, (), algorithm, problem=problem, fix=fix)
            if algorithm not in _HASHES:
                problem = f"{SIGNATURE_SETTINGS_HEADER} names algorithm {algorithm[:32]!r}"
                fix = "use HMAC_SHA256 or HMAC_SHA1 in the Webhook Setting (the algorithms Twilio documents)"
                return Verdict(False, account_sid, (), algorithm, problem=problem, fix=fix)
            if not self._known_account(account_sid):
                return self._unknown_account(account_sid, algorithm)
            candidates: tuple[Secret, ...] = (shared,)
        else:
            candidates = self.tokens_for(account_sid)
            if not candidates:
                return self._unknown_account(account_sid, algorithm)
        tried = tuple(s.name for s in candidates)
        if not signature:
            return Verdict(
                False,
                account_sid,
                tried,
                algorithm,
                problem="missing X-Twilio-Signature",
                fix="only Twilio's signed requests are taken (a request sent by hand is not)",
            )
        for secret in candidates:
            if hmac.compare_digest(expected_signature(secret.key, url, items, algorithm), signature):
                return Verdict(True, account_sid, tried, algorithm, signed_by=secret.name)
        form = FormData(list[tuple[str, str | UploadFile]](items))
        for secret in candidates:
            if self._validator(secret).validate(url, form, signature, algorithm):
                return Verdict(True, account_sid, tried, algorithm, signed_by=secret.name)
        fix = self._likely_fix(url, items, signature, account_sid, candidates, algorithm, alternatives)
        return Verdict(False, account_sid, tried, algorithm, problem="invalid X-Twilio-Signature", fix=fix)

    def _unknown_account(self, account_sid: str, algorithm: str) -> Verdict:
        named = f"AccountSid {account_sid[:40]!r}" if account_sid else "no AccountSid"
        return Verdict(
            False,
            account_sid,
            (),
            algorithm,
            problem=f"the request names {named}",
            fix=f"{named} has no token configured: TWILIO_ACCOUNT_SID is {self.account_sid}; "
            "add a subaccount's token to TWILIO_SUBACCOUNT_TOKENS (AC...=token)",
        )

    def _likely_fix(
        self,
        url: str,
        items: Sequence[tuple[str, str]],
        signature: str,
        account_sid: str,
        candidates: tuple[Secret, ...],
        algorithm: str,
        alternatives: AlternativeUrls | None,
    ) -> str:
        """What would have made the request valid, found by trying what is configured."""

        def signs(secret: Secret, at: str, how: str = algorithm) -> bool:
            return hmac.compare_digest(expected_signature(secret.key, at, items, how), signature)

        for other_url, meaning in alternatives() if alternatives else ():
            if other_url != url and any(signs(s, other_url) for s in candidates):
                return meaning
        for secret in [*self.main, *self.subaccounts.values()]:
            if secret not in candidates and signs(secret, url, HMAC_SHA1):
                return (
                    f"it is signed with {secret.name}, which does not sign requests for AccountSid "
                    f"{account_sid}: each account's requests are checked with its own token only"
                )
        for secret in self.shared_keys.values():
            if secret not in candidates and any(signs(secret, url, how) for how in _HASHES):
                return (
                    f"it is signed with {secret.name} but without {SIGNATURE_SETTINGS_HEADER} "
                    "naming it: a shared key signs only through its Webhook Rule"
                )
        if self.primary_is_local:
            return f"TWILIO_AUTH_TOKEN is not set: set it to the Auth Token of {account_sid or 'the account'}"
        return (
            "no configured secret matches: check that the token is the current Auth Token of "
            f"{account_sid or 'the account'} (rotating? set TWILIO_AUTH_TOKEN_SECONDARY) and that "
            "nothing between Twilio and here changes the URL or the body"
        )


_HEX32 = re.compile("[0-9a-f]{32}")


def twilio_sid_ok(sid: str, prefix: str) -> bool:
    """True if `sid` is a Twilio SID of this kind: `prefix` ("CA", "RE") and 32 lower-case hex digits."""
    return len(sid) == 34 and sid.startswith(prefix) and _HEX32.fullmatch(sid, 2) is not None
