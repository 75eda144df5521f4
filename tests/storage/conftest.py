"""The storage tier: anyoai's object-storage code against real emulators.

- ``s3_server``: moto's S3 server (the stand-in for MinIO/S3);
- ``azurite``: Azurite's Blob service (Azure Blob Storage);
- ``gcs_server``: fake-gcs-server (Google Cloud Storage; obstore can read from it, not write).

Each is a child process on 127.0.0.1 and a free port, started on first use and stopped at the
end of the session (also when tests fail). The fixtures are synchronous and session-scoped, so
async tests use them under asyncio and trio alike. See ``servers.py`` for each object's
attributes, helpers and obstore configuration.

``tox -e storage`` installs the emulators (pip: moto, fake-gcs-server; npm: Azurite). A missing
emulator fails the tests that need it, so that CI cannot pass without them; set
``ANYOAI_STORAGE_OPTIONAL=1`` to skip those tests instead on a machine without them.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from . import servers

OPTIONAL_VARIABLE = "ANYOAI_STORAGE_OPTIONAL"

#: environment that would change where obstore sends requests (a developer's cloud settings,
#: proxies that do not know 127.0.0.1): removed for every storage test
_FOREIGN_PREFIXES = ("AWS_", "AZURE_", "AZURITE_", "GOOGLE_")
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy"}

T = TypeVar("T")


@pytest.fixture(autouse=True)
def storage_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Store configuration comes from the fixtures only: obstore's stores also read ``AWS_*``,
    ``AZURE_*`` and ``GOOGLE_*`` variables, and its HTTP client honours proxy variables.
    A test that wants the environment route sets ``emulator.env()`` with ``monkeypatch``."""
    for name in list(os.environ):
        if name.startswith(_FOREIGN_PREFIXES) or name.lower() in _PROXY_VARIABLES:
            monkeypatch.delenv(name)


def _start(start: Callable[[Path], T], workdir: Path) -> T:
    """Start an emulator; if it is not installed, fail (or skip, when allowed) saying how to
    install it."""
    try:
        return start(workdir)
    except servers.EmulatorMissingError as exc:
        if os.environ.get(OPTIONAL_VARIABLE) == "1":
            pytest.skip(f"{exc} ({OPTIONAL_VARIABLE}=1)")
        pytest.fail(
            f"{exc}\n(set {OPTIONAL_VARIABLE}=1 to skip the storage tests instead)",
            pytrace=False,
        )


def _running(server: servers.Server, probe: Callable[[], bool], timeout: float) -> None:
    """Wait for *server*; make sure it is stopped even if the session's teardown never runs."""
    atexit.register(server.stop)
    server.wait_ready(probe, timeout)


@pytest.fixture(scope="session")
def storage_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the emulators' logs (``moto.log``, ``azurite.log``, ``fake-gcs-server.log``) and
    the GCS service-account file go."""
    return tmp_path_factory.mktemp("storage")


@pytest.fixture(scope="session")
def s3_server(storage_workdir: Path) -> Iterator[servers.S3Emulator]:
    """moto's S3 server, as :class:`servers.S3Emulator`."""
    server = _start(servers.start_moto, storage_workdir)
    try:
        _running(server, servers.answers(server.root), 60.0)
        yield servers.S3Emulator(server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite(storage_workdir: Path) -> Iterator[servers.AzuriteEmulator]:
    """Azurite's Blob service, as :class:`servers.AzuriteEmulator`."""
    server = _start(servers.start_azurite, storage_workdir)
    try:
        _running(server, servers.answers(server.root), 120.0)
        yield servers.AzuriteEmulator(server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gcs_server(storage_workdir: Path) -> Iterator[servers.GCSEmulator]:
    """fake-gcs-server, as :class:`servers.GCSEmulator`."""
    server, service_account = _start(servers.start_fake_gcs, storage_workdir)
    try:
        _running(server, servers.answers(server.root, "/storage/v1/b"), 60.0)
        yield servers.GCSEmulator(server, service_account)
    finally:
        server.stop()


#: the largest file the fake server process takes
FAKE_SERVER_MAX_FILE_BYTES = 256 * 1024 * 1024


@pytest.fixture(scope="session")
def fake_openai_process(storage_workdir: Path) -> Iterator[str]:
    """anyoai's fake server in a child process: its base URL (``.../v1``), key ``API_KEY``."""
    from ..helpers import API_KEY

    server = servers.start_fake_openai(storage_workdir, API_KEY, FAKE_SERVER_MAX_FILE_BYTES)
    try:
        _running(server, servers.answers(server.root, "/v1/models"), 60.0)
        yield server.root + "/v1"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_server: servers.S3Emulator) -> str:
    """A new, empty bucket in :func:`s3_server`."""
    return s3_server.create_bucket()


@pytest.fixture
def container(azurite: servers.AzuriteEmulator) -> str:
    """A new, empty container in :func:`azurite`."""
    return azurite.create_container()
