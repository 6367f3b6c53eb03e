"""Request decoding and parameter validation for the Stripe sandbox.

The sandbox must refuse every request the real Stripe API would refuse for its
parameters.  Rather than hand-writing a schema, this module walks the
parameter classes that the official ``stripe`` SDK generates from Stripe's
OpenAPI spec (``stripe/params/*.py``, ``TypedDict`` subclasses).  The table of
served endpoints is built by reading the SDK's service modules
(``stripe/_customer_service.py`` ...), which name, for each method, the HTTP
verb, the path template and the params class.

Public interface::

    decode_form(body) -> dict            # Stripe form encoding -> nested dicts/lists
    validate(method, path, params) -> dict   # coerced params, or StripeParamError
    StripeParamError / UnknownEndpoint
"""

from __future__ import annotations

import ast
import decimal
import importlib
import importlib.util
import re
import sys
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, NotRequired, Required, Union
from urllib.parse import parse_qsl

import typing_extensions

__all__ = [
    "ENDPOINTS",
    "Endpoint",
    "StripeParamError",
    "UnknownEndpoint",
    "decode_form",
    "endpoint_table",
    "resolve",
    "validate",
    "validate_params",
]

METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class StripeParamError(Exception):
    """A 400 ``invalid_request_error`` about one parameter.

    ``code`` is Stripe's error code (``parameter_unknown``, ...).  Some Stripe
    parameter errors (bad boolean, bad enum value) carry no code; for those
    ``code`` is ``None`` and :meth:`to_error` leaves ``code``/``doc_url`` out,
    as Stripe does.
    """

    http_status = 400

    def __init__(self, code: str | None, param: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.param = param
        self.message = message

    def to_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": "invalid_request_error"}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = "https://stripe.com/docs/error-codes/" + self.code.replace("_", "-")
        error["message"] = self.message
        if self.param is not None:
            error["param"] = self.param
        return error

    def __repr__(self) -> str:
        return f"StripeParamError({self.code!r}, {self.param!r}, {self.message!r})"


class UnknownEndpoint(LookupError):
    """No served endpoint for (method, path); the server answers 404."""

    def __init__(self, method: str, path: str) -> None:
        self.method = method.upper()
        self.path = path
        super().__init__(f"Unrecognized request URL ({self.method}: {path})")


# ---------------------------------------------------------------------------
# Form decoding
# ---------------------------------------------------------------------------

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT_RE = re.compile(r"\[([^\[\]]*)\]")


class _Node:
    """A nested container while decoding: keyed children and/or ``[]`` appends."""

    __slots__ = ("keyed", "appended")

    def __init__(self) -> None:
        self.keyed: dict[str, Any] = {}
        self.appended: list[Any] = []


def _is_index(key: str) -> bool:
    return key.isdigit() and str(int(key)) == key


def _split_key(key: str) -> list[str]:
    match = _KEY_RE.match(key)
    if match is None:
        # Not a bracketed name Stripe would parse; keep it whole so that it is
        # reported as an unknown parameter.
        return [key]
    return [match.group(1), *_SEGMENT_RE.findall(match.group(2))]


def _display(segments: list[str]) -> str:
    return segments[0] + "".join(f"[{s}]" for s in segments[1:])


def _conflict(segments: list[str]) -> StripeParamError:
    name = _display(segments)
    return StripeParamError(
        None,
        name,
        f"Invalid request: the parameter {name} was given both as a single value "
        "and as a nested hash or array.",
    )


def decode_form(body: bytes | str) -> dict[str, Any]:
    """Decode a Stripe form-encoded body or query string into nested values.

    ``a[b]=1`` gives ``{"a": {"b": "1"}}``; ``a[0]=x&a[1]=y`` and
    ``a[]=x&a[]=y`` give lists.  Keys that look like indices but are not
    exactly ``0..n-1`` stay a dict with string keys (``validate`` rejects such
    a dict where an array is expected, and accepts it where a hash such as
    ``metadata`` is expected).  Leaves stay strings: ``validate`` coerces.
    """
    try:
        text = bytes(body).decode("utf-8") if isinstance(body, bytes | bytearray) else body
        pairs = parse_qsl(text.removeprefix("?"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise StripeParamError(
            None, None, "Invalid request: the request is not valid UTF-8."
        ) from None
    root = _Node()
    for raw_key, value in pairs:
        if raw_key == "":
            continue
        segments = _split_key(raw_key)
        node = root
        for depth, seg in enumerate(segments):
            last = depth == len(segments) - 1
            if seg == "" and depth > 0:
                if last:
                    node.appended.append(value)
                    break
                # a[][b]=1: every such key starts a new element (the SDK always
                # sends indices for lists of hashes, so this form is rare).
                child = _Node()
                node.appended.append(child)
                node = child
                continue
            if last:
                existing = node.keyed.get(seg)
                if isinstance(existing, _Node):
                    raise _conflict(segments)
                node.keyed[seg] = value  # a repeated key: the last one wins
                break
            child = node.keyed.get(seg)
            if child is None:
                child = node.keyed[seg] = _Node()
            elif not isinstance(child, _Node):
                raise _conflict(segments[: depth + 1])
            node = child
    return _finish(root, [])  # type: ignore[return-value]


def _finish(node: Any, path: list[str]) -> Any:
    if not isinstance(node, _Node):
        return node
    if node.appended and node.keyed:
        raise StripeParamError(
            None,
            _display(path),
            f"Invalid array: {_display(path)} mixes indexed ([0]) and appended ([]) elements.",
        )
    if node.appended:
        return [_finish(v, [*path, str(i)]) for i, v in enumerate(node.appended)]
    keys = list(node.keyed)
    if path and keys and all(_is_index(k) for k in keys):
        indices = sorted(int(k) for k in keys)
        if indices == list(range(len(indices))):
            return [_finish(node.keyed[str(i)], [*path, str(i)]) for i in indices]
    return {k: _finish(v, [*path, k]) for k, v in node.keyed.items()}


# ---------------------------------------------------------------------------
# Endpoint table, built from the SDK's service modules
# ---------------------------------------------------------------------------

# (service module, [(method, path template), ...]) the sandbox serves.  The
# params class of each is read from the SDK, not typed here.
_SERVED: dict[str, list[tuple[str, str]]] = {
    "stripe._customer_service": [
        ("post", "/v1/customers"),
        ("get", "/v1/customers/{customer}"),
        ("post", "/v1/customers/{customer}"),
        ("get", "/v1/customers"),
        ("get", "/v1/customers/search"),
        ("delete", "/v1/customers/{customer}"),
    ],
    "stripe._product_service": [
        ("post", "/v1/products"),
        ("get", "/v1/products/{id}"),
        ("post", "/v1/products/{id}"),
        ("get", "/v1/products"),
    ],
    "stripe._price_service": [
        ("post", "/v1/prices"),
        ("get", "/v1/prices/{price}"),
        ("get", "/v1/prices"),
    ],
    "stripe._tax_rate_service": [
        ("post", "/v1/tax_rates"),
        ("get", "/v1/tax_rates/{tax_rate}"),
        ("post", "/v1/tax_rates/{tax_rate}"),
        ("get", "/v1/tax_rates"),
    ],
    "stripe._coupon_service": [
        ("post", "/v1/coupons"),
        ("get", "/v1/coupons/{coupon}"),
        ("get", "/v1/coupons"),
    ],
    "stripe._invoice_service": [
        ("post", "/v1/invoices"),
        ("get", "/v1/invoices/{invoice}"),
        ("post", "/v1/invoices/{invoice}"),
        ("get", "/v1/invoices"),
        ("delete", "/v1/invoices/{invoice}"),
        ("post", "/v1/invoices/{invoice}/add_lines"),
        ("post", "/v1/invoices/{invoice}/finalize"),
        ("post", "/v1/invoices/{invoice}/send"),
        ("post", "/v1/invoices/{invoice}/pay"),
        ("post", "/v1/invoices/{invoice}/void"),
        ("post", "/v1/invoices/{invoice}/mark_uncollectible"),
    ],
    "stripe._invoice_line_item_service": [
        ("get", "/v1/invoices/{invoice}/lines"),
    ],
    "stripe._invoice_item_service": [
        ("post", "/v1/invoiceitems"),
        ("get", "/v1/invoiceitems/{invoiceitem}"),
        ("post", "/v1/invoiceitems/{invoiceitem}"),
        ("get", "/v1/invoiceitems"),
        ("delete", "/v1/invoiceitems/{invoiceitem}"),
    ],
    "stripe._credit_note_service": [
        ("post", "/v1/credit_notes"),
        ("get", "/v1/credit_notes/{id}"),
        ("get", "/v1/credit_notes"),
        ("post", "/v1/credit_notes/{id}/void"),
        ("get", "/v1/credit_notes/preview"),
    ],
    "stripe._refund_service": [
        ("post", "/v1/refunds"),
        ("get", "/v1/refunds/{refund}"),
        ("get", "/v1/refunds"),
    ],
    "stripe._charge_service": [
        ("get", "/v1/charges/{charge}"),
        ("get", "/v1/charges"),
    ],
    "stripe._payment_intent_service": [
        ("get", "/v1/payment_intents/{intent}"),
        ("get", "/v1/payment_intents"),
    ],
    "stripe._invoice_payment_service": [
        ("get", "/v1/invoice_payments/{invoice_payment}"),
        ("get", "/v1/invoice_payments"),
    ],
    "stripe._event_service": [
        ("get", "/v1/events"),
        ("get", "/v1/events/{id}"),
    ],
    "stripe._webhook_endpoint_service": [
        ("post", "/v1/webhook_endpoints"),
        ("get", "/v1/webhook_endpoints/{webhook_endpoint}"),
        ("post", "/v1/webhook_endpoints/{webhook_endpoint}"),
        ("get", "/v1/webhook_endpoints"),
        ("delete", "/v1/webhook_endpoints/{webhook_endpoint}"),
    ],
}


@dataclass(frozen=True)
class Endpoint:
    method: str  # upper case
    path: str  # the SDK's template, e.g. /v1/invoices/{invoice}/add_lines
    params_class: type
    service: str  # e.g. InvoiceService.add_lines

    @property
    def segments(self) -> tuple[str | None, ...]:
        """Path segments; ``None`` for a ``{placeholder}``."""
        return _template_segments(self.path)


def _template_segments(path: str) -> tuple[str | None, ...]:
    parts = path.strip("/").split("/")
    return tuple(None if p.startswith("{") and p.endswith("}") else p for p in parts)


def _annotation_name(node: ast.expr | None) -> str | None:
    """``Optional["XParams"]`` or ``"XParams"`` -> ``XParams``."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value.strip()
        match = re.fullmatch(r"(?:Optional\[)?\s*['\"]?(\w+)['\"]?\s*\]?", text)
        return match.group(1) if match else None
    if isinstance(node, ast.Subscript):
        return _annotation_name(node.slice)
    if isinstance(node, ast.Name):
        return node.id
    return None


def _request_call(func: ast.FunctionDef) -> tuple[str, str] | None:
    """The (method, path template) of the ``self._request(...)`` call in a method."""
    for node in ast.walk(func):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != "_request" or len(node.args) < 2:
            continue
        verb, path = node.args[0], node.args[1]
        if isinstance(path, ast.Call) and isinstance(path.func, ast.Attribute):
            if path.func.attr == "format":
                path = path.func.value
        if (
            isinstance(verb, ast.Constant)
            and isinstance(verb.value, str)
            and isinstance(path, ast.Constant)
            and isinstance(path.value, str)
        ):
            return verb.value.lower(), path.value
    return None


def _service_methods(module_name: str) -> list[tuple[str, str, str, str]]:
    """(method, path, params class name, qualified service method) per sync method."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"stripe SDK module {module_name} not found")
    with open(spec.origin, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), filename=spec.origin)
    found = []
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        for func in cls.body:
            if not isinstance(func, ast.FunctionDef):
                continue
            params_arg = next(
                (a for a in func.args.args + func.args.kwonlyargs if a.arg == "params"), None
            )
            call = _request_call(func)
            if params_arg is None or call is None:
                continue
            name = _annotation_name(params_arg.annotation)
            if name is not None:
                found.append((call[0], call[1], name, f"{cls.name}.{func.name}"))
    return found


def _import_map(module_name: str) -> dict[str, str]:
    """Imported name -> module, for the (TYPE_CHECKING) imports of a module."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"stripe SDK module {module_name} not found")
    with open(spec.origin, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = node.module
    return names


@cache
def endpoint_table() -> dict[tuple[str, str], Endpoint]:
    """(METHOD, path template) -> Endpoint for every endpoint the sandbox serves."""
    table: dict[tuple[str, str], Endpoint] = {}
    for module_name, wanted in _SERVED.items():
        methods = {(m, p): (cls, svc) for m, p, cls, svc in _service_methods(module_name)}
        imports = _import_map(module_name)
        for verb, path in wanted:
            if (verb, path) not in methods:
                raise RuntimeError(f"{module_name} has no {verb.upper()} {path}; the SDK changed?")
            cls_name, svc = methods[(verb, path)]
            params_module = imports.get(cls_name)
            if params_module is None:
                raise RuntimeError(f"cannot locate {cls_name} imported by {module_name}")
            params_class = getattr(importlib.import_module(params_module), cls_name)
            table[(verb.upper(), path)] = Endpoint(verb.upper(), path, params_class, svc)
    return table


class _Endpoints:
    """Lazy mapping view of :func:`endpoint_table` (importing stays cheap)."""

    def __getitem__(self, key: tuple[str, str]) -> Endpoint:
        return endpoint_table()[key]

    def __iter__(self):
        return iter(endpoint_table())

    def __len__(self) -> int:
        return len(endpoint_table())

    def items(self):
        return endpoint_table().items()

    def values(self):
        return endpoint_table().values()


ENDPOINTS = _Endpoints()


def resolve(method: str, path: str) -> Endpoint:
    """Find the endpoint for a method and a path template or concrete path.

    Placeholder names do not matter (``/v1/credit_notes/{credit_note}`` matches
    the SDK's ``/v1/credit_notes/{id}``), and a concrete path such as
    ``/v1/customers/cus_123`` matches too.  Literal segments win over
    placeholders, so ``/v1/customers/search`` is the search endpoint.
    """
    verb = method.upper()
    clean = path.split("?", 1)[0]
    wanted = _template_segments(clean)
    best: tuple[int, Endpoint] | None = None
    for (ep_verb, _), endpoint in endpoint_table().items():
        if ep_verb != verb or len(endpoint.segments) != len(wanted):
            continue
        score = 0
        for have, want in zip(endpoint.segments, wanted, strict=True):
            if have is None:
                continue  # placeholder: matches any segment (or any placeholder)
            if have != want:
                break
            score += 1
        else:
            if best is None or score > best[0]:
                best = (score, endpoint)
    if best is None:
        raise UnknownEndpoint(verb, clean)
    return best[1]


# ---------------------------------------------------------------------------
# Type introspection of the SDK params classes
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


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
    return bool(value) and all(_is_index(k) for k in value)


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
