"""pydantic errors as (field path, reason) pairs that a person can act on."""

from __future__ import annotations

import re

from pydantic import ValidationError

# Model-level validators cannot attach a location, so they say "field: reason" and
# the field is recovered from the message here.
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\[\]]*): (.+)$", re.DOTALL)
_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")
# A dict key is part of the path (`labels.<key>`); an over-long key is shortened there, so
# an error about a megabyte-long label key does not echo the megabyte back.
MAX_PATH_SEGMENT = 64


def field_errors(error: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    found = []
    for item in error.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{_segment(p)}" for p in item["loc"]).lstrip(".")
        message = item["msg"]
        for noise in _PYDANTIC_PREFIXES:
            if message.startswith(noise):
                message = message[len(noise):]
        if item["type"] == "extra_forbidden":
            message = "is not a known field"
        match = _FIELD_PREFIX.match(message)
        if match is not None:
            loc = f"{loc}.{match.group(1)}" if loc else match.group(1)
            message = match.group(2)
        path = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or "body")
        found.append((path, message))
    return found


def _segment(name: str) -> str:
    return name if len(name) <= MAX_PATH_SEGMENT else name[: MAX_PATH_SEGMENT - 3] + "..."
