"""Token costs, burst and daily budget limits, fault injection, sandbox control API."""

from __future__ import annotations

from functools import partial

import requests

TIMEOUT = 30
http_get = partial(requests.get, timeout=TIMEOUT)
http_post = partial(requests.post, timeout=TIMEOUT)
http_patch = partial(requests.patch, timeout=TIMEOUT)
http_delete = partial(requests.delete, timeout=TIMEOUT)


def test_ledger_token_costs(pipedrive_seeded):
    sb = pipedrive_seeded
    h = sb.headers()
    calls = [
        (lambda: sb.get("/api/v2/deals"), 10),
        (lambda: sb.get("/api/v2/deals/1"), 1),
        (lambda: sb.get("/api/v2/deals/1/products"), 10),
        (lambda: sb.get("/api/v2/deals/products", deal_ids="1,2"), 10),
        (lambda: http_post(f"{sb.url}/api/v2/deals", headers=h, json={"title": "t"}), 5),
        (lambda: http_patch(f"{sb.url}/api/v2/deals/1", headers=h, json={"title": "t"}), 5),
        (lambda: sb.get("/api/v2/persons/search", term="anna"), 20),
        (lambda: http_post(f"{sb.url}/v1/notes", headers=h,
                               json={"content": "c", "deal_id": 1}), 10),
        (lambda: sb.get("/v1/notes", deal_id=1), 10),
        (lambda: sb.get("/v1/users"), 20),
        (lambda: sb.get("/v1/users/1"), 2),
    ]
    for call, _ in calls:
        assert call().status_code < 300
    http_get(f"{sb.url}/api/v2/deals", headers={"x-api-token": "bad"})
    ledger = sb.ledger()
    entries = ledger["entries"]
    assert [e["cost"] for e in entries] == [c for _, c in calls] + [0]
    assert entries[-1]["status"] == 401
    assert ledger["totals"]["tokens"] == sum(c for _, c in calls)
    assert ledger["totals"]["requests"] == len(calls) + 1
    assert "api_token" not in str(entries)
    sb.reset_ledger()
    assert sb.ledger()["entries"] == []


def test_rate_limit_headers_on_every_response(pipedrive_seeded):
    sb = pipedrive_seeded
    r1 = sb.get("/api/v2/deals/1")
    r2 = sb.get("/api/v2/deals")
    for r in (r1, r2):
        for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                     "x-daily-requests-left"):
            assert name in r.headers, name
    assert int(r1.headers["x-ratelimit-remaining"]) == int(r2.headers["x-ratelimit-remaining"]) + 1
    assert int(r1.headers["x-daily-requests-left"]) - 10 == int(r2.headers["x-daily-requests-left"])
    err = sb.get("/api/v2/deals", foo=1)
    assert err.status_code == 400 and "x-ratelimit-remaining" in err.headers


def test_burst_limit_429_with_retry_after(pipedrive_seeded):
    sb = pipedrive_seeded
    sb.set_burst(3)
    statuses = [sb.get("/api/v2/deals/1").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    r = sb.get("/api/v2/deals/1")
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= 2
    assert r.headers["x-ratelimit-remaining"] == "0"
    assert int(r.headers["x-daily-requests-left"]) > 0
    body = r.json()
    assert body["success"] is False and body["errorCode"] == 429
    assert body["code"] == "RATE_LIMIT_EXCEEDED"
    assert sb.ledger()["entries"][-1]["cost"] == 0


def test_search_has_its_own_burst_limit(pipedrive_seeded):
    sb = pipedrive_seeded
    sb.set_burst(100, search_burst_limit=2)
    codes = [sb.get("/api/v2/persons/search", term="anna").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert sb.get("/api/v2/deals/1").status_code == 200


def test_daily_budget_exhaustion_is_distinguishable_and_resets_at_midnight(pipedrive_seeded):
    sb = pipedrive_seeded
    sb.set_budget(25)
    assert sb.get("/api/v2/deals").status_code == 200  # 10
    assert sb.get("/api/v2/deals").status_code == 200  # 20
    r = sb.get("/api/v2/deals")  # 30 > 25
    assert r.status_code == 429
    assert "retry-after" not in r.headers
    assert r.headers["x-daily-requests-left"] == "0"
    assert r.json()["code"] == "DAILY_BUDGET_EXCEEDED"
    assert sb.get("/api/v2/deals/1").status_code == 200  # 1 token still fits
    assert sb.ledger()["budget_used"] == 21
    sb.advance_clock(24 * 3600)
    assert sb.get("/api/v2/deals").status_code == 200
    assert sb.ledger()["budget_used"] == 10


def test_fault_injection(pipedrive_seeded):
    sb = pipedrive_seeded
    sb.fail_next(2, status=503, path_prefix="/api/v2/deals")
    assert sb.get("/api/v2/persons/1").status_code == 200
    r = sb.get("/api/v2/deals/1")
    assert r.status_code == 503 and r.json()["success"] is False
    assert sb.get("/api/v2/deals").status_code == 503
    assert sb.get("/api/v2/deals/1").status_code == 200
    sb.fail_next(1)
    assert sb.get("/api/v2/persons/1").status_code == 500


def test_control_api_needs_no_token_and_api_does(pipedrive_sandbox):
    sb = pipedrive_sandbox
    assert http_get(f"{sb.url}/_sandbox/summary").json()["data"]["deals"] == 0
    sb.seed()
    assert http_get(f"{sb.url}/_sandbox/summary").json()["data"]["deals"] == 208
    page = http_get(f"{sb.url}/_sandbox/")
    assert page.status_code == 200 and "PO number" in page.text
    sb.reset()
    assert sb.get("/api/v2/deals").json()["data"] == []
    assert http_get(f"{sb.url}/api/v2/deals").status_code == 401
    assert sb.get("/api/v2/nonexistent").status_code == 404
