"""The Pipedrive client: every request to Pipedrive goes through `PipedriveClient`.

It owns authentication (API token or OAuth bearer), retries with backoff on 5xx
and network errors, the burst rate limit (waits out 429s, slows down when the
window is nearly spent), the daily token budget (stops and says until when),
cursor paging, and request/token accounting. It never logs the token.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import requests

log = logging.getLogger("billing_desk.pipedrive")

# Pipedrive's documented token costs per endpoint kind (v2 about half of v1).
TOKEN_COSTS = {
    "v2_list": 10,
    "v2_get": 1,
    "v2_deal_products": 10,
    "v2_create": 5,
    "v2_update": 5,
    "v2_delete": 3,
    "v2_search": 20,
    "v1_notes": 10,
    "v1_list": 20,
    "v1_get": 2,
    "v1_create": 10,
    "v1_delete": 6,
}


def token_cost(method: str, path: str) -> int:
    """What a request costs from the daily budget, as Pipedrive charges it."""
    method = method.upper()
    v1 = path.startswith("/v1/") or path.startswith("/api/v1/")
    if "/search" in path:
        return TOKEN_COSTS["v2_search"] if not v1 else 40
    if v1:
        if path.rstrip("/").endswith("/notes") or "/notes/" in path:
            return TOKEN_COSTS["v1_notes"]
        return {
            "GET": TOKEN_COSTS["v1_list"] if _is_list(path) else TOKEN_COSTS["v1_get"],
            "POST": TOKEN_COSTS["v1_create"],
            "PUT": TOKEN_COSTS["v1_create"],
            "DELETE": TOKEN_COSTS["v1_delete"],
        }.get(method, 10)
    if method == "GET":
        if path.rstrip("/").endswith("/products") and "/deals" in path:
            return TOKEN_COSTS["v2_deal_products"]
        return TOKEN_COSTS["v2_list"] if _is_list(path) else TOKEN_COSTS["v2_get"]
    return {
        "POST": TOKEN_COSTS["v2_create"],
        "PATCH": TOKEN_COSTS["v2_update"],
        "DELETE": TOKEN_COSTS["v2_delete"],
    }.get(method, 5)


def _is_list(path: str) -> bool:
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return not last.isdigit() and last != "me"


class PipedriveError(Exception):
    """Pipedrive answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class PipedriveAuthError(PipedriveError):
    """401: the token is wrong, revoked, or for another company."""


class PipedriveNotFound(PipedriveError):
    pass


class BudgetExhausted(PipedriveError):
    """The company's daily token budget is spent: stop until `resets_at`."""

    def __init__(self, resets_at: dt.datetime, message: str = "") -> None:
        super().__init__(message or "Pipedrive's daily API token budget is spent", 429)
        self.resets_at = resets_at


@dataclass
class Usage:
    """Request accounting for one client (one sync run, one job, one page)."""

    requests: int = 0
    tokens: int = 0
    retries: int = 0
    waited_seconds: float = 0.0
    by_endpoint: dict[str, int] = field(default_factory=dict)
    daily_left: int | None = None

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "tokens": self.tokens,
            "retries": self.retries,
            "waited_seconds": round(self.waited_seconds, 3),
            "daily_left": self.daily_left,
        }


def next_midnight_utc(now: dt.datetime | None = None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    return dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)


