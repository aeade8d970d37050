"""POST /twilio/messaging: STOP (and its translations) by WhatsApp or SMS, HELP and START.

Twilio's incoming-message webhook for a business's WhatsApp senders (`To`/`From` written
`whatsapp:+E164`) and SMS numbers, signed and checked as the voice webhooks are (403 and
nothing written without a valid X-Twilio-Signature; 400 for a MessageSid not of Twilio's
form). The business is found by `To`: its WhatsApp senders (`ivr business add/update
--whatsapp-number`), then its numbers. An opt-out keyword (voice_scripts/keywords.py)
records a chained `opt_out` decision with the channel, the MessageSid and the text received,
once per MessageSid (a retry gets the same reply and writes nothing), before the TwiML
<Message> confirming it in the sender's language is returned. HELP and START answer and
write nothing; any other text, an unknown `To` and a withheld sender get an empty
<Response/> and nothing is written, so a stranger learns nothing about which numbers exist.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from consent_store import Business, ConsentDecision, ExportFilter, StoreError, text_sha256
from consent_store.events import Channel
from consent_store.phone import is_e164, masked
from ivr.runtime import Runtime
from ivr.twilio.inbound import REHEARSAL_PARAM, _from_twilio, simulated_mark
from ivr.twilio.signature import twilio_sid_ok
from voice_scripts import ScriptError, spoken_list
from voice_scripts.keywords import KeywordMatch, MessagingTexts, match_keyword, messaging_texts

LOG = logging.getLogger(__name__)

MESSAGING_PATH = "/twilio/messaging"
WHATSAPP = "whatsapp:"
# Twilio's message SIDs: SM (SMS and WhatsApp text) or MM (with media), then 32 hex digits.
MESSAGE_SID_PREFIXES = ("SM", "MM")
# The text kept with a decision: Twilio's own limit for a message body is 1,600 characters.
MAX_MESSAGE_TEXT = 1600
EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@dataclass(frozen=True)
class IncomingMessage:
    """A signed incoming message, checked: who sent it where, and the keyword it is (if any)."""

    message_sid: str
    channel: Channel
    to: str  # as Twilio sent it (whatsapp:+E164 or +E164)
    phone: str  # the sender, E.164 without "whatsapp:"; may be a withheld placeholder
    body: str


def twiml_message(text: str | None) -> Response:
    """A TwiML reply: one <Message>, or an empty <Response/> (no reply is sent)."""
    if text is None:
        return Response(EMPTY, media_type="application/xml")
    return Response(
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{escape(text)}</Message></Response>',
        media_type="application/xml",
    )


def _bad_request(message: str) -> Response:
    return PlainTextResponse(f"Bad request: {message}", status_code=400)


def parse_message(form: dict[str, str]) -> IncomingMessage | Response:
    """The message a signed form describes, or the 400 saying what is wrong with it."""
    sid, to, sender = (form.get(k) or "" for k in ("MessageSid", "To", "From"))
    if not sid or not to or not sender:
        return _bad_request("MessageSid, From and To are required.")
    if not any(twilio_sid_ok(sid, prefix) for prefix in MESSAGE_SID_PREFIXES):
        return _bad_request(
            f"MessageSid {sid[:40]!r} is not a Twilio message SID (SM or MM and 32 hex digits)."
        )
    whatsapp = to.startswith(WHATSAPP)
    if whatsapp != sender.startswith(WHATSAPP):
        return _bad_request("From and To must both be WhatsApp addresses (whatsapp:+E164) or both not.")
    return IncomingMessage(
        message_sid=sid,
        channel="whatsapp" if whatsapp else "sms",
        to=to,
        phone=sender.removeprefix(WHATSAPP),
        body=form.get("Body") or "",
    )


async def business_for_address(runtime: Runtime, to: str) -> Business | None:
    """The business a message to `to` reaches: a WhatsApp sender's, else the number's."""
    if to.startswith(WHATSAPP):
        return await runtime.catalog.message_sender("whatsapp", to.removeprefix(WHATSAPP))
    return await runtime.catalog.message_sender("sms", to) if is_e164(to) else None


async def last_locale(runtime: Runtime, phone: str, business: str) -> str | None:
    """The locale of this phone's latest decision with the business (None: it has none)."""
    locale = None
    rows = runtime.store.export_decisions(ExportFilter(business=business, phone=phone, include_demo=True))
    async for row in rows:
        locale = row.locale
    return locale


def reply_locale(business: Business, language: str) -> str:
    """The business's locale in this language, else the language itself (e.g. 'es')."""
    return next((loc for loc in business.locales if loc.split("-")[0].lower() == language), language)


