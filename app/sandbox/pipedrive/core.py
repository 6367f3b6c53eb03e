"""The sandbox's state holder: the store, clock, rate limiter, webhook dispatcher and faults."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from .settings import PipedriveSandboxSettings
from .state import Store, iso
from .validation import ApiError
from .webhooks import WebhookDispatcher


class RateLimiter:
    """Rolling 2 s burst windows per token (search has its own) and the daily token budget."""

    def __init__(self, settings: PipedriveSandboxSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.lock = threading.Lock()
        self.windows: dict[tuple[str, str], deque] = {}

    def _window(self, token: str, bucket: str) -> deque:
        return self.windows.setdefault((token, bucket), deque())

    def limit_for(self, kind: str, bucket: str) -> int:
        if bucket == "search":
            return self.settings.search_burst_limit
        return self.settings.oauth_burst_limit if kind == "oauth" else self.settings.burst_limit

    def _roll_day(self) -> None:
        today = self.settings.clock.now().date().isoformat()
        if self.store.budget_day != today:
            self.store.budget_day = today
            self.store.budget_used = 0

    def check(self, token: str, kind: str, bucket: str, cost: int) -> dict:
        now = time.monotonic()
        span = self.settings.burst_window_seconds
        with self.lock:
            win = self._window(token, bucket)
            while win and win[0] <= now - span:
                win.popleft()
            limit = self.limit_for(kind, bucket)
            headers = {"x-ratelimit-limit": limit}
            if len(win) >= limit:
                reset = max(1, math.ceil(win[0] + span - now))
                headers.update({"x-ratelimit-remaining": 0, "x-ratelimit-reset": reset,
                                "retry-after": reset})
                headers["x-daily-requests-left"] = self.daily_left()
                raise ApiError(429, "Request over limit", "RATE_LIMIT_EXCEEDED", headers=headers)
            with self.store.lock:
                self._roll_day()
                if self.store.budget_used + cost > self.settings.daily_budget:
                    headers.update({"x-ratelimit-remaining": max(0, limit - len(win)),
                                    "x-ratelimit-reset": max(1, math.ceil(span)),
                                    "x-daily-requests-left": 0})
                    raise ApiError(
                        429,
                        "Daily API token budget exceeded. Requests are blocked until the "
                        "budget resets at midnight.",
                        "DAILY_BUDGET_EXCEEDED", headers=headers,
                    )
                self.store.budget_used += cost
            win.append(now)
            headers["x-ratelimit-remaining"] = max(0, limit - len(win))
            headers["x-ratelimit-reset"] = max(1, math.ceil(win[0] + span - now))
            headers["x-daily-requests-left"] = self.daily_left()
            return headers

    def daily_left(self) -> int:
        with self.store.lock:
            self._roll_day()
            return max(0, self.settings.daily_budget - self.store.budget_used)

    def reset(self) -> None:
        with self.lock:
            self.windows.clear()


class Sandbox:
    """Everything one sandbox app holds; reachable as ``app.extensions['pipedrive_sandbox']``."""

    def __init__(self, settings: PipedriveSandboxSettings) -> None:
        self.settings = settings
        self.clock = settings.clock
        self.store = Store(settings.state_file)
        self.limiter = RateLimiter(settings, self.store)
        self.webhooks = WebhookDispatcher(self.store, settings)
        self.ledger: list[dict] = []
        self.ledger_lock = threading.Lock()
        self.faults: list[dict] = []
        self.fault_lock = threading.Lock()

    def now(self) -> str:
        return iso(self.clock.now())

    def reset(self) -> None:
        self.webhooks.clear()
        self.store.reset(self.now())
        self.limiter.reset()
        with self.ledger_lock:
            self.ledger.clear()
        with self.fault_lock:
            self.faults.clear()
        self.store.save()

    def seed(self, synthetic_deals: int = 0, random_seed: int = 42) -> dict:
        from .seed import seed_demo

        with self.store.lock:
            self.webhooks.clear()
            self.store.reset(self.now())
            summary = seed_demo(self.store, synthetic_deals=synthetic_deals,
                                random_seed=random_seed)
            self.store.save()
        return summary

    def take_fault(self, path: str) -> dict | None:
        with self.fault_lock:
            for fault in self.faults:
                if fault["remaining"] > 0 and path.startswith(fault["path_prefix"]):
                    fault["remaining"] -= 1
                    return fault
            self.faults = [f for f in self.faults if f["remaining"] > 0]
        return None

    def ledger_totals(self) -> dict:
        with self.ledger_lock:
            entries = list(self.ledger)
        return {
            "requests": len(entries),
            "tokens": sum(e["cost"] for e in entries),
            "by_status": _count(e["status"] for e in entries),
        }


def _count(items) -> dict:
    out: dict = {}
    for i in items:
        out[str(i)] = out.get(str(i), 0) + 1
    return out

