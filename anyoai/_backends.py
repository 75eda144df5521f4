"""Backends: where a request can go (OpenAI, Azure OpenAI, any OpenAI-compatible server).

A :class:`Backend` knows its URL, its credentials and how to address a request (Azure puts the
deployment in the path and the API version in the query). A :class:`BackendPool` picks the
backend for each attempt. Nothing here sends anything.
"""

from __future__ import annotations

import itertools
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from ._config import Timeout
from ._errors import ConfigurationError
from ._request import APIRequest
from ._secrets import Secret, mask
from ._version import __version__

__all__ = ["DEFAULT_AZURE_DEPLOYMENTS", "Backend", "BackendKind", "BackendPool"]

BackendKind = Literal["openai", "azure", "compatible"]

#: The seed library's default mapping of OpenAI model names to Azure deployment names.
DEFAULT_AZURE_DEPLOYMENTS: Mapping[str, str] = {
    "gpt-3.5-turbo": "gpt-35-turbo",
    "gpt-3.5-turbo-16k": "gpt-35-turbo-16k",
    "gpt-3.5-turbo-instruct": "gpt-35-turbo-instruct",
    "gpt-3.5-turbo-0301": "gpt-35-turbo-0301",
    "gpt-3.5-turbo-0613": "gpt-35-turbo-0613",
}

_USER_AGENT = f"anyoai/{__version__}".encode()
Origin = tuple[bytes, bytes, int]


def _split_url(url: str) -> tuple[Origin, str]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"backend URL must be http:// or https://, got {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    return (scheme.encode(), parts.hostname.encode("idna"), port), parts.path.rstrip("/")


@attrs.define(eq=False, repr=False)
class Backend:
    """One OpenAI-compatible endpoint and its credentials.

    :param name: how it is called in logs, errors and ``pool[name]``.
    :param kind: ``"openai"``, ``"azure"`` or ``"compatible"``.
    :param base_url: the API root, e.g. ``https://api.openai.com/v1``; for Azure, the resource
        endpoint, e.g. ``https://my-resource.openai.azure.com``.
    :param api_key: the key; sent as ``Authorization: Bearer`` (``api-key`` for Azure).
    """

    name: str
    kind: BackendKind
    base_url: str
    api_key: Secret | None = None
    organization: str | None = None
    project: str | None = None
    api_version: str | None = None
    deployments: Mapping[str, str] = attrs.field(factory=dict)
    headers: Mapping[str, str] = attrs.field(factory=dict)
    timeout: Timeout | None = None
    origin: Origin = attrs.field(init=False)
    base_path: str = attrs.field(init=False)
    _static_headers: list[tuple[bytes, bytes]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.origin, self.base_path = _split_url(self.base_url)
        scheme, host, port = self.origin
        default_port = 443 if scheme == b"https" else 80
        host_header = host if port == default_port else host + b":" + str(port).encode()
        static: list[tuple[bytes, bytes]] = [(b"host", host_header)]
        if self.api_key:
            if self.kind == "azure":
                static.append((b"api-key", self.api_key.reveal().encode()))
            else:
                static.append((b"authorization", b"Bearer " + self.api_key.reveal().encode()))
        if self.organization:
            static.append((b"openai-organization", self.organization.encode()))
        if self.project:
            static.append((b"openai-project", self.project.encode()))
        static.append((b"user-agent", _USER_AGENT))
        for key, value in self.headers.items():
            static.append((key.lower().encode(), value.encode()))
        self._static_headers = static

    def __repr__(self) -> str:
        key = mask(self.api_key.reveal()) if self.api_key else None
        return f"<Backend {self.name!r} {self.kind} {self.base_url} api_key={key!r}>"

    def secrets(self) -> tuple[str, ...]:
        """The secret values that must never appear in an error or a log line."""
        return (self.api_key.reveal(),) if self.api_key else ()

    def target(self, request: APIRequest) -> bytes:
        """The request target (path and query) of *request* on this backend."""
        query: dict[str, Any] = {}
        if self.kind == "azure":
            if request.deployment_scoped:
                model = request.model or ""
                deployment = self.deployments.get(model, model)
                path = (
                    f"{self.base_path}/openai/deployments/{urllib.parse.quote(deployment, safe='')}"
                )
                path += request.path
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

    def request_headers(self, request: APIRequest) -> list[tuple[bytes, bytes]]:
        """The headers of *request* on this backend, credentials included."""
        headers = list(self._static_headers)
        if request.body is not None:
            headers.append((b"content-type", request.content_type.encode()))
            headers.append((b"content-length", str(len(request.body)).encode()))
        headers.append((b"accept", b"text/event-stream" if request.stream else b"application/json"))
        if request.idempotency_key:
            headers.append((b"idempotency-key", request.idempotency_key.encode()))
        if request.headers:
            override = {key.lower().encode(): value for key, value in request.headers.items()}
            headers = [(k, v) for k, v in headers if k not in override]
            headers.extend((k, str(v).encode()) for k, v in override.items() if v is not None)
        return headers


class BackendPool:
    """The backends of a pool, and the choice of one for each attempt (round robin)."""

    def __init__(self, backends: Sequence[Backend]) -> None:
        if not backends:
            raise ConfigurationError("a pool needs at least one backend", setting="backends")
        names = [b.name for b in backends]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ConfigurationError(
                f"backend names must be unique; repeated: {sorted(duplicates)}", setting="backends"
            )
        self.backends: tuple[Backend, ...] = tuple(backends)
        self._cycle = itertools.cycle(self.backends)

    def select(self, request: APIRequest) -> Backend:
        """The backend for the next attempt of *request*."""
        if len(self.backends) == 1:
            return self.backends[0]
        return next(self._cycle)

    def __getitem__(self, key: int | str) -> Backend:
        if isinstance(key, int):
            return self.backends[key]
        for backend in self.backends:
            if backend.name == key:
                return backend
        raise KeyError(
            f"no backend named {key!r}; the backends are {[b.name for b in self.backends]}"
        )

    def __len__(self) -> int:
        return len(self.backends)
