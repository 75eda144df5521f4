"""Settings: explicit arguments, then environment variables (official names and seed aliases)."""

from __future__ import annotations

import pytest

from anyoai import ConfigurationError, Timeout
from anyoai._config import DEFAULT_BASE_URL, read_settings

KEY = "sk-test-0123456789abcdefWXYZ"


def test_defaults() -> None:
    s = read_settings({}, {"OPENAI_API_KEY": KEY})
    assert s.api_key is not None and s.api_key.reveal() == KEY
    assert s.base_url == DEFAULT_BASE_URL
    assert s.timeout == Timeout()
    assert s.max_retries == 2
    assert s.max_connections == 1000
    assert s.custom_headers == {}
    assert s.proxy is None


def test_official_names() -> None:
    env = {
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": "http://localhost:8000/v1/",
        "OPENAI_ORG_ID": "org-1",
        "OPENAI_PROJECT_ID": "proj_1",
    }
    s = read_settings({}, env)
    assert s.base_url == "http://localhost:8000/v1"
    assert (s.organization, s.project) == ("org-1", "proj_1")
    assert s.sources["base_url"] == "OPENAI_BASE_URL"


@pytest.mark.parametrize(
    ("var", "value", "field", "expected"),
    [
        ("OPENAI_API_BASE", "https://proxy.example/v1", "base_url", "https://proxy.example/v1"),
        ("OPENAI_API_URL", "https://proxy.example", "base_url", "https://proxy.example/v1"),
        ("OPENAI_API_URL", "https://proxy.example/api", "base_url", "https://proxy.example/api"),
        ("OPENAI_ORGANIZATION", "org-seed", "organization", "org-seed"),
        ("OPENAI_MAX_RETRIES", "5", "max_retries", 5),
        ("OPENAI_MAX_CONNECTIONS", "64", "max_connections", 64),
        ("OPENAI_MAX_KEEPALIVE_CONNECTIONS", "8", "max_keepalive_connections", 8),
        ("OPENAI_KEEPALIVE_EXPIRY", "2.5", "keepalive_expiry", 2.5),
        ("OPENAI_CUSTOM_HEADERS", '{"X-Team": "search"}', "custom_headers", {"X-Team": "search"}),
        ("OPENAI_CUSTOM_HEADERS", "X-A=1, X-B=two", "custom_headers", {"X-A": "1", "X-B": "two"}),
    ],
)
def test_seed_aliases(var: str, value: str, field: str, expected: object) -> None:
    s = read_settings({}, {"OPENAI_API_KEY": KEY, var: value})
    assert getattr(s, field) == expected
    assert s.sources[field] == var


def test_timeout_from_environment_sets_the_total() -> None:
    s = read_settings({}, {"OPENAI_TIMEOUT": "30"})
    assert s.timeout.total == 30.0
    assert s.timeout.connect == 5.0


def test_proxies_json_mapping_of_the_seed_library() -> None:
    s = read_settings({}, {"OPENAI_PROXIES": '{"https://": "http://user:pw@proxy:3128"}'})
    assert s.proxy is not None and s.proxy.reveal() == "http://user:pw@proxy:3128"
    assert "pw" not in repr(s)


def test_explicit_arguments_win_over_the_environment() -> None:
    s = read_settings(
        {"api_key": "sk-explicit-000000000000", "base_url": "http://127.0.0.1:1/v1"},
        {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "http://other/v1"},
    )
    assert s.api_key is not None and s.api_key.reveal() == "sk-explicit-000000000000"
    assert s.base_url == "http://127.0.0.1:1/v1"
    assert s.sources["base_url"] == "base_url"


def test_official_name_wins_over_alias() -> None:
    s = read_settings({}, {"OPENAI_BASE_URL": "http://a/v1", "OPENAI_API_BASE": "http://b/v1"})
    assert s.base_url == "http://a/v1"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("OPENAI_TIMEOUT", "soon"),
        ("OPENAI_TIMEOUT", "-1"),
        ("OPENAI_MAX_RETRIES", "two"),
        ("OPENAI_MAX_RETRIES", "1.5"),
        ("OPENAI_MAX_CONNECTIONS", "0"),
        ("OPENAI_KEEPALIVE_EXPIRY", "nan"),
        ("OPENAI_BASE_URL", "api.openai.com/v1"),
        ("OPENAI_BASE_URL", "ftp://example.com"),
        ("OPENAI_CUSTOM_HEADERS", "{not json"),
        ("OPENAI_CUSTOM_HEADERS", "no-equals-sign"),
        ("OPENAI_PROXIES", "proxy-without-scheme"),
        ("OPENAI_PROXIES", "socks5://proxy:1080"),
    ],
)
def test_malformed_values_name_their_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        read_settings({}, {var: value})
    assert info.value.setting == var
    assert var in str(info.value)


def test_malformed_explicit_argument_names_the_argument() -> None:
    with pytest.raises(ConfigurationError, match="max_retries"):
        read_settings({"max_retries": -1}, {})


def test_key_is_masked_in_repr() -> None:
    s = read_settings({}, {"OPENAI_API_KEY": KEY})
    assert KEY not in repr(s)
    assert "WXYZ" in repr(s)


def test_timeout_coerce() -> None:
    assert Timeout.coerce(10).total == 10.0
    assert Timeout.coerce(None).read is None
    t = Timeout(connect=1, read=2, write=3, pool=4, total=5)
    assert Timeout.coerce(t) is t
    with pytest.raises(ConfigurationError):
        Timeout.coerce("10")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Timeout(read=-1)
