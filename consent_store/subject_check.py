"""Checking that each caller's phone is still the one the chain committed to, for both stores' verify.

The chain never holds a phone: it holds a subject, SHA-256 of a random salt and the phone
(`consent_store.writing.subject_commitment`). The `subjects` table keeps phone and salt beside it,
outside the chain, so that reads can show the phone and an erasure can delete it. Verify
checks that table here: each row's commitment is computed again from its salt and phone
(an edited phone, consent moved to another number, no longer matches), and each subject
the chain names but the table lacks must have been erased by a chained erasure record
(`kind='erasure'`, `subject_erased`); a row deleted any other way is a silent deletion.
Reads only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from consent_store.events import VerifyResult
from consent_store.writing import subject_commitment

# Written with `?` placeholders for both stores (PostgreSQL translates them with pg_sql).
SUBJECT_ROWS_SQL = "SELECT subject, phone, salt FROM subjects"
# Subjects the chain names that the table lacks, each with the first record naming it.
MISSING_SUBJECTS_SQL = (
    "SELECT e.subject, MIN(e.seq) FROM events e LEFT JOIN subjects s ON s.subject = e.subject"
    " WHERE e.subject IS NOT NULL AND s.subject IS NULL GROUP BY e.subject"
)
ERASURE_SQL = "SELECT kind, body FROM events WHERE idempotency_key = ?"
FIRST_RECORD_SQL = "SELECT MIN(seq) FROM events WHERE subject = ?"


def erasure_key(subject: str) -> str:
    """The idempotency key `forget_phone` gives the erasure of a subject."""
    return f"erasure:{subject}"


def edited_subjects(rows: Iterable[Sequence[Any]]) -> list[str]:
    """The subjects among (subject, phone, salt) rows whose phone or salt no longer commits to them."""
    return [str(subject) for subject, phone, salt in rows if subject_commitment(salt, phone) != subject]


def erased(subject: str, erasure: Sequence[Any] | None) -> bool:
    """True if (kind, body) is a chained erasure record naming this subject."""
    if erasure is None or erasure[0] != "erasure":
        return False
    try:
        data = orjson.loads(erasure[1])["data"]
        return bool(data["subject_erased"] == subject)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return False


def binding_result(
    result: VerifyResult, edited: Sequence[tuple[str, int | None]], deleted: Sequence[tuple[str, int]]
) -> VerifyResult:
    """The chain's result, or a failure naming the first record whose caller is no longer bound.

    The chain itself was intact (`result.count` records), so the failure's `first_bad_seq` is
    at most that count: the record is sound, the phone it stands for is not."""
    problems: list[tuple[int | None, str]] = [
        (
            seq,
            f"the phone of its subject {subject} was changed in the subjects table: it no longer "
            "matches the salted commitment the chain holds (consent moved to another number)",
        )
        for subject, seq in edited
    ]
    problems += [
        (
            seq,
            f"its subject {subject} was deleted from the subjects table without a chained "
            "erasure (no erasure record names it): run 'ivr forget' to erase a phone",
        )
        for subject, seq in deleted
    ]
    if not problems:
        return result
    problems.sort(key=lambda p: (p[0] is None, p[0] or 0))
    seq, problem = problems[0]
    if len(problems) > 1:
        problem += f"; {len(problems) - 1} more subject{'s' if len(problems) > 2 else ''} affected"
    return VerifyResult(
        count=result.count, head=result.head, first_bad_seq=seq, problem=problem, warnings=result.warnings
    )
