"""Settings: explicit arguments first, then environment variables, then defaults. Read in one place.

Every environment variable anyoai reads is named in :data:`ENVIRONMENT`, with the official SDK's
name first and the seed library's aliases after it. A malformed value raises
:class:`~anyoai.ConfigurationError` naming the variable; a missing API key is reported when the
pool opens, naming ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from ._exceptions import ConfigurationError
from ._secrets import Secret, redact_url
from ._sse import DEFAULT_MAX_EVENT_BYTES

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "ENVIRONMENT",
    "Settings",
    "Timeout",
    "read_settings",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"

#: the longest response body read whole (not streamed) unless told otherwise: 512 MiB
DEFAULT_MAX_RESPONSE_BYTES = 512 * 1024 * 1024

#: setting name -> environment variables, official name first, then the seed library's aliases.
ENVIRONMENT: dict[str, tuple[str, ...]] = {
    "api_key": ("OPENAI_API_KEY",),
    "base_url": ("OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_API_URL"),
    "organization": ("OPENAI_ORG_ID", "OPENAI_ORGANIZATION"),
    "project": ("OPENAI_PROJECT_ID",),
    "timeout": ("OPENAI_TIMEOUT",),
    "max_retries": ("OPENAI_MAX_RETRIES",),
    "max_connections": ("OPENAI_MAX_CONNECTIONS",),
    "max_keepalive_connections": ("OPENAI_MAX_KEEPALIVE_CONNECTIONS",),
    "keepalive_expiry": ("OPENAI_KEEPALIVE_EXPIRY",),
    "custom_headers": ("OPENAI_CUSTOM_HEADERS",),
    "proxies": ("OPENAI_PROXIES",),
    "rpm": ("OPENAI_RPM_LIMIT",),
    "tpm": ("OPENAI_TPM_LIMIT",),
    # Azure OpenAI: the official SDK's names, then the seed library's
    "azure_endpoint": ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_BASE", "AZURE_OPENAI_API_URL"),
    "azure_api_key": ("AZURE_OPENAI_API_KEY",),
    "azure_ad_token": ("AZURE_OPENAI_AD_TOKEN",),
    "azure_api_version": ("OPENAI_API_VERSION", "AZURE_OPENAI_API_VERSION"),
    "azure_deployments": ("AZURE_OPENAI_DEPLOYMENTS",),
}

_T = TypeVar("_T")


def _nonneg(name: str) -> Any:
    def check(_instance: object, _attribute: object, value: float | None) -> None:
        if value is not None and (not isinstance(value, (int, float)) or value < 0):
            raise ConfigurationError(
                f"timeout {name} must be a number of seconds >= 0 or None, got {value!r}",
                setting=f"timeout.{name}",
            )

    return check


@attrs.frozen(kw_only=True)
class Timeout:
    """Timeouts in seconds; ``None`` means no limit.

    :param connect: to open a connection (TCP and TLS).
    :param read: between two reads of the response (also between two stream chunks).
    :param write: between two writes of the request.
    :param pool: to wait for a free connection when ``max_connections`` are busy.
    :param total: for the whole request, retries excluded; for a stream, until its head arrives.

    ``Timeout(30)`` or ``timeout=30`` in any call sets ``total`` and leaves the others at their
    defaults, as the official SDK's ``timeout=`` does.
    """

    connect: float | None = attrs.field(default=5.0, validator=_nonneg("connect"))
    read: float | None = attrs.field(default=600.0, validator=_nonneg("read"))
    write: float | None = attrs.field(default=600.0, validator=_nonneg("write"))
    pool: float | None = attrs.field(default=600.0, validator=_nonneg("pool"))
    total: float | None = attrs.field(default=600.0, validator=_nonneg("total"))
    _extensions: dict[str, float | None] = attrs.field(init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        phases = dict(connect=self.connect, read=self.read, write=self.write, pool=self.pool)
        object.__setattr__(self, "_extensions", phases)

    @classmethod
    def coerce(cls, value: float | Timeout | None, *, setting: str = "timeout") -> Timeout:
        """Turn a number (total seconds), a :class:`Timeout` or ``None`` (no limit) into one."""
        if isinstance(value, Timeout):
            return value
        if value is None:
            return cls(connect=None, read=None, write=None, pool=None, total=None)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigurationError(
                f"{setting} must be a number of seconds >= 0, a Timeout or None, got {value!r}",
                setting=setting,
            )
        seconds = float(value)
        return cls(
            connect=min(5.0, seconds), read=seconds, write=seconds, pool=seconds, total=seconds
        )

    def as_extensions(self) -> dict[str, float | None]:
        """The per-phase timeouts in the form httpcore's ``timeout`` extension takes (made once
        per Timeout; httpcore only reads it)."""
        return self._extensions


@attrs.frozen(kw_only=True)
class Settings:
    """The resolved settings of one pool's default backend and its transport."""

    api_key: Secret | None
    base_url: str
    organization: str | None
    project: str | None
    timeout: Timeout
    max_retries: int
    max_connections: int
    max_keepalive_connections: int | None
    keepalive_expiry: float | None
    custom_headers: Mapping[str, str]
    proxy: Secret | None
    http2: bool
    rpm: int | None = None
    tpm: int | None = None
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    azure_endpoint: str | None = None
    azure_api_key: Secret | None = None
    azure_ad_token: Secret | None = None
    azure_api_version: str | None = None
    azure_deployments: Mapping[str, str] = attrs.field(factory=dict)
    #: where each value came from: argument name or environment variable, for error messages
    sources: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    def __repr__(self) -> str:
        proxy = redact_url(self.proxy.reveal()) if self.proxy else None
        return (
            f"Settings(base_url={self.base_url!r}, api_key={self.api_key!r}, "
            f"organization={self.organization!r}, project={self.project!r}, "
            f"timeout={self.timeout!r}, max_retries={self.max_retries}, "
            f"max_connections={self.max_connections}, proxy={proxy!r}, http2={self.http2})"
        )