class PipedriveClient:
    def __init__(
        self,
        base_url: str,
        api_token: str | None = None,
        *,
        oauth_token: str | None = None,
        refresh_oauth: Callable[[], str] | None = None,
        timeout: float = 20.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        if not base_url:
            raise PipedriveError("Pipedrive is not connected: no company domain or base URL set")
        if not api_token and not oauth_token:
            raise PipedriveError("Pipedrive is not connected: no API token or OAuth token set")
        self.base_url = base_url.rstrip("/")
        self._token = api_token
        self._oauth = oauth_token
        self._refresh = refresh_oauth
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.sleep = sleep
        self.session = session or requests.Session()
        self.usage = Usage()
        self._slow_until = 0.0

    def __repr__(self) -> str:  # never shows the token
        return f"<PipedriveClient {self.base_url} auth={'oauth' if self._oauth else 'token'}>"

    # -- transport -----------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "BillingDesk/0.1"}
        if self._oauth:
            headers["Authorization"] = f"Bearer {self._oauth}"
        else:
            headers["x-api-token"] = self._token or ""
        return headers

    def _wait(self, seconds: float, why: str) -> None:
        seconds = max(0.0, min(seconds, self.max_wait))
        if seconds:
            log.info("pipedrive: waiting %.2f s (%s)", seconds, why)
            self.usage.waited_seconds += seconds
            self.sleep(seconds)

    def request(self, method: str, path: str, *, params=None, json=None) -> dict:
        """One API call; returns the decoded JSON body (the whole envelope)."""
        method = method.upper()
        url = f"{self.base_url}{path}"
        # POST creates things and Pipedrive has no idempotency keys: it is retried
        # only when the request certainly never arrived (connection refused) or was
        # refused for rate limiting, never after a timeout or a 5xx.
        retry_unsafe = method == "POST"
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            if self._slow_until > time.monotonic():
                self._wait(self._slow_until - time.monotonic(), "burst window nearly spent")
            self.usage.requests += 1
            key = f"{method} {path}"
            self.usage.by_endpoint[key] = self.usage.by_endpoint.get(key, 0) + 1
            try:
                resp = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=self._headers(),
                    timeout=self.timeout,
                )
            except requests.ConnectionError as exc:
                if attempt > self.max_retries:
                    raise PipedriveError(f"could not reach Pipedrive at {self.base_url}") from exc
                if retry_unsafe and not _never_sent(exc):
                    raise PipedriveError(
                        "the connection to Pipedrive broke while creating something; "
                        "not retried automatically to avoid a duplicate"
                    ) from exc
                self._retry_pause(attempt, "connection error")
                continue
            except requests.Timeout as exc:
                if attempt > self.max_retries or retry_unsafe:
                    raise PipedriveError(
                        f"Pipedrive did not answer within {self.timeout:.0f} s"
                    ) from exc
                self._retry_pause(attempt, "timeout")
                continue

            self._account(method, path, resp)
            status = resp.status_code
            if status == 429:
                body = _json(resp)
                if _budget_spent(resp, body):
                    raise BudgetExhausted(next_midnight_utc(), _error_text(body))
                if attempt > self.max_retries + 4:
                    raise PipedriveError("Pipedrive kept answering 429 (rate limited)", 429)
                self.usage.retries += 1
                self._wait(_retry_after(resp, default=2.0), "rate limited (429)")
                continue
            if status == 401 and self._oauth and self._refresh and not refreshed:
                self._oauth = self._refresh()
                refreshed = True
                continue
            if status >= 500:
                if attempt > self.max_retries or retry_unsafe:
                    raise PipedriveError(f"Pipedrive answered {status}", status)
                self._retry_pause(attempt, f"HTTP {status}")
                continue
            body = _json(resp)
            if status == 401:
                raise PipedriveAuthError(
                    "Pipedrive rejected the credentials: " + _error_text(body), 401
                )
            if status == 404:
                raise PipedriveNotFound(_error_text(body), 404)
            if status >= 400:
                raise PipedriveError(f"Pipedrive refused the request: {_error_text(body)}", status)
            return body

    def _retry_pause(self, attempt: int, why: str) -> None:
        self.usage.retries += 1
        delay = self.backoff * (2 ** (attempt - 1))
        self._wait(delay + random.uniform(0, self.backoff / 2), why)  # noqa: S311 - jitter

    def _account(self, method: str, path: str, resp: requests.Response) -> None:
        if resp.status_code != 429:
            self.usage.tokens += token_cost(method, path)
        h = resp.headers
        left = h.get("x-daily-requests-left")
        if left is not None and left.lstrip("-").isdigit():
            self.usage.daily_left = int(left)
        remaining, reset = h.get("x-ratelimit-remaining"), h.get("x-ratelimit-reset")
        if remaining is not None and remaining.isdigit() and int(remaining) <= 1:
            # Spread the next requests over the window instead of running into a 429.
            seconds = float(reset) if reset and reset.replace(".", "", 1).isdigit() else 1.0
            self._slow_until = time.monotonic() + seconds

    # -- helpers ----------------------------------------------------------------------

    def get(self, path: str, **params) -> dict:
        return self.request("GET", path, params=_clean(params))

    def iter_v2(self, path: str, params: dict | None = None, limit: int = 500) -> Iterator[dict]:
        """Every item of a v2 list, following `additional_data.next_cursor`."""
        params = _clean(dict(params or {}))
        params["limit"] = limit
        while True:
            body = self.request("GET", path, params=params)
            yield from body.get("data") or []
            cursor = (body.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return
            params["cursor"] = cursor

    def pages_v2(self, path: str, params: dict | None = None, limit: int = 500):
        """Like iter_v2, but yields (items, next_cursor) per page, for resumable syncs."""
        params = _clean(dict(params or {}))
        params["limit"] = limit
        while True:
            body = self.request("GET", path, params=params)
            cursor = (body.get("additional_data") or {}).get("next_cursor")
            yield body.get("data") or [], cursor
            if not cursor:
                return
            params["cursor"] = cursor


def _clean(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if v is None:
            continue
        if isinstance(v, (list, tuple, set)):
            v = ",".join(str(x) for x in v)
        elif isinstance(v, bool):
            v = "true" if v else "false"
        out[k] = v
    return out


def _json(resp: requests.Response) -> dict:
    try:
        body = resp.json(parse_float=Decimal)
    except ValueError:
        return {"error": (resp.text or "")[:200] or f"HTTP {resp.status_code}"}
    return body if isinstance(body, dict) else {"data": body}


def _error_text(body: dict) -> str:
    parts = [str(body.get("error") or "").strip(), str(body.get("error_info") or "").strip()]
    return " — ".join(p for p in parts if p) or "no details given"


def _budget_spent(resp: requests.Response, body: dict) -> bool:
    if resp.headers.get("x-daily-requests-left") == "0":
        return True
    text = f"{body.get('error', '')} {body.get('error_info', '')} {body.get('code', '')}".lower()
    return "daily" in text and "budget" in text


def _retry_after(resp: requests.Response, default: float) -> float:
    for header in ("retry-after", "x-ratelimit-reset"):
        value = resp.headers.get(header)
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                continue
    return default


def _never_sent(exc: requests.ConnectionError) -> bool:
    text = str(exc).lower()
    return "refused" in text or "name or service not known" in text
