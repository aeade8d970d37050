"""The DDL of every shipped schema version, byte for byte: a shipped version must never change
(databases out there were built by it), however its module is arranged. SHA-256 of each
version's SQLite and PostgreSQL text, as it was when versions 1 to 8 shipped; a new version is
appended to VERSIONS and pinned here once it ships."""

from __future__ import annotations

import hashlib

import pytest

from consent_store.schema import VERSIONS

SHIPPED = {
    1: (
        "610a2462d6e7fc96a2d05953f5dc46bd0ef893daa6a403e68b200c0ee50642cb",
        "b330d894685557f06ec59aa383964c85284b6920da9563951d85608e2b638b33",
    ),
    2: (
        "ed50c09da4231100e61641dce410df4ea139773e5d8d2ec609b1889966e1eacf",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    3: (
        "f9ed5301edad2cdcbb81868d7e6f3bff46d4ea206bbd1f1510c83a9cd7016282",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    4: (
        "00423675d3fca38e56a10d2692c8bc03a77bc08e7d127847fe087f6410e49f09",
        "e751eb26abaed629e17131b935e842bb9140fc9620f4f6e6cf062c021b3287cf",
    ),
    5: (
        "06fe4e7559dd7b06233f38ba0ee196f2eea5605f1744f86575881aa32043075b",
        "830f00e5b06322a689aaebe5415f16cee784b27efc79c272e79be28201956b4c",
    ),
    6: (
        "0a93081b7a8d9909205ae0b9927f40f533c463d3f5db8bf4b603bf4f98f0fec7",
        "1bdd2dafc11e1f39f5773d99dfb9f5267772812e03565b3810cd5710f1bedcfb",
    ),
    7: (
        "b7757237fcd708985c6db4aee38248e44efd4f96115182816a93458009349499",
        "3d698436e05865005e26baf59fe038fd380e43a415b1d930c52553079b1de4a5",
    ),
    8: (
        "36464217d622adfbc400cc475e313a332cc33173b4a16d094c3944de5d918ded",
        "36464217d622adfbc400cc475e313a332cc33173b4a16d094c3944de5d918ded",
    ),
}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize("version", sorted(SHIPPED))
def test_a_shipped_version_runs_the_ddl_it_shipped_with(version: int) -> None:
    step = VERSIONS[version - 1]
    assert (_sha256(step.sqlite), _sha256(step.postgres)) == SHIPPED[version]
