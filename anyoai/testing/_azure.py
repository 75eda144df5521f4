"""Azure OpenAI mode of the fake server: deployment paths, ``api-version``, keys, content filter.

:class:`AzureApp` is the :class:`~anyoai.testing._framework.FakeApp` of
``FakeServer(azure=True)``. It answers like an Azure OpenAI resource
(``https://{resource}.openai.azure.com``), reusing the OpenAI endpoints
(:mod:`anyoai.testing._chat`, :mod:`anyoai.testing._completions`,
:mod:`anyoai.testing._embeddings`) for the bodies and adding what Azure adds:

Paths (:data:`AZURE_ROUTES`)
    ``POST /openai/deployments/{deployment}/chat/completions``, ``.../completions`` and
    ``.../embeddings``; ``GET /openai/models`` and ``GET /openai/models/{id}``; the Files,
    Uploads and Batch APIs under ``/openai/files``, ``/openai/uploads`` and ``/openai/batches``
    (the OpenAI endpoints of :mod:`anyoai.testing._files`, :mod:`anyoai.testing._uploads` and
    :mod:`anyoai.testing._batches`, same bodies). Anything else (the OpenAI ``/v1/...`` paths
    included) is a 404 ``Resource not found``.

Batches
    A batch names ``/chat/completions``, ``/completions`` or ``/embeddings`` as its endpoint
    (and as the ``url`` of its lines), and each line's ``body.model`` is a deployment: the
    request runs as ``POST /openai/deployments/{model}{endpoint}`` with the ``api-version`` of
    the retrieval that runs the batch (an unknown deployment is a 404 in the error file).

Checks, in this order
    the path (404 ``Resource not found``); the ``api-version`` query parameter (missing: 404
    ``Resource not found``; another than the configured one: 400 ``API version not
    supported``); the credentials (an ``api-key`` header, or ``Authorization: Bearer`` with
    the AAD token; else 401); the deployment (404 ``DeploymentNotFound``). Then the endpoint,
    with the body's ``model`` replaced by the deployment's model, as Azure ignores it.

Content filter
    Chat and completions answers carry ``prompt_filter_results`` and per choice
    ``content_filter_results``; a stream starts with a chunk that has only the
    ``prompt_filter_results`` (empty ``id``, ``model`` and ``object``, ``created`` 0). A prompt
    with the word "forbidden" is refused (400 ``content_filter``); a prompt with the word
    "cutoff" gets answers cut after 3 words with ``finish_reason: "content_filter"``.

Nothing here does I/O; the server adds :meth:`AzureApp.response_headers` to every answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Final
from urllib.parse import quote

import attrs

from ._batches import BATCH_ROUTES
from ._chat import chat_completions, message_text
from ._completions import completions, parse_prompts
from ._embeddings import embeddings
from ._files import FILE_ROUTES
from ._framework import (
    EPOCH,
    AppConfig,
    EndpointError,
    FakeApp,
    RecordedRequest,
    Reply,
    RequestContext,
    Route,
    dumps,
    json_reply,
)
from ._uploads import UPLOAD_ROUTES

__all__ = [
    "AZURE_ROUTES",
    "DEFAULT_DEPLOYMENTS",
    "AzureApp",
    "AzureConfig",
    "AzureError",
    "apim_request_id",
]

#: The deployments (name -> model) of an Azure fake server given none.
DEFAULT_DEPLOYMENTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "gpt-4o-mini": "gpt-4o-mini",
        "gpt-35-turbo": "gpt-3.5-turbo",
        "text-embedding-3-small": "text-embedding-3-small",
    }
)

#: The region every answer names in ``x-ms-region``.
REGION: Final = "Fake Region"

_NOT_FOUND: Final = "Resource not found"
_ACCESS_DENIED: Final = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)
_DEPLOYMENT_NOT_FOUND: Final = (
    "The API deployment for this resource does not exist. If you created the deployment within "
    "the last 5 minutes, please wait a moment and try again."
)
_PROMPT_FILTERED: Final = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry. To learn more about our content filtering "
    "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
_FORBIDDEN: Final = re.compile(r"\bforbidden\b", re.IGNORECASE)
_CUTOFF: Final = re.compile(r"\bcutoff\b", re.IGNORECASE)
#: how many words an answer keeps when the completion filter cuts it ("cutoff")
_CUT_WORDS: Final = 3


def _safe() -> dict[str, Any]:
    return {"filtered": False, "severity": "safe"}


def _undetected() -> dict[str, Any]:
    return {"filtered": False, "detected": False}


def _cut_violence() -> dict[str, Any]:
    return {"filtered": True, "severity": "medium"}


def _severities(*, cut: bool = False) -> dict[str, Any]:
    """The four severity categories of a streamed chunk: safe, or *cut* for ``violence``."""
    violence = _cut_violence() if cut else _safe()
    return {"hate": _safe(), "self_harm": _safe(), "sexual": _safe(), "violence": violence}


def _prompt_results() -> dict[str, Any]:
    return {
        "hate": _safe(),
        "jailbreak": _undetected(),
        "self_harm": _safe(),
        "sexual": _safe(),
        "violence": _safe(),
    }


def _choice_results(*, cut: bool = False) -> dict[str, Any]:
    results = {
        "hate": _safe(),
        "protected_material_code": _undetected(),
        "protected_material_text": _undetected(),
        "self_harm": _safe(),
        "sexual": _safe(),
        "violence": _safe(),
    }
    if cut:
        results["violence"] = _cut_violence()
    return results


def _prompt_filter_results(prompts: int) -> list[dict[str, Any]]:
    return [
        {"prompt_index": index, "content_filter_results": _prompt_results()}
        for index in range(prompts)
    ]


def apim_request_id(seq: int) -> str:
    """The ``apim-request-id`` of the server's *seq*-th request: a UUID-shaped, stable id."""
    return f"00000000-0000-4000-8000-{seq:012x}"


