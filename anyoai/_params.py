"""Check an API method's keyword arguments against its TypedDict, before anything is sent.

:class:`ParamSpec` is compiled once per method from the ``...CreateParams`` TypedDict in
:mod:`anyoai.types.params`; calling :meth:`ParamSpec.split` on the arguments returns the JSON body
(``NOT_GIVEN`` values dropped, one-shot iterables turned into lists) and the request options, or
raises :class:`~anyoai.InvalidParameterError` naming the parameter.

The check is shallow where the server's own validation is better placed (the inside of a tool's
JSON Schema) and exact where a mistake is common and costly (a misspelt keyword, ``messages``
given as a string, a message without a ``role``).
"""

from __future__ import annotations

import collections.abc as cabc
import difflib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from ._compat import NotRequired, Required
from ._config import Timeout
from ._exceptions import ConfigurationError, InvalidParameterError
from ._model import NotGiven
from ._request import CallOptions

__all__ = ["ParamSpec"]

#: returns None when the value fits, else what was expected ("a string", ...)
Check = Callable[[Any], str | None]

_OPTION_KEYS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout", "max_retries"})


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _compile(tp: Any) -> tuple[Check, str]:
    """Compile a type annotation into a check; also return a description of the type."""
    origin = typing.get_origin(tp)
    if origin in (Required, NotRequired):
        return _compile(typing.get_args(tp)[0])
    if tp is Any or tp is object:
        return (lambda _v: None), "anything"
    if tp is type(None):
        return (lambda v: None if v is None else "None"), "None"
    if tp is str:
        return (lambda v: None if isinstance(v, str) else "a string"), "a string"
    if tp is bool:
        return (lambda v: None if isinstance(v, bool) else "true or false"), "true or false"
    if tp is int:
        return (
            lambda v: None if isinstance(v, int) and not isinstance(v, bool) else "an integer"
        ), "an integer"
    if tp is float:
        return (lambda v: None if _is_number(v) else "a number"), "a number"
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if all(isinstance(a, str) for a in allowed):
            # an open set in practice: the server knows the newest values, anyoai may not
            return (lambda v: None if isinstance(v, str) else "a string"), "a string"
        text = " or ".join(repr(a) for a in allowed)
        return (lambda v: None if v in allowed else text), text
    if origin in (typing.Union, types.UnionType):
        members = [_compile(arg) for arg in typing.get_args(tp)]
        checks = [check for check, _ in members]
        text = " or ".join(dict.fromkeys(desc for _, desc in members))

        def check_union(value: Any) -> str | None:
            for check in checks:
                if check(value) is None:
                    return None
            return text

        return check_union, text
    if origin is cabc.Callable:
        return (lambda v: None if callable(v) else "a function"), "a function"
    if typing.is_typeddict(tp) or tp in (dict, Mapping) or origin in (dict, cabc.Mapping):
        return (lambda v: None if isinstance(v, Mapping) else "a mapping"), "a mapping"
    if origin in (list, tuple, cabc.Sequence, cabc.Iterable):
        args = typing.get_args(tp)
        item_check, item_desc = _compile(args[0]) if args else ((lambda _v: None), "anything")
        text = f"a list of {_plural(item_desc)}" if args else "a list"

        def check_list(value: Any) -> str | None:
            if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
                return text
            for item in value:
                if item_check(item) is not None:
                    return text
            return None

        return check_list, text
    if isinstance(tp, type):
        name = "a Timeout" if tp is Timeout else f"a {tp.__name__}"
        return (lambda v: None if isinstance(v, tp) else name), name
    raise TypeError(f"anyoai._params cannot check the annotation {tp!r}")  # a bug in anyoai


def _plural(description: str) -> str:
    """``"a string"`` -> ``"strings"``, ``"a list of integers"`` -> ``"lists of integers"``."""
    if description == "true or false":
        return "booleans"
    parts = [part.strip() for part in description.split(" or ")]
    plural = []
    for part in parts:
        for article in ("an ", "a "):
            if part.startswith(article):
                head, _, rest = part[len(article) :].partition(" ")
                part = f"{head}s {rest}".strip()
                break
        plural.append(part)
    return " or ".join(plural)


def _materialise(value: Any) -> Any:
    """Turn a one-shot iterable (a generator) into a list, so it can be checked and re-sent."""
    if isinstance(value, (str, bytes, bytearray, list, tuple, Mapping)) or attrs.has(type(value)):
        return value
    if isinstance(value, cabc.Iterable):
        return list(value)
    return value


