"""Names that moved into the standard library after Python 3.10."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
    from typing import NotRequired, Required, Self, TypedDict, Unpack
else:  # pragma: no cover - exercised on Python 3.10 only
    from exceptiongroup import BaseExceptionGroup
    from typing_extensions import NotRequired, Required, Self, TypedDict, Unpack

__all__ = [
    "BaseExceptionGroup",
    "NotRequired",
    "Required",
    "Self",
    "TypedDict",
    "Unpack",
    "single",
]


def single(exc: BaseException) -> BaseException:
    """The one exception inside (nested) exception groups of one member each; else *exc*.

    A task group wraps even a lone failure in a group; callers of anyoai expect the failure.
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
