"""Background webhook delivery: signed, at least once, retried with backoff.

Switches (settings): duplicate (each delivery twice), shuffle (due deliveries sent in
random order), delay (every delivery waits delay * time_scale seconds first), hold
(queue without sending until released: with shuffle, the whole backlog goes out in
random order).
``drain(timeout)`` blocks until nothing is queued or in flight.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Stripe retries over ~3 days; these are the gaps in seconds before scaling.
BACKOFF = (60, 300, 1800, 3600, 7200, 14400, 28800, 57600)


def sign(payload: str, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass(order=True)
class Delivery:
    due: float
    seq: int
    endpoint_id: str = field(compare=False)
    url: str = field(compare=False)
    secret: str = field(compare=False)
    event_id: str = field(compare=False)
    payload: str = field(compare=False)
    attempt: int = field(default=0, compare=False)
    epoch: int = field(default=0, compare=False)


class WebhookDispatcher:
    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox
        self.settings = sandbox.settings
        self._cond = threading.Condition()
        self._queue: list[Delivery] = []
        self._in_flight = 0
        self._seq = 0
        self._epoch = 0
        self._stop = False
        self._rng = random.Random(self.settings.seed)  # noqa: S311
        self.attempts: list[dict] = []  # log of every attempt, for tests and the demo page
        self._thread = threading.Thread(target=self._run, name="stripe-webhooks", daemon=True)
        self._thread.start()

    # -- public --------------------------------------------------------------------
    def enqueue(self, endpoint: dict, event: dict) -> None:
        payload = json.dumps(event, indent=2)
        copies = 2 if self.settings.webhook_duplicate else 1
        delay = self.settings.webhook_delay_seconds * self.settings.webhook_time_scale
        with self._cond:
            for _ in range(copies):
                self._seq += 1
                self._queue.append(
                    Delivery(
                        due=time.monotonic() + delay,
                        seq=self._seq,
                        endpoint_id=endpoint["id"],
                        url=endpoint["url"],
                        secret=endpoint["_secret"],
                        event_id=event["id"],
                        payload=payload,
                        epoch=self._epoch,
                    )
                )
            self._cond.notify_all()

    def drain(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + self._in_flight

    def clear(self, timeout: float = 5.0) -> None:
        """Drop queued deliveries and wait for the one in flight (never re-queued)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._epoch += 1
            self._queue.clear()
            while self._in_flight and time.monotonic() < deadline:
                self._cond.wait(0.05)
            self.attempts.clear()
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    # -- worker --------------------------------------------------------------------
    def _next(self) -> Delivery | None:
        with self._cond:
            while not self._stop:
                if self.settings.webhook_hold:
                    self._cond.wait(0.5)
                    continue
                now = time.monotonic()
                due = [d for d in self._queue if d.due <= now]
                if due:
                    if self.settings.webhook_shuffle:
                        item = self._rng.choice(due)
                    else:
                        item = min(due)
                    self._queue.remove(item)
                    self._in_flight += 1
                    return item
                wait = min((d.due for d in self._queue), default=now + 1.0) - now
                self._cond.wait(max(0.001, min(wait, 1.0)))
            return None

    def _run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            try:
                ok, status = self._send(item)
            except Exception:  # pragma: no cover - never kill the worker
                log.exception("webhook delivery crashed")
                ok, status = False, None
            with self._cond:
                self._in_flight -= 1
                if item.epoch != self._epoch:  # cleared (sandbox reset) while in flight
                    self._cond.notify_all()
                    continue
                self.attempts.append(
                    {
                        "endpoint": item.endpoint_id,
                        "event": item.event_id,
                        "attempt": item.attempt + 1,
                        "status": status,
                        "ok": ok,
                    }
                )
                if not ok and item.attempt + 1 < self.settings.webhook_max_attempts:
                    gap = BACKOFF[min(item.attempt, len(BACKOFF) - 1)]
                    item.attempt += 1
                    item.due = time.monotonic() + gap * self.settings.webhook_time_scale
                    self._queue.append(item)
                self._cond.notify_all()
            if ok:
                self.sandbox.webhook_delivered(item.event_id)

    def _send(self, item: Delivery) -> tuple[bool, int | None]:
        # Signed with wall-clock time, as Stripe does even under test clocks, so that
        # construct_event's 300 s tolerance holds after the sandbox clock moved.
        timestamp = int(time.time())
        header = sign(item.payload, item.secret, timestamp)
        req = urllib.request.Request(  # noqa: S310 - endpoint URLs are configured by the user
            item.url,
            data=item.payload.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": header,
            },
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                req, timeout=self.settings.webhook_timeout_seconds
            ) as resp:
                return 200 <= resp.status < 300, resp.status
        except urllib.error.HTTPError as exc:
            return False, exc.code
        except (urllib.error.URLError, OSError, TimeoutError):
            return False, None
