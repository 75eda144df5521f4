"""Tests of the fake server's Files, Uploads and Batch APIs, under asyncio and trio.

Raw HTTP through httpcore, multipart bodies built by hand, against the ``server`` fixture of
``conftest.py`` (which demands ``tests.helpers.API_KEY``). No sleeps: batches move one step per
retrieval.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import urllib.request
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpcore
import pytest

from anyoai.testing import FakeServer, run_in_thread
from anyoai.testing._files import format_size

from .. import helpers
from ..helpers import API_KEY, error_of, header, payload

pytestmark = pytest.mark.anyio

EPOCH = 1_700_000_000
AUTH = {"authorization": f"Bearer {API_KEY}"}
#: every request here carries the key that the ``server`` fixture demands
call = functools.partial(helpers.call, api_key=API_KEY)
BOUNDARY = "----anyoai-test-boundary-7MA4YWxk"
MIB = 1024 * 1024

# a part of a form: (name, filename or None, bytes)
Part = tuple[str, str | None, bytes]


@pytest.fixture
async def client() -> AsyncIterator[httpcore.AsyncConnectionPool]:
    async with httpcore.AsyncConnectionPool(max_connections=10) as pool:
        yield pool


def form(*parts: Part, boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body, the way HTTP clients write it."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


async def upload(
    client: httpcore.AsyncConnectionPool,
    server: FakeServer,
    data: bytes,
    *,
    filename: str = "input.jsonl",
    purpose: str = "batch",
    extra: Sequence[Part] = (),
) -> dict[str, Any]:
    body = form(("purpose", None, purpose.encode()), ("file", filename, data), *extra)
    response = await call(client, server, "/files", raw=body, content_type=FORM_TYPE)
    assert response.status == 200, response.content
    result: dict[str, Any] = payload(response)
    return result


def jsonl(*lines: Any) -> bytes:
    return b"".join(
        (json.dumps(line) if not isinstance(line, str) else line).encode() + b"\n" for line in lines
    )


def chat_line(custom_id: str, text: str, **extra: Any) -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def embedding_line(custom_id: str, text: str) -> dict[str, Any]:
    body = {"model": "text-embedding-3-small", "input": text}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": body}


async def create_batch(
    client: httpcore.AsyncConnectionPool,
    server: FakeServer,
    file_id: str,
    endpoint: str = "/v1/chat/completions",
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "input_file_id": file_id,
        "endpoint": endpoint,
        "completion_window": "24h",
        **extra,
    }
    response = await call(client, server, "/batches", body)
    assert response.status == 200, response.content
    result: dict[str, Any] = payload(response)
    return result


async def step(
    client: httpcore.AsyncConnectionPool, server: FakeServer, batch_id: str
) -> dict[str, Any]:
    response = await call(client, server, f"/batches/{batch_id}", method="GET")
    assert response.status == 200, response.content
    result: dict[str, Any] = payload(response)
    return result


async def content_lines(
    client: httpcore.AsyncConnectionPool, server: FakeServer, file_id: str
) -> list[dict[str, Any]]:
    response = await call(client, server, f"/files/{file_id}/content", method="GET")
    assert response.status == 200
    assert response.content.endswith(b"\n")
    return [json.loads(line) for line in response.content.splitlines()]


def recorded_body(folder: str, name: str) -> dict[str, Any]:
    """The response body of a recorded exchange (``$ANYOAI_RECORDINGS/<name>``)."""
    recording = json.loads(Path(folder, name).read_text())
    body: dict[str, Any] = json.loads(recording["response"]["body_text"])
    return body


def seq_of(object_id: str) -> int:
    return int(object_id.rsplit("_", 1)[-1].rsplit("-", 1)[-1])


# ------------------------------------------------------------------------------ files


async def test_upload_retrieve_content_delete(
    server: FakeServer, client: httpcore.AsyncConnectionPool
) -> None:
    data = b'{"a": 1}\n{"b": 2}\n'
    created = await upload(client, server, data, filename="sentiment.jsonl", purpose="fine-tune")
    assert created == {
        "object": "file",
        "id": "file-fake-000001",
        "purpose": "fine-tune",
        "filename": "sentiment.jsonl",
        "bytes": len(data),
        "created_at": EPOCH + 1,
        "expires_at": None,
        "status": "processed",
        "status_details": None,
    }
    stored = server.files["file-fake-000001"]
    assert (stored.data, stored.purpose, stored.filename, stored.size) == (
        data,
        "fine-tune",
        "sentiment.jsonl",
        len(data),
    )
    assert server.requests[0].json is None  # a multipart body is not parsed as JSON
    assert server.requests[0].body.startswith(f"--{BOUNDARY}".encode())

    retrieved = await call(client, server, "/files/file-fake-000001", method="GET")
    assert payload(retrieved) == created

    content = await call(client, server, "/files/file-fake-000001/content", method="GET")
    assert content.status == 200
    assert content.content == data
    assert header(content, "content-type") == "application/octet-stream"
    assert header(content, "content-length") == str(len(data))
    assert header(content, "content-disposition") == 'attachment; filename="sentiment.jsonl"'

    deleted = await call(client, server, "/files/file-fake-000001", method="DELETE")
    assert payload(deleted) == {"id": "file-fake-000001", "object": "file", "deleted": True}
    assert "file-fake-000001" not in server.files
    for method, path in (
        ("GET", "/files/file-fake-000001"),
        ("GET", "/files/file-fake-000001/content"),
        ("DELETE", "/files/file-fake-000001"),
    ):
        error = error_of(await call(client, server, path, method=method), 404)
        assert error == {
            "message": "No such File object: file-fake-000001",
            "type": "invalid_request_error",
            "param": "id",
            "code": None,
        }


async def test_file_purposes_expiry_and_filenames(
    server: FakeServer, client: httpcore.AsyncConnectionPool
) -> None:
    batch = await upload(client, server, b"{}\n", purpose="batch")
    assert batch["expires_at"] == batch["created_at"] + 30 * 24 * 3600  # batch files: 30 days
    timed = await upload(
        client,
        server,
        b"x",
        filename="notes.txt",
        purpose="user_data",
        extra=[
            ("expires_after[anchor]", None, b"created_at"),
            ("expires_after[seconds]", None, b"3600"),
        ],
    )
    assert timed["expires_at"] == timed["created_at"] + 3600
    for purpose in ("assistants", "vision", "evals"):
        assert (await upload(client, server, b"x", filename="a.bin", purpose=purpose))[
            "purpose"
        ] == purpose
    # RFC 5987 filename*, and an escaped quote in a quoted filename
    raw = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
        f'user_data\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f"filename=\"plain.txt\"; filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.txt\r\n"
        f"\r\nbody\r\n--{BOUNDARY}--\r\n"
    ).encode()
    response = await call(client, server, "/files", raw=raw, content_type=FORM_TYPE)
    assert payload(response)["filename"] == "naïve résumé.txt"
    content = await call(client, server, f"/files/{payload(response)['id']}/content", method="GET")
    assert header(content, "content-disposition") == (
        "attachment; filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.txt"
    )
    raw = form(("purpose", None, b"user_data"), ("file", 'say \\"hi\\".txt', b"hi"))
    response = await call(client, server, "/files", raw=raw, content_type=FORM_TYPE)
    assert payload(response)["filename"] == 'say "hi".txt'


async def test_list_files_pagination(
    server: FakeServer, client: httpcore.AsyncConnectionPool
) -> None:
    empty = payload(await call(client, server, "/files", method="GET"))
    assert empty == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    ids = []
    for index in range(7):
        purpose = "assistants" if index in (2, 5) else "user_data"
        ids.append((await upload(client, server, b"x", filename="f.txt", purpose=purpose))["id"])
    # all in one page, newest first by default (same created_at second or not: by sequence)
    listing = payload(await call(client, server, "/files", method="GET"))
    assert [file["id"] for file in listing["data"]] == ids[::-1]
    assert (listing["first_id"], listing["last_id"], listing["has_more"]) == (
        ids[-1],
        ids[0],
        False,
    )
    assert listing["data"][0] == payload(
        await call(client, server, f"/files/{ids[-1]}", method="GET")
    )

    async def pages(query: str) -> list[list[str]]:
        found: list[list[str]] = []
        after = ""
        while True:
            page = payload(await call(client, server, f"/files?{query}{after}", method="GET"))
            names = [file["id"] for file in page["data"]]
            found.append(names)
            assert (page["first_id"], page["last_id"]) == (names[0], names[-1])
            if not page["has_more"]:
                return found
            after = f"&after={page['last_id']}"

    assert await pages("limit=3") == [ids[6:3:-1], ids[3:0:-1], ids[:1]]
    assert await pages("limit=3&order=asc") == [ids[0:3], ids[3:6], ids[6:]]
    user_data = [file_id for index, file_id in enumerate(ids) if index not in (2, 5)]
    assert await pages("limit=2&purpose=user_data&order=asc") == [
        user_data[0:2],
        user_data[2:4],
        user_data[4:],
    ]
    assert await pages("purpose=assistants") == [[ids[5], ids[2]]]
    # a cursor that has been deleted in the meantime still tells its place
    await call(client, server, f"/files/{ids[3]}", method="DELETE")
    after_deleted = payload(
        await call(client, server, f"/files?after={ids[3]}&limit=2", method="GET")
    )
    assert [file["id"] for file in after_deleted["data"]] == [ids[2], ids[1]]
    assert after_deleted["has_more"] is True

    for query, param, code in (
        ("limit=0", "limit", "integer_below_min_value"),
        ("limit=10001", "limit", "integer_above_max_value"),
        ("limit=ten", "limit", "invalid_type"),
        ("order=up", "order", "invalid_value"),
        ("after=nonsense", "after", "invalid_value"),
    ):
        error = error_of(await call(client, server, f"/files?{query}", method="GET"), 400)
        assert (error["param"], error["code"]) == (param, code), query
    assert (
        payload(await call(client, server, "/files?limit=10000", method="GET"))["has_more"] is False
    )


MULTIPART_ERRORS = [
    pytest.param(
        json.dumps({"purpose": "batch"}).encode(),
        "application/json",
        "Invalid Content-Type header (application/json), expected multipart/form-data.",
        id="not-multipart",
    ),
    pytest.param(
        form(("purpose", None, b"batch")),
        "multipart/form-data",
        "Invalid multipart/form-data body: the Content-Type header has no boundary.",
        id="no-boundary",
    ),
    pytest.param(
        form(("purpose", None, b"batch")),
        FORM_TYPE,
        "'file' is a required property",
        id="no-file",
    ),
    pytest.param(
        form(("file", "a.jsonl", b"{}")),
        FORM_TYPE,
        "'purpose' is a required property",
        id="no-purpose",
    ),
    pytest.param(
        form(("purpose", None, b"nope"), ("file", "a.jsonl", b"{}")),
        FORM_TYPE,
        "'nope' is not one of ['assistants', 'batch', 'fine-tune', 'vision', 'user_data', "
        "'evals'] - 'purpose'",
        id="bad-purpose",
    ),
    pytest.param(
        form(("purpose", None, b"batch"), ("file", "a.jsonl", b"{}"), ("extra", None, b"1")),
        FORM_TYPE,
        "Additional properties are not allowed ('extra' was unexpected)",
        id="unexpected-field",
    ),
    pytest.param(
        form(("purpose", None, b"batch"), ("file", None, b"{}")),
        FORM_TYPE,
        "'file' must be a file: a form-data part with a filename.",
        id="file-without-filename",
    ),
    pytest.param(
        form(("purpose", None, b"batch"), ("file", "a.txt", b"{}")),
        FORM_TYPE,
        "Invalid file format for Batch API. Must be .jsonl",
        id="batch-not-jsonl",
    ),
    pytest.param(
        form(("purpose", None, b"batch"), ("purpose", None, b"batch"), ("file", "a.jsonl", b"")),
        FORM_TYPE,
        "Invalid multipart/form-data body: the field 'purpose' is given twice.",
        id="duplicate-field",
    ),
    pytest.param(
        form(("purpose", None, b"batch"), ("file", "a.jsonl", b"{}"))[:-20],
        FORM_TYPE,
        "Invalid multipart/form-data body: the body does not end with the closing boundary.",
        id="truncated",
    ),
    pytest.param(
        b"garbage" + form(("purpose", None, b"batch")),
        FORM_TYPE,
        "Invalid multipart/form-data body: the body does not start with the boundary.",
        id="preamble",
    ),
    pytest.param(
        f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nbatch\r\n--{BOUNDARY}--\r\n".encode(),
        FORM_TYPE,
        "Invalid multipart/form-data body: a part has no Content-Disposition header.",
        id="no-disposition",
    ),
    pytest.param(
        f"--{BOUNDARY}\r\nContent-Disposition: attachment\r\n\r\nx\r\n--{BOUNDARY}--".encode(),
        FORM_TYPE,
        "Invalid multipart/form-data body: malformed Content-Disposition 'attachment'.",
        id="bad-disposition",
    ),
    pytest.param(
        f"--{BOUNDARY}junk\r\n\r\nx\r\n--{BOUNDARY}--".encode(),
        FORM_TYPE,
        "Invalid multipart/form-data body: a boundary is not followed by a line break.",
        id="bad-boundary-line",
    ),
    pytest.param(
        form(
            ("purpose", None, b"user_data"),
            ("file", "a.txt", b"x"),
            ("expires_after[anchor]", None, b"created_at"),
        ),
        FORM_TYPE,
        "Missing required parameter: 'expires_after.seconds'.",
        id="expires-after-half",
    ),
    pytest.param(
        form(
            ("purpose", None, b"user_data"),
            ("file", "a.txt", b"x"),
            ("expires_after[anchor]", None, b"created_at"),
            ("expires_after[seconds]", None, b"60"),
        ),
        FORM_TYPE,
        "Invalid 'expires_after.seconds': expected a value between 3600 and 2592000, but got "
        "60 instead.",
        id="expires-after-short",
    ),
]


@pytest.mark.parametrize(("raw", "content_type", "message"), MULTIPART_ERRORS)
async def test_create_file_errors(
    server: FakeServer,
    client: httpcore.AsyncConnectionPool,
    raw: bytes,
    content_type: str,
    message: str,
) -> None:
    response = await call(client, server, "/files", raw=raw, content_type=content_type)
    error = error_of(response, 400)
    assert error["message"].startswith(message), error["message"]
    assert error["type"] == "invalid_request_error"
    assert server.files == {}


async def test_required_property_errors_have_no_param_or_code(
    server: FakeServer, client: httpcore.AsyncConnectionPool
) -> None:
    raw = form(("purpose", None, b"batch"))
    error = error_of(await call(client, server, "/files", raw=raw, content_type=FORM_TYPE), 400)
    assert error == {
        "message": "'file' is a required property",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


async def test_file_size_limit(client: httpcore.AsyncConnectionPool) -> None:
    async with FakeServer(api_key=API_KEY, max_file_bytes=1000) as server:
        assert (await upload(client, server, b"x" * 1000, filename="a.bin", purpose="user_data"))[
            "bytes"
        ] == 1000
        raw = form(("purpose", None, b"user_data"), ("file", "b.bin", b"x" * 1001))
        response = await call(client, server, "/files", raw=raw, content_type=FORM_TYPE)
        error = error_of(response, 400)
        assert error["message"] == (
            "File is too large: 1001 bytes. The maximum size of a file is 1000 bytes."
        )
        assert error["param"] == "file"
        assert list(server.files) == ["file-fake-000001"]
    assert format_size(512 * MIB) == "512 MB"
    with pytest.raises(ValueError, match="max_file_bytes"):
        FakeServer(max_file_bytes=0)
    with pytest.raises(TypeError, match="max_file_bytes"):
        FakeServer(max_file_bytes=1.5)  # type: ignore[arg-type]


async def test_a_64_mib_file_goes_up_and_comes_back(
    server: FakeServer, client: httpcore.AsyncConnectionPool
) -> None:
    data = bytes(range(256)) * (64 * MIB // 256)
    created = await upload(client, server, data, filename="big.bin", purpose="user_data")
    assert created["bytes"] == 64 * MIB
    content = await call(client, server, f"/files/{created['id']}/content", method="GET")
    assert content.status == 200
    assert header(content, "content-length") == str(64 * MIB)
    assert hashlib.sha256(content.content).digest() == hashlib.sha256(data).digest()
    # the connection still works afterwards
    listed = payload(await call(client, server, "/files", method="GET"))
    assert listed["data"][0]["bytes"] == 64 * MIB


def test_files_from_a_thread() -> None:
    with run_in_thread(api_key=API_KEY) as server:
        request = urllib.request.Request(
            server.url + "/files",
            data=form(("purpose", None, b"assistants"), ("file", "notes.md", b"# notes")),
            headers={**AUTH, "content-type": FORM_TYPE},
            method="POST",
        )
        with urllib.request.urlopen(request) as response:
            created = json.loads(response.read())
        assert server.files[created["id"]].data == b"# notes"
        assert server.uploads == {}
        assert server.batches == {}


async def test_recorded_shapes_hold(
    server: FakeServer, client: httpcore.AsyncConnectionPool
) -> None:
    """The fake's objects have every key the real API sent (recordings 020 and 021)."""
    folder = os.environ.get("ANYOAI_RECORDINGS")
    if not folder:
        pytest.skip("set ANYOAI_RECORDINGS to compare with recorded traffic")
    recorded_file = recorded_body(folder, "020_files_upload.json")
    recorded_batch = recorded_body(folder, "021_batches_create.json")
    file = await upload(client, server, jsonl(chat_line("a", "hi")))
    batch = await create_batch(client, server, file["id"])
    for ours, theirs in ((file, recorded_file), (batch, recorded_batch)):
        assert set(theirs) <= set(ours)
        for key, value in theirs.items():
            assert type(ours[key]) is type(value) or value is None or ours[key] is None, key
    assert batch["status"] == recorded_batch["status"] == "validating"
    assert batch["expires_at"] - batch["created_at"] == (
        recorded_batch["expires_at"] - recorded_batch["created_at"]
    )


