"""Benchmarks for the push to Stripe (make bench). Figures are printed.

- Stripe requests per invoice for a known customer (target <= 4 up to 50 lines), next
  to a client that creates one invoice item per line.
- 500 invoices pushed in bulk: requests per second against the configured rate limit
  (target >= 80 % of it) and the number of 429s (target: no storm).
- 1,000 randomized fault trials: zero duplicates.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
import stripe

from app.extensions import db
from app.invoices.plan import line_params
from app.invoices.totals import for_invoice
from app.push.queueing import enqueue_push
from app.push.stripe_calls import push_gateway
from app.push.taxes import cached
from app.push.worker import work_push_queue
from tests.push.helpers import approved_invoice, invoice, push_now
from tests.push.trials import run_trials

pytestmark = pytest.mark.bench
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.rollback()


def _lines(n: int) -> list:
    rates = [(19, "exclusive"), (7, "inclusive"), (0, "none")]
    return [(f"Item {i}", 1 + i % 4, f"{10 + i}.{(i * 37) % 100:02d}", *rates[i % 3], None)
            for i in range(n)]


def _per_line_client(sandbox, inv, customer: str, tax_ids: dict) -> None:
    """The usual integration: one invoice item per line, then finalize and send."""
    client = stripe.StripeClient(sandbox.api_key, base_addresses={"api": sandbox.url},
                                 max_network_retries=0)
    totals = for_invoice(inv)
    si = client.v1.invoices.create(params={
        "customer": customer, "currency": "eur", "collection_method": "send_invoice",
        "days_until_due": 30, "auto_advance": False})
    for pl in totals.push_lines:
        params = line_params(pl, inv.currency, tax_ids)
        item = {"invoice": si.id, "customer": customer, "currency": "eur",
                "description": params["description"]}
        if "price_data" in params:
            item["unit_amount_decimal"] = params["price_data"]["unit_amount_decimal"]
            if "quantity" in params:
                item["quantity"] = params["quantity"]
            else:
                item["quantity_decimal"] = params["quantity_decimal"]
        else:
            item["amount"] = params["amount"]
        if "tax_rates" in params:
            item["tax_rates"] = params["tax_rates"]
        client.v1.invoice_items.create(params=item)
    client.v1.invoices.finalize_invoice(si.id, params={"auto_advance": False})
    client.v1.invoices.send_invoice(si.id)


def test_requests_per_invoice_next_to_one_item_per_line(stripe_desk, approver, ctx):
    push_now([approved_invoice(approver.id, lines=_lines(3))])  # customer and rates known
    tax_ids = dict(cached())
    customer = invoice(1).stripe_customer_id
    rows = []
    for n in (1, 10, 25, 50):
        iid = approved_invoice(approver.id, lines=_lines(n), deal_id=9000 + n)
        stripe_desk.reset_ledger()
        push_now([iid])
        desk = len(stripe_desk.ledger())
        stripe_desk.reset_ledger()
        _per_line_client(stripe_desk, invoice(iid), customer, tax_ids)
        naive = len(stripe_desk.ledger())
        rows.append((n, desk, naive))
        assert desk <= 4
    print("\nStripe requests per invoice, known customer and tax rates")
    print(f"{'lines':>6} {'desk':>6} {'one item per line':>18}")
    for n, desk, naive in rows:
        print(f"{n:>6} {desk:>6} {naive:>18}")


@pytest.fixture
def remote_stripe(app):
    """A Stripe sandbox in its own process, as Stripe is: it does not share this
    process's interpreter with the workers. Limit: Stripe's test mode, 25/s."""
    code = ("import sys; from app.sandbox.server import SandboxServer; "
            "from app.sandbox.stripe import StripeSandboxSettings, create_app; "
            "s = SandboxServer(create_app(StripeSandboxSettings(rate_limit_per_second=25))"
            ").start(); print(s.url, flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    app.config.update(STRIPE_SECRET_KEY="sk_test_sandbox", STRIPE_API_BASE=url,
                      STRIPE_GATEWAY_OPTIONS={"backoff": 0.5})
    yield url
    proc.stdin.close()
    proc.wait(timeout=10)


def test_bulk_push_of_500_stays_under_the_rate_limit_and_uses_it(app, remote_stripe, approver,
                                                                   ctx):
    ids = [approved_invoice(approver.id, lines=_lines(5), org_id=1000 + n % 50,
                            deal_id=20_000 + n, email=f"ap@org{n % 50}.example")
           for n in range(500)]
    _, results = enqueue_push(ids, None)
    db.session.commit()
    assert all(r.ok for r in results)
    gateway = push_gateway()
    threads = app.config.get("PUSH_WORKER_THREADS", 8)
    started = time.monotonic()
    counts = work_push_queue(limit=1000, gateway=gateway, threads=threads)
    elapsed = time.monotonic() - started
    ledger = requests.get(f"{remote_stripe}/_sandbox/ledger", timeout=30).json()["requests"]
    statuses = Counter(r["status"] for r in ledger)
    span = ledger[-1]["wall_time"] - ledger[0]["wall_time"]
    rate = len(ledger) / span
    configured = gateway.bucket.rate
    per_second = Counter(int(r["wall_time"] - ledger[0]["wall_time"]) for r in ledger)
    print(f"\n500 invoices, {threads} worker threads: {counts['done']} pushed in {elapsed:.1f} s,"
          f" {len(ledger)} requests ({len(ledger) / 500:.2f} per invoice incl. 50 new customers)")
    print(f"rate {rate:.2f} req/s = {rate / configured:.0%} of the desk's {configured:.0f}/s "
          f"limit, {rate / 25:.0%} of Stripe's 25/s; busiest second {max(per_second.values())}")
    print(f"429s: {statuses.get(429, 0)}; gateway retries {gateway.usage.retries}, "
          f"waited {gateway.usage.waited_seconds:.1f} s in the rate limiter")
    assert counts["done"] == 500
    assert statuses.get(429, 0) <= 5
    assert rate >= 0.8 * configured


def test_a_thousand_randomized_fault_trials(stripe_desk, approver, ctx):
    started = time.monotonic()
    stats = run_trials(stripe_desk, approver.id, 1000, seed=7_260_311)
    elapsed = time.monotonic() - started
    print(f"\n1,000 fault trials in {elapsed:.0f} s: 0 duplicate invoices, 0 duplicate "
          f"customers ({len(stats.orgs)} organizations), {stats.resumes} resumes")
    print("faults:", dict(sorted(stats.by_fault.items())))
    print("steps: ", dict(sorted(stats.by_step.items())))
