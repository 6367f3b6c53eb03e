"""Pytest plugin: a Stripe sandbox on a real socket, and a stripe SDK client wired to it.

Load with ``pytest_plugins = ["tests.fixtures_stripe"]`` (or ``-p tests.fixtures_stripe``).

One server per test session; every test starts from a fresh state (the sandbox-only
``/_sandbox/reset`` endpoint: objects, events, idempotency keys, ledger, faults, clock
offset and switches).
"""

from __future__ import annotations

import json
import threading

import pytest
import requests
import stripe
from werkzeug.wrappers import Request, Response

from app.sandbox.server import SandboxServer
from app.sandbox.stripe import StripeSandboxSettings, create_app

API_KEY = "sk_test_sandbox"


class StripeSandboxHandle:
    """What the ``stripe_sandbox`` fixture yields: the URL, the key and control methods
    (all calling the sandbox-only HTTP API, as the demo and the benchmarks do)."""

    def __init__(self, url: str, app, api_key: str = API_KEY) -> None:
        self.url = url
        self.app = app
        self.api_key = api_key
        self.sandbox = app.extensions["stripe_sandbox"]
        self.http = requests.Session()

    # -- plumbing
    def _post(self, path: str, payload: dict | None = None) -> dict:
        resp = self.http.post(f"{self.url}/_sandbox{path}", json=payload or {}, timeout=30)
        data = resp.json()
        if resp.status_code >= 400:
            raise AssertionError(f"sandbox control {path} failed: {data}")
        return data

    def _get(self, path: str) -> dict:
        resp = self.http.get(f"{self.url}/_sandbox{path}", timeout=30)
        resp.raise_for_status()
        return resp.json()

    # -- state
    def reset(self) -> None:
        self._post("/reset")

    def settings(self, **switches) -> dict:
        return self._post("/settings", switches)["settings"]

    def advance_clock(self, days: int = 0, seconds: int = 0) -> int:
        return self._post("/clock/advance", {"days": days, "seconds": seconds})["now"]

    def now(self) -> int:
        return self._get("/clock")["now"]

    # -- demo actions
    def pay_invoice(self, invoice_id: str, amount: int | None = None) -> dict:
        payload = {} if amount is None else {"amount": amount}
        return self._post(f"/invoices/{invoice_id}/pay", payload)

    def fail_payment(self, invoice_id: str) -> dict:
        return self._post(f"/invoices/{invoice_id}/fail_payment")

    def void_invoice(self, invoice_id: str) -> dict:
        return self._post(f"/invoices/{invoice_id}/void")

    def credit_note(self, invoice_id: str, amount: int, refund: bool = True) -> dict:
        return self._post(f"/invoices/{invoice_id}/credit_note",
                          {"amount": amount, "refund": refund})

    def refund(self, charge_id: str, amount: int | None = None) -> dict:
        return self._post(f"/charges/{charge_id}/refund",
                          {} if amount is None else {"amount": amount})

    # -- faults, ledger, webhooks
    def fault(self, mode: str, count: int = 1, path: str | None = None,
              method: str | None = None) -> dict:
        return self._post("/faults", {"mode": mode, "count": count, "path": path,
                                      "method": method})

    def clear_faults(self) -> None:
        self.http.delete(f"{self.url}/_sandbox/faults", timeout=30).raise_for_status()

    def ledger(self) -> list[dict]:
        return self._get("/ledger")["requests"]

    def reset_ledger(self) -> None:
        self.http.delete(f"{self.url}/_sandbox/ledger", timeout=30).raise_for_status()

    def drain_webhooks(self, timeout: float = 10.0) -> None:
        result = self._post("/webhooks/drain", {"timeout": timeout})
        if not result["drained"]:
            raise AssertionError(f"webhooks not drained after {timeout}s: {result}")

    def webhook_attempts(self) -> list[dict]:
        return self._get("/webhooks/attempts")["attempts"]


class WebhookReceiver:
    """A tiny HTTP endpoint recording what the sandbox delivers to it."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.fail_next = 0
        self.fail_status = 500
        self._lock = threading.Lock()
        self.server = SandboxServer(self._wsgi).start()
        self.url = f"{self.server.url}/webhooks/stripe"

    def _wsgi(self, environ, start_response):
        req = Request(environ)
        with self._lock:
            self.received.append(
                {"payload": req.get_data(as_text=True),
                 "signature": req.headers.get("Stripe-Signature", ""),
                 "headers": dict(req.headers)}
            )
            failing = self.fail_next > 0
            if failing:
                self.fail_next -= 1
        resp = Response("no" if failing else "ok", status=self.fail_status if failing else 200)
        return resp(environ, start_response)

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
            self.fail_next = 0
            self.fail_status = 500

    def events(self) -> list[dict]:
        with self._lock:
            return [json.loads(r["payload"]) for r in self.received]

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="session")
def _stripe_sandbox_server():
    settings = StripeSandboxSettings(webhook_time_scale=0.0005, seed=None)
    app = create_app(settings)
    server = SandboxServer(app).start()
    try:
        yield server, app
    finally:
        app.extensions["stripe_sandbox"].webhooks.stop()
        server.stop()


@pytest.fixture
def stripe_sandbox(_stripe_sandbox_server):
    server, app = _stripe_sandbox_server
    handle = StripeSandboxHandle(server.url, app)
    handle.reset()
    try:
        yield handle
    finally:
        handle.sandbox.webhooks.clear()
        handle.http.close()


@pytest.fixture
def stripe_client(stripe_sandbox) -> stripe.StripeClient:
    return stripe.StripeClient(
        stripe_sandbox.api_key,
        base_addresses={"api": stripe_sandbox.url},
        max_network_retries=0,
    )


@pytest.fixture(scope="session")
def _stripe_webhook_receiver_server():
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def stripe_webhook_receiver(_stripe_webhook_receiver_server, stripe_sandbox):
    """An HTTP endpoint recording deliveries (``.received``: payload, signature, headers;
    ``.events()``; ``.fail_next = n`` answers the next n deliveries with 500)."""
    receiver = _stripe_webhook_receiver_server
    receiver.clear()
    yield receiver
    stripe_sandbox.sandbox.webhooks.clear()
    receiver.clear()
