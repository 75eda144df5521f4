"""Names that moved into the standard library after Python 3.10."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
    from typing import NotRequired, Required, Self, TypedDict, Unpack
else:  # pragma: no cover - exercised on Python 3.10 only
    from exceptiongroup import BaseExceptionGroup
    from typing_extensions import NotRequired, Required, Self, TypedDict, Unpack

__all__ = ["BaseExceptionGroup", "NotRequired", "Required", "Self", "TypedDict", "Unpack"]
