"""The models endpoints of the fake server: ``GET /v1/models``, ``GET`` and ``DELETE
/v1/models/{model}``.

The server lists the models it was given (:data:`~anyoai.testing._framework.DEFAULT_MODELS`
unless told otherwise); retrieving another is a 404 ``model_not_found``, and only fine-tuned
(``ft:``) models can be deleted.
"""

from __future__ import annotations

from typing import Any, Final

from ._framework import EPOCH, EndpointError, Reply, RequestContext, Route, json_reply

__all__ = ["MODEL_ROUTES", "delete_model", "list_models", "retrieve_model"]


def _model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": EPOCH, "owned_by": "system"}


def list_models(ctx: RequestContext) -> Reply:
    """``GET /v1/models``."""
    return json_reply(
        {"object": "list", "data": [_model_object(model) for model in ctx.config.models]}
    )


def retrieve_model(ctx: RequestContext) -> Reply:
    """``GET /v1/models/{model}``: the model, or 404 ``model_not_found``."""
    model_id = ctx.params["model"]
    if model_id not in ctx.config.models:
        raise EndpointError(
            404,
            f"The model '{model_id}' does not exist",
            param="model",
            code="model_not_found",
        )
    return json_reply(_model_object(model_id))


def delete_model(ctx: RequestContext) -> Reply:
    """``DELETE /v1/models/{model}``: allowed for fine-tuned (``ft:``) models only."""
    model_id = ctx.params["model"]
    if not model_id.startswith("ft:"):
        raise EndpointError(403, "You have insufficient permissions for this operation.")
    return json_reply({"id": model_id, "object": "model", "deleted": True})


#: The models endpoints (part of :data:`~anyoai.testing._table.DEFAULT_ROUTES`).
MODEL_ROUTES: Final[tuple[Route, ...]] = (
    Route("GET", "/v1/models", list_models),
    Route("GET", "/v1/models/{model:path}", retrieve_model),
    Route("DELETE", "/v1/models/{model:path}", delete_model),
)
