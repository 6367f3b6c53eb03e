"""Validating and coercing parameters against the SDK's ``TypedDict`` params classes."""

from __future__ import annotations

import decimal
import re
import sys
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, NotRequired, Required, Union

import typing_extensions

from .endpoints import resolve
from .errors import StripeParamError
from .form import is_index

METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500


def _request_option_annotations() -> dict[str, Any]:
    from stripe._request_options import RequestOptions

    return dict(RequestOptions.__annotations__)


@cache
def _fields(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    """Evaluated field types (extras kept) and required keys of a params TypedDict.

    Fields inherited from ``RequestOptions`` (api_key, idempotency_key, ...)
    are client options, never sent as parameters, so they are not accepted.
    """
    options = _request_option_annotations()
    raw = {k: v for k, v in cls.__annotations__.items() if not (k in options and options[k] is v)}
    holder = types.SimpleNamespace(
        __annotations__=raw, __globals__=vars(sys.modules[cls.__module__])
    )
    hints = typing.get_type_hints(holder, include_extras=True)
    required = frozenset(k for k in cls.__required_keys__ if k in hints)  # type: ignore[attr-defined]
    return {k: _strip_required(v) for k, v in hints.items()}, required


_REQUIRED_MARKERS = (
    NotRequired,
    Required,
    typing_extensions.NotRequired,
    typing_extensions.Required,
)
_LITERALS = (Literal, typing_extensions.Literal)


def _strip_required(tp: Any) -> Any:
    while typing.get_origin(tp) in _REQUIRED_MARKERS:
        tp = typing.get_args(tp)[0]
    return tp


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and (typing_extensions.is_typeddict(tp) or typing.is_typeddict(tp))


def _is_mapping_type(tp: Any) -> bool:
    """``Dict[str, str]`` or the SDK's ``UntypedStripeObject[str]``."""
    origin = typing.get_origin(tp)
    if origin is dict:
        return True
    name = getattr(origin or tp, "__name__", "")
    return name == "UntypedStripeObject"


def _union_members(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        members: list[Any] = []
        for arg in typing.get_args(tp):
            members.extend(_union_members(arg))
        return members
    return [tp]


@dataclass
class _Shape:
    """A parameter type, classified."""

    unsettable: bool = False  # Literal[''] is allowed
    enum: tuple[str, ...] | None = None  # Literal values other than ''
    string: bool = False  # plain str allowed (only when no enum)
    integer: bool = False
    boolean: bool = False
    decimal: bool = False
    obj: type | None = None  # a TypedDict
    mapping: Any = None  # Dict[str, X]
    array: Any = None  # List[X] element type
    anything: bool = False


def _literal_values(tp: Any) -> list[Any]:
    return list(typing.get_args(tp))


@cache
def _shape(tp: Any) -> _Shape:
    shape = _Shape()
    members = _union_members(tp)
    has_plain_str = False
    for member in members:
        if member is type(None):
            continue
        origin = typing.get_origin(member)
        if origin in _LITERALS:
            for value in _literal_values(member):
                if value == "":
                    shape.unsettable = True
                elif isinstance(value, bool):
                    shape.boolean = True
                else:
                    shape.enum = (*(shape.enum or ()), str(value))
        elif member is str:
            has_plain_str = True
        elif member is bool:
            shape.boolean = True
        elif member is int:
            shape.integer = True
        elif member is float or member is decimal.Decimal:
            shape.decimal = True
        elif _is_typeddict(member):
            shape.obj = member
        elif origin in (list, tuple) or member in (list, tuple):
            args = typing.get_args(member)
            shape.array = args[0] if args else Any
        elif _is_mapping_type(member):
            args = typing.get_args(member)
            shape.mapping = args[-1] if args else str
        else:
            shape.anything = True
    # The SDK types enums as ``Literal[...] | str`` for forward compatibility;
    # the API itself accepts only the listed values.
    if has_plain_str and shape.enum is None:
        shape.string = True
    return shape


def _join(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if path else str(key)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!s}: {_describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_describe(v) for v in value) + "]"
    return str(value)


def _one_of(values: tuple[str, ...]) -> str:
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return f"{values[0]} or {values[1]}"
    return ", ".join(values[:-1]) + f", or {values[-1]}"


_INT_RE = re.compile(r"-?[0-9]+")
_DECIMAL_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_INT64 = 2**63


def _index_keyed(value: dict[str, Any]) -> bool:
    return bool(value) and all(is_index(k) for k in value)


def _scan_unknown(value: Any, tp: Any, path: str, out: list[str]) -> None:
    """Collect the full paths of parameters the type does not know."""
    shape = _shape(tp)
    if isinstance(value, dict) and shape.obj is not None:
        fields, _ = _fields(shape.obj)
        for key, sub in value.items():
            if key not in fields:
                out.append(_join(path, key))
            else:
                _scan_unknown(sub, fields[key], _join(path, key), out)
    elif isinstance(value, list) and shape.array is not None:
        for i, item in enumerate(value):
            _scan_unknown(item, shape.array, _join(path, i), out)
    elif isinstance(value, dict) and shape.array is not None and _index_keyed(value):
        for key, item in value.items():
            _scan_unknown(item, shape.array, _join(path, key), out)
    elif isinstance(value, dict) and shape.mapping is not None:
        for key, item in value.items():
            _scan_unknown(item, shape.mapping, _join(path, key), out)


def _empty_error(path: str) -> StripeParamError:
    return StripeParamError(
        "parameter_invalid_empty",
        path,
        f"You passed an empty string for '{path}'. We assume empty values are an attempt "
        f"to unset a parameter; however '{path}' cannot be unset. You should remove "
        f"'{path}' from your request or supply a non-empty value.",
    )


def _coerce(value: Any, tp: Any, path: str) -> Any:
    shape = _shape(tp)
    if shape.anything:
        return value

    if isinstance(value, dict):
        if shape.obj is not None:
            return _coerce_object(value, shape.obj, path)
        if shape.mapping is not None:
            return _coerce_mapping(value, shape.mapping, path)
        if shape.array is not None:
            # Indices with gaps, or not starting at 0 (a[1]=x), or keyed a[x]=y.
            raise StripeParamError(None, path, f"Invalid array: {path} must be an array.")
        raise _scalar_error(value, shape, path)

    if isinstance(value, list):
        if shape.array is not None:
            return [_coerce(item, shape.array, _join(path, i)) for i, item in enumerate(value)]
        if shape.mapping is not None:  # metadata[0]=a&metadata[1]=b
            return _coerce_mapping({str(i): v for i, v in enumerate(value)}, shape.mapping, path)
        raise _scalar_error(value, shape, path)

    if not isinstance(value, str):  # already-decoded Python values (tests, JSON)
        return _coerce_python(value, shape, path)

    if value == "":
        if shape.unsettable:
            return ""
        raise _empty_error(path)
    if shape.enum is not None and value in shape.enum:
        return value
    if shape.string:
        return value
    if shape.integer and _INT_RE.fullmatch(value) and -_INT64 <= int(value) < _INT64:
        return int(value)
    if shape.boolean and value in ("true", "false"):
        return value == "true"
    if shape.decimal and _DECIMAL_RE.fullmatch(value):
        return decimal.Decimal(value)
    raise _scalar_error(value, shape, path)


def _coerce_python(value: Any, shape: _Shape, path: str) -> Any:
    """Validate a value that is already a Python scalar (not from a form)."""
    if isinstance(value, bool):
        if shape.boolean:
            return value
        return _coerce(str(value).lower(), _shape_type_hint(shape), path)
    if isinstance(value, int):
        return _coerce(str(value), _shape_type_hint(shape), path)
    if isinstance(value, decimal.Decimal | float):
        if shape.decimal:
            return decimal.Decimal(str(value))
        return _coerce(str(value), _shape_type_hint(shape), path)
    if value is None:
        raise _empty_error(path)
    raise _scalar_error(value, shape, path)


def _shape_type_hint(shape: _Shape) -> Any:
    """Rebuild a type from a shape, for re-entering :func:`_coerce` with a string."""
    members: list[Any] = []
    if shape.unsettable:
        members.append(Literal[""])
    if shape.enum:
        members.append(Literal[shape.enum])  # type: ignore[valid-type]
    for flag, tp in (
        (shape.string, str),
        (shape.integer, int),
        (shape.boolean, bool),
        (shape.decimal, decimal.Decimal),
    ):
        if flag:
            members.append(tp)
    if shape.obj is not None:
        members.append(shape.obj)
    if shape.array is not None:
        members.append(list[shape.array])  # type: ignore[name-defined]
    if shape.mapping is not None:
        members.append(dict[str, shape.mapping])  # type: ignore[name-defined]
    if not members:
        return Any
    return Union[tuple(members)]  # noqa: UP007 - built at run time


def _scalar_error(value: Any, shape: _Shape, path: str) -> StripeParamError:
    shown = _describe(value)
    if isinstance(value, dict | list):
        if shape.enum is not None or shape.string or shape.integer or shape.boolean:
            kind = "string"
            if not shape.string and shape.integer:
                kind = "integer"
            elif not shape.string and shape.boolean:
                kind = "boolean"
            return StripeParamError(
                None, path, f"Invalid {kind}: {path} must be a {kind}, not a hash or array."
            )
    if shape.enum is not None:
        return StripeParamError(None, path, f"Invalid {path}: must be one of {_one_of(shape.enum)}")
    if shape.integer:
        return StripeParamError("parameter_invalid_integer", path, f"Invalid integer: {shown}")
    if shape.boolean:
        return StripeParamError(None, path, f"Invalid boolean: {shown}")
    if shape.decimal:
        return StripeParamError(None, path, f"Invalid decimal: {shown}")
    if shape.obj is not None or shape.mapping is not None:
        return StripeParamError(None, path, f"Invalid object: {path} must be a hash.")
    if shape.array is not None:
        return StripeParamError(None, path, f"Invalid array: {path} must be an array.")
    return StripeParamError(None, path, f"Invalid value for {path}: {shown}")


def _coerce_object(value: dict[str, Any], cls: type, path: str) -> dict[str, Any]:
    fields, required = _fields(cls)
    out: dict[str, Any] = {}
    for key, sub in value.items():
        if key not in fields:  # normally reported earlier by _scan_unknown
            raise _unknown([_join(path, key)])
        out[key] = _coerce(sub, fields[key], _join(path, key))
    for key in sorted(required):
        if key not in value:
            full = _join(path, key)
            raise StripeParamError("parameter_missing", full, f"Missing required param: {full}.")
    return out


def _coerce_mapping(value: dict[str, Any], value_type: Any, path: str) -> dict[str, Any]:
    value_shape = _shape(value_type)
    if not value_shape.string:  # e.g. currency_options[eur][unit_amount]
        return {k: _coerce(v, value_type, _join(path, k)) for k, v in value.items()}
    if len(value) > METADATA_MAX_KEYS:
        raise StripeParamError(
            None,
            path,
            f"Metadata can have up to {METADATA_MAX_KEYS} keys, but you passed in "
            f"{len(value)} keys.",
        )
    out: dict[str, Any] = {}
    for key, sub in value.items():
        full = _join(path, key)
        if len(key) > METADATA_MAX_KEY_LENGTH:
            raise StripeParamError(
                None,
                full,
                f"Metadata keys can have up to {METADATA_MAX_KEY_LENGTH} characters, but you "
                f"passed in a key that is {len(key)} characters.",
            )
        if not isinstance(sub, dict | list):
            if not isinstance(sub, str):
                sub = str(sub)
            if len(sub) > METADATA_MAX_VALUE_LENGTH:
                raise StripeParamError(
                    None,
                    full,
                    f"Metadata values can have up to {METADATA_MAX_VALUE_LENGTH} characters, "
                    f"but you passed in a value that is {len(sub)} characters.",
                )
            out[key] = sub  # '' unsets the key
        else:
            out[key] = _coerce(sub, value_type, full)
    return out


def _unknown(paths: list[str]) -> StripeParamError:
    if len(paths) == 1:
        return StripeParamError(
            "parameter_unknown", paths[0], f"Received unknown parameter: {paths[0]}"
        )
    return StripeParamError(
        "parameter_unknown", paths[0], "Received unknown parameters: " + ", ".join(paths)
    )


def validate_params(params_class: type, params: dict[str, Any]) -> dict[str, Any]:
    """Validate and coerce ``params`` against one SDK params TypedDict."""
    if not isinstance(params, dict):
        raise StripeParamError(None, None, "Invalid request: parameters must be a hash.")
    unknown: list[str] = []
    _scan_unknown(params, params_class, "", unknown)
    if unknown:
        raise _unknown(unknown)
    return _coerce_object(params, params_class, "")


def validate(method: str, path_template: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validate the decoded parameters of a request to a served endpoint.

    ``path_template`` may use any placeholder names, or be a concrete path.
    Raises :class:`UnknownEndpoint` if nothing is served there, and
    :class:`StripeParamError` for parameters Stripe would refuse.  Returns the
    parameters coerced to Python values (int, bool, Decimal, nested dicts and
    lists; ``""`` where a parameter is being unset).
    """
    endpoint = resolve(method, path_template)
    return validate_params(endpoint.params_class, params or {})
