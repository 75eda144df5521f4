"""``python -m anyoai.testing``: run the fake OpenAI server until Ctrl-C.

::

    python -m anyoai.testing --port 8000 --api-key sk-test
    http://127.0.0.1:8000/v1

    python -m anyoai.testing --rpm 500 --tpm 200000 --latency 0.2  # OpenAI-style rate limits

    python -m anyoai.testing --azure --api-key k --api-version 2024-10-21 \
        --deployment gpt-4o-mini=gpt-4o-mini --deployment my-embed=text-embedding-3-small
    http://127.0.0.1:PORT


It prints its base URL (the ``base_url`` a client uses; for ``--azure`` the resource endpoint)
on a line of its own once it listens.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Sequence

import anyio

from ._server import DEFAULT_MAX_FILE_BYTES, FakeServer


def _deployment(text: str) -> tuple[str, str]:
    name, equals, model = text.partition("=")
    if not equals or not name.strip() or not model.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=MODEL, got {text!r}")
    return name.strip(), model.strip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m anyoai.testing",
        description="Run a fake OpenAI API server on loopback until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    parser.add_argument("--api-key", default=None, help="require this bearer API key")
    parser.add_argument(
        "--embedding-dimensions", type=int, default=16, help="default embedding length"
    )
    parser.add_argument(
        "--stream-chunk-delay", type=float, default=0.0, help="seconds between stream events"
    )
    parser.add_argument(
        "--rpm", type=int, default=None, help="requests per rate-limit period (default: no limit)"
    )
    parser.add_argument(
        "--tpm", type=int, default=None, help="tokens per rate-limit period (default: no limit)"
    )
    parser.add_argument(
        "--rate-limit-period",
        type=float,
        default=60.0,
        help="seconds in the rate limits' 'minute' (default 60)",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds every answer waits (default 0)"
    )
    parser.add_argument("--azure", action="store_true", help="answer as an Azure OpenAI resource")
    parser.add_argument(
        "--api-version",
        default=None,
        help="with --azure: the only api-version accepted (default: any)",
    )
    parser.add_argument(
        "--deployment",
        action="append",
        type=_deployment,
        default=None,
        metavar="NAME=MODEL",
        help="with --azure: a deployment and its model (repeatable; default: "
        + ", ".join(f"{name}={model}" for name, model in FakeServer.DEFAULT_DEPLOYMENTS.items())
        + ")",
    )
    parser.add_argument(
        "--ad-token", default=None, help="with --azure: accept this Azure AD bearer token"
    )
    parser.add_argument(
        "--max-file-bytes",
        type=int,
        default=DEFAULT_MAX_FILE_BYTES,
        help="the largest file POST /v1/files accepts (default 512 MiB)",
    )
    parser.add_argument(
        "--backend", choices=("asyncio", "trio"), default="asyncio", help="event loop to use"
    )
    parser.add_argument("--verbose", action="store_true", help="log every connection event")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    server = FakeServer(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        embedding_dimensions=args.embedding_dimensions,
        stream_chunk_delay=args.stream_chunk_delay,
        rpm=args.rpm,
        tpm=args.tpm,
        rate_limit_period=args.rate_limit_period,
        latency=args.latency,
        azure=args.azure,
        api_version=args.api_version,
        deployments=dict(args.deployment) if args.deployment is not None else None,
        ad_token=args.ad_token,
        max_file_bytes=args.max_file_bytes,
    )
    async with server:
        print(server.url, flush=True)
        await anyio.sleep_forever()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse *argv* (``sys.argv[1:]`` by default) and serve until Ctrl-C; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.azure and (args.api_version, args.deployment, args.ad_token) != (None,) * 3:
        parser.error("--api-version, --deployment and --ad-token need --azure")
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(_serve, args, backend=args.backend)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
