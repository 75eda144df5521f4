"""The fake server's whole route table: the model endpoints of :mod:`._app` and the Files,
Uploads and Batch APIs built on them (which import :mod:`._app`, hence this separate module)."""

from __future__ import annotations

from typing import Final

from ._app import CORE_ROUTES, Route
from ._batches import BATCH_ROUTES
from ._files import FILE_ROUTES

__all__ = ["DEFAULT_ROUTES"]

#: Every endpoint of the (OpenAI) fake server.
DEFAULT_ROUTES: Final[tuple[Route, ...]] = (*CORE_ROUTES, *FILE_ROUTES, *BATCH_ROUTES)
