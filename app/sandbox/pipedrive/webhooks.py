"""Webhook delivery: v2 payloads, HTTP basic auth, at-least-once with retries.

A background thread delivers due attempts. A failed attempt (non-2xx, timeout or
connection error) is retried after ``settings.webhook_retry_delays`` (3, 30, 150 s
in Pipedrive), each multiplied by ``settings.time_scale``. ``drain()`` blocks
until nothing is queued or in flight, so tests never sleep.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import uuid
from datetime import timedelta

import requests

from . import jsonutil
from .settings import PipedriveSandboxSettings


class WebhookDispatcher:
    def __init__(self, store, settings: PipedriveSandboxSettings) -> None:
        self.store = store
        self.settings = settings
        self.cond = threading.Condition()
        self.queue: list[tuple[float, int, dict]] = []
        self.counter = itertools.count()
        self.inflight = 0
        self.log: list[dict] = []
        self.duplicate = settings.duplicate_webhook_deliveries
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.session = requests.Session()
        # per webhook: consecutive failed first attempts, ban end, first failure time
        self.health: dict[int, dict] = {}

    # -- producing -------------------------------------------------------
    def emit(self, *, action: str, entity: str, entity_id: int, data: dict | None,
             previous: dict | None, change_source: str = "api", user_id: int = 1) -> int:
        """Queue one event for every matching active webhook. Caller holds the store lock."""
        hooks = [
            w for w in self.store.t["webhooks"].values()
            if w["is_active"]
            and w["event_action"] in ("*", action)
            and w["event_object"] in ("*", entity)
        ]
        if not hooks:
            return 0
        now = self.settings.clock.now()
        hooks = [h for h in hooks if self._usable(h, now)]
        correlation_id = str(uuid.uuid4())
        user_ids = [str(u) for u in sorted(self.store.t["users"])] or [str(user_id)]
        queued = 0
        for hook in hooks:
            meta = {
                "action": action,
                "entity": entity,
                "entity_id": str(entity_id),
                "id": str(uuid.uuid4()),
                "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                "attempt": 1,
                "change_source": change_source,
                "is_bulk_edit": False,
                "correlation_id": correlation_id,
                "company_id": str(self.settings.company_id),
                "user_id": str(user_id),
                "host": f"{self.settings.company_domain}.pipedrive.com",
                "type": "general",
                "version": "2.0",
                "webhook_id": str(hook["id"]),
                "webhook_owner_id": str(hook["user_id"]),
                "permitted_user_ids": user_ids,
            }
            delivery = {
                "webhook_id": hook["id"],
                "url": hook["subscription_url"],
                "auth": (hook["http_auth_user"], hook["http_auth_password"])
                if hook.get("http_auth_user") else None,
                "meta": meta,
                "data": data,
                "previous": previous,
                "attempt": 1,
            }
            copies = 2 if self.duplicate else 1
            for _ in range(copies):
                self._schedule(dict(delivery), 0.0)
                queued += 1
        return queued

    def _usable(self, hook: dict, now) -> bool:
        """Pipedrive bans a webhook for 30 min after 10 failed first attempts in a row
        (events meanwhile are lost) and deletes it after 3 days without a success."""
        health = self.health.get(hook["id"])
        if not health:
            return True
        since = health.get("failing_since")
        if since is not None and (now - since).total_seconds() > 3 * 86400:
            self.store.t["webhooks"].pop(hook["id"], None)
            self._note({"webhook_id": hook["id"], "dropped": "webhook deleted after 3 days "
                        "without a successful delivery"})
            return False
        until = health.get("banned_until")
        if until is not None and now < until:
            self._note({"webhook_id": hook["id"], "dropped": "webhook banned"})
            return False
        return True

    def _note(self, entry: dict) -> None:
        with self.cond:
            self.log.append(entry)

    def _record_health(self, hook_id: int, attempt: int, ok: bool, now) -> None:
        health = self.health.setdefault(hook_id, {"first_failures": 0, "banned_until": None,
                                                  "failing_since": None})
        if ok:
            health.update(first_failures=0, failing_since=None)
            return
        if health["failing_since"] is None:
            health["failing_since"] = now
        if attempt == 1:
            health["first_failures"] += 1
            if health["first_failures"] >= 10:
                health["banned_until"] = now + timedelta(minutes=30)
                health["first_failures"] = 0

    def _schedule(self, delivery: dict, delay: float) -> None:
        with self.cond:
            heapq.heappush(self.queue, (time.monotonic() + delay, next(self.counter), delivery))
            self._ensure_thread()
            self.cond.notify_all()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run, name="pipedrive-webhooks", daemon=True
            )
            self._thread.start()

    # -- delivering ------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self.cond:
                while not self._stopping:
                    if self.queue and self.queue[0][0] <= time.monotonic():
                        break
                    timeout = None
                    if self.queue:
                        timeout = max(0.0, self.queue[0][0] - time.monotonic())
                    self.cond.wait(timeout)
                if self._stopping:
                    return
                _, _, delivery = heapq.heappop(self.queue)
                self.inflight += 1
            try:
                self._attempt(delivery)
            finally:
                with self.cond:
                    self.inflight -= 1
                    self.cond.notify_all()

    def _attempt(self, delivery: dict) -> None:
        with self.store.lock:
            hook = self.store.t["webhooks"].get(delivery["webhook_id"])
        if hook is None or not hook["is_active"]:
            return
        meta = dict(delivery["meta"], attempt=delivery["attempt"])
        body = jsonutil.dumps({"meta": meta, "data": delivery["data"],
                               "previous": delivery["previous"]})
        status: int | None = None
        error = None
        try:
            resp = self.session.post(
                delivery["url"], data=body.encode(), auth=delivery["auth"],
                headers={"Content-Type": "application/json",
                         "User-Agent": "Pipedrive Webhooks"},
                timeout=self.settings.webhook_timeout, allow_redirects=False,
            )
            status = resp.status_code
        except requests.RequestException as exc:
            error = type(exc).__name__
        ok = status is not None and 200 <= status < 300
        now = self.settings.clock.now()
        with self.store.lock:
            hook = self.store.t["webhooks"].get(delivery["webhook_id"])
            if hook is not None:
                hook["last_delivery_time"] = now.strftime("%Y-%m-%d %H:%M:%S")
                hook["last_http_status"] = status
            self._record_health(delivery["webhook_id"], delivery["attempt"], ok, now)
        retry_in = None
        delays = self.settings.webhook_retry_delays
        if not ok and delivery["attempt"] <= len(delays):
            retry_in = delays[delivery["attempt"] - 1] * self.settings.time_scale
        with self.cond:
            self.log.append({
                "event_id": meta["id"], "webhook_id": delivery["webhook_id"],
                "action": meta["action"], "entity": meta["entity"],
                "entity_id": meta["entity_id"], "attempt": delivery["attempt"],
                "status": status, "error": error, "ok": ok,
                "retry_in_seconds": retry_in,
            })
        if retry_in is not None:
            self._schedule(dict(delivery, attempt=delivery["attempt"] + 1), retry_in)

    # -- control ---------------------------------------------------------
    def drain(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.queue or self.inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(min(remaining, 0.05))
        return True

    def pending(self) -> int:
        with self.cond:
            return len(self.queue) + self.inflight

    def clear(self) -> None:
        with self.cond:
            self.queue.clear()
            self.log.clear()
            self.health.clear()
            self.cond.notify_all()

    def stop(self) -> None:
        with self.cond:
            self._stopping = True
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2)
