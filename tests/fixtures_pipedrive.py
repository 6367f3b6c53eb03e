"""Pytest plugin: a real-HTTP Pipedrive sandbox per test.

Use with ``pytest -p tests.fixtures_pipedrive``. One server runs for the whole
session; every test gets a fresh state (reset, default limits, clock offset zero).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests

from app.sandbox.pipedrive import PipedriveSandboxSettings, SandboxClock, create_app
from app.sandbox.server import SandboxServer

DEFAULTS = PipedriveSandboxSettings()


@dataclass
class PipedriveSandboxHandle:
    url: str
    api_token: str
    app: object
    settings: PipedriveSandboxSettings

    @property
    def sandbox(self):
        return self.app.extensions["pipedrive_sandbox"]

    # -- control (over HTTP, like any other client of the control API) ----
    def _post(self, path: str, payload: dict | None = None) -> dict:
        resp = requests.post(f"{self.url}/_sandbox/{path}", json=payload or {}, timeout=60)
        resp.raise_for_status()
        return resp.json()["data"]

    def seed(self, synthetic_deals: int = 0, random_seed: int = 42) -> dict:
        return self._post("seed", {"synthetic_deals": synthetic_deals,
                                   "random_seed": random_seed})

    def reset(self) -> None:
        self._post("reset")

    def ledger(self) -> dict:
        resp = requests.get(f"{self.url}/_sandbox/ledger", timeout=10)
        resp.raise_for_status()
        return resp.json()["data"]

    def reset_ledger(self) -> None:
        self._post("ledger/reset")

    def set_limits(self, **limits) -> dict:
        return self._post("limits", limits)

    def set_budget(self, daily_budget: int, budget_used: int | None = None) -> dict:
        payload = {"daily_budget": daily_budget}
        if budget_used is not None:
            payload["budget_used"] = budget_used
        return self._post("limits", payload)

    def set_burst(self, burst_limit: int, search_burst_limit: int | None = None) -> dict:
        payload = {"burst_limit": burst_limit, "reset_burst": True}
        if search_burst_limit is not None:
            payload["search_burst_limit"] = search_burst_limit
        return self._post("limits", payload)

    def fail_next(self, count: int = 1, status: int = 500, path_prefix: str = "/") -> dict:
        return self._post("faults", {"count": count, "status": status,
                                     "path_prefix": path_prefix})

    def advance_clock(self, seconds: float) -> str:
        return self._post("clock", {"advance_seconds": seconds})["now"]

    def ui_edit(self, deal_id: int, **changes) -> dict:
        return self._post(f"deals/{deal_id}/ui-edit", changes)

    def drain_webhooks(self, timeout: float = 10.0) -> dict:
        data = self._post("webhooks/drain", {"timeout": timeout})
        assert data["drained"], f"webhook deliveries still pending: {data['pending']}"
        return data

    def duplicate_webhooks(self, enabled: bool = True) -> None:
        self._post("webhooks/duplicate", {"enabled": enabled})

    # -- plain API helpers -------------------------------------------------
    def headers(self) -> dict:
        return {"x-api-token": self.api_token}

    def get(self, path: str, **params) -> requests.Response:
        return requests.get(f"{self.url}{path}", params=params, headers=self.headers(),
                            timeout=30)


@pytest.fixture(scope="session")
def _pipedrive_server():
    settings = PipedriveSandboxSettings(time_scale=0.001, clock=SandboxClock())
    app = create_app(settings)
    server = SandboxServer(app).start()
    yield server, app, settings
    app.extensions["pipedrive_sandbox"].webhooks.stop()
    server.stop()


@pytest.fixture
def pipedrive_sandbox(_pipedrive_server):
    server, app, settings = _pipedrive_server
    sb = app.extensions["pipedrive_sandbox"]
    sb.webhooks.drain(5)
    for key in ("daily_budget", "burst_limit", "oauth_burst_limit", "search_burst_limit",
                "oauth_tokens", "max_webhooks"):
        setattr(settings, key, getattr(DEFAULTS, key))
    settings.clock = sb.clock = SandboxClock()
    sb.webhooks.duplicate = False
    sb.reset()
    yield PipedriveSandboxHandle(url=server.url, api_token=settings.api_token, app=app,
                                 settings=settings)
    sb.webhooks.drain(5)


@pytest.fixture
def pipedrive_seeded(pipedrive_sandbox):
    pipedrive_sandbox.seed()
    pipedrive_sandbox.reset_ledger()
    return pipedrive_sandbox


class WebhookReceiver:
    """A real HTTP endpoint recording webhook deliveries; can fail the first N."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.fail_first = 0
        self.fail_status = 500
        self.server = SandboxServer(self._wsgi).start()

    @property
    def url(self) -> str:
        return f"{self.server.url}/hooks/pipedrive"

    def _wsgi(self, environ, start_response):
        import json

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        with self.lock:
            self.requests.append({
                "path": environ.get("PATH_INFO"),
                "authorization": environ.get("HTTP_AUTHORIZATION"),
                "content_type": environ.get("CONTENT_TYPE"),
                "body": json.loads(body) if body else None,
            })
            failing = self.fail_first > 0
            if failing:
                self.fail_first -= 1
        status = f"{self.fail_status} Error" if failing else "200 OK"
        start_response(status, [("Content-Type", "text/plain")])
        return [b"no" if failing else b"ok"]

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def webhook_receiver():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()
