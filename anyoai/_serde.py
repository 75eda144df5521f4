"""The one cattrs converter: JSON bytes to attrs models, and attrs models back to JSON.

Its rules, compiled once per class by hook factories:

- field names are the JSON keys, with a trailing underscore where the key is a Python builtin or
  keyword (``object_`` <-> ``"object"``); the rename happens here, not in the models;
- unknown keys are ignored (the raw dict stays on the result), so new API fields never break;
- primitives are checked, not coerced: a string where a number belongs is an error;
- a union of attrs classes told apart by a ``type`` tag dispatches on the tag, and an unknown tag
  becomes the union's ``Unknown...`` member carrying the raw dict;
- other unions (``str | list[Part] | None``) dispatch on the JSON kind of the value;
- embedding vectors arrive as JSON arrays or base64 float32 and leave as lists of floats;
- on output, ``None`` and ``NOT_GIVEN`` fields are omitted.

Any failure to structure raises :class:`~anyoai.ResponseValidationError` with the JSON path.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import sys
import types
import typing
from array import array
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.cols import list_structure_factory
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.v import format_exception

from ._exceptions import ResponseValidationError
from ._model import EmbeddingVector, NotGiven, UnknownVariant

__all__ = ["converter", "decode_json", "encode_json", "structure", "structure_value", "unstructure"]

T = TypeVar("T")


# -- primitives: checked, never coerced ---------------------------------------------------------


def _member(value: Any, cls: type) -> Any:
    """The member of the enum *cls* (a ``str`` or ``int`` one) whose value is *value*."""
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in cls)  # type: ignore[attr-defined]
        raise ValueError(f"expected one of {allowed}, got {value!r}") from None


def _structure_str(value: Any, cls: type) -> str:
    if type(value) is str and cls is str:  # the common case, first
        return value
    if isinstance(value, str):
        # str enums land here too (str is before Enum in their MRO)
        return _member(value, cls) if issubclass(cls, enum.Enum) else value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _structure_int(value: Any, cls: type) -> int:
    if type(value) is int and cls is int:  # the common case, first
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _member(value, cls) if issubclass(cls, enum.Enum) else value
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected true or false, got {type(value).__name__}")


def _structure_vector(value: Any, _: type) -> list[float]:
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"embedding is not valid base64: {exc}") from None
        if len(raw) % 4:
            raise ValueError("base64 embedding length is not a multiple of 4 bytes (float32)")
        floats = array("f", raw)
        if sys.byteorder == "big":  # pragma: no cover - the wire format is little-endian
            floats.byteswap()
        return floats.tolist()
    if isinstance(value, list):
        array("d", value)  # checks every item is a number, at C speed; raises TypeError if not
        if any(isinstance(item, bool) for item in value):
            raise TypeError("expected numbers, got a boolean")
        return value
    raise TypeError(f"expected a list of numbers or a base64 string, got {type(value).__name__}")


# -- hook factories -----------------------------------------------------------------------------


def _json_key(name: str) -> str:
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


def _renames(cls: type) -> dict[str, Any]:
    return {
        a.name: override(rename=_json_key(a.name))
        for a in attrs.fields(cls)
        if a.init and _json_key(a.name) != a.name
    }


def _only(
    kind: type, expected: str, inner: Callable[[Any, Any], Any], tp: Any
) -> Callable[[Any, Any], Any]:
    """*inner* for values of the JSON *kind* only: cattrs would take a string or a dict as a
    list, or any object with the right attributes as a mapping."""

    def structure_only(value: Any, _: Any) -> Any:
        if not isinstance(value, kind):
            raise TypeError(f"expected {expected}, got {type(value).__name__}")
        return inner(value, tp)

    return structure_only


def _make_structure(conv: cattrs.Converter) -> Callable[[type], Callable[[Any, type], Any]]:
    def factory(cls: type) -> Callable[[Any, type], Any]:
        inner: Callable[[Any, Any], Any] = make_dict_structure_fn(cls, conv, **_renames(cls))
        return _only(Mapping, f"a JSON object for {cls.__name__}", inner, cls)

    return factory


def _make_unstructure(conv: cattrs.Converter) -> Callable[[type], Callable[[Any], Any]]:
    def factory(cls: type) -> Callable[[Any], Any]:
        inner: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(
            cls, conv, **_renames(cls)
        )

        def unstructure_attrs(obj: Any) -> dict[str, Any]:
            return {
                key: value
                for key, value in inner(obj).items()
                if value is not None and not isinstance(value, NotGiven)
            }

        return unstructure_attrs

    return factory


def _union_members(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return ()


def _tag_of(cls: type) -> str | None:
    """The ``type`` tag of an attrs class: its field ``type: Literal["x"]`` with default ``"x"``."""
    if not attrs.has(cls) or issubclass(cls, UnknownVariant):
        return None
    field = attrs.fields_dict(cls).get("type")
    if field is None or not isinstance(field.default, str):
        return None
    return field.default


def _is_tagged_union(tp: Any) -> bool:
    members = _union_members(tp)
    unknown = [m for m in members if isinstance(m, type) and issubclass(m, UnknownVariant)]
    return (
        bool(members)
        and len(unknown) == 1
        and all(_tag_of(m) is not None for m in members if m not in unknown)
    )


def _make_tagged_union(conv: cattrs.Converter) -> Callable[[Any], Callable[[Any, Any], Any]]:
    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        members = _union_members(tp)
        unknown = next(m for m in members if issubclass(m, UnknownVariant))
        dispatch = {
            _tag_of(m): (m, conv.get_structure_hook(m)) for m in members if m is not unknown
        }

        def structure_tagged(value: Any, _: Any) -> Any:
            if not isinstance(value, Mapping):
                raise TypeError(f"expected a JSON object, got {type(value).__name__}")
            tag = value.get("type")
            found = dispatch.get(tag)
            if found is None:
                return unknown(type=str(tag), raw=dict(value))
            cls, hook = found
            return hook(value, cls)

        return structure_tagged

    return factory


def _json_kind(tp: Any) -> tuple[type, ...]:
    """The JSON value kinds (as Python types) that a member type of a union accepts."""
    origin = typing.get_origin(tp) or tp
    if tp is type(None):
        return (type(None),)
    if tp is bool:
        return (bool,)
    if tp in (int, float):
        return (int, float)
    if tp is str or origin is typing.Literal:
        return (str,)
    if origin in (list, tuple) or tp is EmbeddingVector:
        return (list,)
    if origin in (dict, Mapping) or attrs.has(origin) or _is_tagged_union(tp):
        return (dict,)
    return ()


def _is_kind_union(tp: Any) -> bool:
    members = _union_members(tp)
    if not members or _is_tagged_union(tp):
        return False
    # Optional[X] with a single non-None member is cattrs' own business
    non_none = [m for m in members if m is not type(None)]
    if len(non_none) < 2:
        return False
    kinds = [_json_kind(m) for m in members]
    return all(kinds) and len({k for ks in kinds for k in ks}) == sum(len(ks) for ks in kinds)


def _make_kind_union(conv: cattrs.Converter) -> Callable[[Any], Callable[[Any, Any], Any]]:
    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        dispatch: dict[type, tuple[Any, Callable[[Any, Any], Any]]] = {}
        for member in _union_members(tp):
            for kind in _json_kind(member):
                dispatch[kind] = (member, conv.get_structure_hook(member))
        expected = " or ".join(sorted(k.__name__ for k in dispatch))

        def structure_by_kind(value: Any, _: Any) -> Any:
            found = dispatch.get(type(value))
            if found is None:
                raise TypeError(f"expected {expected}, got {type(value).__name__}")
            member, hook = found
            return hook(value, member)

        return structure_by_kind

    return factory


def _is_list(tp: Any) -> bool:
    return typing.get_origin(tp) is list


def _make_list(conv: cattrs.Converter) -> Callable[[Any], Callable[[Any, Any], Any]]:
    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        return _only(list, "a list", list_structure_factory(tp, conv), tp)

    return factory


def _add_note(exc: BaseException, note: str) -> None:
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:  # pragma: no cover - Python 3.10: the exceptiongroup backport reads __notes__ too
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]


def _is_str_dict(tp: Any) -> bool:
    return typing.get_origin(tp) in (dict, Mapping) and typing.get_args(tp)[:1] == (str,)


def _make_str_dict(conv: cattrs.Converter) -> Callable[[Any], Callable[[Any, Any], Any]]:
    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        value_type = typing.get_args(tp)[1]
        value_hook = conv.get_structure_hook(value_type)

        def structure_dict(value: Any, _: Any) -> Any:
            # strict-mode JSON Schema has no open objects: anyoai describes dict[str, X] as a
            # list of {"key", "value"} pairs (see _schema), and that form comes back here
            if isinstance(value, list) and all(
                isinstance(p, Mapping) and set(p) == {"key", "value"} for p in value
            ):
                value = {p["key"]: p["value"] for p in value}
            if not isinstance(value, Mapping):
                raise TypeError(f"expected a JSON object, got {type(value).__name__}")
            out = {}
            errors: list[Exception] = []
            for key, item in value.items():
                try:
                    out[_structure_str(key, str)] = value_hook(item, value_type)
                except Exception as exc:
                    # the note cattrs' own mapping hooks leave: transform_error reads the path
                    note = f"Structuring mapping value @ key {key!r}"
                    _add_note(exc, IterableValidationNote(note, key, value_type))
                    errors.append(exc)
            if errors:
                raise IterableValidationError(f"While structuring {tp!r}", errors, tp)
            return out

        return structure_dict

    return factory


def make_converter(*, detailed: bool = True) -> cattrs.Converter:
    """Build a converter: at import, :data:`converter` and its fast twin (``detailed=False``:
    the same hooks, without cattrs' per-field error collection)."""
    conv = cattrs.Converter(detailed_validation=detailed, forbid_extra_keys=False)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(EmbeddingVector, _structure_vector)
    conv.register_structure_hook_factory(_is_list, _make_list(conv))
    conv.register_structure_hook_factory(_is_str_dict, _make_str_dict(conv))
    conv.register_structure_hook_factory(_is_tagged_union, _make_tagged_union(conv))
    conv.register_structure_hook_factory(_is_kind_union, _make_kind_union(conv))
    conv.register_structure_hook_factory(attrs.has, _make_structure(conv))
    conv.register_unstructure_hook_factory(attrs.has, _make_unstructure(conv))
    conv.register_unstructure_hook_func(
        lambda cls: isinstance(cls, type) and issubclass(cls, UnknownVariant),
        lambda obj: dict(obj.raw),
    )
    # a model sent back in another shape (_model.SentBack): registered last, so it wins
    conv.register_unstructure_hook_func(
        lambda cls: isinstance(cls, type) and hasattr(cls, "_as_param"),
        lambda obj: obj._as_param(conv.unstructure),
    )
    return conv


#: The converter every part of anyoai uses: its errors name the JSON path of a failure.
converter = make_converter()
#: The same conversions, a third faster: tried first by :func:`structure_value`, which asks
#: :data:`converter` only to explain a failure.
_fast = make_converter(detailed=False)


def _format_exception(exc: BaseException, tp: Any) -> str:
    # our own hooks say precisely what they expected; cattrs' generic text says less
    if isinstance(exc, (TypeError, ValueError)) and str(exc).startswith(("expected", "embedding")):
        return str(exc)
    return format_exception(exc, tp)


def _path_of(exc: BaseException) -> tuple[str, str]:
    """The first failure inside a cattrs validation error, as ``(message, json_path)``."""
    messages = cattrs.transform_error(exc, path="$", format_exception=_format_exception)
    first = messages[0] if messages else str(exc)
    message, _, path = first.rpartition(" @ ")
    if not message:
        return first, "$"
    for attr_name, key in (("object_", "object"),):
        path = path.replace(f".{attr_name}", f".{key}")
    return message, path


def structure_value(data: Any, cls: type[T]) -> T:
    """Structure decoded JSON *data* into *cls*.

    :raises ResponseValidationError: if *data* does not fit, naming the JSON path.
    """
    try:
        return _fast.structure(data, cls)
    except Exception:  # the detailed converter below says what is wrong
        pass
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, cattrs.StructureHandlerNotFoundError) as exc:
        message, path = _path_of(exc)
        raise ResponseValidationError(
            f"the response does not fit {cls.__name__}: {message} at {path}", path=path, body=data
        ) from exc
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ResponseValidationError(
            f"the response does not fit {cls.__name__}: {exc}", path="$", body=data
        ) from exc


def decode_json(body: bytes) -> Any:
    """Decode a JSON body.

    :raises ResponseValidationError: if it is not valid JSON.
    """
    try:
        return json.loads(body)
    except ValueError as exc:
        snippet = body[:200].decode("utf-8", "replace")
        raise ResponseValidationError(
            f"the response is not valid JSON ({exc}): {snippet!r}", body=snippet
        ) from None


def structure(body: bytes, cls: type[T]) -> tuple[T, Any]:
    """Decode a JSON *body* and structure it into *cls*; return ``(model, decoded_dict)``."""
    data = decode_json(body)
    return structure_value(data, cls), data


def unstructure(obj: Any) -> Any:
    """Turn an attrs model back into JSON-ready data, omitting ``None`` fields."""
    return converter.unstructure(obj)


def _json_default(obj: Any) -> Any:
    if attrs.has(type(obj)):
        return converter.unstructure(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"cannot send a {type(obj).__name__} as JSON")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default)


def encode_json(data: Any) -> bytes:
    """Encode *data* as compact UTF-8 JSON; attrs models inside it are unstructured on the way."""
    return _ENCODER.encode(data).encode("utf-8")
