"""Token counting with tiktoken, request estimates, and the offline fallback."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

import anyoai
from anyoai._tokens import (
    encoding_name,
    estimate_chat,
    estimate_completion,
    estimate_edit,
    estimate_input,
    image_tokens,
)

needs_encodings = pytest.mark.skipif(
    not os.environ.get("TIKTOKEN_CACHE_DIR"),
    reason="set TIKTOKEN_CACHE_DIR to a folder of tiktoken encodings (../shared/tiktoken)",
)


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o3", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-35-turbo-16k", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("some-local-model", "o200k_base"),
        (None, "o200k_base"),
    ],
)
def test_encoding_follows_the_model(model: str | None, encoding: str) -> None:
    assert encoding_name(model) == encoding


@needs_encodings
def test_counts_match_tiktoken() -> None:
    import tiktoken

    text = "The quick brown fox jumps over the lazy dog. Ünïcödé ✓ 日本語"
    expected = len(tiktoken.get_encoding("o200k_base").encode(text))
    assert anyoai.count_tokens(text, model="gpt-4o") == expected
    assert anyoai.count_tokens([text, text], model="gpt-4o") == 2 * expected
    assert anyoai.count_tokens([[1, 2, 3], [4]], model="gpt-4o") == 4


@needs_encodings
def test_chat_messages_follow_the_cookbook_formula() -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello world", "name": "ada"},
    ]
    text = anyoai.count_tokens
    expected = (
        3  # reply priming
        + 2 * 3  # per message
        + text("system", model="gpt-4o")
        + text("You are terse.", model="gpt-4o")
        + text("user", model="gpt-4o")
        + text("hello world", model="gpt-4o")
        + 1
        + text("ada", model="gpt-4o")
    )
    assert anyoai.count_tokens(messages, model="gpt-4o") == expected


@needs_encodings
def test_truncate_to_tokens() -> None:
    text = "one two three four five six"
    cut = anyoai.truncate_to_tokens(text, 3, model="gpt-4o")
    assert cut == "one two three"
    assert anyoai.count_tokens(cut, model="gpt-4o") == 3
    assert anyoai.truncate_to_tokens(text, 100, model="gpt-4o") == text
    with pytest.raises(ValueError, match="max_tokens"):
        anyoai.truncate_to_tokens(text, -1)


def _png(width: int, height: int) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("width", "height", "detail", "tokens"),
    [
        (1024, 1024, "high", 85 + 170 * 4),  # 768x768 -> 2x2 tiles
        (2048, 4096, "auto", 85 + 170 * 6),  # -> 1024x2048 -> 768x1536 -> 2x3 tiles
        (512, 512, "high", 85 + 170 * 1),
        (4000, 4000, "low", 85),
    ],
)
def test_image_costs_follow_the_documented_rule(
    width: int, height: int, detail: str, tokens: int
) -> None:
    assert image_tokens(_png(width, height), detail) == tokens


def test_image_by_url_assumes_1024_square() -> None:
    assert image_tokens("https://example.com/cat.jpg") == 765


@needs_encodings
def test_request_estimates() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
            ],
        }
    ]
    prompt, reserve = estimate_chat(
        {"model": "gpt-4o", "messages": messages, "max_tokens": 50, "n": 2}
    )
    assert (
        prompt
        == anyoai.count_tokens([{"role": "user", "content": "what is this?"}], model="gpt-4o") + 765
    )
    assert reserve == 100
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with_tools, _ = estimate_chat({"model": "gpt-4o", "messages": messages, "tools": tools})
    assert with_tools > prompt
    assert estimate_input({"model": "text-embedding-3-small", "input": ["a b", [1, 2, 3]]}) == (
        anyoai.count_tokens("a b", model="text-embedding-3-small") + 3,
        0,
    )
    prompt, reserve = estimate_completion({"model": "gpt-3.5-turbo-instruct", "prompt": ["x", "y"]})
    assert reserve == 16 * 2  # the API's default max_tokens, for each prompt
    moderation = [{"type": "text", "text": "a b"}, {"type": "image_url", "image_url": {}}]
    assert estimate_input({"model": "omni-moderation-latest", "input": moderation}) == (
        anyoai.count_tokens(["a b", ""], model="omni-moderation-latest"),
        0,
    )
    assert estimate_edit({"model": "m", "input": "a", "instruction": "b"}) == (
        anyoai.count_tokens("a b", model="m"),
        0,
    )


def test_offline_fallback_warns_once_and_never_crashes(tmp_path: Path) -> None:
    """No encodings and no network: counting falls back to bytes / 3 and says so once."""
    script = textwrap.dedent(
        """
        import json, warnings
        import anyoai
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a = anyoai.count_tokens("hello world, hello tokens", model="gpt-4o")
            b = anyoai.count_tokens("日本語", model="gpt-3.5-turbo")
            c = anyoai.count_tokens([{"role": "user", "content": "hi"}], model="gpt-4o")
        print(json.dumps({"a": a, "b": b, "c": c,
                          "warnings": [str(w.message) for w in caught]}))
        """
    )
    env = {
        **os.environ,
        "TIKTOKEN_CACHE_DIR": str(tmp_path),  # empty: nothing cached
        # any download attempt fails at once: the proxy port refuses connections
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
    }
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["a"] == -(-len(b"hello world, hello tokens") // 3)
    assert result["b"] == 3  # 9 bytes of UTF-8
    assert result["c"] > 0
    assert len(result["warnings"]) == 1
    assert "TIKTOKEN_CACHE_DIR" in result["warnings"][0]
