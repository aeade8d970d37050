"""`ConsentStore` is one Protocol both backends satisfy; code above the store never asks which it has."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from consent_store import ConsentStore, PostgresStore, SQLiteStore, open_store
from consent_store.backend import StoreBackend

ROOT = Path(__file__).resolve().parent.parent


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def _declared(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")}


def as_consent_stores(sqlite: SQLiteStore, postgres: PostgresStore) -> tuple[ConsentStore, ConsentStore]:
    """mypy checks this assignment too: both classes satisfy the Protocol."""
    return sqlite, postgres


@pytest.mark.parametrize("backend", [SQLiteStore, PostgresStore])
def test_every_public_method_of_a_backend_is_in_the_protocol_and_back(backend: type) -> None:
    assert _public(backend) == _declared(ConsentStore)


@pytest.mark.parametrize("backend", [SQLiteStore, PostgresStore])
def test_each_protocol_method_takes_what_the_backend_takes(backend: type) -> None:
    for name in _declared(ConsentStore):
        wanted = inspect.signature(getattr(ConsentStore, name))
        have = inspect.signature(getattr(backend, name))
        for parameter in wanted.parameters.values():
            assert parameter.name in have.parameters, (backend.__name__, name, parameter.name)
            assert have.parameters[parameter.name].default == parameter.default, (name, parameter.name)


@pytest.mark.parametrize("backend", [SQLiteStore, PostgresStore])
def test_a_backend_provides_every_primitive_the_shared_logic_calls(backend: type) -> None:
    for name in (
        "_fetchone",
        "_fetchall",
        "_append",
        "_side_writes",
        "_checkpoint",
        "_json_text",
        "_within_days",
        "_joined_text",
    ):
        assert getattr(backend, name) is not getattr(StoreBackend, name), (backend.__name__, name)


def test_open_store_gives_the_backend_of_the_url(tmp_path: Path) -> None:
    assert isinstance(open_store(f"sqlite:///{tmp_path / 'x.db'}"), SQLiteStore)
    assert isinstance(open_store("postgresql://u@localhost/db"), PostgresStore)


def test_no_code_above_the_store_branches_on_the_store_class() -> None:
    found = []
    for folder in ("ivr", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"isinstance\([^)]*(SQLiteStore|PostgresStore|Store\b)", line):
                    found.append(f"{path.relative_to(ROOT)}:{number}")
    assert found == []


def test_no_stub_raises_not_implemented_in_the_store() -> None:
    found = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "consent_store").rglob("*.py")
        if "NotImplementedError" in path.read_text()
    ]
    assert found == []


def test_no_store_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in (ROOT / "consent_store").rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > 400
    }
    assert long == {}