# ------------------------------------------------------------------------------ uploads


async def test_upload_in_parts(server: FakeServer, client: httpcore.AsyncConnectionPool) -> None:
    spec = {"bytes": 11, "filename": "hello.txt", "mime_type": "text/plain", "purpose": "vision"}
    created = payload(await call(client, server, "/uploads", spec))
    assert created == {
        "id": "upload_fake_000001",
        "object": "upload",
        "bytes": 11,
        "created_at": EPOCH + 1,
        "filename": "hello.txt",
        "purpose": "vision",
        "status": "pending",
        "expires_at": EPOCH + 1 + 3600,
        "file": None,
    }
    parts = []
    for piece in (b"world", b"hello "):
        raw = form(("data", "blob", piece))
        response = await call(
            client,
            server,
            "/uploads/upload_fake_000001/parts",
            raw=raw,
            content_type=FORM_TYPE,
        )
        parts.append(payload(response))
    assert parts == [
        {
            "id": "part_fake_000002",
            "object": "upload.part",
            "created_at": EPOCH + 2,
            "upload_id": "upload_fake_000001",
        },
        {
            "id": "part_fake_000003",
            "object": "upload.part",
            "created_at": EPOCH + 3,
            "upload_id": "upload_fake_000001",
        },
    ]
    # a plain field (no filename) is a part too
    raw = form(("data", None, b"unused"))
    response = await call(
        client,
        server,
        "/uploads/upload_fake_000001/parts",
        raw=raw,
        content_type=FORM_TYPE,
    )
    assert payload(response)["id"] == "part_fake_000004"
    completion = {
        "part_ids": ["part_fake_000003", "part_fake_000002"],
        "md5": hashlib.md5(b"hello world").hexdigest(),
    }
    done = payload(await call(client, server, "/uploads/upload_fake_000001/complete", completion))
    assert done == {
        **created,
        "status": "completed",
        "file": {
            "object": "file",
            "id": "file-fake-000005",
            "purpose": "vision",
            "filename": "hello.txt",
            "bytes": 11,
            "created_at": EPOCH + 5,
            "expires_at": None,
            "status": "processed",
            "status_details": None,
        },
    }
    content = await call(client, server, "/files/file-fake-000005/content", method="GET")
    assert content.content == b"hello world"
    stored = server.uploads["upload_fake_000001"]
    assert stored.status == "completed"
    assert [part.id for part in stored.parts] == [
        "part_fake_000002",
        "part_fake_000003",
        "part_fake_000004",
    ]
    assert stored.file is not None and stored.file.data == b"hello world"
    # a completed upload takes nothing more
    for path in ("complete", "cancel"):
        response = await call(
            client, server, f"/uploads/upload_fake_000001/{path}", {"part_ids": []}
        )
        assert "its status is 'completed'" in error_of(response, 400)["message"]


