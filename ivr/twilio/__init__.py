"""Twilio's edge: the webhooks, the pure call flow, signatures, and the Twilio stand-ins
(emulators) that the tests and `ivr call` use."""
