"""Businesses with several locales get a language menu; each locale has its own script."""

from __future__ import annotations

from consent_store import ExportFilter
from tests.conftest import BILINGUAL, BILINGUAL_NUMBER, CALLER, Service


async def test_language_menu_offers_each_locale_in_its_own_language(service: Service) -> None:
    call = await service.twilio.call(BILINGUAL_NUMBER, CALLER, ["-", "-", "-"])
    menu = call.spoken[:2]
    assert (menu[0].text, menu[0].language, menu[0].voice) == (
        "Esta llamada se graba. Para español, pulse 1.",
        "es-ES",
        "Polly.Lucia",
    )
    assert (menu[1].text, menu[1].language, menu[1].voice) == (
        "This call is recorded. For English, press 2.",
        "en-US",
        "Polly.Joanna",
    )
    assert call.ended_by == "hangup"
    assert [r async for r in service.store.export_decisions(ExportFilter())] == []


async def test_spanish_caller_opts_in_in_spanish(service: Service) -> None:
    call = await service.twilio.call(BILINGUAL_NUMBER, CALLER, ["1", "1"])
    consent = call.spoken[2]
    assert consent.language == "es-ES"
    assert "gracias por llamar a Tienda Sol" in consent.text and "WhatsApp" in consent.text
    assert "avisos de entrega" in consent.text and "como máximo cuatro mensajes al mes" in consent.text
    assert "pulse 9" in consent.text
    assert "Hemos registrado su elección" in call.transcript
    [row] = [r async for r in service.store.export_decisions(ExportFilter())]
    assert (row.business, row.locale, row.action) == (BILINGUAL, "es-ES", "opt_in")
    # The record: the disclosure heard whole, a line break, the key instructions played after it.
    instructions = call.spoken[3]
    assert "pulse 1" in instructions.text and "pulse 1" not in consent.text
    assert await service.store.spoken_text(row.script_sha256) == f"{consent.text}\n{instructions.text}"


async def test_english_caller_of_a_bilingual_business_declines_in_english(service: Service) -> None:
    call = await service.twilio.call(BILINGUAL_NUMBER, CALLER, ["2", "2"])
    assert call.spoken[-1].language == "en-US"
    [row] = [r async for r in service.store.export_decisions(ExportFilter())]
    assert (row.locale, row.action, row.digits) == ("en-US", "declined", "2")


async def test_invalid_language_choice_reprompts_the_menu(service: Service) -> None:
    call = await service.twilio.call(BILINGUAL_NUMBER, CALLER, ["5", "1", "2"])
    assert "Lo sentimos, esa tecla no es una de las opciones." in call.transcript
    assert call.transcript.count("Para español, pulse 1.") == 2
    [row] = [r async for r in service.store.export_decisions(ExportFilter())]
    assert (row.locale, row.action) == ("es-ES", "declined")


async def test_an_opted_in_caller_who_chooses_a_language_hears_how_to_opt_out_and_can(
    service: Service,
) -> None:
    await service.twilio.call(BILINGUAL_NUMBER, CALLER, ["2", "1"])  # English, opt in
    again = await service.twilio.call(BILINGUAL_NUMBER, CALLER, ["2", "1", "9"])  # 1 is not an option now
    prompt = f"{again.spoken[2].text} {again.spoken[3].text}"  # disclosure, then the key instructions
    assert "press 9" in again.spoken[3].text and "To agree" not in prompt
    rows = [r async for r in service.store.export_decisions(ExportFilter())]
    assert [(r.locale, r.action, r.digits) for r in rows] == [
        ("en-US", "opt_in", "1"),
        ("en-US", "opt_out", "9"),
    ]
