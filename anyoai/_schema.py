"""JSON Schema from attrs classes and typed functions, for tools and structured outputs.

:func:`json_schema` describes an attrs class (or a function's parameters) in the subset of JSON
Schema that OpenAI's **strict mode** accepts, unless ``strict=False``:

- every object has ``additionalProperties: false`` and lists every property as required;
- an optional value (``X | None``) is a union with null: ``{"anyOf": [X, {"type": "null"}]}``;
- a field's default is stated in its description (strict mode refuses the ``default`` keyword;
  with ``strict=False`` it is a ``default`` keyword, and such fields are not required);
- nested attrs classes go to ``$defs`` and are referred to with ``$ref`` (recursion works);
- ``dict[str, X]`` cannot be an open object in strict mode: it is sent as an array of
  ``{"key", "value"}`` pairs, and :func:`parse_arguments` turns it back into a dict
  (``strict=False`` uses ``additionalProperties: X``).

Supported: ``str``, ``int``, ``float``, ``bool``, ``None``, ``Literal[...]``, ``Enum`` (of str
or int values), ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]``, unions and ``Optional``,
attrs classes. Anything else (``set``, ``bytes``, ``datetime``, ``Any``, a fixed-length tuple,
a plain class...) raises :class:`SchemaError` naming the type and where it was found.

Descriptions come from the class or function docstring (its first paragraph) and from field
metadata (``attrs.field(metadata={"description": "..."})``) or ``:param name:`` lines of a
function's docstring.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ._exceptions import SchemaError

__all__ = [
    "arguments_class",
    "description_of",
    "json_schema",
    "name_of",
    "tool",
]


_PARAM_DOC = re.compile(r"^\s*:param\s+(?:[^:\s]+\s+)?(\w+):\s*(.+?)\s*$")


def _doc_summary(obj: Any) -> str | None:
    doc = inspect.getdoc(obj)
    if not doc:
        return None
    paragraph = doc.split("\n\n", 1)[0].strip()
    return " ".join(line.strip() for line in paragraph.splitlines()) or None


def _param_docs(function: Callable[..., Any]) -> dict[str, str]:
    doc = inspect.getdoc(function) or ""
    found = {}
    for line in doc.splitlines():
        match = _PARAM_DOC.match(line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def name_of(target: Any) -> str:
    """The tool name of an attrs class or function: its ``__name__``."""
    return str(getattr(target, "__name__", type(target).__name__))


def description_of(target: Any) -> str | None:
    """The first paragraph of the docstring of an attrs class or function."""
    if attrs.has(target) and target.__doc__ and target.__doc__.startswith(f"{target.__name__}("):
        return None  # attrs' generated placeholder, not a real docstring
    return _doc_summary(target)


class _Builder:
    """Builds one schema; collects the ``$defs`` of the attrs classes met on the way."""

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.defs: dict[str, dict[str, Any]] = {}
        self._names: dict[type, str] = {}

    def ref(self, cls: type, where: str) -> dict[str, Any]:
        if cls not in self._names:
            name = cls.__name__
            if name in self.defs or name in self._names.values():
                name = f"{cls.__module__.replace('.', '_')}_{name}"
            self._names[cls] = name
            self.defs[name] = {}  # a placeholder first: a recursive class refers to itself
            self.defs[name] = self.object_schema(cls, where)
        return {"$ref": f"#/$defs/{self._names[cls]}"}

    def object_schema(self, cls: type, where: str) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in attrs.fields(cls):
            if not field.init or field.name.startswith("_"):
                continue
            key = field.alias or field.name
            schema = self.schema(hints.get(field.name, Any), f"{where}.{key}")
            description = field.metadata.get("description")
            default = _default_of(field)
            self._describe(schema, description, default)
            properties[key] = schema
            if self.strict or default is attrs.NOTHING:
                required.append(key)
        out: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
        summary = description_of(cls)
        if summary:
            out["description"] = summary
        if self.strict:
            out["additionalProperties"] = False
        return out

    def _describe(self, schema: dict[str, Any], description: str | None, default: Any) -> None:
        notes = [description] if description else []
        if default is not attrs.NOTHING:
            if self.strict:
                notes.append(f"Default: {_show(default)}.")
            else:
                schema["default"] = _jsonable(default)
        if notes:
            schema["description"] = " ".join(notes)

    def schema(self, tp: Any, where: str) -> dict[str, Any]:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if tp is str:
            return {"type": "string"}
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return {"type": "integer"}
        if tp is float:
            return {"type": "number"}
        if tp is type(None):
            return {"type": "null"}
        if origin is typing.Literal:
            return _enum_schema(list(args), where)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return _enum_schema([member.value for member in tp], where)
        if origin in (typing.Union, types.UnionType):
            return {"anyOf": [self.schema(arg, where) for arg in args]}
        if origin in (list, Sequence, typing.Sequence):
            (item,) = args or (Any,)
            return {"type": "array", "items": self.schema(item, f"{where}[]")}
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self.schema(args[0], f"{where}[]")}
            raise SchemaError(
                f"{where}: a fixed-length tuple {_name(tp)} has no JSON Schema form that "
                "strict mode accepts; use tuple[X, ...] or a list",
                where=where,
            )
        if origin in (dict, Mapping, typing.Mapping):
            key, value = args or (str, Any)
            if key is not str:
                raise SchemaError(
                    f"{where}: {_name(tp)}: JSON object keys are strings; use dict[str, X]",
                    where=where,
                )
            value_schema = self.schema(value, f"{where}{{}}")
            if not self.strict:
                return {"type": "object", "additionalProperties": value_schema}
            pair: dict[str, Any] = {
                "type": "object",
                "properties": {"key": {"type": "string"}, "value": value_schema},
                "required": ["key", "value"],
                "additionalProperties": False,
            }
            return {
                "type": "array",
                "items": pair,
                "description": "A mapping, as a list of key-value pairs.",
            }
        if isinstance(tp, type) and attrs.has(tp):
            return self.ref(tp, tp.__name__)
        raise SchemaError(
            f"{where}: {_name(tp)} cannot be described in JSON Schema"
            + (" for strict mode" if self.strict else "")
            + "; supported are str, int, float, bool, None, Literal, Enum, list, "
            "tuple[X, ...], dict[str, X], unions and attrs classes",
            where=where,
        )


def _name(tp: Any) -> str:
    if typing.get_args(tp) or isinstance(tp, types.GenericAlias):  # set[str], not "set"
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _default_of(field: attrs.Attribute[Any]) -> Any:
    default: Any = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return attrs.NOTHING if default.takes_self else default.factory()
    return default


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if attrs.has(type(value)):
        return attrs.asdict(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    return value


def _show(value: Any) -> str:
    import json

    try:
        return json.dumps(_jsonable(value))
    except (TypeError, ValueError):
        return repr(value)


def _enum_schema(values: list[Any], where: str) -> dict[str, Any]:
    values = [v.value if isinstance(v, enum.Enum) else v for v in values]
    kinds = {type(v) for v in values}
    if kinds <= {str}:
        return {"type": "string", "enum": values}
    if kinds <= {int}:
        return {"type": "integer", "enum": values}
    if kinds <= {bool}:
        return {"type": "boolean", "enum": values}
    if values == [None]:
        return {"type": "null"}
    raise SchemaError(
        f"{where}: an enum or Literal must have values of one kind (str, int or bool), "
        f"got {values!r}",
        where=where,
    )


def _finish(schema: dict[str, Any], builder: _Builder) -> dict[str, Any]:
    if builder.defs:
        schema = {**schema, "$defs": builder.defs}
    return schema


def arguments_class(function: Callable[..., Any]) -> type:
    """An attrs class whose fields are *function*'s parameters (cached on the function).

    Its instances hold a tool call's arguments, typed; ``call.invoke()`` passes them to the
    function.
    """
    cached = getattr(function, "__anyoai_arguments__", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    hints = typing.get_type_hints(function)
    docs = _param_docs(function)
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise SchemaError(
                f"{function.__name__}: *{name} and **{name} cannot be tool parameters",
                where=f"{function.__name__}.{name}",
            )
        if name not in hints:
            raise SchemaError(
                f"{function.__name__}: parameter {name!r} needs a type annotation to be a "
                "tool parameter",
                where=f"{function.__name__}.{name}",
            )
        metadata = {"description": docs[name]} if name in docs else {}
        default = (
            parameter.default if parameter.default is not inspect.Parameter.empty else attrs.NOTHING
        )
        fields[name] = attrs.field(type=hints[name], default=default, metadata=metadata)
    cls = attrs.make_class(f"{function.__name__}_arguments", fields, frozen=True, kw_only=True)
    cls.__doc__ = inspect.getdoc(function) or f"The arguments of {function.__name__}."
    cls.__module__ = getattr(function, "__module__", __name__)
    with contextlib.suppress(AttributeError):  # a bound method cannot keep it: not cached
        function.__anyoai_arguments__ = cls  # type: ignore[attr-defined]
    return cls


def json_schema(target: Any, *, strict: bool = True) -> dict[str, Any]:
    """The JSON Schema of an attrs class, or of a function's parameters.

    :param target: an attrs class, or a function with annotated parameters.
    :param strict: produce OpenAI's strict-mode subset (see the module docstring).
    :raises SchemaError: naming a type that cannot be described.
    """
    builder = _Builder(strict=strict)
    if attrs.has(target):
        schema = builder.object_schema(target, target.__name__)
    elif callable(target):
        schema = builder.object_schema(arguments_class(target), name_of(target))
        summary = description_of(target)
        if summary:
            schema["description"] = summary
        else:
            schema.pop("description", None)
    else:
        raise SchemaError(
            f"json_schema() takes an attrs class or a function, got {target!r}", where="$"
        )
    return _finish(schema, builder)


def tool(
    target: Any, *, name: str | None = None, description: str | None = None, strict: bool = True
) -> dict[str, Any]:
    """A ``tools=[...]`` entry for an attrs class or a typed function.

    >>> anyoai.tool(get_weather)
    {"type": "function", "function": {"name": "get_weather", "description": ..., "parameters":
    {...}, "strict": True}}

    :param name: the tool's name (default: the class or function name).
    :param description: (default: the first paragraph of its docstring).
    :param strict: ask for strict mode, with a strict-mode schema.
    :raises SchemaError: naming a type that cannot be described.
    """
    function: dict[str, Any] = {"name": name or name_of(target)}
    summary = description if description is not None else description_of(target)
    if summary:
        function["description"] = summary
    parameters = json_schema(target, strict=strict)
    parameters.pop("description", None)
    function["parameters"] = parameters
    function["strict"] = strict
    return {"type": "function", "function": function}
