"""The hash chain's canonical form is exactly the documented json.dumps form."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consent_store.chain import GENESIS_HASH, ChainRow, canonical_json, event_hash, verify_rows

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**62), 2**62) | text,
    lambda inner: st.lists(inner) | st.dictionaries(text, inner),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(text, values))
def test_canonical_json_is_byte_for_byte_the_documented_form(value: dict[str, Any]) -> None:
    documented = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == documented


def make_chain(n: int) -> list[ChainRow]:
    rows, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        body = canonical_json(
            {
                "seq": seq,
                "recorded_at": f"2026-01-01T00:00:{seq:02d}.000000Z",
                "kind": "decision",
                "key": f"decision:CA{seq}",
                "call_sid": f"CA{seq}",
                "business": "Acme",
                "subject": "s" * 64,
                "data": {"action": "opt_in"},
            }
        )
        digest = event_hash(prev, body)
        rows.append(
            ChainRow(
                seq,
                f"2026-01-01T00:00:{seq:02d}.000000Z",
                "decision",
                f"decision:CA{seq}",
                f"CA{seq}",
                "Acme",
                "s" * 64,
                "opt_in",
                body,
                prev,
                digest,
            )
        )
        prev = digest
    return rows


def test_an_intact_chain_verifies_with_its_head() -> None:
    rows = make_chain(5)
    result = verify_rows(rows)
    assert result.intact and result.count == 5 and result.head == rows[-1].hash


def test_each_kind_of_tampering_names_the_first_bad_record() -> None:
    rows = make_chain(6)
    edited = rows[:2] + [rows[2]._replace(body=rows[2].body.replace("opt_in", "opt_out"))] + rows[3:]
    assert verify_rows(edited).first_bad_seq == 3
    column = rows[:3] + [rows[3]._replace(action="opt_out")] + rows[4:]
    assert "action column" in (verify_rows(column).problem or "")
    deleted = rows[:1] + rows[2:]
    assert verify_rows(deleted).first_bad_seq == 3
    swapped = rows[:2] + [rows[3], rows[2]] + rows[4:]
    assert verify_rows(swapped).first_bad_seq == 4
