"""Events, the outbox that delivers them after a transaction, and webhook endpoints."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from ..common import metadata_update
from ..errors import invalid
from ..store import public

if TYPE_CHECKING:
    from ..sandbox import StripeSandbox


class EventsMixin:
    """Mixed into ``StripeSandbox``: events, the outbox that delivers them after a
    transaction, and webhook endpoints."""

    # ------------------------------------------------------------------ events
    def emit(self, event_type: str, obj: dict, previous: dict | None = None) -> dict:
        st = self.store
        data: dict[str, Any] = {"object": self.render(obj)}
        if previous:
            data["previous_attributes"] = previous
        endpoints = [
            ep for ep in st.all("webhook_endpoint")
            if ep["status"] == "enabled"
            and ("*" in ep["enabled_events"] or event_type in ep["enabled_events"])
        ]
        ctx = self.ctx
        event = {
            "id": st.new_id("evt"),
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": len(endpoints) if self.settings.webhooks_enabled else 0,
            "request": {"id": ctx.request_id, "idempotency_key": ctx.idempotency_key},
            "type": event_type,
        }
        st.add("event", event)
        if self.settings.webhooks_enabled:
            rendered = public(event)
            for ep in sorted(endpoints, key=lambda e: e["_seq"]):
                self._outbox.append((ep, rendered))
        return event

    # ------------------------------------------------------------------ transactions
    def transaction(self):
        """``with sb.transaction():`` run a mutation atomically: on an error (other than one
        marked keep_changes) state and pending webhooks are rolled back; on success the
        webhooks of the new events are queued."""
        return _Transaction(self)

    def flush_outbox(self) -> None:
        with self.store.lock:
            outbox, self._outbox = self._outbox, []
        for ep, event in outbox:
            self.webhooks.enqueue(ep, event)

    def emit_update(self, event_type: str, obj: dict, before: dict) -> None:
        after = self.render(obj)
        previous = {k: v for k, v in before.items() if after.get(k) != v}
        if previous:  # Stripe sends no *.updated event when nothing changed
            self.emit(event_type, obj, previous)

    def webhook_delivered(self, event_id: str) -> None:
        with self.store.lock:
            ev = self.store.get("event", event_id)
            if ev and ev["pending_webhooks"] > 0:
                ev["pending_webhooks"] -= 1

    # ------------------------------------------------------------------ webhooks
    def create_webhook_endpoint(self, p: dict) -> dict:
        url = p["url"]
        if p.get("api_version") not in (None, "2026-10-28.endive"):
            raise invalid(
                f"The Stripe sandbox only renders events in API version 2026-10-28.endive, "
                f"not {p['api_version']}.", param="api_version")
        if not url.startswith(("http://", "https://")):
            raise invalid("Invalid URL: URL must be publicly accessible and use http(s).",
                          param="url", code="url_invalid")
        ep = {
            "id": self.store.new_id("we"),
            "object": "webhook_endpoint",
            "api_version": p.get("api_version"),
            "application": None,
            "created": self.now(),
            "description": p.get("description") or None,
            "enabled_events": list(p["enabled_events"]),
            "livemode": False,
            "metadata": metadata_update({}, p.get("metadata")),
            "status": "enabled",
            "url": url,
            "_secret": "whsec_" + secrets.token_hex(24),
        }
        self.store.add("webhook_endpoint", ep)
        return ep


class _Transaction:
    """The store lock and a store transaction; events queued inside go out on commit."""

    def __init__(self, sandbox: StripeSandbox) -> None:
        self.sb = sandbox

    def __enter__(self):
        self.sb.store.lock.acquire()
        self.sb.store.begin()
        self.outbox_len = len(self.sb._outbox)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        store = self.sb.store
        try:
            if exc is not None and not getattr(exc, "keep_changes", False):
                store.rollback()
                del self.sb._outbox[self.outbox_len:]
            else:
                store.commit()
                if store._depth == 0:
                    self.sb.flush_outbox()
        finally:
            store.lock.release()
        return False