class AzureError(EndpointError):
    """An error answered with Azure's own body (not the OpenAI shape), e.g. a 401 or a 404.

    :ivar body: the whole JSON body, ``{"error": {...}}``.
    """

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        error = body.get("error")
        message = error.get("message") if isinstance(error, Mapping) else None
        super().__init__(status, message if isinstance(message, str) else "")
        self.body = dict(body)

    def reply(self) -> Reply:
        """The :class:`Reply` this error stands for: :attr:`body` as it is."""
        return json_reply(self.body, status=self.status, headers=self.headers)


def _not_found() -> AzureError:
    return AzureError(404, {"error": {"code": "404", "message": _NOT_FOUND}})


def _content_filtered() -> AzureError:
    verdict = _prompt_results()
    verdict["hate"] = {"filtered": True, "severity": "high"}
    return AzureError(
        400,
        {
            "error": {
                "message": _PROMPT_FILTERED,
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": verdict,
                },
            }
        },
    )


def _freeze_deployments(value: Mapping[str, str]) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"deployments must be a mapping of str to str, not {type(value).__name__}")
    frozen: dict[str, str] = {}
    for name, model in value.items():
        if not isinstance(name, str) or not isinstance(model, str) or not name or not model:
            raise ValueError("deployments must map non-empty deployment names to model names")
        frozen[name] = model
    return MappingProxyType(frozen)


