"""Backends: where a request can go (OpenAI, Azure OpenAI, any OpenAI-compatible server).

Users describe backends with the spec classes :class:`OpenAIBackend`, :class:`AzureBackend`
and :class:`CompatibleBackend`; the pool turns each into a :class:`Backend`, which knows its
URL, its credentials and how to address a request (Azure puts the deployment in the path and
the API version in the query, and authenticates with ``api-key`` or an Azure AD token). Choosing
a backend for each attempt, and keeping track of their health, is :mod:`anyoai._selection`'s
job. Nothing here sends anything.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Literal

import anyio
import attrs

from ._config import Timeout
from ._exceptions import ConfigurationError, InvalidParameterError
from ._limits import Limits
from ._request import APIRequest
from ._secrets import Secret, mask, redact_url
from ._version import __version__

__all__ = [
    "DEFAULT_AZURE_API_VERSION",
    "DEFAULT_AZURE_DEPLOYMENTS",
    "AzureBackend",
    "Backend",
    "BackendKind",
    "BackendSpec",
    "CompatibleBackend",
    "OpenAIBackend",
    "TokenProvider",
]

logger = logging.getLogger("anyoai")

BackendKind = Literal["openai", "azure", "compatible"]

#: The seed library's default mapping of OpenAI model names to Azure deployment names.
DEFAULT_AZURE_DEPLOYMENTS: Mapping[str, str] = {
    "gpt-3.5-turbo": "gpt-35-turbo",
    "gpt-3.5-turbo-16k": "gpt-35-turbo-16k",
    "gpt-3.5-turbo-instruct": "gpt-35-turbo-instruct",
    "gpt-3.5-turbo-0301": "gpt-35-turbo-0301",
    "gpt-3.5-turbo-0613": "gpt-35-turbo-0613",
}
#: The newest stable Azure OpenAI data-plane API version this release was checked against.
DEFAULT_AZURE_API_VERSION = "2024-10-21"

#: What an Azure AD token provider may return: a token (a JWT: its ``exp`` claim gives the
#: expiry), an object with ``token`` and ``expires_on`` (azure-identity's ``AccessToken``), or a
#: mapping with those keys.
TokenProvider = Callable[[], Any] | Callable[[], Awaitable[Any]]

_USER_AGENT = f"anyoai/{__version__}".encode()
Origin = tuple[bytes, bytes, int]


# -- specs ----------------------------------------------------------------------------------


def _coerce_timeout(value: float | Timeout | None) -> Timeout | None:
    return None if value is None else Timeout.coerce(value, setting="backend timeout")


@attrs.frozen(kw_only=True)
class BackendSpec:
    """What every backend spec has.

    :param name: how it is called in errors, logs and ``pool[name]`` (default: its kind).
    :param weight: its share of the traffic with ``strategy="weighted"``.
    :param priority: lower first; a higher number is used only when every backend of a lower
        one is down or does not serve the model.
    :param models: the models it serves (``None``: any, except for Azure, see
        :class:`AzureBackend`).
    :param exclude_models: models it never serves.
    :param limits: its own in-flight, requests-per-minute and tokens-per-minute limits.
    :param timeout: its own timeouts (seconds, or a :class:`Timeout`).
    :param headers: extra headers for every request it sends.
    """

    name: str | None = None
    weight: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    priority: int = 0
    models: Collection[str] | None = None
    exclude_models: Collection[str] = ()
    limits: Limits | None = None
    timeout: Timeout | None = attrs.field(default=None, converter=_coerce_timeout)
    headers: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class OpenAIBackend(BackendSpec):
    """The OpenAI API (``api_key=None`` reads ``OPENAI_API_KEY``)."""

    base_url: str = "https://api.openai.com/v1"
    api_key: str | None = attrs.field(default=None, repr=lambda k: repr(mask(k)) if k else "None")
    organization: str | None = None
    project: str | None = None


@attrs.frozen(kw_only=True)
class CompatibleBackend(BackendSpec):
    """Any OpenAI-compatible server (vLLM, llama.cpp, Ollama, a proxy...), with or without a key."""

    base_url: str
    api_key: str | None = attrs.field(default=None, repr=lambda k: repr(mask(k)) if k else "None")


@attrs.frozen(kw_only=True)
class AzureBackend(BackendSpec):
    """An Azure OpenAI resource.

    :param endpoint: ``https://<resource>.openai.azure.com``.
    :param api_version: the data-plane API version (default :data:`DEFAULT_AZURE_API_VERSION`).
    :param api_key: sent as ``api-key``; or
    :param azure_ad_token: a fixed Azure AD (Entra ID) token, sent as ``Authorization: Bearer``;
        or
    :param azure_ad_token_provider: a callable, sync or async, returning a token; it is called
        when the cached token is near its expiry (never once per request), and at most once
        at a time.
    :param deployments: model -> deployment names; they extend the seed library's defaults
        (:data:`DEFAULT_AZURE_DEPLOYMENTS`) unless ``replace_deployments=True``.
    :param models: models whose deployment has the same name as the model.

    An Azure backend serves exactly the models it has a deployment for: the keys of
    ``deployments``, its values (a deployment may be asked for by its own name) and ``models``.
    """

    endpoint: str
    api_version: str = DEFAULT_AZURE_API_VERSION
    api_key: str | None = attrs.field(default=None, repr=lambda k: repr(mask(k)) if k else "None")
    azure_ad_token: str | None = attrs.field(
        default=None, repr=lambda k: repr(mask(k)) if k else "None"
    )
    azure_ad_token_provider: TokenProvider | None = None
    deployments: Mapping[str, str] = attrs.field(factory=dict)
    replace_deployments: bool = False


# -- Azure AD tokens ------------------------------------------------------------------------


def _jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, as a Unix time, without verifying anything."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) else None


class AzureADToken:
    """The cache of an Azure AD token from a provider: refreshed before it expires.

    The token is refreshed when less than a tenth of its lifetime (at most 5 minutes) is left,
    so a token is fetched once per lifetime, not once per request. A token whose expiry cannot
    be read is kept for :attr:`UNKNOWN_LIFETIME` seconds.
    """

    #: seconds a token without a readable expiry is trusted for
    UNKNOWN_LIFETIME = 300.0
    #: the longest refresh margin
    MAX_MARGIN = 300.0

    def __init__(self, provider: TokenProvider, *, clock: Callable[[], float] = time.time) -> None:
        self._provider = provider
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = anyio.Lock()
        self.fetches = 0

    @property
    def token(self) -> str | None:
        """The cached token (``None`` before the first fetch)."""
        return self._token

    async def ensure(self) -> str:
        """The token, fetched first if missing or about to expire."""
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        async with self._lock:
            if self._token is not None and self._clock() < self._refresh_at:
                return self._token
            value = await self._fetch()
            token, expires = self._read(value)
            now = self._clock()
            lifetime = (expires - now) if expires is not None else self.UNKNOWN_LIFETIME
            margin = min(self.MAX_MARGIN, max(lifetime, 0.0) / 10)
            self._token = token
            self._refresh_at = now + max(lifetime - margin, 0.0)
            self.fetches += 1
            return token

    async def _fetch(self) -> Any:
        provider = self._provider
        if inspect.iscoroutinefunction(provider):
            return await provider()
        import anyio.to_thread

        result = await anyio.to_thread.run_sync(provider)  # azure-identity blocks: not here
        if inspect.isawaitable(result):
            result = await result
        return result

    @staticmethod
    def _read(value: Any) -> tuple[str, float | None]:
        if isinstance(value, str):
            return value, _jwt_expiry(value)
        if isinstance(value, Mapping):
            token, expires = value.get("token"), value.get("expires_on")
        else:
            token, expires = getattr(value, "token", None), getattr(value, "expires_on", None)
        if not isinstance(token, str) or not token:
            raise ConfigurationError(
                "azure_ad_token_provider must return a token string, or an object (or mapping) "
                f"with 'token' and 'expires_on'; it returned {type(value).__name__}",
                setting="azure_ad_token_provider",
            )
        return token, float(expires) if isinstance(expires, (int, float)) else _jwt_expiry(token)


# -- runtime backends -----------------------------------------------------------------------


def _split_url(url: str, setting: str) -> tuple[Origin, str]:
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{setting} must be an http:// or https:// URL, got {redact_url(url)!r}",
            setting=setting,
        )
    port = parts.port or (443 if scheme == "https" else 80)
    return (scheme.encode(), parts.hostname.encode("idna"), port), parts.path.rstrip("/")


@attrs.define(eq=False, repr=False)
class Backend:
    """One OpenAI-compatible endpoint and its credentials, ready to address requests.

    Build it from a spec with :meth:`from_spec`; the attributes are the spec's, resolved.
    """

    name: str
    kind: BackendKind
    base_url: str
    api_key: Secret | None = None
    organization: str | None = None
    project: str | None = None
    api_version: str | None = None
    deployments: Mapping[str, str] = attrs.field(factory=dict)
    models: frozenset[str] | None = None
    exclude_models: frozenset[str] = frozenset()
    weight: int = 1
    priority: int = 0
    limits: Limits | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    timeout: Timeout | None = None
    ad_token: Secret | None = None
    ad_token_provider: AzureADToken | None = None
    origin: Origin = attrs.field(init=False)
    base_path: str = attrs.field(init=False)
    _static_headers: list[tuple[bytes, bytes]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        setting = "endpoint" if self.kind == "azure" else "base_url"
        self.origin, self.base_path = _split_url(self.base_url, f"backend {self.name!r} {setting}")
        scheme, host, port = self.origin
        default_port = 443 if scheme == b"https" else 80
        host_header = host if port == default_port else host + b":" + str(port).encode()
        static: list[tuple[bytes, bytes]] = [(b"host", host_header)]
        if self.api_key:
            if self.kind == "azure":
                static.append((b"api-key", self.api_key.reveal().encode()))
            else:
                static.append((b"authorization", b"Bearer " + self.api_key.reveal().encode()))
        elif self.ad_token:
            static.append((b"authorization", b"Bearer " + self.ad_token.reveal().encode()))
        if self.organization:
            static.append((b"openai-organization", self.organization.encode()))
        if self.project:
            static.append((b"openai-project", self.project.encode()))
        static.append((b"user-agent", _USER_AGENT))
        for key, value in self.headers.items():
            static.append((key.lower().encode(), value.encode()))
        self._static_headers = static

    @classmethod
    def from_spec(cls, spec: BackendSpec, name: str) -> Backend:
        """Resolve a spec (its name already made unique)."""
        common: dict[str, Any] = {
            "name": name,
            "models": frozenset(spec.models) if spec.models is not None else None,
            "exclude_models": frozenset(spec.exclude_models),
            "weight": spec.weight,
            "priority": spec.priority,
            "limits": spec.limits,
            "headers": dict(spec.headers),
            "timeout": spec.timeout,
        }
        if isinstance(spec, AzureBackend):
            credentials = sum(
                x is not None
                for x in (spec.api_key, spec.azure_ad_token, spec.azure_ad_token_provider)
            )
            if credentials != 1:
                raise ConfigurationError(
                    f"Azure backend {name!r} needs exactly one of api_key, azure_ad_token and "
                    f"azure_ad_token_provider (AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN), "
                    f"got {credentials}",
                    setting="api_key",
                )
            deployments = {} if spec.replace_deployments else dict(DEFAULT_AZURE_DEPLOYMENTS)
            deployments.update(spec.deployments)
            for model in spec.models or ():
                deployments.setdefault(model, model)
            return cls(
                kind="azure",
                base_url=spec.endpoint,
                api_key=Secret(spec.api_key) if spec.api_key else None,
                ad_token=Secret(spec.azure_ad_token) if spec.azure_ad_token else None,
                ad_token_provider=AzureADToken(spec.azure_ad_token_provider)
                if spec.azure_ad_token_provider is not None
                else None,
                api_version=spec.api_version,
                deployments=deployments,
                **common,
            )
        if isinstance(spec, OpenAIBackend):
            if not spec.api_key:
                raise ConfigurationError(
                    f"OpenAI backend {name!r} has no API key: pass api_key=... or set "
                    "OPENAI_API_KEY",
                    setting="OPENAI_API_KEY",
                )
            return cls(
                kind="openai",
                base_url=spec.base_url,
                api_key=Secret(spec.api_key),
                organization=spec.organization,
                project=spec.project,
                **common,
            )
        if isinstance(spec, CompatibleBackend):
            return cls(
                kind="compatible",
                base_url=spec.base_url,
                api_key=Secret(spec.api_key) if spec.api_key else None,
                **common,
            )
        raise ConfigurationError(
            f"a backend must be an OpenAIBackend, AzureBackend or CompatibleBackend, got "
            f"{type(spec).__name__}",
            setting="backends",
        )

    def __repr__(self) -> str:
        key = mask(self.api_key.reveal()) if self.api_key else None
        return f"<Backend {self.name!r} {self.kind} {self.base_url} api_key={key!r}>"

    def secrets(self) -> tuple[str, ...]:
        """The secret values that must never appear in an error or a log line."""
        found = [s.reveal() for s in (self.api_key, self.ad_token) if s]
        if self.ad_token_provider is not None and self.ad_token_provider.token:
            found.append(self.ad_token_provider.token)
        return tuple(found)

    # -- models ------------------------------------------------------------------------------

    def serves(self, model: str | None) -> bool:
        """Whether this backend can take a request for *model* (``None``: no model named)."""
        if model is None:
            return True
        if model in self.exclude_models:
            return False
        if self.kind == "azure":
            return model in self.deployments or model in self.deployments.values()
        return self.models is None or model in self.models

    def deployment_for(self, model: str | None) -> str:
        """The Azure deployment that serves *model*.

        :raises InvalidParameterError: naming the model and the backend when none does.
        """
        if model is not None and model in self.deployments:
            return self.deployments[model]
        if model is not None and model in self.deployments.values():
            return model
        known = ", ".join(f"{m} -> {d}" for m, d in sorted(self.deployments.items()))
        raise InvalidParameterError(
            f"model {model!r} has no deployment on Azure backend {self.name!r} "
            f"(deployments: {known or 'none'}); add it with "
            f"AzureBackend(deployments={{{model!r}: '<deployment>'}}) or models=[{model!r}]",
            param="model",
        )

    # -- addressing --------------------------------------------------------------------------

    def target(self, request: APIRequest) -> bytes:
        """The request target (path and query) of *request* on this backend."""
        query: dict[str, Any] = {}
        if self.kind == "azure":
            if request.deployment_scoped:
                deployment = urllib.parse.quote(self.deployment_for(request.model), safe="")
                path = f"{self.base_path}/openai/deployments/{deployment}{request.path}"
            else:
                path = f"{self.base_path}/openai{request.path}"
            if self.api_version:
                query["api-version"] = self.api_version
        else:
            path = self.base_path + request.path
        if request.query:
            query.update(request.query)
        if query:
            return f"{path}?{urllib.parse.urlencode(query, doseq=True)}".encode()
        return path.encode()

    async def prepare(self) -> None:
        """Make the credentials ready (fetch or refresh an Azure AD token if needed)."""
        if self.ad_token_provider is not None:
            await self.ad_token_provider.ensure()

    def request_headers(self, request: APIRequest) -> list[tuple[bytes, bytes]]:
        """The headers of *request* on this backend, credentials included."""
        headers = list(self._static_headers)
        provider = self.ad_token_provider
        if provider is not None and provider.token:
            headers.append((b"authorization", b"Bearer " + provider.token.encode()))
        body = request.body
        if body is not None:
            headers.append((b"content-type", request.content_type.encode()))
            length = len(body) if isinstance(body, bytes) else body.length
            if length is None:
                headers.append((b"transfer-encoding", b"chunked"))
            else:
                headers.append((b"content-length", str(length).encode()))
        elif request.method in ("POST", "PUT", "PATCH"):
            headers.append((b"content-length", b"0"))  # a bodiless POST (cancel): framed
        accept = request.accept or ("text/event-stream" if request.stream else "application/json")
        headers.append((b"accept", accept.encode()))
        if request.idempotency_key:
            headers.append((b"idempotency-key", request.idempotency_key.encode()))
        if request.headers:
            override = {key.lower().encode(): value for key, value in request.headers.items()}
            headers = [(k, v) for k, v in headers if k not in override]
            headers.extend((k, str(v).encode()) for k, v in override.items() if v is not None)
        return headers


def unique_names(specs: list[BackendSpec]) -> list[str]:
    """A name for each spec: its own, else its kind, numbered when repeated (``azure-2``)."""
    kinds = {OpenAIBackend: "openai", AzureBackend: "azure", CompatibleBackend: "compatible"}
    names: list[str] = []
    for spec in specs:
        base = spec.name or kinds.get(type(spec), "backend")
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        if spec.name and spec.name in names:
            raise ConfigurationError(
                f"backend names must be unique; {spec.name!r} is used twice", setting="backends"
            )
        names.append(name)
    return names
