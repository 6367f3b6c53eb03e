"""Settings and the sandbox clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class SandboxClock:
    """Wall-clock time (or any time source) plus an offset that only moves forward."""

    def __init__(self, source: Callable[[], float] = time.time, offset: int = 0) -> None:
        self._source = source
        self._offset = offset
        self._lock = threading.Lock()

    def now(self) -> int:
        with self._lock:
            return int(self._source()) + self._offset

    @property
    def offset(self) -> int:
        return self._offset

    def advance(self, seconds: int) -> int:
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            self._offset += int(seconds)
        return self.now()

    def set_offset(self, offset: int) -> None:
        with self._lock:
            self._offset = int(offset)


@dataclass
class StripeSandboxSettings:
    """How the Stripe sandbox behaves.

    api_keys: secret keys accepted (Bearer or Basic auth).
    allow_live_keys: accept ``sk_live_...`` keys listed in api_keys (off: always 401).
    rate_limit_per_second: Stripe's test-mode limit is 25 operations/s.
    state_file: None keeps state in memory; a path persists it as JSON (reloaded on start).
    webhooks_enabled / webhook_duplicate / webhook_shuffle / webhook_delay_seconds /
        webhook_hold: delivery switches (deliver each event twice, in random order, late,
        or hold the queue until released).
    webhook_time_scale: multiplies the retry backoff (Stripe: minutes to hours); tests use
        tiny values so retries happen in milliseconds.
    webhook_max_attempts: give up after this many failed attempts.
    clock: the sandbox time source; move it forward with ``clock.advance(seconds)``.
    seed: seeds id generation and shuffling, for reproducible runs.
    search_lag_seconds: Search is eventually consistent at Stripe ("not for read-after-
        write"): /v1/customers/search sees each customer as it was this many sandbox-clock
        seconds ago (0 = immediately consistent, lenient).
    search_rate_limit_per_second: Stripe's separate limit for Search (20 reads/s).
    """

    api_keys: tuple[str, ...] = ("sk_test_sandbox",)
    allow_live_keys: bool = False
    rate_limit_per_second: int = 25
    state_file: str | None = None
    webhooks_enabled: bool = True
    webhook_duplicate: bool = False
    webhook_shuffle: bool = False
    webhook_delay_seconds: float = 0.0
    webhook_hold: bool = False
    webhook_time_scale: float = 1.0
    webhook_max_attempts: int = 8
    webhook_timeout_seconds: float = 5.0
    clock: SandboxClock = field(default_factory=SandboxClock)
    seed: int | None = None
    account_country: str = "US"
    search_lag_seconds: int = 60
    search_rate_limit_per_second: int = 20
    idempotency_ttl_seconds: int = 24 * 3600
    event_retention_seconds: int = 30 * 24 * 3600