async def test_upload_errors_and_cancel(
    server: FakeServer, client: httpcore.AsyncConnectionPool
) -> None:
    spec = {"bytes": 10, "filename": "t.jsonl", "mime_type": "text/jsonl", "purpose": "batch"}
    for change, param, code in (
        ({"purpose": "user_data"}, "purpose", "invalid_value"),
        ({"mime_type": None}, "mime_type", "missing_required_parameter"),
        ({"bytes": "10"}, "bytes", "invalid_type"),
        ({"bytes": -1}, "bytes", "invalid_value"),
        ({"filename": "t.txt"}, "file", None),
        ({"expires_after": {"anchor": "created_at", "seconds": 10}}, None, None),
    ):
        body: Any = {key: value for key, value in {**spec, **change}.items() if value is not None}
        error = error_of(await call(client, server, "/uploads", body), 400)
        if param is not None:
            assert (error["param"], error["code"]) == (param, code), change
    assert server.uploads == {}

    upload_id = payload(await call(client, server, "/uploads", spec))["id"]
    parts_path = f"/uploads/{upload_id}/parts"
    part = payload(
        await call(
            client,
            server,
            parts_path,
            raw=form(("data", "d", b"12345")),
            content_type=FORM_TYPE,
        )
    )
    complete = f"/uploads/{upload_id}/complete"
    error = error_of(await call(client, server, complete, {"part_ids": [part["id"]]}), 400)
    assert error["message"] == (
        "The parts add up to 5 bytes, but the upload was created with bytes=10."
    )
    for body, fragment in (
        ({}, "Missing required parameter: 'part_ids'."),
        ({"part_ids": "x"}, "Invalid type for 'part_ids'"),
        ({"part_ids": ["part_fake_999999"]}, "'part_fake_999999' is not a part of"),
        ({"part_ids": [part["id"], part["id"]]}, "is given more than once"),
    ):
        assert fragment in error_of(await call(client, server, complete, body), 400)["message"]
    second = payload(
        await call(
            client,
            server,
            parts_path,
            raw=form(("data", "d", b"67890")),
            content_type=FORM_TYPE,
        )
    )
    error = error_of(
        await call(
            client,
            server,
            complete,
            {"part_ids": [part["id"], second["id"]], "md5": "0" * 32},
        ),
        400,
    )
    assert (error["param"], error["message"].startswith("The md5 checksum")) == ("md5", True)
    assert server.uploads[upload_id].status == "pending"
    no_data = await call(
        client, server, parts_path, raw=form(("other", None, b"x")), content_type=FORM_TYPE
    )
    assert error_of(no_data, 400)["message"] == (
        "Additional properties are not allowed ('other' was unexpected)"
    )

    cancelled = payload(await call(client, server, f"/uploads/{upload_id}/cancel"))
    assert (cancelled["status"], cancelled["file"]) == ("cancelled", None)
    refused = await call(
        client, server, parts_path, raw=form(("data", "d", b"x")), content_type=FORM_TYPE
    )
    assert error_of(refused, 400)["message"] == (
        f"Cannot add a part to upload {upload_id}: its status is 'cancelled', not 'pending'."
    )
    for path, body in (("complete", {"part_ids": [part["id"], second["id"]]}), ("cancel", None)):
        response = await call(client, server, f"/uploads/{upload_id}/{path}", body)
        assert "its status is 'cancelled'" in error_of(response, 400)["message"]
    assert server.files == {}

    for path in ("parts", "complete", "cancel"):
        error = error_of(await call(client, server, f"/uploads/upload_fake_999999/{path}", {}), 404)
        assert error["message"] == "No such Upload object: upload_fake_999999"

    # expiry is a test's decision: time does not pass in the fake server
    other = payload(await call(client, server, "/uploads", spec))["id"]
    assert server.app.state.expire_upload(other).status == "expired"
    assert payload(await call(client, server, "/uploads", spec))["status"] == "pending"
    refused = await call(
        client,
        server,
        f"/uploads/{other}/parts",
        raw=form(("data", "d", b"x")),
        content_type=FORM_TYPE,
    )
    assert "its status is 'expired'" in error_of(refused, 400)["message"]
    with pytest.raises(ValueError, match="not pending"):
        server.app.state.expire_upload(other)


