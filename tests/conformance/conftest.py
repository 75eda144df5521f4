"""The conformance tier: anyoai against third-party servers.

- Prism mocks and validates the official OpenAI spec (``ANYOAI_OPENAI_SPEC``) and, when given,
  Azure's inference spec (``ANYOAI_AZURE_SPEC``);
- llama.cpp's OpenAI-compatible server (llama-cpp-python) runs the tiny model
  (``ANYOAI_TEST_GGUF``).

``tox -e conformance`` installs Prism (npm) and llama-cpp-python (pip); ``.ci/run`` sets the
variables to the copies in ``../shared``. A variable left unset skips the tests that need it,
saying what to set. The servers start once per session, in parallel, and stop at its end. At
the end of the run, a summary lists each endpoint with its request and response checks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import servers
from .report import REPORT

SPEC_VARIABLES = {
    "openai": (
        "ANYOAI_OPENAI_SPEC",
        "the official OpenAI OpenAPI spec (../shared/openapi/openai-openapi.json)",
    ),
    "azure": (
        "ANYOAI_AZURE_SPEC",
        "Azure's inference spec (../shared/openapi/azure-openai-inference-2024-10-21.json)",
    ),
    "gguf": ("ANYOAI_TEST_GGUF", "a GGUF model (../shared/models/llama-2-tiny-random.gguf)"),
}


def _path_from(kind: str) -> Path:
    variable, what = SPEC_VARIABLES[kind]
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"set {variable} to {what} to run this conformance check")
    path = Path(value)
    if not path.is_file():
        pytest.fail(f"{variable}={value} is not a file")
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "conformance" in str(item.path):
            item.add_marker(pytest.mark.conformance)


class _Servers:
    """The third-party servers of this session: every configured one starts at once (Prism
    needs tens of seconds to compile a spec), and each is waited for on first use."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pending: dict[str, tuple[servers.Server, str, float]] = {}
        self.ready: dict[str, servers.Server] = {}
        self.errors: dict[str, str] = {}
        for kind in ("openai", "azure"):
            if os.environ.get(SPEC_VARIABLES[kind][0]):
                self._start(kind, self._start_prism)
        if os.environ.get(SPEC_VARIABLES["gguf"][0]):
            self._start("llama", self._start_llama)

    def _start(self, kind: str, start: Callable[[str], tuple[servers.Server, str, float]]) -> None:
        try:
            self.pending[kind] = start(kind)
        except Exception as exc:  # reported by the tests that need it
            self.errors[kind] = str(exc)

    def _start_prism(self, kind: str) -> tuple[servers.Server, str, float]:
        source = _path_from(kind)
        patched = self.workdir / f"{kind}-spec.json"
        if kind == "openai":
            servers.patch_openai_spec(source, patched)
        else:
            servers.patch_azure_spec(source, patched)
        probe = "/v1/models" if kind == "openai" else "/openai/deployments/x/embeddings"
        # compiling a spec this size takes Prism 10-40 s, more on a busy machine
        return servers.start_prism(f"prism-{kind}", patched, self.workdir), probe, 300.0

    def _start_llama(self, kind: str) -> tuple[servers.Server, str, float]:
        model = _path_from("gguf")
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "llama-cpp-python is not installed: pip install 'llama-cpp-python[server]' "
                "(tox -e conformance does it)"
            ) from None
        return servers.start_llama(model, self.workdir), "/v1/models", 120.0

    def get(self, kind: str) -> servers.Server:
        if kind in self.ready:
            return self.ready[kind]
        if kind in self.errors:
            pytest.fail(self.errors[kind])
        if kind not in self.pending:
            _path_from("gguf" if kind == "llama" else kind)  # skips, naming the variable
        server, probe, timeout = self.pending.pop(kind)
        try:
            server.wait_ready(servers.http_answers(server.root + probe), timeout)
        except RuntimeError as exc:
            self.errors[kind] = str(exc)
            pytest.fail(str(exc))
        self.ready[kind] = server
        return server

    def stop(self) -> None:
        for server in [*self.ready.values(), *(p[0] for p in self.pending.values())]:
            server.stop()


@pytest.fixture(scope="session")
def third_party(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Servers]:
    started = _Servers(tmp_path_factory.mktemp("conformance"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def prism_openai(third_party: _Servers) -> str:
    """The base URL (with ``/v1``) of Prism serving the OpenAI spec."""
    return third_party.get("openai").root + "/v1"


@pytest.fixture(scope="session")
def prism_azure(third_party: _Servers) -> str:
    """The endpoint of Prism serving Azure's inference spec."""
    return third_party.get("azure").root


@pytest.fixture(scope="session")
def llama_server(third_party: _Servers) -> str:
    """The base URL (with ``/v1``) of llama.cpp's server on the tiny model."""
    return third_party.get("llama").root + "/v1"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT.rows:
        terminalreporter.section("conformance summary")
        for line in REPORT.table().splitlines():
            terminalreporter.write_line(line)
