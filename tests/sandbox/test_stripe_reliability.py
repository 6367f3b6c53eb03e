"""Idempotency, fault injection, rate limiting, the request ledger, persistence, the demo
page and the CLI."""

from __future__ import annotations

import requests
import stripe
from click.testing import CliRunner

from app.sandbox.server import SandboxServer
from app.sandbox.stripe import StripeSandboxSettings, create_app
from app.sandbox.stripe.cli import stripe_command


def _post(sb, path, data=None, key=None):
    headers = {"Authorization": f"Bearer {sb.api_key}"}
    if key:
        headers["Idempotency-Key"] = key
    return requests.post(f"{sb.url}{path}", data=data or {}, headers=headers, timeout=10)


# ---------------------------------------------------------------- idempotency
def test_idempotent_replay_returns_first_response(stripe_client, stripe_sandbox):
    opts = {"idempotency_key": "create-cus-deal-7-v1"}
    a = stripe_client.v1.customers.create(params={"email": "i@example.com"}, options=opts)
    b = stripe_client.v1.customers.create(params={"email": "i@example.com"}, options=opts)
    assert a.id == b.id
    assert len(stripe_client.v1.customers.list().data) == 1
    r = _post(stripe_sandbox, "/v1/customers", {"email": "i@example.com"},
              key="create-cus-deal-7-v1")
    assert r.headers["Idempotent-Replayed"] == "true"
    assert r.json()["id"] == a.id
    assert len([e for e in stripe_client.v1.events.list().data
                if e.type == "customer.created"]) == 1


def test_idempotency_key_with_other_parameters_is_rejected(stripe_client):
    opts = {"idempotency_key": "k-1"}
    stripe_client.v1.customers.create(params={"email": "a@example.com"}, options=opts)
    try:
        stripe_client.v1.customers.create(params={"email": "b@example.com"}, options=opts)
    except stripe.IdempotencyError as exc:
        assert exc.http_status == 400
        assert exc.json_body["error"]["type"] == "idempotency_error"
        assert "same parameters" in exc.user_message
    else:
        raise AssertionError("expected an IdempotencyError")
    try:
        stripe_client.v1.products.create(params={"name": "x"}, options=opts)
    except stripe.IdempotencyError as exc:
        assert "same endpoint" in exc.user_message
    else:
        raise AssertionError("expected an IdempotencyError")


def test_idempotency_replays_errors_from_executed_requests(stripe_sandbox):
    first = _post(stripe_sandbox, "/v1/invoices", {"customer": "cus_missing"}, key="k-err")
    again = _post(stripe_sandbox, "/v1/invoices", {"customer": "cus_missing"}, key="k-err")
    assert first.status_code == again.status_code == 404
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    # validation failures are not stored: the same key can be used once the request is fixed
    bad = _post(stripe_sandbox, "/v1/customers", {"nope": "1"}, key="k-val")
    assert bad.status_code == 400 and "Idempotent-Replayed" not in bad.headers
    ok = _post(stripe_sandbox, "/v1/customers", {"email": "v@example.com"}, key="k-val")
    assert ok.status_code == 200


def test_idempotency_keys_expire_after_24h(stripe_client, stripe_sandbox):
    opts = {"idempotency_key": "k-exp"}
    a = stripe_client.v1.customers.create(options=opts)
    stripe_sandbox.advance_clock(seconds=24 * 3600 + 1)
    b = stripe_client.v1.customers.create(options=opts)
    assert a.id != b.id


# ---------------------------------------------------------------- faults
def test_fault_500_and_503_next_n(stripe_client, stripe_sandbox):
    stripe_sandbox.fault("500", count=2)
    for _ in range(2):
        try:
            stripe_client.v1.customers.list()
        except stripe.APIError as exc:
            assert exc.http_status == 500
            assert exc.json_body["error"]["type"] == "api_error"
        else:
            raise AssertionError("expected a 500")
    assert stripe_client.v1.customers.list().data == []
    stripe_sandbox.fault("503", count=1)
    try:
        stripe_client.v1.customers.create()
    except stripe.APIError as exc:
        assert exc.http_status == 503
    else:
        raise AssertionError("expected a 503")
    assert stripe_client.v1.customers.list().data == []  # nothing was performed


