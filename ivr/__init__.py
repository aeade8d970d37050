"""The WhatsApp opt-in IVR: Twilio webhooks, call flow, web pages and the `ivr` CLI."""

from __future__ import annotations

__version__ = "0.1.0"
