"""A ready-made tqdm progress bar for :func:`~anyoai.map_concurrent` (an optional extra).

::

    from anyoai.progress import progress_bar

    with progress_bar(total=len(texts), description="embedding") as bar:
        vectors = await anyoai.map_concurrent(embed, texts, progress=bar)

``tqdm`` is imported when a bar is created, never by ``import anyoai``; install it with
``pip install 'anyoai[progress]'``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._compat import ClosingContext
from ._concurrency import Progress

__all__ = ["ProgressBar", "progress_bar"]


class ProgressBar(ClosingContext):
    """A tqdm bar fed by :class:`~anyoai.Progress` snapshots: pass it as ``progress=``.

    The bar counts finished items (done, failed and resumed) and shows the failures and the calls
    in flight. Use it as a context manager, or call :meth:`close`, to close the bar.
    """

    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def __call__(self, progress: Progress) -> None:
        """Move the bar to *progress*."""
        bar = self._bar
        if progress.total is not None and bar.total != progress.total:
            bar.total = progress.total
        bar.set_postfix(failed=progress.failed, in_flight=progress.in_flight, refresh=False)
        bar.update(progress.done + progress.failed + progress.skipped - bar.n)

    def close(self) -> None:
        """Close the bar (idempotent)."""
        self._bar.close()


def progress_bar(
    *, total: int | None = None, description: str = "anyoai", **tqdm_kwargs: Any
) -> ProgressBar:
    """A new tqdm progress bar to pass as ``progress=`` to a concurrent map.

    :param total: the number of items, if known now (else taken from the first snapshot).
    :param description: the bar's label.
    :param tqdm_kwargs: more arguments for ``tqdm.tqdm`` (``file``, ``leave``, ``unit``...).
    :raises ImportError: if tqdm is not installed.
    """
    try:
        tqdm = importlib.import_module("tqdm")
    except ImportError:
        raise ImportError(
            "anyoai.progress needs tqdm: pip install 'anyoai[progress]' (or pip install tqdm)"
        ) from None
    tqdm_kwargs.setdefault("unit", "item")
    return ProgressBar(tqdm.tqdm(total=total, desc=description, **tqdm_kwargs))
