"""`ivr message` (a WhatsApp or SMS message to a business, sent as Twilio would) and
`ivr business update` (a business's WhatsApp senders).

`ivr message` signs with the server's auth token like `ivr call`, in-process on
IVR_DATABASE_URL or against a running server (`--url`), and prints the reply Twilio would
send back. Its messages carry the simulated mark bound to their MessageSid (see
ivr.twilio.webhooks.simulated_mark): an opt-out one records is flagged simulated.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack

import click

from consent_store import ConsentStore
from ivr.businesses import WHATSAPP_ADDRESS, set_whatsapp_numbers
from ivr.cli.admin import region_option, typed_phone
from ivr.cli.support import F, server_url_option, settings_from_env, signature_refused, simulate, with_store
from ivr.exceptions import CliFailure
from ivr.settings import Settings
from ivr.twilio.emulator import new_sid
from ivr.twilio.inbound import REHEARSAL_PARAM, simulated_mark
from ivr.twilio.message_emulator import MessageEmulator, MessageReply
from ivr.twilio.simulated_call import simulator

MAX_BODY = 1600  # Twilio's limit for a message body


def whatsapp_numbers_option(help: str) -> Callable[[F], F]:
    """`--whatsapp-number` (repeatable) into `whatsapp_numbers`: a business's WhatsApp senders,
    read with `typed_whatsapp_numbers` (`ivr business add` and `ivr business update`)."""
    return click.option("--whatsapp-number", "whatsapp_numbers", multiple=True, help=help)


def typed_whatsapp_numbers(numbers: tuple[str, ...], region: str | None) -> tuple[str, ...]:
    """The `--whatsapp-number` values as E.164 (`whatsapp:+...` allowed), as `typed_phone` reads them."""
    return tuple(typed_phone("--whatsapp-number", n.removeprefix(WHATSAPP_ADDRESS), region) for n in numbers)


@click.command("update")
@click.option("--name", required=True, help="The business to change.")
@whatsapp_numbers_option("A WhatsApp sender of the business (repeatable): the whole list after the change.")
@click.option("--clear-whatsapp-numbers", is_flag=True, help="Remove every WhatsApp sender of the business.")
@region_option
def business_update(
    name: str, whatsapp_numbers: tuple[str, ...], clear_whatsapp_numbers: bool, region: str | None
) -> None:
    """Change a business: its WhatsApp senders (each change chained with its author)."""
    if bool(whatsapp_numbers) == clear_whatsapp_numbers:
        raise click.UsageError("give --whatsapp-number (repeatable) or --clear-whatsapp-numbers, not both")
    numbers = typed_whatsapp_numbers(whatsapp_numbers, region)

    async def work(store: ConsentStore) -> None:
        changed = await set_whatsapp_numbers(store, name, numbers, "cli")
        senders = ", ".join(changed.whatsapp_numbers) or "none"
        click.echo(f"Business {changed.name!r}: WhatsApp senders {senders}.")

    with_store(work)


async def send_message(
    settings: Settings, to: str, from_: str, body: str, whatsapp: bool, url: str | None
) -> MessageReply:
    """Send one message as Twilio would, in-process or to `url`; Twilio's reading of the answer."""
    async with AsyncExitStack() as stack:
        _, twilio, token = await simulator(stack, settings, url)
        texting = MessageEmulator(twilio)
        sid = new_sid("SM")
        mark = {REHEARSAL_PARAM: simulated_mark(token, sid)}
        return await texting.send(to, from_, body, whatsapp=whatsapp, message_sid=sid, extra_params=mark)


@click.command("message")
@click.option(
    "--to",
    "to",
    required=True,
    help="The business's WhatsApp sender or number (whatsapp:+... implies --whatsapp).",
)
@click.option("--from", "from_", default="+15005550006", show_default=True, help="The sender's number.")
@click.option("--body", required=True, help="The text, e.g. STOP, BAJA, HELP, START.")
@click.option(
    "--whatsapp", is_flag=True, help="Send it over WhatsApp (whatsapp:+E164 addresses); default SMS."
)
@server_url_option
def message(to: str, from_: str, body: str, whatsapp: bool, url: str | None) -> None:
    """Send a WhatsApp or SMS message to a business, signed like Twilio, and show the reply."""
    whatsapp = whatsapp or to.startswith(WHATSAPP_ADDRESS) or from_.startswith(WHATSAPP_ADDRESS)
    to = typed_phone("--to", to.removeprefix(WHATSAPP_ADDRESS), None)
    from_ = typed_phone("--from", from_.removeprefix(WHATSAPP_ADDRESS), None)
    if len(body) > MAX_BODY:
        raise CliFailure(f"--body is longer than {MAX_BODY} characters (Twilio's limit)", 2)
    reply = simulate(
        lambda: send_message(settings_from_env(), to, from_, body, whatsapp, url),
        url,
        "ivr message",
        "the message could not be sent",
    )
    if reply.status_code == 403:
        raise signature_refused("ivr message")
    channel = "WhatsApp" if whatsapp else "SMS"
    click.echo(f"Sent {channel} message {reply.message_sid} from {from_} to {to}: {body!r}")
    if reply.problem is not None:
        raise CliFailure(f"no reply: {reply.problem}", 1)
    if not reply.replies:
        click.echo("No reply (nothing was recorded: not a keyword, or not a business's number).")
    for text in reply.replies:
        click.echo(f"Reply: {text}")
