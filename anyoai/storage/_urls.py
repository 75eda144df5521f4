"""Storage URLs: parsing (``s3://``, ``gs://``, ``az://``/``abfs://``, ``minio://``, ``file://``,
``memory://`` and plain paths) into :class:`StorageURL`, and showing them with credentials
masked (:func:`display_url`)."""

from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path
from typing import Final

import attrs

from .._exceptions import StorageURLError
from .._secrets import redact_url

__all__ = ["SCHEMES", "StorageURL", "display_url", "parse_url", "require_key"]

SCHEMES: Final = ("s3", "gs", "az", "minio", "file", "memory")
_ALIASES: Final = {"abfs": "az", "abfss": "az", "azure": "az", "gcs": "gs", "s3a": "s3"}
_SAS_PARAMS: Final = re.compile(r"([?&](?:sig|signature|token|x-amz-signature)=)[^&#\s]+", re.I)


def display_url(url: str) -> str:
    """*url* safe to show: ``user:password@`` and signature query parameters masked."""
    if not url.startswith(("abfs://", "abfss://")):  # container@account is not a secret
        url = redact_url(url)
    return _SAS_PARAMS.sub(r"\1****", url)


@attrs.frozen
class StorageURL:
    """A parsed storage URL.

    :ivar scheme: ``"s3"``, ``"gs"``, ``"az"``, ``"minio"``, ``"file"`` or ``"memory"``
        (``abfs`` is ``"az"``).
    :ivar bucket: the bucket or container (for ``file``, ``""``).
    :ivar key: the object's path in the bucket (for ``file``, the absolute path).
    :ivar account: for ``abfs://container@account.dfs.core.windows.net/...``, the account.
    :ivar url: the URL as given (plain paths as ``file://`` URLs).
    """

    scheme: str
    bucket: str
    key: str
    account: str | None = None
    url: str = ""

    def __str__(self) -> str:
        return display_url(self.url)

    def with_key(self, key: str) -> StorageURL:
        """The URL of another object in the same bucket (*key* from the bucket's root)."""
        if self.scheme == "file":
            path = Path("/", key)
            return StorageURL("file", "", str(path), None, path.as_uri())
        scheme, rest = self.url.split("://", 1)
        key = key.lstrip("/")
        return attrs.evolve(self, key=key, url=f"{scheme}://{rest.split('/', 1)[0]}/{key}")

    def join(self, name: str) -> StorageURL:
        """The URL of *name* under this one taken as a folder (``s3://b/out/`` + ``x.jsonl``)."""
        base = self.key.rstrip("/")
        return self.with_key(f"{base}/{name}" if base else name)

    @property
    def name(self) -> str:
        """The last segment of the key (a filename)."""
        return self.key.rstrip("/").rsplit("/", 1)[-1]


def parse_url(url: str | os.PathLike[str] | StorageURL) -> StorageURL:
    """Parse a storage URL or a local path.

    :raises StorageURLError: for an unknown scheme, or a URL without bucket or key.
    """
    if isinstance(url, StorageURL):
        return url
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str) or not url:
        raise StorageURLError(f"a storage URL must be a non-empty string, got {url!r}")
    if "://" not in url:  # a plain path
        path = Path(url).expanduser().absolute()
        return StorageURL("file", "", str(path), None, path.as_uri())
    raw_scheme, rest = url.split("://", 1)
    scheme = _ALIASES.get(raw_scheme.lower(), raw_scheme.lower())
    if scheme not in SCHEMES:
        raise StorageURLError(
            f"unknown storage scheme {raw_scheme!r} in {display_url(url)}: use s3://, gs://, "
            "az:// (or abfs://), minio://, file:// or memory://, or a local path",
            url=display_url(url),
        )
    if scheme == "file":
        parts = urllib.parse.urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise StorageURLError(
                f"{display_url(url)}: a file URL names a local path, file:///absolute/path",
                url=display_url(url),
            )
        local = urllib.parse.unquote(parts.path)
        if not local:
            raise StorageURLError(f"{display_url(url)} has no path", url=display_url(url))
        return StorageURL("file", "", local, None, url)
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    bucket, _, key = rest.partition("/")
    account = None
    if scheme == "az" and "@" in bucket:  # abfs://container@account.dfs.core.windows.net/path
        bucket, host = bucket.split("@", 1)
        account = host.split(".", 1)[0] or None
    if not bucket:
        raise StorageURLError(
            f"{display_url(url)} names no bucket: {scheme}://bucket/path/to/object",
            url=display_url(url),
        )
    return StorageURL(scheme, bucket, key, account, url)


def require_key(target: StorageURL) -> None:
    """Check that *target* names an object, not just a bucket or a folder.

    :raises StorageURLError: if it does not.
    """
    if not target.key or target.key.endswith("/"):
        raise StorageURLError(
            f"{target} names no object (a key after the bucket is needed)", url=str(target)
        )
