"""`ivr script ...` and `ivr user ...`: what managers and operators do from a terminal.

Also the reading of phone numbers typed in options (`typed_phone`, `region_option`) that
`ivr business add`, `ivr forget` and `ivr twilio connect` share, and the options two commands
declare alike (`business_scope_option`).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import click

from consent_store import ConsentStore
from consent_store.events import ROLES, User
from consent_store.exceptions import UnderLegalHold
from ivr.cli.support import F, settings_from_env, with_store
from ivr.exceptions import BadUserName, CliFailure, NotAPhoneNumber, ScriptRejected, WeakPassword
from ivr.optout_webhooks import DERIVED_PREFIX, derived_secret
from ivr.passwords import check_password_strength, hash_password, normal_user_name
from ivr.phone_input import check_region, normalise_typed_phone
from ivr.recordings.archive import open_archive
from ivr.recordings.exceptions import DeletionNotConfigured, RecordingError
from ivr.recordings.retention import erase_audio, twilio_for_deletion
from ivr.runtime import secret_key_for
from ivr.scripts_admin import publish_checked


def _region(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    try:
        return None if value is None else check_region(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


region_option = click.option(
    "--region",
    callback=_region,
    help="Country (ISO 3166, e.g. US) of a number typed without +; default IVR_DEFAULT_REGION.",
)


def typed_phone(option: str, text: str, region: str | None) -> str:
    """A number typed in `option`, as E.164; CliFailure (exit 2) naming the option if it is none.

    `region` is the command's --region, else IVR_DEFAULT_REGION.
    """
    try:
        return normalise_typed_phone(text, region or settings_from_env().default_region)
    except NotAPhoneNumber as exc:
        raise CliFailure(f"{option} {exc}", 2) from None


def business_scope_option(limited: str) -> Callable[[F], F]:
    """`--business` (repeatable) into `businesses`: what is `limited` to those businesses;
    none given, every business (`ivr user add`, `ivr token add`)."""
    return click.option(
        "--business",
        "businesses",
        multiple=True,
        help=f"{limited} this business (repeatable); without it: every business.",
    )


@click.group()
def script() -> None:
    """Show and publish voice scripts (TOML)."""


@script.command("show")
@click.option("--business", required=True, help="Business name.")
@click.option("--locale", required=True, help="Script locale, e.g. en-US.")
@click.option("--version", type=click.IntRange(min=1), help="A past version (default: the published one).")
def script_show(business: str, locale: str, version: int | None) -> None:
    """Print a script's TOML: what callers hear (or heard, with --version)."""

    async def work(store: ConsentStore) -> str:
        await store.get_business(business)
        return (await store.script_version(business, locale, version)).text

    click.echo(with_store(work), nl=False)


