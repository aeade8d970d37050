"""Which tests are `slow`: the quick subset for the inner loop is `pytest -m "not slow"`.

A test is slow when it uses a fixture that starts a process (a browser, `ivr serve`, the
PostgreSQL server), runs on a fixture parametrized "postgresql" (its server), or sits in a
file of SLOW_FILES (measured: their tests start `ivr` processes, espeak-ng, S3 or fill large
stores, a second or more each on a loaded 2-core machine). tests/conftest.py adds the marker
at collection, so a new test using one of these fixtures is slow without anyone marking it.
A `pytest.mark.slow` written on a test still counts.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

# Fixtures that start a process: Chromium, `ivr serve`, a PostgreSQL server.
SLOW_FIXTURES = frozenset({"browser", "site", "world", "pg_server", "pg_url", "pg_migrated_url"})

# Files whose tests are slow whatever their fixtures (from the --durations of a whole run).
SLOW_FILES = frozenset(
    {
        "test_audit_pages.py",
        "test_audit_paging.py",
        "test_business_access.py",
        "test_businesses_web.py",
        "test_call_command.py",
        "test_chain.py",
        "test_cli.py",
        "test_cli_admin.py",
        "test_cli_readonly.py",
        "test_compare_versions.py",
        "test_compliance.py",
        "test_consent_api.py",
        "test_copy_command.py",
        "test_export_atomic.py",
        "test_export_columns.py",
        "test_export_csv_fast_path.py",
        "test_export_formats.py",
        "test_export_manifest.py",
        "test_export_memory.py",
        "test_export_old_versions.py",
        "test_faults.py",
        "test_forget.py",
        "test_form_properties.py",
        "test_hardening.py",
        "test_http_hardening.py",
        "test_manage_http.py",
        "test_message_command.py",
        "test_message_evidence.py",
        "test_optout_webhook.py",
        "test_parallel_verify.py",
        "test_phone_input.py",
        "test_postgres_processes.py",
        "test_postgres_store.py",
        "test_progress.py",
        "test_proof_of_hearing.py",
        "test_quality_delivery.py",
        "test_quality_http.py",
        "test_quality_store.py",
        "test_recording_archive.py",
        "test_recording_fetch.py",
        "test_recording_playback.py",
        "test_recording_retention.py",
        "test_recording_s3.py",
        "test_recording_sync.py",
        "test_script_rules.py",
        "test_session_security.py",
        "test_simulated_calls.py",
        "test_speech_preview.py",
        "test_store_concurrency.py",
        "test_store_migrations.py",
        "test_store_multiwriter.py",
        "test_store_tamper.py",
        "test_try_message.py",
        "test_try_rehearsal.py",
        "test_twilio_setup.py",
        "test_twiml_golden.py",
        "test_users_admin_http.py",
        "test_users_web.py",
        "test_verify_subjects.py",
        "test_webhook_properties.py",
    }
)


def is_slow(fixtures: Iterable[str], file_name: str, params: Iterable[object] = ()) -> bool:
    return file_name in SLOW_FILES or not SLOW_FIXTURES.isdisjoint(fixtures) or "postgresql" in params


def mark_slow(items: Iterable[pytest.Item]) -> None:
    """Add the `slow` marker to every collected test that is_slow."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = list(callspec.params.values()) if callspec is not None else []
        if is_slow(getattr(item, "fixturenames", ()), item.path.name, params):
            item.add_marker(pytest.mark.slow)
