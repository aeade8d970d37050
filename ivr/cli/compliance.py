"""`ivr compliance`: the messages a business sent without consent, for people, cron and CI.

Exit status: 0 none found, 1 at least one found (listed), 2 bad input (one line). A store
that cannot be read is exit 1 too, with its one-line error on standard error.
"""

from __future__ import annotations

import click

from consent_store import ConsentStore
from ivr.cli.support import database_read, period_options, report_options, with_store
from ivr.compliance_report import ComplianceReport, compliance_report, report_json_text, report_table
from ivr.exceptions import CliFailure


@click.command("compliance")
@report_options(counted="Messages first reported")
def compliance(business: str, since: str | None, until: str | None, output: str) -> None:
    """Messages sent to numbers never opted in, or after an opt-out; exit 1 when any."""
    low, high = period_options(since, until)
    if low is not None and high is not None and low >= high:
        raise CliFailure(f"--since {since} is not before --until {until}.", 2)
    database_read()  # a read: never create a database

    async def work(store: ConsentStore) -> ComplianceReport:
        return await compliance_report(store, business, low, high)

    report = with_store(work)
    if output == "json":
        click.echo(report_json_text(report))
    else:
        click.echo(report_table(report), nl=False)
    if report.rows:
        raise SystemExit(1)
