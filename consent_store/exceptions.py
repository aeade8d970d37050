"""Errors raised by the consent store; each names the bad value and what to do.

Every error is a dataclass (made one by StoreError, so each is declared in a few lines, here):
its fields are the values it names, kept as attributes for the caller, and its `template`
words the message from them (`str.format` over the fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, dataclass_transform

if TYPE_CHECKING:
    from consent_store.events import VerifyResult


@dataclass_transform(eq_default=False)
class StoreError(Exception):
    """Base class for every consent-store error; raised itself with a message (as any exception).

    A subclass is made a dataclass of the fields it declares (compared by identity, shown as an
    exception is: `Name('message')`), and its message is its `template` filled in with them.
    """

    template: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclass(eq=False, repr=False)(cls)

    def __post_init__(self) -> None:
        super().__init__(self.message())

    def message(self) -> str:
        """The error's text: `template` filled in with the error's fields."""
        return self.template.format_map(vars(self))


class BadDatabaseURL(StoreError):
    template = "Database URL {url!r} is not usable: {reason}"
    url: str
    reason: str


class DatabaseMissing(StoreError):
    template = (
        "There is no database at {path}: run this where it is, or set IVR_DATABASE_URL "
        "(nothing was created; 'ivr migrate' creates a new, empty one)."
    )
    path: str


class StoreUnavailable(StoreError):
    """The database could not be reached or written; nothing was recorded."""

    template = "{reason}"
    reason: str


Resource = TypeVar("Resource")


def opened(resource: Resource | None) -> Resource:
    """A store's connection, pool or writer, which is None until the store is opened (and
    after it is closed): StoreUnavailable then."""
    if resource is None:
        raise StoreUnavailable("the consent store is not open")
    return resource


class SchemaTooNew(StoreError):
    template = (
        "Database schema version {found} is newer than this program supports "
        "({supported}); upgrade ivr before opening it."
    )
    found: int
    supported: int


class UnknownBusiness(StoreError):
    template = "No business named {name!r}; list them with 'ivr business list'."
    name: str


class BusinessExists(StoreError):
    template = "A business named {name!r} already exists."
    name: str


class NumberTaken(StoreError):
    template = "Number {number} already belongs to business {business!r}."
    number: str
    business: str


class ScriptNotFound(StoreError):
    business: str
    locale: str
    version: int | None = None

    def message(self) -> str:
        which = f"version {self.version}" if self.version is not None else "a published version"
        return f"Business {self.business!r} has no {self.locale} script {which}."


class AppendOnlyViolation(StoreError):
    """Someone tried to change or remove a consent event."""

    template = "{reason}"
    reason: str


class ConflictingWrite(StoreError):
    """A write clashed with data written meanwhile (a name or number taken)."""

    template = "{reason}"
    reason: str


class WithheldCaller(StoreError):
    """A record was asked for a caller whose number is withheld (a Twilio placeholder)."""

    template = "{phone!r} is a withheld caller ID, not a caller's number: no consent record is kept for it."
    phone: str


class BusinessChangeRefused(StoreError):
    """A change that would leave a business unusable or clash with what is there; nothing changed."""

    template = "{business}: {reason}"
    business: str
    reason: str


# -- users and API tokens (consent_store.access) ---------------------------------


class UserExists(StoreError):
    template = "A user named {name!r} already exists."
    name: str


class TokenExists(StoreError):
    template = "A live API token named {name!r} exists; revoke it first."
    name: str


class UnknownUser(StoreError):
    template = "There is no user named {name!r}; see 'ivr user list'."
    name: str


# -- legal holds (consent_store.recording_holds) ---------------------------------


class HoldNotPlaced(StoreError):
    """A release asked for a hold that is not in place; nothing was recorded."""

    template = "There is no legal hold on {target}; list them with 'ivr recordings holds'."
    target: str


class UnderLegalHold(StoreError):
    """A deletion refused because a legal hold covers it; nothing was deleted."""

    template = (
        "{target} is under a legal hold: its recordings and records may not be deleted until the"
        " hold is released ('ivr recordings release')."
    )
    target: str


# -- copying a log between stores (consent_store.postgres.copy) -----------------


class TargetNotEmpty(StoreError):
    template = "The target database already holds {what}; copy only into an empty database."
    what: str


class SourceChainBroken(StoreError):
    template = (
        "The source chain is broken at record {result.first_bad_seq} ({result.problem}); "
        "nothing was copied. Run 'ivr verify' on the source."
    )
    result: VerifyResult


class CopyNotVerified(StoreError):
    template = (
        "The copy does not verify as the source does (source: {source.count} records, head "
        "{source.head}; target: {target.count} records, head {target.head}, "
        "problem: {target.problem}). Drop the target database and copy again."
    )
    source: VerifyResult
    target: VerifyResult