def test_fault_scoped_to_a_path(stripe_client, stripe_sandbox):
    stripe_sandbox.fault("500", count=1, path=r"/finalize$")
    cus = stripe_client.v1.customers.create()
    inv = stripe_client.v1.invoices.create(params={"customer": cus.id})
    try:
        stripe_client.v1.invoices.finalize_invoice(inv.id)
    except stripe.APIError:
        pass
    else:
        raise AssertionError("expected the finalize step to fail")
    assert stripe_client.v1.invoices.finalize_invoice(inv.id).status == "paid"  # zero total


def test_lost_response_performs_the_request(stripe_client, stripe_sandbox):
    stripe_sandbox.fault("lose", count=1, path=r"^/v1/customers$", method="POST")
    try:
        stripe_client.v1.customers.create(params={"email": "lost@example.com"},
                                          options={"idempotency_key": "lost-1"})
    except stripe.APIConnectionError:
        pass
    else:
        raise AssertionError("expected the connection to be lost")
    # the customer exists; retrying with the same key replays instead of duplicating
    found = stripe_client.v1.customers.list(params={"email": "lost@example.com"}).data
    assert len(found) == 1
    again = stripe_client.v1.customers.create(params={"email": "lost@example.com"},
                                              options={"idempotency_key": "lost-1"})
    assert again.id == found[0].id
    assert len(stripe_client.v1.customers.list().data) == 1


def test_429_burst(stripe_client, stripe_sandbox):
    stripe_sandbox.fault("429", count=3)
    for _ in range(3):
        try:
            stripe_client.v1.customers.list()
        except stripe.RateLimitError as exc:
            assert exc.http_status == 429
            err = exc.json_body["error"]
            assert err["code"] == "rate_limit" and err["type"] == "invalid_request_error"
        else:
            raise AssertionError("expected a 429")
    assert stripe_client.v1.customers.list().data == []


def test_faults_listed_and_cleared(stripe_sandbox):
    stripe_sandbox.fault("503", count=5)
    assert stripe_sandbox._get("/faults")["faults"][0]["count"] == 5
    stripe_sandbox.clear_faults()
    assert stripe_sandbox._get("/faults")["faults"] == []
    r = requests.post(f"{stripe_sandbox.url}/_sandbox/faults", json={"mode": "teapot"},
                      timeout=10)
    assert r.status_code == 400


def test_rate_limit_per_second(stripe_client, stripe_sandbox):
    stripe_sandbox.settings(rate_limit_per_second=5)
    outcomes = []
    for _ in range(8):
        try:
            stripe_client.v1.customers.list()
            outcomes.append(200)
        except stripe.RateLimitError:
            outcomes.append(429)
    # 8 calls well within one second: the first 5 pass, then 429s
    assert outcomes[:5] == [200] * 5 and 429 in outcomes[5:]


def test_default_rate_limit_is_stripe_test_mode(stripe_sandbox):
    assert stripe_sandbox.sandbox.settings.rate_limit_per_second == 25


# ---------------------------------------------------------------- ledger
def test_ledger_counts_calls(stripe_client, stripe_sandbox):
    stripe_sandbox.reset_ledger()
    stripe_client.v1.customers.create(options={"idempotency_key": "L-1"})
    stripe_client.v1.customers.create(options={"idempotency_key": "L-1"})
    stripe_client.v1.customers.list()
    requests.get(f"{stripe_sandbox.url}/v1/customers", timeout=10)  # 401
    ledger = stripe_sandbox.ledger()
    assert [(r["method"], r["path"], r["status"]) for r in ledger] == [
        ("POST", "/v1/customers", 200), ("POST", "/v1/customers", 200),
        ("GET", "/v1/customers", 200), ("GET", "/v1/customers", 401)]
    assert [r["replayed"] for r in ledger] == [False, True, False, False]
    assert ledger[0]["idempotency_key"] == "L-1" and isinstance(ledger[0]["time"], int)
    stripe_sandbox.reset_ledger()
    assert stripe_sandbox.ledger() == []


# ---------------------------------------------------------------- persistence
def test_state_file_persists_and_reloads(tmp_path):
    path = tmp_path / "stripe.json"
    settings = StripeSandboxSettings(state_file=str(path))
    app = create_app(settings)
    with SandboxServer(app) as server:
        client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": server.url},
                                     max_network_retries=0)
        cus = client.v1.customers.create(params={"email": "p@example.com"},
                                         options={"idempotency_key": "persist-1"})
        inv = client.v1.invoices.create(params={"customer": cus.id})
        client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": 1234}]})
    app.extensions["stripe_sandbox"].webhooks.stop()
    assert path.exists()
    app2 = create_app(StripeSandboxSettings(state_file=str(path)))
    with SandboxServer(app2) as server:
        client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": server.url},
                                     max_network_retries=0)
        assert client.v1.invoices.retrieve(inv.id).total == 1234
        again = client.v1.customers.create(params={"email": "p@example.com"},
                                           options={"idempotency_key": "persist-1"})
        assert again.id == cus.id
        assert len(client.v1.events.list(params={"limit": 100}).data) >= 4
        fresh = client.v1.customers.create()
        assert fresh.id != cus.id
    app2.extensions["stripe_sandbox"].webhooks.stop()


