"""The table of served endpoints, built by reading the SDK's service modules, and
resolving a request's method and path to one of them."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from dataclasses import dataclass
from functools import cache

from .errors import UnknownEndpoint

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
