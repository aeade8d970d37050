"""Every exception class of ivr (outside ivr/recordings/, which has its own exceptions.py), in one place.

Each says what went wrong with data, not only a message. An error a CLI command reports carries
its exit code (CliFailure.code: 1 refused, 2 bad input or configuration); one a web page or the
API answers carries the HTTP status it is answered with (`http_status`, or Refused.status), so a
newcomer sees here what a caller gets for each.
"""

from __future__ import annotations

from typing import ClassVar

from starlette.responses import JSONResponse, Response

# Typed phone numbers longer than this are refused (and shown cut to it in the message).
MAX_TYPED_LENGTH = 40


# -- The command line -------------------------------------------------------------------------
class CliFailure(Exception):
    """A command that cannot go on: one line on stderr and exit `code` (see ivr/cli/support.py)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# -- HTTP: the consent and opt-out API, the web pages, the server's limits -----------------------
class Refused(Exception):
    """A request refused before anything is written: its status, message and field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        self.status = status
        self.message = message
        self.field = field
        super().__init__(message)

    def response(self) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="consent"'} if self.status == 401 else None
        return JSONResponse(
            {"error": self.message, "field": self.field}, status_code=self.status, headers=headers
        )


class BodyTooLarge(Exception):
    """A request body over MAX_BODY_BYTES (ivr/security.py), refused before the app reads it."""

    http_status: ClassVar[int] = 413


class HeadersTooLarge(Exception):
    """Request headers over the limit (ivr/middleware.py); uvicorn answers the parser error 400."""

    http_status: ClassVar[int] = 400


class FormRefused(ValueError):
    """A form that cannot be acted on; the message says which field and why."""

    http_status: ClassVar[int] = 400


class FormNotApplied(ValueError):
    """The form's fields cannot be written: the TOML text under them does not parse."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


class ScriptRejected(ValueError):
    """The script breaks the opt-in policy or is not a valid script; nothing was published."""

    http_status: ClassVar[int] = 422

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"script not published: {len(problems)} problem(s): " + "; ".join(problems))


class InvalidCallState(ValueError):
    """The Gather action URL does not describe a call state we issued (the webhook answers 400)."""

    http_status: ClassVar[int] = 400


# -- Values people type (CLI and pages say why, each in its own way) ---------------------------
class InvalidBusiness(ValueError):
    """The business's details are not acceptable; the message says which and why."""


class NotAPhoneNumber(ValueError):
    """Typed text that is not a phone number; the message names it and says what to write."""

    def __init__(self, text: str, why: str) -> None:
        shown = text if len(text) <= MAX_TYPED_LENGTH else text[:MAX_TYPED_LENGTH] + "..."
        super().__init__(f"{shown!r} is not a phone number: {why}")
        self.text = text


class BadUserName(ValueError):
    """A user name outside the safe set (ivr/passwords.py USER_NAME)."""


class WeakPassword(ValueError):
    """A password the policy refuses (ivr/passwords.py); the message says why."""


# -- Work that ran out of time, and the Twilio emulator -----------------------------------------
class LintTimeout(Exception):
    """The check ran past its deadline; the worker running it was killed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the check took over {seconds:g} s")


class EmulatorError(Exception):
    """The service answered something Twilio would not accept."""


# -- Exports and their manifests (ivr/evidence/); `ivr verify --export` reports them, exit 1 ---
class ManifestError(Exception):
    """The manifest beside an export is missing or cannot be read."""


class ColumnsError(ValueError):
    """The file's columns are not a prefix of today's; the message names the column."""


class ExportMismatch(Exception):
    """An export's bytes differ from what the store holds: the first difference found, named."""