class _Reader:
    """Looks a setting up in the explicit arguments, then the environment; remembers the source."""

    def __init__(self, explicit: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        self.explicit = explicit
        self.environ = environ
        self.sources: dict[str, str] = {}

    def get(self, name: str) -> tuple[Any, str] | None:
        value = self.explicit.get(name)
        if value is not None:
            self.sources[name] = name
            return value, name
        for var in ENVIRONMENT.get(name, ()):
            raw = self.environ.get(var)
            if raw is not None and raw.strip() != "":
                self.sources[name] = var
                return raw.strip(), var
        return None

    def text(self, name: str, default: str | None = None) -> str | None:
        found = self.get(name)
        if found is None:
            return default
        value, source = found
        if not isinstance(value, str):
            raise ConfigurationError(f"{source} must be a string, got {value!r}", setting=source)
        return value

    def number(self, name: str, default: _T, *, kind: type = float, minimum: float = 0) -> _T | Any:
        found = self.get(name)
        if found is None:
            return default
        value, source = found
        try:
            if isinstance(value, bool):
                raise ValueError
            number = kind(value) if isinstance(value, str) or kind is float else value
            if kind is int and (not isinstance(number, int) or isinstance(number, bool)):
                raise ValueError
            if number < minimum or (isinstance(number, float) and not math.isfinite(number)):
                raise ValueError
        except (TypeError, ValueError):
            noun = "an integer" if kind is int else "a number"
            raise ConfigurationError(
                f"{source} must be {noun} >= {minimum:g}, got {value!r}", setting=source
            ) from None
        return number


def _parse_headers(value: Any, source: str, *, what: str = "headers") -> dict[str, str]:
    """A string mapping (headers, deployments) from a mapping, a JSON object, or ``name=value``
    pairs separated by commas."""
    if isinstance(value, Mapping):
        items = dict(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                items = json.loads(text)
            except ValueError as exc:
                raise ConfigurationError(
                    f"{source} is not valid JSON: {exc}", setting=source
                ) from None
            if not isinstance(items, dict):
                raise ConfigurationError(f"{source} must be a JSON object", setting=source)
        else:
            items = {}
            for part in filter(None, (p.strip() for p in text.split(","))):
                name, sep, val = part.partition("=")
                if not sep or not name.strip():
                    raise ConfigurationError(
                        f"{source} must be a JSON object or name=value pairs separated by commas;"
                        f" cannot read {part!r}",
                        setting=source,
                    )
                items[name.strip()] = val.strip()
    else:
        raise ConfigurationError(f"{source} must be a mapping of {what}", setting=source)
    out: dict[str, str] = {}
    for name, val in items.items():
        if not isinstance(name, str) or not isinstance(val, (str, int, float)):
            raise ConfigurationError(
                f"{source}: header {name!r} must map a string to a string", setting=source
            )
        if any(c in name for c in "\r\n:") or any(c in str(val) for c in "\r\n"):
            raise ConfigurationError(
                f"{source}: header {name!r} contains a forbidden character", setting=source
            )
        out[name] = str(val)
    return out


def _parse_proxy(value: Any, source: str) -> str | None:
    """A proxy URL, or the seed library's mapping ``{"https://": url, "http://": url}``."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigurationError(f"{source} is not valid JSON: {exc}", setting=source) from None
    if isinstance(value, Mapping):
        for key in ("https://", "https", "all://", "all", "http://", "http"):
            if value.get(key):
                value = value[key]
                break
        else:
            return None
    if not isinstance(value, str) or "://" not in value:
        raise ConfigurationError(
            f"{source} must be a proxy URL such as http://host:3128, "
            f"got {redact_url(str(value))!r}",
            setting=source,
        )
    scheme = value.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise ConfigurationError(
            f"{source}: only http:// and https:// proxies are supported, got {scheme}://",
            setting=source,
        )
    return value


def normalise_azure_endpoint(url: str, source: str) -> str:
    """An Azure endpoint: ``https://<resource>.openai.azure.com``, without a trailing slash.

    The seed library's ``AZURE_OPENAI_API_BASE`` sometimes ended in ``/openai``: that suffix
    is dropped, since anyoai adds it.
    """
    text = normalise_base_url(url, source)
    return text.removesuffix("/openai")


def normalise_base_url(url: str, source: str) -> str:
    """Check *url* and strip its trailing slash. The seed's ``OPENAI_API_URL`` gains ``/v1``."""
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest.startswith("/"):
        raise ConfigurationError(
            f"{source} must be an http:// or https:// URL such as {DEFAULT_BASE_URL}, "
            f"got {redact_url(text)!r}",
            setting=source,
        )
    text = text.rstrip("/")
    if source == "OPENAI_API_URL" and "/" not in rest.rstrip("/"):
        # the seed library's OPENAI_API_URL was scheme://host[:port]; its API path was /v1
        text += "/v1"
    return text


def read_settings(
    explicit: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve the settings from *explicit* arguments (``None`` = not given) and the environment.

    :raises ConfigurationError: naming the argument or variable whose value is malformed.
    """
    env = os.environ if environ is None else environ
    reader = _Reader(explicit, env)
    api_key = reader.text("api_key")
    base_url = reader.text("base_url")
    base_url = (
        normalise_base_url(base_url, reader.sources["base_url"]) if base_url else DEFAULT_BASE_URL
    )
    timeout_found = reader.get("timeout")
    if timeout_found is None:
        timeout = Timeout()
    else:
        value, source = timeout_found
        if isinstance(value, str):
            value = reader.number("timeout", None)
        timeout = Timeout.coerce(value, setting=source)
    azure_endpoint = reader.text("azure_endpoint")
    if azure_endpoint:
        azure_endpoint = normalise_azure_endpoint(azure_endpoint, reader.sources["azure_endpoint"])
    azure_key = reader.text("azure_api_key")
    azure_token = reader.text("azure_ad_token")
    deployments_found = reader.get("azure_deployments")
    headers_found = reader.get("custom_headers")
    proxy_found = reader.get("proxies")
    proxy = _parse_proxy(*proxy_found) if proxy_found else None
    http2 = explicit.get("http2")
    if http2 is not None and not isinstance(http2, bool):
        raise ConfigurationError(f"http2 must be True or False, got {http2!r}", setting="http2")
    return Settings(
        api_key=Secret(api_key) if api_key else None,
        base_url=base_url,
        organization=reader.text("organization"),
        project=reader.text("project"),
        timeout=timeout,
        max_retries=reader.number("max_retries", 2, kind=int),
        max_connections=reader.number("max_connections", 1000, kind=int, minimum=1),
        max_keepalive_connections=reader.number("max_keepalive_connections", None, kind=int),
        keepalive_expiry=reader.number("keepalive_expiry", 5.0),
        custom_headers=_parse_headers(*headers_found) if headers_found else {},
        proxy=Secret(proxy) if proxy else None,
        http2=bool(http2),
        rpm=reader.number("rpm", None, kind=int, minimum=1),
        tpm=reader.number("tpm", None, kind=int, minimum=1),
        max_response_bytes=reader.number(
            "max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES, kind=int, minimum=1
        ),
        max_event_bytes=reader.number(
            "max_event_bytes", DEFAULT_MAX_EVENT_BYTES, kind=int, minimum=1
        ),
        azure_endpoint=azure_endpoint,
        azure_api_key=Secret(azure_key) if azure_key else None,
        azure_ad_token=Secret(azure_token) if azure_token else None,
        azure_api_version=reader.text("azure_api_version"),
        azure_deployments=_parse_headers(*deployments_found, what="deployments")
        if deployments_found
        else {},
        sources=reader.sources,
    )