def _optional_text(name: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{name} must be a non-empty string or None")

    return check


@attrs.frozen(kw_only=True)
class AzureConfig:
    """The settings of an Azure fake server.

    :ivar api_version: the only ``api-version`` accepted; ``None``: any (it is still required).
    :ivar deployments: deployment name -> model name.
    :ivar api_key: when set, an ``api-key: <api_key>`` header is accepted.
    :ivar ad_token: when set, an ``Authorization: Bearer <ad_token>`` header is accepted.
        With neither, requests need no credentials; with both, either one will do.
    """

    api_version: str | None = attrs.field(default=None, validator=_optional_text("api_version"))
    deployments: Mapping[str, str] = attrs.field(
        default=DEFAULT_DEPLOYMENTS, converter=_freeze_deployments, hash=False
    )
    api_key: str | None = attrs.field(default=None, validator=_optional_text("api_key"))
    ad_token: str | None = attrs.field(default=None, validator=_optional_text("ad_token"))


# --------------------------------------------------------------------------------------------
# endpoints: the OpenAI ones, with the deployment's model and Azure's content filter


def _deployment_context(ctx: RequestContext, **overrides: Any) -> RequestContext:
    """*ctx* with the body's ``model`` set to the deployment's model (and *overrides* set)."""
    body = ctx.request.json
    if not isinstance(body, dict):
        return ctx  # the endpoint answers the 400
    changed = {**body, "model": ctx.params["model"], **overrides}
    return attrs.evolve(ctx, request=attrs.evolve(ctx.request, json=changed))


@attrs.frozen(kw_only=True)
class _Filtered:
    """An endpoint behind Azure's content filter: how to read its prompts and its token limit.

    :ivar handler: the OpenAI endpoint.
    :ivar texts: the prompt texts of a (valid) body, which the filter reads.
    :ivar prompts: how many prompts a (valid) body holds (``prompt_filter_results`` entries).
    :ivar limit_names: the body's token limit parameters, the one that takes precedence first.
    """

    handler: Callable[[RequestContext], Reply]
    texts: Callable[[dict[str, Any]], list[str]]
    prompts: Callable[[dict[str, Any]], int]
    limit_names: tuple[str, ...]

    def __call__(self, ctx: RequestContext) -> Reply:
        """Answer with the endpoint, through the prompt and completion filters, decorated."""
        full = self.handler(_deployment_context(ctx))
        if full.status >= 400:
            return full  # a validation error: the body is not one to filter
        body: dict[str, Any] = ctx.request.json
        found = self.texts(body)
        if any(_FORBIDDEN.search(text) for text in found):
            raise _content_filtered()
        if not any(_CUTOFF.search(text) for text in found) or not self._cut_first(body):
            return _decorate(full, self.prompts(body), cut=False)
        # the same answer stopped after a few words; the token reservation stays the full one's
        shortened = self.handler(_deployment_context(ctx, **{self.limit_names[0]: _CUT_WORDS}))
        cost = attrs.evolve(shortened.cost, charge=full.cost.charge)
        return _decorate(attrs.evolve(shortened, cost=cost), self.prompts(body), cut=True)

    def _cut_first(self, body: dict[str, Any]) -> bool:
        """Whether the filter cuts the answer before the client's token limit stops it."""
        for name in self.limit_names:
            limit = body.get(name)
            if limit is not None:
                return not isinstance(limit, int) or limit > _CUT_WORDS
        return True


def _chat_texts(body: dict[str, Any]) -> list[str]:
    return [message_text(message.get("content")) for message in body["messages"]]


def _completion_texts(body: dict[str, Any]) -> list[str]:
    return [text for text, _ in parse_prompts(body["prompt"], "prompt")]


#: ``POST /openai/deployments/{deployment}/chat/completions``.
azure_chat_completions: Final = _Filtered(
    handler=chat_completions,
    texts=_chat_texts,
    prompts=lambda _: 1,
    limit_names=("max_completion_tokens", "max_tokens"),
)

#: ``POST /openai/deployments/{deployment}/completions`` (legacy text completions).
azure_completions: Final = _Filtered(
    handler=completions,
    texts=_completion_texts,
    prompts=lambda body: len(_completion_texts(body)),
    limit_names=("max_tokens",),
)


def azure_embeddings(ctx: RequestContext) -> Reply:
    """``POST /openai/deployments/{deployment}/embeddings`` (no content filter)."""
    return embeddings(_deployment_context(ctx))


def _capabilities(model: str) -> dict[str, bool]:
    embedding = "embedding" in model
    completion = "instruct" in model or "davinci" in model or "babbage" in model
    return {
        "fine_tune": model.startswith("ft:"),
        "inference": True,
        "completion": completion,
        "chat_completion": not embedding and not completion and "moderation" not in model,
        "embeddings": embedding,
    }


def _azure_model(model: str) -> dict[str, Any]:
    return {
        "status": "succeeded",
        "capabilities": _capabilities(model),
        "lifecycle_status": "generally-available",
        "id": model,
        "created_at": EPOCH,
        "object": "model",
    }


def azure_list_models(ctx: RequestContext) -> Reply:
    """``GET /openai/models``: the server's models and its deployments' models."""
    return json_reply(
        {"data": [_azure_model(model) for model in ctx.config.models], "object": "list"}
    )


def azure_retrieve_model(ctx: RequestContext) -> Reply:
    """``GET /openai/models/{model}``: the model, or 404 ``Resource not found``."""
    model = ctx.params["model"]
    if model not in ctx.config.models:
        raise _not_found()
    return json_reply(_azure_model(model))


#: The endpoints of an :class:`AzureApp`. A route with a ``{deployment}`` parameter is
#: deployment-scoped: its handler finds the deployment's model in ``ctx.params["model"]``.
#: The files, uploads and batches routes are OpenAI's, ``/v1`` replaced by ``/openai``.
AZURE_ROUTES: Final[tuple[Route, ...]] = (
    Route("POST", "/openai/deployments/{deployment}/chat/completions", azure_chat_completions),
    Route("POST", "/openai/deployments/{deployment}/completions", azure_completions),
    Route("POST", "/openai/deployments/{deployment}/embeddings", azure_embeddings),
    Route("GET", "/openai/models", azure_list_models),
    Route("GET", "/openai/models/{model:path}", azure_retrieve_model),
    *(
        Route(route.method, "/openai" + route.template.removeprefix("/v1"), route.handler)
        for route in (*FILE_ROUTES, *UPLOAD_ROUTES, *BATCH_ROUTES)
    ),
)


# --------------------------------------------------------------------------------------------
# decorations: content-filter results on bodies and stream chunks


def _decorate(reply: Reply, prompts: int, *, cut: bool) -> Reply:
    """*reply* (chat or completions) with Azure's content-filter results.

    With *cut*, every choice that ended on ``"length"`` ends on ``"content_filter"`` instead,
    its ``violence`` filtered.
    """
    if reply.events is not None:
        first = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": _prompt_filter_results(prompts),
        }
        events = [dumps(first)]
        for event in reply.events:
            if event == "[DONE]":
                events.append(event)
                continue
            chunk = json.loads(event)
            for choice in chunk.get("choices", ()):
                _decorate_chunk_choice(choice, cut=cut)
            events.append(dumps(chunk))
        return attrs.evolve(reply, events=tuple(events))
    value = json.loads(reply.body)
    decorated: dict[str, Any] = {}
    for key, item in value.items():
        if key == "choices":
            decorated["prompt_filter_results"] = _prompt_filter_results(prompts)
            for choice in item:
                _decorate_choice(choice, cut=cut)
        decorated[key] = item
    return attrs.evolve(reply, body=dumps(decorated).encode("utf-8"))


