"""Request validation for the fake server's endpoints: the API's 400 errors for JSON bodies.

Each helper reads one parameter of a JSON body (or builds the error for one) and raises
:class:`~anyoai.testing._framework.EndpointError` with the message, ``param`` and ``code`` the
OpenAI API uses: ``missing_required_parameter``, ``invalid_type``, ``invalid_value``,
``integer_below_min_value``, ``integer_above_max_value``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._framework import EndpointError, describe

__all__ = [
    "invalid_type",
    "invalid_value",
    "is_token_list",
    "missing",
    "optional_bool",
    "optional_int",
    "optional_str",
    "quoted_choices",
    "require",
    "require_str",
    "wants_usage",
    "within_bounds",
]


def missing(param: str) -> EndpointError:
    """The 400 ``missing_required_parameter`` for *param*."""
    return EndpointError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def invalid_type(param: str, expected: str, value: Any) -> EndpointError:
    """The 400 ``invalid_type``: *param* should be *expected* but is *value*."""
    return EndpointError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {describe(value)} instead.",
        param=param,
        code="invalid_type",
    )


def invalid_value(param: str, message: str) -> EndpointError:
    """The 400 ``invalid_value`` for *param*, with *message*."""
    return EndpointError(400, message, param=param, code="invalid_value")


def require(body: Mapping[str, Any], name: str) -> Any:
    """The parameter *name* of *body*; missing (or ``null``) is a 400."""
    value = body.get(name)
    if value is None:
        raise missing(name)
    return value


def require_str(body: Mapping[str, Any], name: str) -> str:
    """The required string parameter *name*."""
    value = require(body, name)
    if not isinstance(value, str):
        raise invalid_type(name, "a string", value)
    return value


def optional_str(body: Mapping[str, Any], name: str) -> str | None:
    """The string parameter *name*, or ``None`` when not given."""
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid_type(name, "a string", value)
    return value


def optional_int(
    body: Mapping[str, Any], name: str, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    """The integer parameter *name* within *minimum* and *maximum*, or ``None``."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(name, "an integer", value)
    return within_bounds(name, value, minimum, maximum)


def within_bounds(name: str, value: int, minimum: int | None, maximum: int | None) -> int:
    """*value* of the integer parameter *name*, if within *minimum* and *maximum* (400 if not;
    a ``None`` bound is no bound)."""
    if minimum is not None and value < minimum:
        raise EndpointError(
            400,
            f"Invalid '{name}': integer below minimum value. Expected a value >= {minimum}, "
            f"but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    if maximum is not None and value > maximum:
        raise EndpointError(
            400,
            f"Invalid '{name}': integer above maximum value. Expected a value <= {maximum}, "
            f"but got {value} instead.",
            param=name,
            code="integer_above_max_value",
        )
    return value


def quoted_choices(values: Iterable[str]) -> str:
    """``'a', 'b' and 'c'``: the values an error message lists as supported."""
    quoted = [f"'{value}'" for value in values]
    if len(quoted) < 2:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def optional_bool(body: Mapping[str, Any], name: str) -> bool:
    """The boolean parameter *name*; not given is ``False``."""
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid_type(name, "a boolean", value)
    return value


def wants_usage(body: Mapping[str, Any], stream: bool) -> bool:
    """Whether ``stream_options.include_usage`` asks for a usage chunk (only with *stream*)."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not stream:
        raise EndpointError(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    if not isinstance(options, dict):
        raise invalid_type("stream_options", "an object", options)
    return options.get("include_usage") is True


def is_token_list(value: Any) -> bool:
    """Whether *value* is a non-empty list of token ids (integers, not booleans)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, int) and not isinstance(item, bool) for item in value)
    )