@attrs.frozen
class ParamSpec:
    """The compiled check of one API method's parameters."""

    endpoint: str
    required: frozenset[str]
    checks: Mapping[str, tuple[Check, str]]
    extra_checks: Mapping[str, Callable[[str, Any], None]]

    @classmethod
    def compile(
        cls,
        endpoint: str,
        params_type: type,
        *,
        extra_checks: Mapping[str, Callable[[str, Any], None]] | None = None,
    ) -> ParamSpec:
        """Compile the TypedDict *params_type* of the method named *endpoint*."""
        hints = typing.get_type_hints(params_type, include_extras=True)
        checks = {name: _compile(hint) for name, hint in hints.items()}
        # the TypedDicts are total=False with Required[...] markers; read the markers from the
        # resolved hints, since __required_keys__ misses them under postponed annotations
        required = frozenset(n for n, h in hints.items() if typing.get_origin(h) is Required)
        return cls(endpoint, required, checks, dict(extra_checks or {}))

    def _fail(self, param: str, message: str) -> InvalidParameterError:
        return InvalidParameterError(f"{self.endpoint}: {message}", param=param)

    def split(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], CallOptions]:
        """Check *params*; return the JSON body and the request options.

        :raises InvalidParameterError: for an unknown, missing or ill-typed parameter.
        """
        body: dict[str, Any] = {}
        options: dict[str, Any] = {}
        for name, value in params.items():
            if isinstance(value, NotGiven):
                continue
            entry = self.checks.get(name)
            if entry is None:
                close = difflib.get_close_matches(name, list(self.checks), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self._fail(
                    name,
                    f"unexpected parameter {name!r}{hint} "
                    "(pass parameters anyoai does not know yet in extra_body={...})",
                )
            value = _materialise(value)
            expected = entry[0](value)
            if expected is not None:
                raise self._fail(
                    name, f"parameter {name!r} must be {expected}, got {_describe(value)}"
                )
            extra = self.extra_checks.get(name)
            if extra is not None:
                extra(name, value)
            if name in _OPTION_KEYS:
                options[name] = value
            else:
                body[name] = value
        missing = self.required.difference(body)
        if missing:
            names = ", ".join(repr(n) for n in sorted(missing))
            raise self._fail(sorted(missing)[0], f"missing required parameter(s) {names}")
        return body, _options(options, self)


def _options(options: dict[str, Any], spec: ParamSpec) -> CallOptions:
    if not options:
        return _NO_OPTIONS
    timeout = options.get("timeout", NotGiven())
    try:
        coerced = None if isinstance(timeout, NotGiven) else Timeout.coerce(timeout)
    except ConfigurationError as exc:
        raise spec._fail("timeout", str(exc)) from None
    retries = options.get("max_retries")
    if retries is not None and retries < 0:
        raise spec._fail("max_retries", f"max_retries must be >= 0, got {retries!r}")
    return CallOptions(
        extra_headers=options.get("extra_headers"),
        extra_query=options.get("extra_query"),
        extra_body=options.get("extra_body"),
        timeout=coerced,
        max_retries=retries,
    )


_NO_OPTIONS = CallOptions()


def iter_indexed(name: str, values: Any) -> Iterator[tuple[str, Any]]:
    """Yield ``("name[i]", item)`` for each item of a list parameter."""
    for index, item in enumerate(values):
        yield f"{name}[{index}]", item


def check_messages(name: str, messages: Any) -> None:
    """Every message must be a mapping (or a message object) with a string ``role``."""
    if not messages:
        raise InvalidParameterError(f"{name} must not be empty", param=name)
    for where, message in iter_indexed(name, messages):
        role = (
            message.get("role") if isinstance(message, Mapping) else getattr(message, "role", None)
        )
        if not isinstance(message, Mapping) and not attrs.has(type(message)):
            raise InvalidParameterError(
                f"{where} must be a mapping such as {{'role': 'user', 'content': '...'}}, "
                f"got {_describe(message)}",
                param=where,
            )
        if not isinstance(role, str):
            raise InvalidParameterError(
                f"{where} needs a 'role' string ('system', 'developer', 'user', 'assistant' or "
                f"'tool'), got {_describe(role)}",
                param=f"{where}.role",
            )
