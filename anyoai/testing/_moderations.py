"""``POST /v1/moderations`` of the fake server: "kill" is violence, "hate" is hate.

Every input gets the 13 categories of the API with a tiny score, except those its words
trigger (0.95, flagged); a list of text and image parts is one input, and image parts add
``"image"`` to the input types of the categories that apply to images.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from ._framework import Cost, Reply, RequestContext, Route, dumps, json_reply
from ._generate import count_words
from ._validation import invalid_type, invalid_value, missing, optional_str, require

__all__ = ["MODERATION_CATEGORIES", "MODERATION_ROUTES", "moderations"]


#: The 13 moderation categories, in the API's order.
MODERATION_CATEGORIES: Final[tuple[str, ...]] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
_IMAGE_CATEGORIES: Final = frozenset(
    {
        "self-harm",
        "self-harm/instructions",
        "self-harm/intent",
        "sexual",
        "violence",
        "violence/graphic",
    }
)
_TRIGGERS: Final = (("kill", "violence"), ("hate", "hate"))


def _moderation_inputs(value: Any) -> list[tuple[str, bool, bool]]:
    """Each input as (text, has text, has image). A list of parts is one input."""
    if isinstance(value, str):
        return [(value, True, False)]
    if isinstance(value, list):
        if not value:
            raise invalid_value("input", "Invalid 'input': empty array. Expected at least one.")
        if all(isinstance(item, str) for item in value):
            return [(item, True, False) for item in value]
        texts: list[str] = []
        has_image = False
        for index, part in enumerate(value):
            if not isinstance(part, dict):
                raise invalid_type(f"input[{index}]", "an object", part)
            kind = part.get("type")
            if kind == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise missing(f"input[{index}].text")
                texts.append(text)
            elif kind == "image_url":
                has_image = True
            else:
                raise invalid_value(
                    f"input[{index}].type",
                    f"Invalid value: {dumps(kind)}. Supported values are: 'text' and 'image_url'.",
                )
        return [(" ".join(texts), bool(texts), has_image)]
    raise invalid_type("input", "a string or an array", value)


def _moderation_result(text: str, has_text: bool, has_image: bool) -> dict[str, Any]:
    lowered = text.lower()
    scores = dict.fromkeys(MODERATION_CATEGORIES, 0.0001)
    for trigger, category in _TRIGGERS:
        if trigger in lowered:
            scores[category] = 0.95
    categories = {name: score >= 0.5 for name, score in scores.items()}
    applied: dict[str, list[str]] = {}
    for name in MODERATION_CATEGORIES:
        kinds = ["text"] if has_text else []
        if has_image and name in _IMAGE_CATEGORIES:
            kinds.append("image")
        applied[name] = kinds
    return {
        "flagged": any(categories.values()),
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": applied,
    }


def moderations(ctx: RequestContext) -> Reply:
    """``POST /v1/moderations``: flags ``violence`` for "kill" and ``hate`` for "hate"."""
    body = ctx.body_object()
    inputs = _moderation_inputs(require(body, "input"))
    model = optional_str(body, "model") or "omni-moderation-latest"
    words = sum(count_words(text) for text, _, _ in inputs)
    answer = json_reply(
        {
            "id": ctx.make_id("modr"),
            "model": model,
            "results": [_moderation_result(*entry) for entry in inputs],
        }
    )
    return attrs.evolve(answer, cost=Cost(model=model, charge=words, used=words))


#: The moderations endpoint (part of :data:`~anyoai.testing._table.DEFAULT_ROUTES`).
MODERATION_ROUTES: Final[tuple[Route, ...]] = (Route("POST", "/v1/moderations", moderations),)
