"""Azure OpenAI backends: wire format, deployments, AAD tokens, filters, priority, environment."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator

import anyio
import pytest

import anyoai
from anyoai.testing import FakeServer, Fault

from .helpers import API_KEY, HELLO

pytestmark = pytest.mark.anyio

AZURE_KEY = "azure-key-0123456789abcdef0123456789ab"
API_VERSION = "2024-10-21"
DEPLOYMENTS = {
    "my-4o-mini": "gpt-4o-mini",
    "gpt-35-turbo": "gpt-3.5-turbo",
    "my-embed": "text-embedding-3-small",
}


@pytest.fixture
async def azure() -> AsyncIterator[FakeServer]:
    async with FakeServer(
        azure=True, api_key=AZURE_KEY, api_version=API_VERSION, deployments=DEPLOYMENTS
    ) as server:
        yield server


def azure_spec(server: FakeServer, **kwargs: object) -> anyoai.AzureBackend:
    params: dict[str, object] = {
        "name": "az",
        "endpoint": server.endpoint,
        "api_version": API_VERSION,
        "api_key": AZURE_KEY,
        "deployments": {"gpt-4o-mini": "my-4o-mini", "text-embedding-3-small": "my-embed"},
    }
    params.update(kwargs)
    return anyoai.AzureBackend(**params)  # type: ignore[arg-type]


async def test_paths_headers_and_api_version_are_azures(azure: FakeServer) -> None:
    async with anyoai.open_pool(backends=[azure_spec(azure)]) as pool:
        chat = await pool.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        await pool.embeddings.create(model="text-embedding-3-small", input="x")
        await pool.models.list()
    chat_request, embed_request, models_request = azure.requests
    assert chat_request.path == "/openai/deployments/my-4o-mini/chat/completions"
    assert embed_request.path == "/openai/deployments/my-embed/embeddings"
    assert models_request.path == "/openai/models"
    for request in azure.requests:
        assert request.query == {"api-version": API_VERSION}
        assert request.headers["api-key"] == AZURE_KEY
        assert "authorization" not in request.headers
    assert chat_request.json["model"] == "gpt-4o-mini"  # the body keeps the model, as the SDK
    # Azure's extra fields are parsed, typed
    assert chat.prompt_filter_results is not None
    assert chat.prompt_filter_results[0].content_filter_results is not None
    filters = chat.choices[0].content_filter_results
    assert filters is not None and filters["hate"].severity == "safe"
    assert chat.request_id is not None  # apim-request-id or x-request-id


async def test_azure_stream_with_its_empty_first_chunk(azure: FakeServer) -> None:
    async with anyoai.open_pool(backends=[azure_spec(azure)]) as pool:
        plain = await pool.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        stream = await pool.chat.completions.create(
            model="gpt-4o-mini",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            chunks = [c async for c in stream]
    assert chunks[0].id == "" and chunks[0].choices == []
    assert chunks[0].prompt_filter_results is not None
    final = stream.accumulator.snapshot()
    assert final.text == plain.text
    assert final.prompt_filter_results is not None
    assert final.usage is not None


async def test_deployment_mapping_defaults_extension_and_replacement(azure: FakeServer) -> None:
    async with anyoai.open_pool(backends=[azure_spec(azure)]) as pool:
        # the seed library's default mapping still applies: gpt-3.5-turbo -> gpt-35-turbo
        result = await pool.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)
        assert result.model == "gpt-3.5-turbo"
        # a deployment may be named directly
        await pool.chat.completions.create(model="my-4o-mini", messages=HELLO)
        assert azure.requests[-1].path == "/openai/deployments/my-4o-mini/chat/completions"
        with pytest.raises(anyoai.InvalidParameterError) as info:
            await pool.chat.completions.create(model="gpt-5", messages=HELLO)
        assert info.value.param == "model"
        assert "'gpt-5'" in str(info.value) and "'az'" in str(info.value)
    assert azure.requests[0].path == "/openai/deployments/gpt-35-turbo/chat/completions"
    replaced = azure_spec(
        azure, deployments={"gpt-4o-mini": "my-4o-mini"}, replace_deployments=True
    )
    async with anyoai.open_pool(backends=[replaced]) as pool:
        with pytest.raises(anyoai.InvalidParameterError):
            await pool.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)
    assert anyoai.DEFAULT_AZURE_DEPLOYMENTS["gpt-3.5-turbo-16k"] == "gpt-35-turbo-16k"


async def test_models_listed_as_same_named_deployments() -> None:
    async with FakeServer(
        azure=True, api_key=AZURE_KEY, deployments={"gpt-4o": "gpt-4o"}
    ) as server:
        spec = anyoai.AzureBackend(endpoint=server.endpoint, api_key=AZURE_KEY, models=["gpt-4o"])
        async with anyoai.open_pool(backends=[spec]) as pool:
            assert (await pool.chat.completions.create(model="gpt-4o", messages=HELLO)).text
    assert server.requests[-1].path == "/openai/deployments/gpt-4o/chat/completions"


def jwt(expires_in: float) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'exp': time.time() + expires_in})}.sig"


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_ad_token_provider_is_called_once_per_token_lifetime(kind: str) -> None:
    calls: list[str] = []

    def make() -> str:
        token = jwt(expires_in=1.0)
        calls.append(token)
        return token

    async def make_async() -> str:
        return make()

    async with FakeServer(azure=True, ad_token=None, deployments=DEPLOYMENTS) as server:
        spec = anyoai.AzureBackend(
            endpoint=server.endpoint,
            api_version=API_VERSION,
            azure_ad_token_provider=make if kind == "sync" else make_async,
            deployments={"gpt-4o-mini": "my-4o-mini"},
        )
        async with anyoai.open_pool(backends=[spec]) as pool:

            async def one() -> None:
                await pool.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

            async with anyio.create_task_group() as tg:
                for _ in range(25):
                    tg.start_soon(one)
            assert len(calls) == 1  # 25 concurrent requests, one token
            await one()
            assert len(calls) == 1
            await anyio.sleep(1.0)  # the token's lifetime is over: the next request refreshes it
            await one()
            assert len(calls) == 2
    tokens = [r.headers["authorization"] for r in server.requests]
    assert tokens[0] == f"Bearer {calls[0]}"
    assert tokens[-1] == f"Bearer {calls[1]}"
    assert "api-key" not in server.requests[0].headers


async def test_ad_token_is_checked_by_the_azure_server() -> None:
    token = jwt(expires_in=3600)
    async with FakeServer(azure=True, ad_token=token, deployments=DEPLOYMENTS) as server:
        good = anyoai.AzureBackend(
            endpoint=server.endpoint, azure_ad_token=token, models=["my-4o-mini"]
        )
        bad = anyoai.AzureBackend(
            endpoint=server.endpoint, azure_ad_token=jwt(60), models=["my-4o-mini"]
        )
        async with anyoai.open_pool(backends=[good]) as pool:
            assert (await pool.chat.completions.create(model="my-4o-mini", messages=HELLO)).text
        async with anyoai.open_pool(backends=[bad]) as pool:
            with pytest.raises(anyoai.AuthenticationError):
                await pool.chat.completions.create(model="my-4o-mini", messages=HELLO)


async def test_azure_needs_exactly_one_credential(azure: FakeServer) -> None:
    with pytest.raises(anyoai.ConfigurationError, match="exactly one"):
        async with anyoai.open_pool(
            backends=[azure_spec(azure, azure_ad_token="t" * 30)]  # and api_key
        ):
            pass


async def test_wrong_key_and_unknown_deployment(azure: FakeServer) -> None:
    async with anyoai.open_pool(
        backends=[azure_spec(azure, api_key="wrong-key-0123456789abcdef")]
    ) as pool:
        with pytest.raises(anyoai.AuthenticationError):
            await pool.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    spec = azure_spec(azure, deployments={"gpt-4o-mini": "not-deployed"})
    async with anyoai.open_pool(backends=[spec]) as pool:
        with pytest.raises(anyoai.NotFoundError) as info:
            await pool.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert info.value.code == "DeploymentNotFound"


async def test_content_filter_on_the_prompt_and_on_the_answer(azure: FakeServer) -> None:
    async with anyoai.open_pool(backends=[azure_spec(azure)]) as pool:
        with pytest.raises(anyoai.ContentFilterError) as info:
            await pool.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "forbidden words"}]
            )
        assert info.value.status_code == 400
        assert isinstance(info.value, anyoai.BadRequestError)
        assert info.value.result is None

        with pytest.raises(anyoai.ContentFilterError) as info:
            await pool.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "a cutoff answer"}]
            )
        partial = info.value.result
        assert partial is not None
        assert partial.choices[0].finish_reason == "content_filter"
        filters = partial.choices[0].content_filter_results
        assert filters is not None and filters["violence"].filtered is True

        stream = await pool.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "a cutoff answer"}],
            stream=True,
        )
        with pytest.raises(anyoai.ContentFilterError) as info:
            await stream.get_final_completion()
        assert info.value.result.text  # the partial text is there
        assert pool.statistics().in_use == 0


async def test_content_filter_can_be_returned_instead_of_raised(azure: FakeServer) -> None:
    async with anyoai.open_pool(
        backends=[azure_spec(azure)], raise_on_content_filter=False
    ) as pool:
        result = await pool.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "a cutoff answer"}]
        )
    assert result.choices[0].finish_reason == "content_filter"


async def test_prioritize_azure_uses_openai_only_when_azure_is_down(azure: FakeServer) -> None:
    failover = anyoai.FailoverPolicy(cooldown=5)
    async with FakeServer(api_key=API_KEY) as openai_server:
        backends = [
            anyoai.OpenAIBackend(name="openai", base_url=openai_server.url, api_key=API_KEY),
            azure_spec(azure),
        ]
        async with anyoai.open_pool(
            backends=backends, prioritize="azure", failover=failover
        ) as pool:
            for _ in range(5):
                result = await pool.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
                assert result.backend == "az"
            await azure.go_down()
            for _ in range(5):
                result = await pool.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
                assert result.backend == "openai"
            # a model only OpenAI serves goes there even while Azure is up
            await azure.come_up()
            assert (
                await pool.chat.completions.create(model="gpt-5", messages=HELLO)
            ).backend == "openai"
        assert len(openai_server.requests) == 6


async def test_openai_azure_and_a_local_server_in_one_pool(azure: FakeServer) -> None:
    async with FakeServer(api_key=API_KEY) as openai_server, FakeServer() as local:
        backends = [
            # an OpenAI backend serves any model unless told otherwise
            anyoai.OpenAIBackend(
                base_url=openai_server.url, api_key=API_KEY, exclude_models=["llama-3"]
            ),
            azure_spec(azure),
            anyoai.CompatibleBackend(name="local", base_url=local.url, models=["llama-3"]),
        ]
        async with anyoai.open_pool(backends=backends) as pool:
            assert [s.name for s in pool.backends] == ["openai", "az", "local"]
            local_result = await pool.chat.completions.create(model="llama-3", messages=HELLO)
            assert local_result.backend == "local"
            assert "authorization" not in local.requests[-1].headers  # no key, none sent
            mixed = {
                (await pool.chat.completions.create(model="gpt-4o-mini", messages=HELLO)).backend
                for _ in range(4)
            }
            assert mixed == {"openai", "az"}


async def test_backends_from_the_environment(
    azure: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeServer(api_key=API_KEY) as openai_server:
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", openai_server.url)
        monkeypatch.setenv("AZURE_OPENAI_API_BASE", azure.endpoint)  # the seed library's name
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
        monkeypatch.setenv("AZURE_OPENAI_API_VERSION", API_VERSION)
        monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENTS", "gpt-4o-mini=my-4o-mini")
        async with anyoai.open_pool() as pool:
            assert [s.name for s in pool.backends] == ["default", "az"]
            result = await pool["az"].chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            assert result.backend == "az"
            assert (await pool[0].models.list()).backend == "default"
            assert AZURE_KEY not in repr(pool)
    assert azure.requests[-1].path == "/openai/deployments/my-4o-mini/chat/completions"


async def test_azure_endpoint_without_credentials_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://x.openai.azure.com")
    with pytest.raises(anyoai.ConfigurationError) as info:
        async with anyoai.open_pool():
            pass
    assert info.value.setting == "AZURE_OPENAI_API_KEY"


async def test_azure_429_fails_over_to_another_azure_resource(azure: FakeServer) -> None:
    async with FakeServer(
        azure=True, api_key=AZURE_KEY, api_version=API_VERSION, deployments=DEPLOYMENTS
    ) as second:
        backends = [azure_spec(azure), azure_spec(second, name="az-2")]
        azure.add_fault(Fault(status=429, retry_after=30))
        async with anyoai.open_pool(backends=backends) as pool:
            result = await pool.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            assert result.backend == "az-2"
            assert result.attempts == 2
            status = {s.name: s for s in pool.backends}
            assert status["az"].state == "cooldown"
            assert status["az"].cooldown_remaining > 25
