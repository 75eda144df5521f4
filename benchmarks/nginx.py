"""nginx as a near-zero-cost fake OpenAI server for client benchmarks.

The server answers every call with a fixed body that it reads from a file, so the time a
benchmark measures is the client's, not the server's. The bodies are valid OpenAI API
responses (the official ``openai`` package and anyoai both parse them). Which body a call gets
depends on the client's base URL (see :meth:`NginxServer.url`)::

    with NginxServer(chunks=200) as server:
        client = openai.OpenAI(api_key="sk-bench", base_url=server.url("stream"))
        ...

nginx comes from Debian's packages: ``bash benchmarks/install-nginx.sh`` installs it. It runs
as a child process on 127.0.0.1 with every file it writes in a temporary directory, so it needs
no privileges. For manual use::

    python -m benchmarks.nginx            # prints the base URLs and waits for Ctrl-C
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import grp
import http.client
import json
import os
import pwd
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

__all__ = [
    "NginxMissingError",
    "NginxServer",
    "bodies",
    "find_nginx",
    "main",
]

CHAT_MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "text-embedding-3-small"
CHAT_CONTENT = "Hello! How can I help you today?"
CREATED = 1_720_000_000
REQUEST_ID = "req_bench"

INSTALL_HINT = (
    "install it with `bash benchmarks/install-nginx.sh` "
    "(or `apt-get install -y nginx-light` / `nginx`)"
)

# the URL prefix of each kind of base URL, and the body that its POST endpoint answers with
_ROUTES: dict[str, tuple[str, str, str, str]] = {
    # kind: (prefix, endpoint under /v1, body name, content type)
    "chat": ("chat", "chat/completions", "chat", "application/json"),
    "stream": ("stream", "chat/completions", "chat_stream", "text/event-stream"),
    "embeddings_float": ("emb-float", "embeddings", "embeddings_float", "application/json"),
    "embeddings_base64": ("emb-b64", "embeddings", "embeddings_base64", "application/json"),
}

_READY_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


class NginxMissingError(RuntimeError):
    """nginx is not installed."""


def find_nginx() -> str:
    """Return the path of the nginx binary, or raise :class:`NginxMissingError`."""
    found = shutil.which("nginx")
    if found:
        return found
    fallback = "/usr/sbin/nginx"
    if os.path.isfile(fallback) and os.access(fallback, os.X_OK):
        return fallback
    raise NginxMissingError(f"nginx was not found: {INSTALL_HINT}")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _chunk(delta: dict[str, Any], finish_reason: str | None) -> str:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": CHAT_MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    return f"data: {_dumps(chunk)}\n\n"


def bodies(
    chunks: int = 200, embedding_inputs: int = 256, dimensions: int = 1536
) -> dict[str, bytes]:
    """Build the fixed response bodies, the same bytes on every call for the same arguments.

    Keys: ``chat`` (a chat.completion), ``chat_stream`` (an SSE body of ``chunks`` content
    chunks, one finish chunk and ``[DONE]``), ``embeddings_float`` and ``embeddings_base64``
    (``embedding_inputs`` embeddings of ``dimensions`` values, as floats or as base64 of
    little-endian float32) and ``models`` (a list of two models).
    """
    if chunks < 1 or embedding_inputs < 1 or dimensions < 1:
        raise ValueError("chunks, embedding_inputs and dimensions must be at least 1")
    rng = random.Random(0)

    chat = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": CREATED,
        "model": CHAT_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": CHAT_CONTENT, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
        "system_fingerprint": "fp_bench",
    }

    events = []
    for i in range(chunks):
        delta: dict[str, Any] = {"role": "assistant"} if i == 0 else {}
        delta["content"] = f"tok{i} "
        events.append(_chunk(delta, None))
    events.append(_chunk({}, "stop"))
    events.append("data: [DONE]\n\n")

    vectors = [
        [round(rng.gauss(0.0, 1.0) * 0.05, 8) for _ in range(dimensions)]
        for _ in range(embedding_inputs)
    ]
    usage = {"prompt_tokens": 8 * embedding_inputs, "total_tokens": 8 * embedding_inputs}

    def embeddings(values: Sequence[Any]) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": value}
                for i, value in enumerate(values)
            ],
            "model": EMBEDDING_MODEL,
            "usage": usage,
        }

    packed = [
        base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
        for vector in vectors
    ]

    models = {
        "object": "list",
        "data": [
            {"id": CHAT_MODEL, "object": "model", "created": CREATED, "owned_by": "system"},
            {"id": EMBEDDING_MODEL, "object": "model", "created": CREATED, "owned_by": "system"},
        ],
    }

    return {
        "chat": _dumps(chat).encode(),
        "chat_stream": "".join(events).encode(),
        "embeddings_float": _dumps(embeddings(vectors)).encode(),
        "embeddings_base64": _dumps(embeddings(packed)).encode(),
        "models": _dumps(models).encode(),
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _missing_modules(nginx: str) -> set[str]:
    """The names of the optional http modules (fastcgi, ...) that this nginx was built without."""
    try:
        done = subprocess.run([nginx, "-V"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return set()
    flags = (done.stdout + done.stderr).split()
    return {
        name
        for name in ("fastcgi", "uwsgi", "scgi", "proxy")
        if f"--without-http_{name}_module" in flags
    }


def _tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - limit))
            return file.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


class NginxServer:
    """nginx serving the fixed :func:`bodies` on 127.0.0.1, as a context manager.

    ``with NginxServer() as server:`` starts nginx (``workers`` worker processes) on a free port
    (or ``port``) and waits until it answers; leaving the block stops it and removes its
    temporary directory. ``server.url(kind)`` is the base URL for a client.
    """

    def __init__(
        self,
        chunks: int = 200,
        embedding_inputs: int = 256,
        dimensions: int = 1536,
        *,
        workers: int = 1,
        port: int | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.chunks = chunks
        self.embedding_inputs = embedding_inputs
        self.dimensions = dimensions
        self.workers = workers
        self.port: int = port or 0
        self._fixed_port = bool(port)
        self.directory: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.bodies: dict[str, bytes] = {}

    # -- public API --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, with no path."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The nginx master's process id (also its process group), or None when not running."""
        return self._process.pid if self._process is not None else None

    def url(self, kind: str) -> str:
        """The base URL (ending in ``/v1``) whose POST endpoint answers with the ``kind`` body.

        ``kind`` is one of ``chat``, ``stream``, ``embeddings_float``, ``embeddings_base64``.
        Under each, ``GET .../models`` answers with the models list.
        """
        try:
            prefix = _ROUTES[kind][0]
        except KeyError:
            raise ValueError(f"unknown kind {kind!r}: one of {', '.join(_ROUTES)}") from None
        return f"{self.base_url}/{prefix}/v1"

    def urls(self) -> dict[str, str]:
        """Every kind's base URL."""
        return {kind: self.url(kind) for kind in _ROUTES}

    def start(self) -> None:
        """Write the files, start nginx and wait until it answers; clean up if that fails."""
        if self._process is not None:
            raise RuntimeError("the server is already running")
        nginx = find_nginx()
        self.bodies = bodies(self.chunks, self.embedding_inputs, self.dimensions)
        try:
            self.directory = tempfile.mkdtemp(prefix="anyoai-nginx-")
            self._write_bodies()
            missing = _missing_modules(nginx)
            attempts = 1 if self._fixed_port else 3
            for attempt in range(attempts):
                if not self._fixed_port:
                    self.port = _free_port()
                self._write_config(missing)
                try:
                    self._launch(nginx)
                    return
                except RuntimeError as error:
                    self._kill()
                    # another process took the port between picking and binding: pick again
                    if "Address already in use" not in str(error) or attempt == attempts - 1:
                        raise
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop nginx (SIGTERM to its group, SIGKILL if it lingers) and remove the directory."""
        try:
            self._kill()
        finally:
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)
                self.directory = None

    def __enter__(self) -> NginxServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------

    def _path(self, *parts: str) -> str:
        assert self.directory is not None
        return os.path.join(self.directory, *parts)

    def _write_bodies(self) -> None:
        os.mkdir(self._path("bodies"))
        for name, body in self.bodies.items():
            with open(self._path("bodies", name), "wb") as file:
                file.write(body)

    def _write_config(self, missing: set[str]) -> None:
        locations = []
        for prefix, endpoint, body, content_type in _ROUTES.values():
            # The static module answers POST with 405; error_page turns that into an internal
            # redirect to the same URI as a GET (the request body is discarded), which the
            # static module serves from the alias, and "=200" sets the status.
            locations.append(
                f"""
        location = /{prefix}/v1/{endpoint} {{
            default_type {content_type};
            alias {self._path("bodies", body)};
            error_page 405 =200 $uri;
        }}"""
            )
        temp_paths = [f"client_body_temp_path {self._path('tmp', 'client_body')};"]
        for name in ("proxy", "fastcgi", "uwsgi", "scgi"):
            if name not in missing:
                temp_paths.append(f"{name}_temp_path {self._path('tmp', name)};")
        user = ""
        if os.geteuid() == 0:
            # as root, nginx's workers would run as "nobody", who cannot read this directory
            user = (
                f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
            )
        newline = "\n    "
        config = f"""# written by benchmarks/nginx.py
{user}
worker_processes {self.workers};
worker_rlimit_nofile 8192;
error_log {self._path("error.log")} warn;
pid {self._path("nginx.pid")};

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    etag off;
    if_modified_since off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_max_body_size 64m;
    client_body_buffer_size 1m;
    {newline.join(temp_paths)}
    types {{}}
    default_type application/json;

    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        add_header x-request-id {REQUEST_ID} always;
        add_header openai-processing-ms 1 always;
{"".join(locations)}

        location ~ /v1/models$ {{
            root {self._path("bodies")};
            try_files /models =404;
        }}

        location / {{
            return 404 '{{"error":{{"message":"not found","type":"invalid_request_error",\
"param":null,"code":null}}}}';
        }}
    }}
}}
"""
        with open(self._path("nginx.conf"), "w", encoding="utf-8") as file:
            file.write(config)

    def _launch(self, nginx: str) -> None:
        os.makedirs(self._path("tmp"), exist_ok=True)
        stderr_path = self._path("stderr.log")
        with open(stderr_path, "wb") as stderr:
            self._process = subprocess.Popen(
                [
                    nginx,
                    "-c",
                    self._path("nginx.conf"),
                    "-p",
                    self._path(""),
                    "-g",
                    "daemon off;",
                ],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + _READY_TIMEOUT
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"nginx exited with status {self._process.returncode} at startup{self._logs()}"
                )
            if self._answers():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"nginx did not answer within {_READY_TIMEOUT:.0f} s{self._logs()}"
                )
            time.sleep(0.02)

    def _answers(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1.0)
        try:
            connection.request("GET", "/v1/models")
            response = connection.getresponse()
            response.read()
            return response.status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def _logs(self) -> str:
        # nginx logs to stderr until it has opened error.log (a bad config), then to both
        text = _tail(self._path("error.log")) or _tail(self._path("stderr.log"))
        return f":\n{text}" if text else " (no log)"

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is not None:
            # the master died by itself: end any worker left in its group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    """Start the server, print its base URLs and wait for Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.nginx", description="nginx as a fake OpenAI server"
    )
    parser.add_argument("--chunks", type=int, default=200, help="content chunks per stream")
    parser.add_argument("--embedding-inputs", type=int, default=256)
    parser.add_argument("--dimensions", type=int, default=1536)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    args = parser.parse_args(argv)
    with NginxServer(
        args.chunks,
        args.embedding_inputs,
        args.dimensions,
        workers=args.workers,
        port=args.port,
    ) as server:
        print(f"nginx (pid {server.pid}) serving in {server.directory}")
        for kind, url in server.urls().items():
            print(f"  {kind:18} {url}")
        print("  models             GET <any of these>/models")
        print("Ctrl-C to stop")
        # a plain `kill` stops nginx too, as Ctrl-C does
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nstopping")


if __name__ == "__main__":
    main()