@dataclass(frozen=True)
class Answer:
    """What to say back, in which locale, with which language's texts."""

    locale: str
    texts: MessagingTexts
    text: str


async def answer(runtime: Runtime, business: Business, phone: str, match: KeywordMatch) -> Answer:
    """The reply to a keyword: in the language of the sender's latest decision with this
    business, else in the keyword's own language; naming the business."""
    locale = await last_locale(runtime, phone, business.name)
    texts = messaging_texts(locale) if locale else None
    if texts is None or locale is None:
        texts = messaging_texts(match.language)
        if texts is None:  # the keyword came from this language's file: it has texts
            raise ScriptError(f"no [messaging] texts for {match.language}")
        locale = reply_locale(business, texts.language)
    types = list(business.message_types)
    if locale in business.locales:
        names = (await runtime.catalog.published(business.name, locale)).script.message_type_names
        types = [names.get(t, t) for t in types]
    text = texts.reply(
        match.kind,
        business=business.name,
        message_types=spoken_list(types, locale),
        opt_out_keyword=texts.opt_out_keywords[0],
        numbers=spoken_list(list(business.numbers), locale),
    )
    return Answer(locale, texts, text)


def simulated(runtime: Runtime, form: dict[str, str], message_sid: str) -> bool:
    """True when this service's own emulator (`ivr message`, /try) marked the message as a try."""
    value = form.get(REHEARSAL_PARAM) or ""
    if not value.startswith("simulated."):
        return False
    if hmac.compare_digest(value, simulated_mark(runtime.auth_token, message_sid)):
        return True
    LOG.warning("message %s carries a simulated mark that does not hold: recorded as real", message_sid)
    return False


async def incoming_message(request: Request) -> Response:
    """Twilio's incoming-message webhook: opt-out, help and start keywords."""
    runtime, _, form = await _from_twilio(request)
    if form is None:
        return PlainTextResponse("Forbidden: missing or invalid X-Twilio-Signature.", status_code=403)
    message = parse_message(form)
    if isinstance(message, Response):
        return message
    match = match_keyword(message.body)
    if match is None:
        return twiml_message(None)
    business = None
    try:
        business = await business_for_address(runtime, message.to)
        if business is None:
            LOG.info("message %s to an unknown number", message.message_sid)
            return twiml_message(None)
        if not is_e164(message.phone):
            LOG.info("message %s from a withheld or invalid sender: nothing recorded", message.message_sid)
            return twiml_message(None)
        reply = await answer(runtime, business, message.phone, match)
    except (StoreError, ScriptError) as exc:
        LOG.error("messaging webhook could not answer message %s: %s", message.message_sid, exc)
        texts = messaging_texts(match.language)
        if match.kind == "opt_out" and business is not None and texts is not None:
            # Nothing was recorded: say so in the keyword's language (never a false confirmation).
            return twiml_message(texts.reply("error", business=business.name))
        return PlainTextResponse("Service unavailable: nothing recorded, retry.", status_code=503)
    if match.kind != "opt_out":
        return twiml_message(reply.text)
    decision = ConsentDecision(
        call_sid=message.message_sid,
        phone=message.phone,
        business=business.name,
        action="opt_out",
        message_types=business.message_types,
        digits="",
        locale=reply.locale,
        # No script was heard: version 0, and the "spoken" text is the reply the sender gets.
        script_version=0,
        script_sha256=text_sha256(reply.text),
        spoken_text=reply.text,
        called_number=message.to,
        account_sid=form.get("AccountSid"),
        from_country=form.get("FromCountry"),
        simulated=simulated(runtime, form, message.message_sid),
        channel=message.channel,
        message_sid=message.message_sid,
        message_text=message.body[:MAX_MESSAGE_TEXT],
    )
    try:
        stored = await runtime.store.record_decision(decision)
    except StoreError as exc:
        LOG.error(
            "could not record the opt-out of message %s (%s): %s",
            message.message_sid,
            masked(message.phone),
            exc,
        )
        # Twilio does not retry an incoming-message webhook by default: the sender is told, in
        # their language, that nothing was recorded and to send it again (never a false confirmation).
        return twiml_message(reply.texts.reply("error", business=business.name))
    LOG.info(
        "recorded opt_out by %s message %s (%s) as record %d%s",
        message.channel,
        message.message_sid,
        masked(message.phone),
        stored.seq,
        " (a repeat)" if stored.duplicate else "",
    )
    return twiml_message(reply.text)


routes = [Route(MESSAGING_PATH, incoming_message, methods=["POST"])]
