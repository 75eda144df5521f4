"""Third-party servers for the conformance tier: Prism (OpenAI and Azure specs) and llama.cpp.

Each runs as a child process on 127.0.0.1 and a free port, logs to a file, is polled until it
answers, and is stopped (its whole process group) at the end of the session.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
PRISM = HERE / "node_modules" / ".bin" / "prism"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- specs ------------------------------------------------------------------------------------


def _without_boolean_nullable(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _without_boolean_nullable(v)
            for k, v in node.items()
            if not (k == "nullable" and isinstance(v, bool))
        }
    if isinstance(node, list):
        return [_without_boolean_nullable(v) for v in node]
    return node


def patch_openai_spec(source: Path, target: Path) -> None:
    """A copy of the OpenAI spec that Prism validates fully, at the paths clients use.

    - every boolean ``nullable`` key is deleted: it means nothing in OpenAPI 3.1, and a schema
      with ``nullable`` but no ``type`` fails to compile inside Prism, which then silently stops
      validating request bodies for that operation (/chat/completions among them);
    - the paths gain the ``/v1`` prefix of the spec's server URL, which Prism ignores.
    """
    spec = _without_boolean_nullable(json.loads(source.read_text()))
    spec["paths"] = {f"/v1{path}": item for path, item in spec["paths"].items()}
    target.write_text(json.dumps(spec))


def _accepts_null(schema: Any) -> bool:
    return isinstance(schema, dict) and (
        schema.get("nullable") is True or schema.get("type") == "null"
    )


def _explicit_null(node: Any) -> Any:
    """Rewrite ``nullable: true`` without a ``type`` into an explicit null alternative.

    ``{"type": "null"}`` is what Prism's validator compiles (a ``nullable`` string with
    ``enum: [null]`` is not, and switches validation off again). In a ``oneOf`` it is added
    only if no member accepts null already, or null would match two members and be refused.
    """
    if isinstance(node, list):
        return [_explicit_null(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _explicit_null(v) for k, v in node.items()}
    if node.get("nullable") is True and "type" not in node:
        rest = {k: v for k, v in node.items() if k != "nullable"}
        for combinator in ("oneOf", "anyOf"):
            if combinator in rest:
                if not any(_accepts_null(member) for member in rest[combinator]):
                    rest[combinator] = [*rest[combinator], {"type": "null"}]
                return rest
        description = rest.pop("description", None)
        wrapped: dict[str, Any] = {"anyOf": [rest, {"type": "null"}]}
        if description is not None:
            wrapped["description"] = description
        return wrapped
    return node


def _without_key(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        return {k: _without_key(v, key) for k, v in node.items() if k != key}
    if isinstance(node, list):
        return [_without_key(v, key) for v in node]
    return node


def patch_azure_spec(source: Path, target: Path) -> None:
    """A copy of Azure's inference spec that Prism starts with and validates fully.

    - the ``x-ms-examples`` entries point at files that are not there: Prism refuses to start;
    - four schemas mark a field ``nullable`` without a ``type`` (``createCompletionRequest``'s
      ``prompt`` and ``stop``, ``createChatCompletionRequest``'s ``parallel_tool_calls``,
      ``chatCompletionRequestAssistantMessage``'s ``content``), which silently switches off body
      validation for chat and completions: null is made an explicit alternative there (found
      generically, not by name);
    - the paths gain the ``/openai`` prefix of the spec's server URL, which Prism ignores.
    """
    spec = _without_key(json.loads(source.read_text()), "x-ms-examples")
    spec = _explicit_null(spec)
    spec["paths"] = {f"/openai{path}": item for path, item in spec["paths"].items()}
    target.write_text(json.dumps(spec))


# -- processes --------------------------------------------------------------------------------


class Server:
    """A child process serving HTTP on ``127.0.0.1:port``."""

    def __init__(self, name: str, argv: Sequence[str], port: int, log: Path) -> None:
        self.name = name
        self.port = port
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            list(argv),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends its children too
        )

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        """Poll *probe* until it is true; fail with the log's tail if the process dies or the
        time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.process.returncode}):\n{self.tail()}"
                )
            if probe():
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready after {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        self._log_file.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log_file.close()


def http_answers(url: str, headers: dict[str, str] | None = None) -> Callable[[], bool]:
    """A probe: true once *url* answers with any HTTP status."""

    def probe() -> bool:
        request = urllib.request.Request(url, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    return probe


def start_prism(name: str, spec: Path, workdir: Path) -> Server:
    """Start Prism in mock mode on *spec* (not yet waited for)."""
    if not PRISM.exists():
        raise RuntimeError(
            f"Prism is not installed at {PRISM}: run `npm ci --prefix tests/conformance` "
            "(tox -e conformance does it)"
        )
    port = free_port()
    argv = ["node", str(PRISM), "mock", str(spec), "-h", "127.0.0.1", "-p", str(port)]
    return Server(name, argv, port, workdir / f"{name}.log")


def start_llama(model: Path, workdir: Path) -> Server:
    """Start llama.cpp's OpenAI-compatible server (llama-cpp-python) on the tiny model."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--model_alias",
        "tiny",
        "--n_ctx",
        "512",
        # by default a new request interrupts the stream in progress: queue them instead
        "--interrupt_requests",
        "false",
    ]
    return Server("llama.cpp", argv, port, workdir / "llama.log")


@contextlib.contextmanager
def running(servers: list[tuple[Server, Callable[[], bool], float]]) -> Iterator[None]:
    """Wait for every server (they start in parallel), and stop them all at the end."""
    try:
        for server, probe, timeout in servers:
            server.wait_ready(probe, timeout)
        yield
    finally:
        for server, _, _ in servers:
            server.stop()
