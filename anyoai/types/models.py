"""Models (``/models``)."""

from __future__ import annotations

import attrs

from .._model import APIObject, DataMixin

__all__ = ["Model", "ModelDeleted", "ModelList"]


@attrs.frozen(kw_only=True)
class Model(APIObject):
    """A model the API offers."""

    id: str
    created: int | None = None
    owned_by: str | None = None
    object_: str = "model"
    #: the date the model shuts down (``"2026-10-23"``), if announced
    shutdown_date: str | None = None


@attrs.frozen(kw_only=True)
class ModelList(APIObject, DataMixin[Model]):
    """The result of ``models.list``. Iterate over it, or read :attr:`data`."""

    data: list[Model]
    object_: str = "list"

    @property
    def ids(self) -> list[str]:
        """The models' ids."""
        return [model.id for model in self.data]


@attrs.frozen(kw_only=True)
class ModelDeleted(APIObject):
    """The result of ``models.delete`` (of a fine-tuned model)."""

    id: str
    deleted: bool
    object_: str = "model"
