"""The fake OpenAI server's route table: every endpoint module's routes, in one tuple.

Data flows one way: the endpoint modules build on :mod:`anyoai.testing._framework`, which knows
none of them; this module alone gathers their routes, and the server (:mod:`anyoai.testing._server`)
gives the table to its :class:`~anyoai.testing._framework.FakeApp`. Azure OpenAI's table is
:data:`anyoai.testing._azure.AZURE_ROUTES`.
"""

from __future__ import annotations

from typing import Final

from ._batches import BATCH_ROUTES
from ._chat import CHAT_ROUTES
from ._completions import COMPLETION_ROUTES
from ._embeddings import EMBEDDING_ROUTES
from ._files import FILE_ROUTES
from ._framework import Route
from ._models import MODEL_ROUTES
from ._moderations import MODERATION_ROUTES
from ._uploads import UPLOAD_ROUTES

__all__ = ["DEFAULT_ROUTES"]

#: Every endpoint of the (OpenAI) fake server.
DEFAULT_ROUTES: Final[tuple[Route, ...]] = (
    *CHAT_ROUTES,
    *COMPLETION_ROUTES,
    *EMBEDDING_ROUTES,
    *MODEL_ROUTES,
    *MODERATION_ROUTES,
    *FILE_ROUTES,
    *UPLOAD_ROUTES,
    *BATCH_ROUTES,
)