@script.command("publish")
@click.option("--business", required=True, help="Business name.")
@click.option("--locale", required=True, help="Script locale, e.g. en-US.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path, allow_dash=True))
def script_publish(business: str, locale: str, file: Path) -> None:
    """Lint FILE (TOML, or - for standard input), then publish it as the next version."""
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliFailure(f"cannot read {file}: {exc}", 2) from exc

    async def work(store: ConsentStore) -> str:
        target = await store.get_business(business)
        try:
            published = await publish_checked(store, target, locale, text, author="cli")
        except ScriptRejected as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            raise CliFailure(f"{len(exc.problems)} problem(s); nothing was published", 1) from exc
        return (
            f"Published {business} {locale} version {published.version} (sha256 {published.sha256[:16]}...)."
        )

    click.echo(with_store(work))


@click.group()
def user() -> None:
    """People who sign in: admins, managers (edit scripts) and auditors (read the evidence)."""


def _read_password(name: str) -> str:
    """A new password from a prompt (or standard input), never the command line; checked."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        check_password_strength(password, name)
    except WeakPassword as exc:
        raise CliFailure(str(exc), 2) from exc
    return str(password)


def _user_name(raw: str) -> str:
    try:
        return normal_user_name(raw)
    except BadUserName as exc:
        raise CliFailure(f"{raw[:80]!r}: {exc}", 2) from exc


@user.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    required=True,
    help="admin: users and businesses; manager: edits scripts; auditor: reads the evidence.",
)
@business_scope_option("Limit the user to")
def user_add(name: str, role: str, businesses: tuple[str, ...]) -> None:
    """Create a user; the password is read from a prompt (or standard input), never the command line."""
    name = _user_name(name)
    if role == "admin" and businesses:
        raise CliFailure("an admin manages every business; drop --business or choose another role", 2)
    password = _read_password(name)

    async def work(store: ConsentStore) -> None:
        await store.add_user(
            name,
            role,  # type: ignore[arg-type]  # click.Choice(ROLES) admits only roles
            hash_password(password),
            author="cli",
            businesses=list(businesses) or None,
        )

    with_store(work)
    scope = ", ".join(businesses) if businesses else "every business"
    click.echo(f"Created {role} {name!r} for {scope}.")


@user.command("list")
def user_list() -> None:
    """List users: role, businesses, disabled, last sign-in."""

    async def work(store: ConsentStore) -> list[User]:
        return await store.list_users()

    for person in with_store(work):
        scope = ", ".join(person.businesses) if person.businesses is not None else "every business"
        state = "disabled" if person.disabled else "active"
        click.echo(
            f"{person.name}\t{person.role}\t{state}\t{scope}\tlast sign-in: {person.last_sign_in or 'never'}"
        )


@user.command("passwd")
@click.argument("name")
def user_passwd(name: str) -> None:
    """Set a new password (prompt or standard input); every session of the user ends."""
    name = _user_name(name)
    password = _read_password(name)

    async def work(store: ConsentStore) -> None:
        await store.set_password(name, hash_password(password), author="cli")

    with_store(work)
    click.echo(f"Password of {name!r} changed; their sessions have ended.")


def _change_user(raw: str, change: Callable[[ConsentStore, str], Awaitable[None]], done: str) -> None:
    """Apply one chained change to the user named `raw` and say `done` ({name}: the user)."""
    name = _user_name(raw)

    async def work(store: ConsentStore) -> None:
        await change(store, name)

    with_store(work)
    click.echo(done.format(name=repr(name)))


@user.command("disable")
@click.argument("name")
def user_disable(name: str) -> None:
    """Stop a user signing in; every session of the user ends at once."""
    _change_user(
        name,
        lambda store, who: store.set_user_disabled(who, True, author="cli"),
        "User {name} disabled; their sessions have ended.",
    )


@user.command("enable")
@click.argument("name")
def user_enable(name: str) -> None:
    """Let a disabled user sign in again."""
    _change_user(
        name, lambda store, who: store.set_user_disabled(who, False, author="cli"), "User {name} enabled."
    )


@user.group("sessions")
def user_sessions() -> None:
    """A user's web sessions."""


@user_sessions.command("end")
@click.argument("name")
def user_sessions_end(name: str) -> None:
    """End every session of NAME now (a lost laptop, a copied cookie)."""
    _change_user(
        name,
        lambda store, who: store.end_user_sessions(who, author="cli"),
        "Every session of {name} has ended.",
    )


@click.command()
@click.option("--phone", required=True, help="The caller's number, e.g. +14155550123 or '+1 (415) 555-0123'.")
@region_option
@click.option("--reason", default="erasure request", show_default=True, help="Why, kept in the audit event.")
def forget(phone: str, region: str | None, reason: str) -> None:
    """Erase a caller's phone number from every read and export; the hash chain still verifies."""
    phone = typed_phone("--phone", phone, region)
    settings = settings_from_env()

    async def work(store: ConsentStore) -> None:
        # The audio first: once the phone is forgotten its calls can no longer be found. A legal
        # hold refuses the whole erasure, before anything is deleted.
        try:
            archive = open_archive(settings)
            async with twilio_for_deletion(settings) as twilio:
                audio = await erase_audio(store, archive, phone, "cli", twilio)
        except UnderLegalHold as exc:
            raise CliFailure(f"erasure refused: {exc}", 2) from None
        except DeletionNotConfigured as exc:
            raise CliFailure(str(exc), 2) from None
        except RecordingError as exc:
            raise CliFailure(f"erasure stopped, the phone is not yet forgotten: {exc}", 1) from None
        erased = await store.forget_phone(phone, author="cli", reason=reason)
        if erased is None:
            raise CliFailure(f"the store holds nothing for {phone}", 2)
        if erased.message_statuses:  # a number that was only sent messages
            click.echo(
                f"Erased the phone number from {erased.message_statuses} message status(es); the "
                f"erasure is record {erased.record_hash[:16]}... in the chain."
            )
        else:
            click.echo(
                f"Erased the phone number from {erased.decisions} decision(s); the erasure is record "
                f"{erased.record_hash[:16]}... in the chain."
            )
        if audio.from_archive or audio.at_twilio:
            click.echo(
                f"Deleted {len(audio.from_archive)} archived recording(s)"
                + (f" and {len(audio.at_twilio)} at Twilio" if twilio is not None else "")
                + " (chained as recording_deleted)."
            )
        left = sorted(set(erased.recording_sids) - set(audio.at_twilio))
        if audio.errors:
            click.echo(f"Could not delete at Twilio: {audio.errors[0]}", err=True)
        if left:
            click.echo(
                "The call recordings hold the caller's voice: delete them in Twilio too"
                " (or set IVR_RECORDINGS_DELETE_AT_TWILIO=1): " + ", ".join(left)
            )

    with_store(work)


@click.group()
def token() -> None:
    """Bearer tokens for sending systems that call GET /api/consent."""


@token.command("add")
@click.argument("name")
@business_scope_option("The token answers only for")
def token_add(name: str, businesses: tuple[str, ...]) -> None:
    """Create a token NAME; it is shown once and stored only as its SHA-256."""
    from ivr.api.consent import new_token, token_sha256

    secret = new_token()

    async def work(store: ConsentStore) -> None:
        await store.add_api_token(
            name, token_sha256(secret), author="cli", businesses=list(businesses) or None
        )

    with_store(work)
    click.echo(secret)
    click.echo(f"Token {name!r} created. It is shown only now: store it in the sending system.", err=True)


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke token NAME at once."""

    async def work(store: ConsentStore) -> bool:
        return await store.revoke_api_token(name, author="cli")

    if not with_store(work):
        raise CliFailure(f"no live token named {name!r}", 2)
    click.echo(f"Token {name!r} revoked.")


@click.command("webhook")
@click.option("--name", required=True, help="Business name.")
@click.option("--url", help="HTTPS URL that receives a signed POST for every opt-out.")
@click.option("--remove", is_flag=True, help="Stop sending opt-outs to the business.")
def business_webhook(name: str, url: str | None, remove: bool) -> None:
    """Set (or --remove) a business's opt-out webhook; prints the signing secret once."""
    import secrets

    if remove == (url is not None):
        raise CliFailure("give either --url URL or --remove", 2)
    if url is not None and not url.startswith(("https://", "http://")):
        raise CliFailure(f"--url {url!r} must start with https:// (or http:// for a local test)", 2)
    nonce = secrets.token_urlsafe(16)

    async def work(store: ConsentStore) -> str:
        await store.set_opt_out_webhook(name, url, DERIVED_PREFIX + nonce, author="cli")
        return derived_secret(await secret_key_for(settings_from_env(), store), name, nonce)

    secret = with_store(work)
    if remove:
        click.echo(f"Opt-outs of {name!r} are no longer sent.")
    else:
        click.echo(secret)
        click.echo(
            f"Every opt-out of {name!r} recorded from now on is POSTed to {url}, signed with the "
            f"secret above (shown only now) in the X-IVR-Signature header.",
            err=True,
        )
