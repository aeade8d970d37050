"""Errors raised by the consent store; each names the bad value and what to do."""

from __future__ import annotations


class StoreError(Exception):
    """Base class for every consent-store error."""


class BadDatabaseURL(StoreError):
    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(f"Database URL {url!r} is not usable: {reason}")


class DatabaseMissing(StoreError):
    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"There is no database at {path}: run this where it is, or set IVR_DATABASE_URL "
            "(nothing was created; 'ivr migrate' creates a new, empty one)."
        )


class StoreUnavailable(StoreError):
    """The database could not be reached or written; nothing was recorded."""


class SchemaTooNew(StoreError):
    def __init__(self, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            f"Database schema version {found} is newer than this program supports "
            f"({supported}); upgrade ivr before opening it."
        )


class UnknownBusiness(StoreError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"No business named {name!r}; list them with 'ivr business list'.")


class BusinessExists(StoreError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"A business named {name!r} already exists.")


class NumberTaken(StoreError):
    def __init__(self, number: str, business: str) -> None:
        self.number = number
        self.business = business
        super().__init__(f"Number {number} already belongs to business {business!r}.")


class ScriptNotFound(StoreError):
    def __init__(self, business: str, locale: str, version: int | None = None) -> None:
        self.business = business
        self.locale = locale
        self.version = version
        which = f"version {version}" if version is not None else "a published version"
        super().__init__(f"Business {business!r} has no {locale} script {which}.")


class AppendOnlyViolation(StoreError):
    """Someone tried to change or remove a consent event."""


class ConflictingWrite(StoreError):
    """A write clashed with data written meanwhile (a name or number taken)."""


class WithheldCaller(StoreError):
    """A record was asked for a caller whose number is withheld (a Twilio placeholder)."""

    def __init__(self, phone: str) -> None:
        self.phone = phone
        super().__init__(
            f"{phone!r} is a withheld caller ID, not a caller's number: no consent record is kept for it."
        )


class BusinessChangeRefused(StoreError):
    """A change that would leave a business unusable or clash with what is there; nothing changed."""

    def __init__(self, business: str, reason: str) -> None:
        self.business = business
        self.reason = reason
        super().__init__(f"{business}: {reason}")
