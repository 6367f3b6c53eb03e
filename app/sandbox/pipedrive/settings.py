"""Settings and the controllable clock of the Pipedrive sandbox."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# Documented plan default used here: Growth-like multiplier 2 x 5 seats x 30,000 base tokens.
DEFAULT_DAILY_BUDGET = 30_000 * 2 * 5
# Token costs per endpoint kind (Pipedrive publishes these per endpoint; v2 about half of v1).
COSTS = {
    "v2_list": 10,
    "v2_get": 1,
    "v2_create": 5,
    "v2_update": 5,
    "v2_delete": 3,
    "v2_search": 20,
    "v2_deal_products": 10,
    "v1_list": 20,
    "v1_get": 2,
    "v1_create": 10,
    "v1_update": 10,
    "v1_delete": 6,
    "v1_notes_list": 10,
    "v1_notes_create": 10,
}


class SandboxClock:
    """Wall clock plus an offset that tests (or the control API) can advance.

    ``frozen_at`` pins the clock entirely (``advance`` then moves the pinned time).
    """

    def __init__(self, frozen_at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._frozen = frozen_at

    def now(self) -> datetime:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            if self._frozen is not None:
                self._frozen = self._frozen + timedelta(seconds=seconds)
            else:
                self._offset += timedelta(seconds=seconds)
        return self.now()

    def set(self, when: datetime) -> None:
        with self._lock:
            if self._frozen is not None:
                self._frozen = when
            else:
                self._offset = when - datetime.now(UTC)

    def timestamp(self) -> float:
        return self.now().timestamp()


@dataclass
class PipedriveSandboxSettings:
    api_tokens: tuple[str, ...] = ("pd_sandbox_token",)
    oauth_tokens: tuple[str, ...] = ()
    company_domain: str = "billingdesk-demo"
    company_name: str = "Billing Desk Demo Ltd"
    company_id: int = 7104821
    daily_budget: int = DEFAULT_DAILY_BUDGET
    burst_limit: int = 40  # api_token requests per rolling 2 s window (Advanced plan)
    oauth_burst_limit: int = 160
    search_burst_limit: int = 10
    burst_window_seconds: float = 2.0
    webhook_retry_delays: tuple[float, ...] = (3.0, 30.0, 150.0)
    webhook_timeout: float = 10.0
    max_webhooks: int = 40
    time_scale: float = 1.0
    duplicate_webhook_deliveries: bool = False
    state_file: str | None = None
    clock: SandboxClock = field(default_factory=SandboxClock)

    @property
    def api_token(self) -> str:
        return self.api_tokens[0]
