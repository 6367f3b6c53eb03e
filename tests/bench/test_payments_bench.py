"""Benchmarks for the payment sync and the mismatch board (make bench).

- A payment-sync cycle with 100,000 known invoices and ~200 new events:
  Stripe requests (target <= 3).
- Mismatch recompute over 100,000 invoices: time (target <= 5 s) and memory
  (target <= 300 MB RSS).
"""

from __future__ import annotations

import datetime as dt
import resource
import time
import tracemalloc
from decimal import Decimal

import pytest
from sqlalchemy import insert

from app.extensions import db
from app.intake.models import PdDeal
from app.invoices.models import Invoice
from tests.fixtures_desk import send_to_stripe

pytestmark = pytest.mark.bench
N = 100_000


def _bulk_invoices(app, n: int = N, start_id: int = 1_000_000) -> None:
    """n deals with one pushed invoice each, in a spread of payment states."""
    now = dt.datetime.now(dt.UTC)
    states = ["open", "paid", "partially_paid", "overdue", "refunded", "void"]
    with app.app_context():
        deals, invoices = [], []
        for i in range(n):
            deal_id = start_id + i
            state = states[i % len(states)]
            deals.append(
                {
                    "id": deal_id,
                    "title": f"Bench {i}",
                    "value": Decimal("100"),
                    "currency": "EUR",
                    "status": "won" if i % 50 else "lost",
                    "ready": True,
                    "content_hash": "h",
                    "search_text": "",
                    "won_sort": now,
                    "update_sort": now,
                    "custom_fields": {},
                    "billing_email": "ap@example.com",
                    "product_count": 1,
                }
            )
            paid = (
                Decimal("100")
                if state in ("paid", "refunded")
                else (Decimal("40") if state == "partially_paid" else Decimal(0))
            )
            invoices.append(
                {
                    "deal_id": deal_id,
                    "status": "pushed",
                    "currency": "EUR",
                    "total": Decimal("100") if i % 40 else Decimal("90"),
                    "subtotal": Decimal("100"),
                    "stripe_invoice_id": f"in_bench_{i}",
                    "stripe_customer_id": f"cus_bench_{i % 997}",
                    "stripe_status": "void"
                    if state == "void"
                    else ("paid" if state in ("paid", "refunded") else "open"),
                    "payment_status": state,
                    "amount_paid": paid,
                    "amount_refunded": Decimal("25") if state == "refunded" else Decimal(0),
                    "amount_remaining": Decimal("100") - paid,
                    "deal_hash": "h",
                    "due_at": now - dt.timedelta(days=3) if state == "overdue" else None,
                    "version": 1,
                    "approved_version": 1,
                    "custom_fields": [],
                    "address": {},
                    "deal_snapshot": {},
                }
            )
            if len(deals) == 5000:
                db.session.execute(insert(PdDeal), deals)
                db.session.execute(insert(Invoice), invoices)
                deals, invoices = [], []
        if deals:
            db.session.execute(insert(PdDeal), deals)
            db.session.execute(insert(Invoice), invoices)
        db.session.commit()


def test_payment_sync_cycle_requests(app, draft, desk_on_stripe, capsys):
    from app.payments.operations import run_payment_sync

    send_to_stripe(app, draft["invoice_id"])
    with app.app_context():
        run_payment_sync()  # consume the push's own events
    _bulk_invoices(app)
    stripe_id = None
    with app.app_context():
        stripe_id = db.session.get(Invoice, draft["invoice_id"]).stripe_invoice_id
    # About 200 new events: small payments (each makes several events).
    sandbox = desk_on_stripe
    from app.payments.sync import EVENT_TYPES

    def relevant() -> int:
        return sum(1 for e in sandbox.sandbox.store.all("event") if e["type"] in EVENT_TYPES)

    start = relevant()
    while relevant() - start < 200:
        sandbox.pay_invoice(stripe_id, 100)
    t = time.perf_counter()
    with app.app_context():
        run = run_payment_sync()
        status, requests, events = run.status, run.requests, run.counts["events"]
    took = time.perf_counter() - t
    with capsys.disabled():
        print(
            f"\n[payments] cycle with {N:,} known invoices and {events} new "
            f"events: {requests} Stripe requests, {took * 1000:.0f} ms"
        )
    assert status == "ok" and requests <= 3


def test_mismatch_recompute_100k(app, capsys):
    from app.mismatches.operations import recompute

    _bulk_invoices(app)
    with app.app_context():
        t = time.perf_counter()
        counts = recompute()  # first run: every hit is new
        db.session.commit()
        took = time.perf_counter() - t
        t = time.perf_counter()
        recompute()  # steady state: nothing changed
        db.session.commit()
        steady = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Python's own allocations during a recompute, on a separate untimed run
    # (tracemalloc slows Python down several times).
    with app.app_context():
        tracemalloc.start()
        recompute()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        db.session.rollback()
    with capsys.disabled():
        print(f"\n[mismatches] recompute over {N:,} invoices: first {took:.2f} s "
              f"({counts['open']:,} mismatches), steady {steady:.2f} s; Python peak "
              f"{peak / 2**20:.0f} MB, process max RSS {rss_mb:.0f} MB")
    assert took <= 5 and steady <= 5
    assert rss_mb <= 300
