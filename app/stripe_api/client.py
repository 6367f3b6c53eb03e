"""StripeGateway: every Stripe request goes through it.

It wraps the official SDK's StripeClient (pointed at Stripe or at the sandbox by
its base address) and owns what the SDK leaves to us:

- retries with exponential backoff and jitter on network errors, 5xx and 429;
  a request that changes something is retried only with its idempotency key, so
  a retry after a lost response replays instead of doing it twice;
- a client-side rate limit (token bucket) under Stripe's, so bulk work runs near
  the limit without a storm of 429s;
- request accounting by operation;
- it never logs the secret key (errors carry Stripe's request id instead).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import stripe

log = logging.getLogger("billing_desk.stripe")
T = TypeVar("T")


class StripeGatewayError(Exception):
    """Stripe refused the request or could not be reached, in plain words.

    `retryable` says whether trying again later can help; `hint` what to do.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        hint: str = "",
        code: str | None = None,
        request_id: str | None = None,
        param: str | None = None,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.hint = hint
        self.code = code
        self.request_id = request_id
        self.param = param


@dataclass
class StripeUsage:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_seconds: float = 0.0
    by_operation: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "waited_seconds": round(self.waited_seconds, 3),
        }


class TokenBucket:
    """At most `rate` requests per second on average, bursts up to `burst`."""

    def __init__(
        self,
        rate: float,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = burst or max(1, int(rate))
        self.tokens = float(self.capacity)
        self.clock = clock
        self.sleep = sleep
        self.last = clock()
        self.lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, waiting if needed; returns the seconds waited."""
        waited = 0.0
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return waited
                need = (1 - self.tokens) / self.rate
            self.sleep(need)
            waited += need


def _plain(exc: stripe.StripeError) -> tuple[str, str]:
    """Stripe's error in plain words, with what to do next."""
    err = getattr(exc, "error", None)
    message = getattr(err, "message", None) or getattr(exc, "user_message", None) or str(exc)
    code = getattr(exc, "code", None)
    if isinstance(exc, stripe.AuthenticationError):
        return (
            "Stripe rejected the API key.",
            "An admin must check the Stripe key on the Connections page.",
        )
    if isinstance(exc, stripe.PermissionError):
        return (
            f"The Stripe key may not do this: {message}",
            "Give the restricted key the missing permission, or use a secret key.",
        )
    if isinstance(exc, stripe.IdempotencyError):
        return (
            f"Stripe saw this request before with different content: {message}",
            "The invoice changed after a push started; it needs a new approval.",
        )
    if code == "invoice_not_editable":
        return (
            f"Stripe no longer accepts changes to this invoice: {message}",
            "It was finalized in Stripe; void it there or issue a credit note.",
        )
    if code == "resource_missing":
        return (
            f"Stripe has no such object: {message}",
            "It may have been deleted in Stripe; check the Stripe dashboard.",
        )
    return (
        f"Stripe refused the request: {message}",
        "Correct the invoice (the field is named in the message) and push again.",
    )


class StripeGateway:
    def __init__(
        self,
        api_key: str,
        api_base: str = "https://api.stripe.com",
        *,
        rate_limit: float | None = None,
        max_retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        bucket: TokenBucket | None = None,
    ) -> None:
        if not api_key:
            raise StripeGatewayError(
                "Stripe is not connected: no secret key is set.",
                retryable=False,
                hint="An admin must enter the Stripe key on the Connections page.",
            )
        self.live = api_key.startswith(("sk_live_", "rk_live_"))
        # Stripe allows 100 requests/s live and 25/s in test mode: stay safely under.
        rate = rate_limit or (80.0 if self.live else 20.0)
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base},
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout),
        )
        self.api_base = api_base
        self.max_retries = max_retries
        self.backoff = backoff
        self.sleep = sleep
        self.bucket = bucket or TokenBucket(rate, sleep=sleep)
        self.usage = StripeUsage()

    def __repr__(self) -> str:  # never shows the key
        return f"<StripeGateway {self.api_base} {'live' if self.live else 'test'}>"

    def call(
        self,
        operation: str,
        fn: Callable[..., T],
        *args,
        idempotency_key: str | None = None,
        mutating: bool = True,
        **kwargs,
    ) -> T:
        """Run one SDK call with retries. Mutating calls must carry an idempotency key."""
        if mutating and not idempotency_key:
            raise ValueError(
                f"{operation}: a request that changes something needs an idempotency key"
            )
        options = {"idempotency_key": idempotency_key} if idempotency_key else {}
        attempt = 0
        while True:
            attempt += 1
            self.usage.waited_seconds += self.bucket.acquire()
            self.usage.requests += 1
            self.usage.by_operation[operation] = self.usage.by_operation.get(operation, 0) + 1
            try:
                return fn(*args, options=options, **kwargs)
            except stripe.RateLimitError as exc:
                self.usage.rate_limited += 1
                if attempt > self.max_retries + 3:
                    raise StripeGatewayError(
                        "Stripe kept answering “too many requests”.",
                        retryable=True,
                        hint="It will be retried later.",
                        request_id=exc.request_id,
                    ) from exc
                self._pause(attempt, "rate limited")
            except (stripe.APIConnectionError, stripe.APIError) as exc:
                # Network error, timeout, lost response or 5xx: the same idempotency key
                # makes the retry safe (Stripe replays the first response).
                if attempt > self.max_retries:
                    raise StripeGatewayError(
                        f"Stripe could not be reached or failed ({type(exc).__name__}).",
                        retryable=True,
                        hint="Nothing was lost: the push resumes from this step later.",
                        request_id=getattr(exc, "request_id", None),
                    ) from exc
                self._pause(attempt, type(exc).__name__)
            except stripe.StripeError as exc:
                message, hint = _plain(exc)
                log.info("stripe %s refused: %s (request %s)", operation, exc.code, exc.request_id)
                raise StripeGatewayError(
                    message,
                    retryable=False,
                    hint=hint,
                    code=exc.code,
                    request_id=exc.request_id,
                    param=getattr(getattr(exc, "error", None), "param", None),
                ) from exc

    def _pause(self, attempt: int, why: str) -> None:
        self.usage.retries += 1
        delay = min(30.0, self.backoff * (2 ** (attempt - 1)))
        delay += random.uniform(0, self.backoff / 2)  # noqa: S311 - jitter, not crypto
        log.info("stripe: retrying in %.2f s (%s)", delay, why)
        self.usage.waited_seconds += delay
        self.sleep(delay)
