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

from .endpoints import ENDPOINTS, Endpoint, endpoint_table, resolve
from .errors import StripeParamError, UnknownEndpoint
from .form import decode_form
from .params import validate, validate_params

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
