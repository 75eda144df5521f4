"""Secrets that never show: API keys, tokens, credentials inside URLs.

A :class:`Secret` holds the value; its ``repr`` and ``str`` are masked, so a secret that reaches a
log line, an exception or a ``repr`` by accident shows as ``sk-...wxyz``. :func:`redact` scrubs
known secret values out of free text (an error body that echoes the key back, for instance).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["Secret", "mask", "redact", "redact_url"]


def mask(value: str) -> str:
    """Return a masked form of *value* that keeps at most a prefix and the last four characters.

    >>> mask("sk-proj-abcdefghijklmnop")
    'sk-...mnop'
    """
    if len(value) < 12:
        return "****"
    prefix = value[:3] if value[:3].isascii() and value[2:3] == "-" else ""
    return f"{prefix}...{value[-4:]}"


class Secret:
    """A string that masks itself in ``repr`` and ``str``; ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value itself. Only transport code that sends it should call this."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({mask(self._value)!r})"

    def __str__(self) -> str:
        return mask(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret in *text* with its masked form."""
    for secret in secrets:
        if secret and len(secret) >= 6 and secret in text:
            text = text.replace(secret, mask(secret))
    return text


_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^@/\s]+)@")


def redact_url(url: str) -> str:
    """Mask the ``user:password@`` part of a URL, if it has one."""
    return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}****@", url)