# ---------------------------------------------------------------- demo page and CLI
def test_demo_page_and_form_actions(stripe_client, stripe_sandbox):
    cus = stripe_client.v1.customers.create(params={"email": "demo@example.com"})
    inv = stripe_client.v1.invoices.create(params={"customer": cus.id})
    stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": 2500}]})
    inv = stripe_client.v1.invoices.finalize_invoice(inv.id)
    page = requests.get(f"{stripe_sandbox.url}/_sandbox/", timeout=10)
    assert page.status_code == 200 and inv.id in page.text and "Pay in full" in page.text
    r = requests.post(f"{stripe_sandbox.url}/_sandbox/invoices/{inv.id}/pay",
                      data={"amount": "1000", "_ui": "1"}, allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert stripe_client.v1.invoices.retrieve(inv.id).amount_paid == 1000
    # the control API never answers under /v1 and needs no key
    assert requests.get(f"{stripe_sandbox.url}/_sandbox/clock", timeout=10).status_code == 200


def test_cli_command_options():
    result = CliRunner().invoke(stripe_command, ["--help"])
    assert result.exit_code == 0
    for option in ("--port", "--host", "--state-file"):
        assert option in result.output
    assert stripe_command.name == "stripe"
    defaults = {p.name: p.default for p in stripe_command.params}
    assert defaults["port"] == 12111 and defaults["host"] == "127.0.0.1"


def test_other_api_versions_refused(stripe_sandbox):
    r = requests.get(f"{stripe_sandbox.url}/v1/customers", timeout=10,
                     headers={"Authorization": f"Bearer {stripe_sandbox.api_key}",
                              "Stripe-Version": "2020-08-27"})
    assert r.status_code == 400 and "2026-10-28.endive" in r.json()["error"]["message"]


def test_search_has_its_own_rate_limit(stripe_client, stripe_sandbox):
    stripe_sandbox.settings(search_rate_limit_per_second=2)
    outcomes = []
    for _ in range(4):
        try:
            stripe_client.v1.customers.search(params={"query": "email:'x@example.com'"})
            outcomes.append(200)
        except stripe.RateLimitError:
            outcomes.append(429)
    assert outcomes[:2] == [200, 200] and 429 in outcomes[2:]
    assert stripe_client.v1.customers.list().data == []  # other endpoints unaffected


def test_cli_serves_until_interrupted(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    state = tmp_path / "state.json"
    code = ("from app.sandbox.stripe.cli import stripe_command; "
            "stripe_command(prog_name='stripe')")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", "--state-file", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # Ctrl-C as in a terminal: a suite started in the background (make test-units)
        # hands its children SIGINT ignored, and Python keeps it so.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    try:
        line = proc.stdout.readline()
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        r = requests.post(f"{url}/v1/customers", timeout=10,
                          headers={"Authorization": "Bearer sk_test_sandbox"})
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert r.json()["id"] in state.read_text()


def test_concurrent_requests_are_serialized(stripe_client, stripe_sandbox):
    from concurrent.futures import ThreadPoolExecutor

    cus = stripe_client.v1.customers.create(params={"email": "many@example.com"})
    inv = stripe_client.v1.invoices.create(params={"customer": cus.id})
    stripe_client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": 10000}]})
    stripe_client.v1.invoices.finalize_invoice(inv.id)

    def pay(_):
        return requests.post(f"{stripe_sandbox.url}/_sandbox/invoices/{inv.id}/pay",
                             json={"amount": 1000}, timeout=10).status_code

    def create(_):
        return _post(stripe_sandbox, "/v1/customers", {"email": "same@example.com"},
                     key="same-key").json()["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(pay, range(12)))
        ids = list(pool.map(create, range(8)))
    assert sorted(statuses) == [200] * 10 + [400] * 2
    final = stripe_client.v1.invoices.retrieve(inv.id)
    assert final.status == "paid" and final.amount_paid == 10000
    assert len(set(ids)) == 1
    assert len(stripe_client.v1.customers.list(params={"email": "same@example.com"}).data) == 1
