"""The errors validation raises: a refused parameter, an endpoint the sandbox does not serve."""

from __future__ import annotations

from typing import Any


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