def _cut_finish(choice: dict[str, Any], cut: bool) -> bool:
    """Turn a cut choice's ``"length"`` into ``"content_filter"``; return whether it was one."""
    if cut and choice.get("finish_reason") == "length":
        choice["finish_reason"] = "content_filter"
        return True
    return False


def _decorate_choice(choice: dict[str, Any], *, cut: bool) -> None:
    message = choice.get("message")
    if isinstance(message, dict) and message.get("content") is None and not message.get("refusal"):
        # tool and function calls: nothing to filter (the real service sends {} too)
        choice["content_filter_results"] = {}
        return
    choice["content_filter_results"] = _choice_results(cut=_cut_finish(choice, cut))


def _decorate_chunk_choice(choice: dict[str, Any], *, cut: bool) -> None:
    if choice.get("finish_reason") is not None:
        filtered = _cut_finish(choice, cut)
        choice["content_filter_results"] = _severities(cut=True) if filtered else {}
        return
    delta = choice.get("delta")
    text = (
        (delta.get("content") or delta.get("refusal")) if isinstance(delta, dict) else None
    ) or choice.get("text")
    choice["content_filter_results"] = _severities() if text else {}


# --------------------------------------------------------------------------------------------
# the app


class AzureApp(FakeApp):
    """The fake Azure OpenAI resource: :class:`FakeApp` with Azure's routes, checks and headers.

    :param config: the server's settings; ``GET /openai/models`` lists its models followed by
        the deployments' models it lacks.
    :param azure: the Azure settings.
    :param routes: the route table; :data:`AZURE_ROUTES` unless given.
    """

    #: The endpoints an Azure batch may name (the ``url`` of its lines too).
    batch_endpoints: ClassVar[tuple[str, ...]] = (
        "/chat/completions",
        "/completions",
        "/embeddings",
    )

    def __init__(
        self, config: AppConfig, azure: AzureConfig, routes: Iterable[Route] | None = None
    ) -> None:
        models = list(config.models)
        models += [
            model for model in dict.fromkeys(azure.deployments.values()) if model not in models
        ]
        super().__init__(
            attrs.evolve(config, models=tuple(models)),
            AZURE_ROUTES if routes is None else routes,
        )
        self.azure = azure

    def handle(self, request: RecordedRequest, seq: int) -> Reply:
        """Answer *request*, the server's ``seq``-th. Never raises :class:`EndpointError`."""
        return self._respond(request, seq, authenticate=True)

    def execute(self, request: RecordedRequest, seq: int) -> Reply:
        """Answer *request* as :meth:`handle` does, without checking its credentials."""
        return self._respond(request, seq, authenticate=False)

    def batch_target(
        self, endpoint: str, body: Mapping[str, Any], query: Mapping[str, str]
    ) -> tuple[str, dict[str, str]]:
        """A batch's request goes to its ``body.model`` deployment, with the ``api-version``
        of *query* (the retrieval that runs the batch)."""
        model = body.get("model")
        deployment = quote(model, safe="") if isinstance(model, str) else ""
        version = query.get("api-version")
        return (
            f"/openai/deployments/{deployment}{endpoint}",
            {"api-version": version} if version is not None else {},
        )

    def _respond(self, request: RecordedRequest, seq: int, *, authenticate: bool) -> Reply:
        self.state.observe(seq)
        try:
            route, params = self._route(request)
            self._check_api_version(request)
            if authenticate:
                self._authenticate(request)
            if "deployment" in params:
                model = self.azure.deployments.get(params["deployment"])
                if model is None:
                    raise AzureError(
                        404,
                        {
                            "error": {
                                "type": "invalid_request_error",
                                "code": "DeploymentNotFound",
                                "message": _DEPLOYMENT_NOT_FOUND,
                            }
                        },
                    )
                params["model"] = model
            return route.handler(self.context(request, params, seq))
        except EndpointError as error:
            return error.reply()

    def response_headers(self, seq: int) -> Sequence[tuple[str, str]]:
        """``apim-request-id`` (see :func:`apim_request_id`) and ``x-ms-region``."""
        return (("apim-request-id", apim_request_id(seq)), ("x-ms-region", REGION))

    def _route(self, request: RecordedRequest) -> tuple[Route, dict[str, str]]:
        for route in self.routes:
            if route.method == request.method:
                params = route.match(request.path)
                if params is not None:
                    return route, params
        raise _not_found()

    def _check_api_version(self, request: RecordedRequest) -> None:
        version = request.query.get("api-version")
        if not version:
            raise _not_found()
        expected = self.azure.api_version
        if expected is not None and version != expected:
            raise AzureError(
                400, {"error": {"code": "BadRequest", "message": "API version not supported"}}
            )

    def _authenticate(self, request: RecordedRequest) -> None:
        key, token = self.azure.api_key, self.azure.ad_token
        if key is None and token is None:
            return
        if key is not None and request.headers.get("api-key") == key:
            return
        if token is not None:
            scheme, _, given = request.headers.get("authorization", "").strip().partition(" ")
            if scheme.lower() == "bearer" and given.strip() == token:
                return
        raise AzureError(401, {"error": {"code": "401", "message": _ACCESS_DENIED}})
