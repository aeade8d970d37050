"""Log lines that request values cannot forge or flood, for `ivr serve`.

One filter on every handler escapes control characters in logged values repr-style (a NUL
becomes `\\x00`, a newline `\\n`, so a value can never start a line of its own) and cuts
each value to MAX_LOGGED_CHARS (a message without arguments to MAX_MESSAGE_CHARS). It
never drops a record.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

MAX_LOGGED_CHARS = 200
# A message logged without arguments is the code's own text, or a value already in it.
MAX_MESSAGE_CHARS = 2000
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 controls, DEL, C1 controls and the two Unicode line separators.
_CONTROLS = {code: _NAMED.get(chr(code), f"\\x{code:02x}") for code in [*range(0x20), *range(0x7F, 0xA0)]} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def escape_controls(text: str) -> str:
    """Control characters as repr-style escapes; everything else, accents included, as it is."""
    return text.translate(_CONTROLS)


def safe_value(value: Any, limit: int = MAX_LOGGED_CHARS) -> Any:
    """A logged value cut to `limit` characters and escaped; numbers and None stay as they
    are (for `%d`)."""
    if value is None or isinstance(value, int | float):
        return value
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", "backslashreplace")
    else:
        text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return escape_controls(text)


class SafeLogValues(logging.Filter):
    """Escapes and cuts a record's arguments (and a message given without arguments) in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "ivr_safe_values", False):  # another handler saw it first
            return True
        if isinstance(record.args, Mapping):
            record.args = {key: safe_value(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(safe_value(value) for value in record.args)
        else:
            record.msg = safe_value(record.msg, MAX_MESSAGE_CHARS)
        record.ivr_safe_values = True
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with SafeLogValues on every handler, and a root
    handler (for ivr, consent_store and starlette) in LOG_FORMAT."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"safe_values": {"()": SafeLogValues}}
    config["formatters"]["ivr"] = {"format": LOG_FORMAT}
    config["handlers"]["ivr"] = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "ivr",
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["safe_values"]
    config["root"] = {"handlers": ["ivr"], "level": "INFO"}
    return config
