"""The consent store's errors: declared once, in consent_store/exceptions.py, each keeping the
values it names as attributes and wording the same message it always did (issue 21)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import consent_store
from consent_store import PostgresStore, SQLiteStore, exceptions
from consent_store.events import VerifyResult
from consent_store.exceptions import StoreError, StoreUnavailable


def _every_subclass(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _every_subclass(sub)
    return found


def test_every_store_error_lives_in_the_exceptions_module() -> None:
    for module in pkgutil.walk_packages(consent_store.__path__, "consent_store."):
        if not module.name.endswith("export_worker"):  # a script: the standard library only
            importlib.import_module(module.name)
    elsewhere = {c.__qualname__: c.__module__ for c in _every_subclass(StoreError)}
    assert {name: where for name, where in elsewhere.items() if where != exceptions.__name__} == {}


BROKEN = VerifyResult(5, "a" * 4, 3, "bad hash")
COPIED = VerifyResult(4, "b" * 4)


@pytest.mark.parametrize(
    ("error", "message", "data"),
    [
        (
            exceptions.UnknownBusiness("Acme {x}"),
            "No business named 'Acme {x}'; list them with 'ivr business list'.",
            {"name": "Acme {x}"},
        ),
        (
            exceptions.NumberTaken("+15550001111", "Acme"),
            "Number +15550001111 already belongs to business 'Acme'.",
            {"number": "+15550001111", "business": "Acme"},
        ),
        (exceptions.ScriptNotFound("Acme", "fr-FR", 3), "Business 'Acme' has no fr-FR script version 3.", {}),
        (
            exceptions.ScriptNotFound("Acme", "fr-FR"),
            "Business 'Acme' has no fr-FR script a published version.",
            {"version": None},
        ),
        (exceptions.BusinessChangeRefused("Acme", "why {0}"), "Acme: why {0}", {"reason": "why {0}"}),
        (
            exceptions.SchemaTooNew(9, 8),
            "Database schema version 9 is newer than this program supports (8); "
            "upgrade ivr before opening it.",
            {"found": 9, "supported": 8},
        ),
        (exceptions.TokenExists("c"), "A live API token named 'c' exists; revoke it first.", {"name": "c"}),
        (
            exceptions.UnderLegalHold("+15550001111"),
            "+15550001111 is under a legal hold: its recordings and records may not be deleted until the"
            " hold is released ('ivr recordings release').",
            {"target": "+15550001111"},
        ),
        (
            exceptions.SourceChainBroken(BROKEN),
            "The source chain is broken at record 3 (bad hash); nothing was copied."
            " Run 'ivr verify' on the source.",
            {"result": BROKEN},
        ),
        (
            exceptions.CopyNotVerified(COPIED, BROKEN),
            "The copy does not verify as the source does (source: 4 records, head bbbb; target: 5 records,"
            " head aaaa, problem: bad hash). Drop the target database and copy again.",
            {"source": COPIED, "target": BROKEN},
        ),
        (exceptions.StoreUnavailable("could not read"), "could not read", {}),
    ],
)
def test_an_error_words_its_message_and_keeps_its_values(
    error: StoreError, message: str, data: dict[str, object]
) -> None:
    assert str(error) == message and error.args == (message,)
    assert repr(error) == f"{type(error).__name__}({message!r})"
    for name, value in data.items():
        assert getattr(error, name) == value


async def test_a_store_not_opened_says_so_on_either_backend(tmp_path: Path) -> None:
    for store in (SQLiteStore(tmp_path / "never.db"), PostgresStore("postgresql://u@localhost:1/none")):
        with pytest.raises(StoreUnavailable, match="^the consent store is not open$"):
            await store._fetchone("SELECT 1")
        with pytest.raises(StoreUnavailable, match="^the consent store is not open$"):
            await store._checkpoint()
    assert not (tmp_path / "never.db").exists()
