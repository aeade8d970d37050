"""`ivr call`: place a simulated call through the Twilio emulator, in-process or against a URL.

A call to a real business is a rehearsal that records nothing, as at /try; with `record`
it records, and its decision is flagged simulated (a mark bound to the call by the auth
token, see ivr.twilio.webhooks.simulated_mark), so it is never mistaken for a caller's. Calls to
a demo business record as they always have (flagged demo by their business).
"""

from __future__ import annotations

import asyncio
import select
import sys
import termios
import tty
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack

import click
import httpx

from consent_store import ConsentStore, ExportFilter, open_store
from ivr.runtime import auth_token_for
from ivr.settings import Settings
from ivr.twilio.emulator import NO_INPUT, CallResult, Spoken, TwilioEmulator, new_sid
from ivr.twilio.inbound import REHEARSAL_PARAM, simulated_mark

VALID_KEYS = set("0123456789*#")


def parse_keys(keys: str) -> list[str]:
    """'1', '1 9', '1,-,*' -> one key per Gather; '-' means no input."""
    tokens = [t for t in keys.replace(",", " ").split() if t] if (" " in keys or "," in keys) else list(keys)
    for token in tokens:
        if token != NO_INPUT and token not in VALID_KEYS:
            raise click.BadParameter(
                f"{token!r} is not a phone key (0-9, *, #) or '-' for no input", param_hint="'--keys'"
            )
    return tokens


async def simulator(
    stack: AsyncExitStack, settings: Settings, url: str | None
) -> tuple[ConsentStore, TwilioEmulator, str]:
    """The store, a Twilio emulator signing with the server's auth token, and that token.

    The emulator posts in-process to an app on IVR_DATABASE_URL, or to the server at `url`;
    everything it opens closes with `stack`. Used by `ivr call` and `ivr message`.
    """
    store = open_store(settings.database_url)
    await stack.enter_async_context(store)
    token, _ = await auth_token_for(settings, store)
    if url is None:
        from ivr.app import create_app

        app = create_app(settings)
        await stack.enter_async_context(app.router.lifespan_context(app))
        # The app checks signatures over IVR_PUBLIC_URL when it is set: sign what it checks.
        base = settings.public_url or "http://ivr.local"
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)
    else:
        client = httpx.AsyncClient(base_url=url, timeout=20)
        base = url
    await stack.enter_async_context(client)
    return store, TwilioEmulator(client, base, token, settings.twilio_account_sid), token


def _read_key_with_countdown(timeout: int) -> str:
    """Wait for one key press on the terminal, showing a countdown; '-' on timeout."""
    stream = sys.stdin
    interactive = stream.isatty()
    old = termios.tcgetattr(stream) if interactive else None
    try:
        if interactive:
            tty.setcbreak(stream.fileno())
        for remaining in range(timeout, 0, -1):
            click.echo(f"\r  press a key (0-9 * #), {remaining:2d} s left... ", nl=False, err=True)
            ready, _, _ = select.select([stream], [], [], 1.0)
            if ready:
                key = stream.read(1) if interactive else (stream.readline().strip()[:1] or NO_INPUT)
                if key in VALID_KEYS:
                    click.echo(f"\r  pressed {key}{' ' * 40}", err=True)
                    return key
        click.echo(f"\r  (no key){' ' * 40}", err=True)
        return NO_INPUT
    finally:
        if old is not None:
            termios.tcsetattr(stream, termios.TCSADRAIN, old)


def _print_spoken(spoken: Spoken) -> None:
    click.echo(f"[{spoken.language or '?'}] {spoken.text}")


REHEARSAL_NOTE = "This was a rehearsal: nothing was recorded (--record records it, flagged simulated)."


async def _describe_record(store: ConsentStore, call: CallResult, simulated: bool) -> str:
    where = ExportFilter(call_sid=call.call_sid, include_demo=True)
    for row in [r async for r in store.export_decisions(where)]:
        return (
            f"Recorded {row.action} for {row.phone} with {row.business} at {row.recorded_at} "
            f"(script v{row.script_version} {row.locale}, record hash {row.record_hash[:16]}...)"
            + (", flagged simulated." if simulated else ".")
        )
    return "No consent record was written for this call."


async def place_call(
    settings: Settings,
    to: str,
    from_: str,
    keys: Sequence[str] | None,
    url: str | None,
    record: bool = False,
) -> tuple[CallResult, str]:
    """Run one call; return it and a sentence saying what the store holds for it."""
    async with AsyncExitStack() as stack:
        store, twilio, token = await simulator(stack, settings, url)
        twilio.on_say = _print_spoken
        source: Sequence[str] | Callable[[int], Awaitable[str]]
        if keys is not None:
            source = keys
        else:

            async def source(timeout: int) -> str:
                return await asyncio.to_thread(_read_key_with_countdown, timeout)

        business = await store.business_for_number(to)
        if record:
            call_sid = new_sid("CA")
            mark = {REHEARSAL_PARAM: simulated_mark(token, call_sid)}
            call = await twilio.call(to, from_, source, call_sid=call_sid, extra_params=mark)
        elif business is not None and not business.demo:
            rehearsal = {REHEARSAL_PARAM: "published"}
            call = await twilio.call(
                to, from_, source, recording="none", status_callback=False, extra_params=rehearsal
            )
            return call, REHEARSAL_NOTE
        else:
            call = await twilio.call(to, from_, source)
        return call, await _describe_record(store, call, record)
