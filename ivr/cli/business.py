"""`ivr business`: create, list and change businesses (the callers' counterparties).

Moved out of ivr/cli/main.py unchanged so that the entry point imports it only when a
`business` command runs (ivr/cli/lazy.py); `business update`, `webhook` and `retention` live
beside the features they configure.
"""

from __future__ import annotations

import click

from consent_store import ConsentStore
from ivr.businesses import add_business
from ivr.cli.admin import business_webhook, region_option, typed_phone
from ivr.cli.message import business_update, typed_whatsapp_numbers, whatsapp_numbers_option
from ivr.cli.recordings import business_retention
from ivr.cli.support import with_store
from voice_scripts import ScriptError, offered_locales


def offered_locale(ctx: click.Context, param: click.Parameter, locales: tuple[str, ...]) -> tuple[str, ...]:
    """The --locale values, each one with a default script in its language file (read when the
    command runs, so that the locales offered are the language files present)."""
    try:
        offered = offered_locales()
    except ScriptError as exc:  # a language file that cannot be read or misses an entry: named
        raise click.BadParameter(str(exc), ctx, param) from exc
    for locale in locales:
        if locale not in offered:
            raise click.BadParameter(f"{locale!r} is not one of {', '.join(offered)}", ctx, param)
    return locales


@click.group()
def business() -> None:
    """Create and list businesses (the callers' counterparties)."""


@business.command("add")
@click.option("--name", required=True, help="The business name callers hear.")
@click.option(
    "--number",
    "numbers",
    multiple=True,
    required=True,
    help="Twilio number, e.g. +14155550123 or '+1 (415) 555-0123'; repeatable.",
)
@region_option
@click.option(
    "--message-type",
    "message_types",
    multiple=True,
    required=True,
    help="A type of WhatsApp message callers agree to, e.g. 'delivery updates'; repeatable.",
)
@whatsapp_numbers_option(
    "A WhatsApp sender of the business whose incoming messages (STOP...) come here; repeatable."
)
@click.option(
    "--locale",
    "locales",
    multiple=True,
    callback=offered_locale,
    help="Caller language, one with a default script in voice_scripts/locales/ (en-US, es-ES...); "
    "repeat for a language menu (first = key 1). Default en-US.",
)
def business_add(
    name: str,
    numbers: tuple[str, ...],
    region: str | None,
    message_types: tuple[str, ...],
    locales: tuple[str, ...],
    whatsapp_numbers: tuple[str, ...] = (),
) -> None:
    """Create a business with the default scripts for its locales, published."""
    numbers = tuple(typed_phone("--number", number, region) for number in numbers)
    senders = typed_whatsapp_numbers(whatsapp_numbers, region)

    async def work(store: ConsentStore) -> None:
        created = await add_business(
            store, name, numbers, message_types, locales or ("en-US",), whatsapp_numbers=senders
        )
        whatsapp = ", ".join(created.whatsapp_numbers)
        click.echo(
            f"Created business {created.name!r}: numbers {', '.join(created.numbers)}; "
            + (f"WhatsApp senders {whatsapp}; " if whatsapp else "")
            + f"locales {', '.join(created.locales)} (default scripts published as version 1)."
        )

    with_store(work)


@business.command("list")
def business_list() -> None:
    """List businesses with their numbers, locales and message types."""

    async def work(store: ConsentStore) -> None:
        for b in await store.list_businesses():
            click.echo(
                f"{b.name}\t{', '.join(b.numbers)}\t{', '.join(b.locales)}\t{'; '.join(b.message_types)}"
            )

    with_store(work)


business.add_command(business_webhook)
business.add_command(business_update)
business.add_command(business_retention)