async def test_upload_part_over_64_mib_is_refused(
    server: FakeServer, client: httpcore.AsyncConnectionPool
) -> None:
    spec = {
        "bytes": 64 * MIB + 1,
        "filename": "big.jsonl",
        "mime_type": "text/jsonl",
        "purpose": "fine-tune",
    }
    upload_id = payload(await call(client, server, "/uploads", spec))["id"]
    raw = form(("data", "blob", b"\0" * (64 * MIB + 1)))
    response = await call(
        client, server, f"/uploads/{upload_id}/parts", raw=raw, content_type=FORM_TYPE
    )
    error = error_of(response, 400)
    assert error["message"] == (
        f"The part is too large: {64 * MIB + 1} bytes. A part can be at most 64 MB."
    )
    assert error["param"] == "data"
    assert server.uploads[upload_id].parts == ()


# ------------------------------------------------------------------------------ batches


async def test_batch_lifecycle_runs_the_chat_endpoint(
    server: FakeServer, client: httpcore.AsyncConnectionPool
) -> None:
    broken = chat_line("c", "ignored")
    del broken["body"]["messages"]
    lines = [chat_line("a", "hello there"), chat_line("b", "what now", max_tokens=2), broken]
    file = await upload(client, server, jsonl(*lines))  # seq 1
    created = await create_batch(client, server, file["id"], metadata={"team": "qa"})  # seq 2
    assert created == {
        "id": "batch_fake_000002",
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "model": None,
        "errors": None,
        "input_file_id": "file-fake-000001",
        "completion_window": "24h",
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": EPOCH + 2,
        "in_progress_at": None,
        "expires_at": EPOCH + 2 + 24 * 3600,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "usage": {
            "input_tokens": 0,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 0,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 0,
        },
        "metadata": {"team": "qa"},
    }
    assert server.batches["batch_fake_000002"].status == "validating"
    listed = payload(await call(client, server, "/batches", method="GET"))  # seq 3: no step
    assert listed["data"] == [created]

    in_progress = await step(client, server, "batch_fake_000002")  # seq 4
    assert in_progress == {
        **created,
        "status": "in_progress",
        "model": "gpt-4o-mini",
        "in_progress_at": EPOCH + 4,
        "request_counts": {"total": 3, "completed": 0, "failed": 0},
    }
    finalizing = await step(client, server, "batch_fake_000002")  # seq 5; lines 6, 7, 8
    assert finalizing["status"] == "finalizing"
    assert finalizing["finalizing_at"] == EPOCH + 5
    assert finalizing["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    assert (finalizing["output_file_id"], finalizing["error_file_id"]) == (None, None)
    completed = await step(client, server, "batch_fake_000002")  # seq 9; files 10, 11
    assert completed == {
        **finalizing,
        "status": "completed",
        "completed_at": EPOCH + 9,
        "output_file_id": "file-fake-000010",
        "error_file_id": "file-fake-000011",
    }
    assert await step(client, server, "batch_fake_000002") == completed  # finished: stays

    outputs = await content_lines(client, server, "file-fake-000010")
    assert [line["custom_id"] for line in outputs] == ["a", "b"]
    usage = {"input_tokens": 0, "output_tokens": 0}
    for line, sent, seq in zip(outputs, lines[:2], (6, 7), strict=True):
        assert line["id"] == f"batch_req_fake_{seq:06d}"
        assert line["error"] is None
        assert set(line["response"]) == {"status_code", "request_id", "body"}
        assert line["response"]["status_code"] == 200
        assert line["response"]["request_id"] == f"req_{seq:012x}"
        # exactly what the chat endpoint answers the same body, ids and created aside
        direct = await call(client, server, "/chat/completions", sent["body"])
        expected = payload(direct)
        assert expected["id"] != line["response"]["body"]["id"]
        expected["id"] = f"chatcmpl-fake-{seq:06d}"
        expected["created"] = EPOCH + seq
        assert line["response"]["body"] == expected
        usage["input_tokens"] += expected["usage"]["prompt_tokens"]
        usage["output_tokens"] += expected["usage"]["completion_tokens"]
    assert completed["usage"]["input_tokens"] == usage["input_tokens"]
    assert completed["usage"]["output_tokens"] == usage["output_tokens"]
    assert completed["usage"]["total_tokens"] == sum(usage.values())

    (failure,) = await content_lines(client, server, "file-fake-000011")
    direct = await call(client, server, "/chat/completions", broken["body"])
    assert failure == {
        "id": "batch_req_fake_000008",
        "custom_id": "c",
        "response": {
            "status_code": 400,
            "request_id": "req_000000000008",
            "body": payload(direct),
        },
        "error": None,
    }
    outputs_file = server.files["file-fake-000010"]
    assert (outputs_file.purpose, outputs_file.filename) == (
        "batch_output",
        "batch_fake_000002_output.jsonl",
    )
    assert server.files["file-fake-000011"].filename == "batch_fake_000002_error.jsonl"
    listed = payload(await call(client, server, "/files?purpose=batch_output", method="GET"))
    assert [entry["id"] for entry in listed["data"]] == ["file-fake-000011", "file-fake-000010"]
    # the batch's requests are not HTTP requests: not recorded (only the 3 direct calls are),
    # but they and the two files took sequence numbers: 3 + 2 beyond the recorded requests
    chats = [request for request in server.requests if request.path == "/v1/chat/completions"]
    assert len(chats) == 3
    after = payload(await call(client, server, "/chat/completions", lines[0]["body"]))
    assert after["id"] == f"chatcmpl-fake-{len(server.requests) + 5:06d}"


async def test_embeddings_batch_output_is_the_endpoints_answer(
    server: FakeServer, client: httpcore.AsyncConnectionPool
) -> None:
    lines = [embedding_line("first", "the quick brown fox"), embedding_line("second", "jumps")]
    file = await upload(client, server, jsonl(*lines))
    batch = await create_batch(client, server, file["id"], endpoint="/v1/embeddings")
    for _ in range(3):
        batch = await step(client, server, batch["id"])
    assert batch["status"] == "completed"
    assert batch["error_file_id"] is None
    assert batch["model"] == "text-embedding-3-small"
    assert batch["usage"]["input_tokens"] == 5
    outputs = await content_lines(client, server, batch["output_file_id"])
    for line, sent in zip(outputs, lines, strict=True):
        direct = await call(client, server, "/embeddings", sent["body"])
        assert line["response"]["body"] == payload(direct)  # no ids: exactly the same


async def test_invalid_lines_fail_the_batch(
    server: FakeServer, client: httpcore.AsyncConnectionPool
) -> None:
    content = jsonl(
        chat_line("ok", "fine"),  # 1
        "{not json",  # 2
        {"method": "POST", "url": "/v1/chat/completions", "body": {}},  # 3
        {**chat_line("x", "y"), "url": "/v1/embeddings"},  # 4
        chat_line("ok", "again"),  # 5
        chat_line("s", "streamed", stream=True),  # 6
        {**chat_line("g", "get"), "method": "GET"},  # 7
        {**chat_line("b", "body"), "body": "text"},  # 8
        [1, 2],  # 9
        {**chat_line("m", "other model"), "body": {"model": "gpt-4o", "messages": []}},  # 10
        {**chat_line("n", "number"), "custom_id": 7},  # 11
    )
    file = await upload(client, server, content)
    batch = await create_batch(client, server, file["id"])
    failed = await step(client, server, batch["id"])
    assert failed["status"] == "failed"
    assert failed["failed_at"] == failed["created_at"] + 1
    assert failed["in_progress_at"] is None
    assert failed["errors"]["object"] == "list"
    found = [(error["line"], error["code"], error["param"]) for error in failed["errors"]["data"]]
    assert found == [
        (2, "invalid_json_line", None),
        (3, "missing_required_parameter", "custom_id"),
        (4, "mismatched_endpoint", "url"),
        (5, "duplicate_custom_id", "custom_id"),
        (6, "unsupported_value", "body.stream"),
        (7, "invalid_value", "method"),
        (8, "invalid_type", "body"),
        (9, "invalid_json_line", None),
        (10, "model_mismatch", "body.model"),
        (11, "invalid_type", "custom_id"),
    ]
    for error in failed["errors"]["data"]:
        assert set(error) == {"code", "message", "param", "line"}
    assert failed["errors"]["data"][0]["message"] == "This line is not parseable as valid JSON."
    assert failed["errors"]["data"][1]["message"] == "Missing required parameter: 'custom_id'."
    assert await step(client, server, batch["id"]) == failed
    assert failed["output_file_id"] is None and failed["error_file_id"] is None

    empty = await upload(client, server, b"")
    batch = await create_batch(client, server, empty["id"])
    failed = await step(client, server, batch["id"])
    assert [(error["code"], error["line"]) for error in failed["errors"]["data"]] == [
        ("empty_file", None)
    ]
    # a file deleted before validation
    gone = await upload(client, server, jsonl(chat_line("a", "b")))
    batch = await create_batch(client, server, gone["id"])
    await call(client, server, f"/files/{gone['id']}", method="DELETE")
    failed = await step(client, server, batch["id"])
    assert failed["errors"]["data"][0]["code"] == "file_not_found"


async def test_create_batch_errors(
    server: FakeServer, client: httpcore.AsyncConnectionPool
) -> None:
    batch_file = (await upload(client, server, jsonl(chat_line("a", "b"))))["id"]
    other = (await upload(client, server, b"x", filename="x.txt", purpose="user_data"))["id"]
    base = {
        "input_file_id": batch_file,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    cases: list[tuple[dict[str, Any], int, str | None, str]] = [
        ({"input_file_id": None}, 400, "input_file_id", "Missing required parameter"),
        ({"input_file_id": "file-fake-999999"}, 404, "input_file_id", "No such File object"),
        ({"input_file_id": other}, 400, "input_file_id", "must have purpose 'batch'"),
        (
            {"endpoint": "/v1/images/generations"},
            400,
            "endpoint",
            "Invalid value: '/v1/images/generations'. Supported values are: "
            "'/v1/chat/completions', '/v1/embeddings', '/v1/completions' and '/v1/moderations'.",
        ),
        ({"completion_window": "1h"}, 400, "completion_window", "Supported values are: '24h'"),
        ({"metadata": {"fake_outcome": "exploded"}}, 400, "metadata.fake_outcome", "knows"),
        ({"metadata": {"n": 1}}, 400, "metadata.n", "Invalid type"),
        ({"metadata": {str(i): "v" for i in range(17)}}, 400, "metadata", "too many"),
        (
            {"output_expires_after": {"anchor": "now", "seconds": 3600}},
            400,
            "output_expires_after.anchor",
            "Supported values are: 'created_at'",
        ),
    ]
    for change, status, param, fragment in cases:
        body = {key: value for key, value in {**base, **change}.items() if value is not None}
        error = error_of(await call(client, server, "/batches", body), status)
        assert error["param"] == param, change
        assert fragment in error["message"], (change, error["message"])
    assert server.batches == {}
    for method, path in (
        ("GET", "/batches/batch_fake_999999"),
        ("POST", "/batches/batch_fake_999999/cancel"),
    ):
        error = error_of(await call(client, server, path, method=method), 404)
        assert error["message"] == "No such Batch object: batch_fake_999999"


async def test_cancel_a_batch(server: FakeServer, client: httpcore.AsyncConnectionPool) -> None:
    file = await upload(client, server, jsonl(chat_line("a", "one"), chat_line("b", "two")))

    async def cancel(batch_id: str) -> httpcore.Response:
        return await call(client, server, f"/batches/{batch_id}/cancel")

    # while validating: nothing ran, nothing to show
    early = await create_batch(client, server, file["id"])
    cancelling = payload(await cancel(early["id"]))
    assert cancelling["status"] == "cancelling"
    assert cancelling["cancelling_at"] == EPOCH + seq_of(early["id"]) + 1
    assert payload(await cancel(early["id"])) == cancelling  # again: as it is
    cancelled = await step(client, server, early["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelled_at"] is not None
    assert (cancelled["output_file_id"], cancelled["error_file_id"]) == (None, None)
    assert cancelled["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert (
        error_of(await cancel(early["id"]), 400)["message"]
        == "Cannot cancel a batch with status 'cancelled'."
    )

    # in progress: the requests never run, they go to the error file
    middle = await create_batch(client, server, file["id"])
    await step(client, server, middle["id"])
    assert payload(await cancel(middle["id"]))["status"] == "cancelling"
    cancelled = await step(client, server, middle["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["output_file_id"] is None
    assert cancelled["request_counts"] == {"total": 2, "completed": 0, "failed": 2}
    failures = await content_lines(client, server, cancelled["error_file_id"])
    assert [(line["custom_id"], line["response"], line["error"]["code"]) for line in failures] == [
        ("a", None, "batch_cancelled"),
        ("b", None, "batch_cancelled"),
    ]

    # finalizing: what ran is kept
    late = await create_batch(client, server, file["id"])
    await step(client, server, late["id"])
    await step(client, server, late["id"])
    assert payload(await cancel(late["id"]))["status"] == "cancelling"
    cancelled = await step(client, server, late["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["completed_at"] is None
    assert cancelled["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    outputs = await content_lines(client, server, cancelled["output_file_id"])
    assert [line["response"]["status_code"] for line in outputs] == [200, 200]

    done = await create_batch(client, server, file["id"])
    for _ in range(3):
        await step(client, server, done["id"])
    assert error_of(await cancel(done["id"]), 400)["message"] == (
        "Cannot cancel a batch with status 'completed'."
    )


async def test_fake_outcomes(server: FakeServer, client: httpcore.AsyncConnectionPool) -> None:
    file = await upload(client, server, jsonl(chat_line("a", "one"), chat_line("b", "two")))
    batch = await create_batch(client, server, file["id"], metadata={"fake_outcome": "expired"})
    assert (await step(client, server, batch["id"]))["status"] == "in_progress"
    expired = await step(client, server, batch["id"])
    assert expired["status"] == "expired"
    assert expired["expired_at"] == expired["in_progress_at"] + 1
    assert (expired["finalizing_at"], expired["completed_at"], expired["output_file_id"]) == (
        None,
        None,
        None,
    )
    assert expired["request_counts"] == {"total": 2, "completed": 0, "failed": 2}
    failures = await content_lines(client, server, expired["error_file_id"])
    for line, custom_id in zip(failures, ("a", "b"), strict=True):
        assert line["custom_id"] == custom_id
        assert line["id"].startswith("batch_req_fake_")
        assert line["response"] is None
        assert line["error"] == {
            "code": "batch_expired",
            "message": "This request could not be executed before the completion window expired.",
        }
    assert await step(client, server, batch["id"]) == expired

    failing = await create_batch(client, server, file["id"], metadata={"fake_outcome": "failed"})
    failed = await step(client, server, failing["id"])
    assert failed["status"] == "failed"
    assert [error["code"] for error in failed["errors"]["data"]] == ["fake_outcome"]


async def test_list_batches(server: FakeServer, client: httpcore.AsyncConnectionPool) -> None:
    file = await upload(client, server, jsonl(chat_line("a", "one")))
    ids = [(await create_batch(client, server, file["id"]))["id"] for _ in range(5)]
    await step(client, server, ids[0])
    pages: list[list[str]] = []
    after = ""
    while True:
        page = payload(await call(client, server, f"/batches?limit=2{after}", method="GET"))
        pages.append([batch["id"] for batch in page["data"]])
        assert (page["first_id"], page["last_id"]) == (pages[-1][0], pages[-1][-1])
        if not page["has_more"]:
            break
        after = f"&after={page['last_id']}"
    assert pages == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]
    # listing does not move batches on
    everything = payload(await call(client, server, "/batches", method="GET"))
    assert [batch["status"] for batch in everything["data"]] == ["validating"] * 4 + ["in_progress"]
    assert everything["has_more"] is False
    error = error_of(await call(client, server, "/batches?limit=101", method="GET"), 400)
    assert error["code"] == "integer_above_max_value"


async def test_azure_files_and_batches(client: httpcore.AsyncConnectionPool) -> None:
    version = "2024-10-21"
    async with FakeServer(azure=True, api_key=API_KEY, api_version=version) as server:

        async def azure(method: str, path: str, body: Any = None, **kw: Any) -> httpcore.Response:
            separator = "&" if "?" in path else "?"
            return await call(
                client,
                server,
                f"/openai{path}{separator}api-version={version}",
                body,
                method=method,
                headers={"api-key": API_KEY},
                **kw,
            )

        line: dict[str, Any] = {
            "custom_id": "a",
            "method": "POST",
            "url": "/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        }
        missing = {**line, "custom_id": "b", "body": {**line["body"], "model": "nowhere"}}
        raw = form(("purpose", None, b"batch"), ("file", "in.jsonl", jsonl(line)))
        created = payload(await azure("POST", "/files", raw=raw, content_type=FORM_TYPE))
        assert created["id"] == "file-fake-000001"
        assert (await azure("GET", f"/files/{created['id']}/content")).content == jsonl(line)
        no_version = await call(
            client, server, "/openai/files", method="GET", headers={"api-key": API_KEY}
        )
        assert no_version.status == 404

        body = {
            "input_file_id": created["id"],
            "endpoint": "/chat/completions",
            "completion_window": "24h",
        }
        batch = payload(await azure("POST", "/batches", body))
        assert batch["endpoint"] == "/chat/completions"
        for _ in range(3):
            batch = payload(await azure("GET", f"/batches/{batch['id']}"))
        assert batch["status"] == "completed"
        (output,) = [
            json.loads(text)
            for text in (
                await azure("GET", f"/files/{batch['output_file_id']}/content")
            ).content.splitlines()
        ]
        answer = output["response"]["body"]
        assert answer["object"] == "chat.completion"
        assert "prompt_filter_results" in answer  # it went through the Azure deployment path

        raw = form(("purpose", None, b"batch"), ("file", "in.jsonl", jsonl(missing)))
        other = payload(await azure("POST", "/files", raw=raw, content_type=FORM_TYPE))
        batch = payload(await azure("POST", "/batches", {**body, "input_file_id": other["id"]}))
        for _ in range(3):
            batch = payload(await azure("GET", f"/batches/{batch['id']}"))
        (failure,) = [
            json.loads(text)
            for text in (
                await azure("GET", f"/files/{batch['error_file_id']}/content")
            ).content.splitlines()
        ]
        assert failure["response"]["status_code"] == 404
        assert failure["response"]["body"]["error"]["code"] == "DeploymentNotFound"
        error = error_of(
            await azure("POST", "/batches", {**body, "endpoint": "/v1/chat/completions"}), 400
        )
        assert error["param"] == "endpoint"
