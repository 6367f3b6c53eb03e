"""The Stripe sandbox's state: the class that wires the per-resource operations
(``operations/``) to the store, the clock and the rate limiter."""

from __future__ import annotations

import threading
import time
from collections import deque

from .common import RESETTABLE_SETTINGS, RequestCtx
from .errors import missing
from .operations.catalog import CatalogMixin
from .operations.credit_notes import CreditNotesMixin
from .operations.customers import CustomersMixin
from .operations.events import EventsMixin
from .operations.invoices import InvoicesMixin
from .operations.lifecycle import LifecycleMixin
from .operations.payments import PaymentsMixin
from .operations.rendering import RenderingMixin
from .operations.totals import TotalsMixin
from .settings import StripeSandboxSettings
from .store import Store
from .webhooks import WebhookDispatcher


class StripeSandbox(
    EventsMixin, RenderingMixin,
    CustomersMixin, CatalogMixin, InvoicesMixin, TotalsMixin,
    LifecycleMixin, PaymentsMixin, CreditNotesMixin,
):
    """The sandbox's state and operations; the HTTP layer (app.py, api.py) calls these."""

    def __init__(self, settings: StripeSandboxSettings | None = None) -> None:
        self.settings = settings or StripeSandboxSettings()
        self.store = Store(self.settings)
        self.local = threading.local()
        self.rate_window: dict[str, deque] = {}
        self._initial_switches = {k: getattr(self.settings, k) for k in RESETTABLE_SETTINGS}
        self._outbox: list[tuple[dict, dict]] = []
        self.webhooks = WebhookDispatcher(self)

    # ------------------------------------------------------------------ helpers
    @property
    def ctx(self) -> RequestCtx:
        ctx = getattr(self.local, "ctx", None)
        return ctx if ctx is not None else RequestCtx()

    def now(self) -> int:
        return self.store.now()

    def reset(self) -> None:
        """Forget everything: objects, events, keys, ledger, faults, clock offset, and
        switches changed through /_sandbox/settings."""
        with self.store.lock:
            self.webhooks.clear()
            self.store.reset()
            self.rate_window.clear()
            self.settings.clock.set_offset(0)
            for key, value in self._initial_switches.items():
                setattr(self.settings, key, value)
            self.webhooks.wake()
            self.store.save()

    def get(self, kind: str, obj_id, label: str | None = None, param: str = "id") -> dict:
        obj = self.store.get(kind, obj_id)
        if obj is None:
            raise missing(label or kind, str(obj_id), param)
        return obj

    # ------------------------------------------------------------------ clock
    def tick(self) -> None:
        """Emit invoice.overdue for open invoices whose due date the clock has passed."""
        now = self.now()
        with self.store.lock:
            for inv in self.store.all("invoice")[::-1]:
                if (inv["status"] == "open" and inv["due_date"] and inv["due_date"] < now
                        and not inv["_overdue_sent"]):
                    inv["_overdue_sent"] = True
                    self.emit("invoice.overdue", inv)

    def advance_clock(self, seconds: int) -> int:
        with self.store.lock:
            self.settings.clock.advance(seconds)
            self.tick()
            self.flush_outbox()
            self.store.save()
        return self.now()

    # ------------------------------------------------------------------ rate limiting
    def over_rate_limit(self, key: str, limit: int | None = None) -> bool:
        if limit is None:
            limit = self.settings.rate_limit_per_second
        if not limit or limit <= 0:
            return False
        now = time.monotonic()
        with self.store.lock:
            window = self.rate_window.setdefault(key, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                return True
            window.append(now)
            return False

