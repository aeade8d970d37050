"""The floor for `python -m bench load`: a bare Starlette app answering a constant TwiML document.

`python -m bench.baseline_app --port P` serves it with the same uvicorn options as `ivr serve`
(see `UVICORN_OPTIONS`), so the difference between the two is the service's own work: signature
check, form parsing, store look-ups, TwiML building, the durable commit and logging.

Every POST path answers the same document: a realistic first reply of the service (about the
size of the real one: Start/Recording, then a Gather whose action is the decision webhook), so the
whole-call load generator can follow it exactly as it follows the real service, without checks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# What `ivr serve` passes to uvicorn.run (ivr/cli/main.py), besides the app, host and port.
# access_log=False as `ivr serve` without --access-log: before December 2026 the floor logged
# every request (uvicorn's default) and ivr serve did not, which cost the floor ~13% of its CPU.
UVICORN_OPTIONS: dict[str, Any] = {
    "log_level": "info",
    "proxy_headers": True,
    "access_log": False,
    "server_header": False,
}

CONSTANT_TWIML = (
    b'<?xml version="1.0" encoding="UTF-8"?><Response><Start><Recording'
    b' recordingStatusCallback="/twilio/recording" recordingStatusCallbackEvent="completed absent"'
    b' recordingStatusCallbackMethod="POST" track="both" /></Start><Gather action="/twilio/gather?'
    b'step=consent&amp;n=1&amp;r=0&amp;locale=en-US&amp;v=1&amp;h=0123456789abcdef" input="dtmf"'
    b' method="POST" numDigits="1" timeout="7"><Say language="en-US" voice="Polly.Joanna">Hello, thank'
    b" you for calling Bench Bakery. We would like to send you order updates on WhatsApp, no more than"
    b" four messages a month. You can stop these WhatsApp messages at any time: call this number again"
    b" and press 9. To agree to receive WhatsApp messages from Bench Bakery, press 1. If you do not"
    b' agree, press 2. To hear this again, press star.</Say></Gather><Redirect method="POST">'
    b"/twilio/gather?step=consent&amp;n=1&amp;r=0&amp;locale=en-US&amp;v=1&amp;h=0123456789abcdef"
    b"</Redirect></Response>"
)


async def constant(request: Request) -> Response:
    """The floor: no body read, no look-up, a constant document."""
    return Response(CONSTANT_TWIML, media_type="application/xml")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/{path:path}", constant, methods=["POST"]),
    ]
)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(list(argv))
    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, **UVICORN_OPTIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
