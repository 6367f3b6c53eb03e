"""Stripe's error envelope: ``{"error": {"type", "code", "param", "message", "doc_url"}}``."""

from __future__ import annotations

DOC_BASE = "https://stripe.com/docs/error-codes/"


class StripeError(Exception):
    """An error the sandbox answers exactly as Stripe would (status + JSON body).

    ``saved`` tells the idempotency layer whether Stripe would store this result
    (it does once the endpoint started executing, not for validation failures).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",  # noqa: A002 - Stripe's field name
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        saved: bool = True,
        headers: dict[str, str] | None = None,
        extra: dict | None = None,
        keep_changes: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.saved = saved
        self.headers = headers or {}
        self.extra = extra or {}
        # most errors leave no trace; a declined card still records the failed attempt
        self.keep_changes = keep_changes

    def body(self, request_log_url: str | None = None) -> dict:
        err: dict = {"message": self.message, "type": self.type}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = DOC_BASE + self.code.replace("_", "-")
        if self.param is not None:
            err["param"] = self.param
        if self.decline_code:
            err["decline_code"] = self.decline_code
        if request_log_url:
            err["request_log_url"] = request_log_url
        err.update(self.extra)
        return {"error": err}


def missing(kind: str, obj_id: str, param: str = "id") -> StripeError:
    return StripeError(
        f"No such {kind}: '{obj_id}'", status=404, code="resource_missing", param=param
    )


def param_missing(param: str) -> StripeError:
    return StripeError(
        f"Missing required param: {param}.", code="parameter_missing", param=param, saved=False
    )


def param_invalid(param: str, message: str, code: str = "parameter_invalid_empty") -> StripeError:
    return StripeError(message, code=code, param=param, saved=False)


def invalid(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(message, code=code, param=param)


def not_editable(message: str) -> StripeError:
    return StripeError(message, code="invoice_not_editable")


def unrecognized_url(method: str, path: str) -> StripeError:
    return StripeError(
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
        "or we can help at https://support.stripe.com/.",
        status=404,
        saved=False,
    )


def api_error(status: int = 500) -> StripeError:
    return StripeError(
        "An unknown error occurred",
        status=status,
        type="api_error",
        saved=False,
        headers={"Stripe-Should-Retry": "true"} if status == 503 else {},
    )


def rate_limited() -> StripeError:
    return StripeError(
        "Request rate limit exceeded. You can learn more about rate limits here "
        "https://stripe.com/docs/rate-limits.",
        status=429,
        code="rate_limit",
        saved=False,
    )
