"""Payment state from the Stripe Events API (the pull) and what the CRM is told."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from app.extensions import db
from app.intake.models import SyncRun, SyncState
from app.invoices.models import Invoice
from app.payments.models import StripeEvent
from app.payments.operations import mark_overdue, run_payment_sync
from app.payments.sync import EVENTS_STATE
from app.writeback.models import WritebackItem


def _inv(app, invoice_id) -> Invoice:
    with app.app_context():
        inv = db.session.get(Invoice, invoice_id)
        db.session.expunge(inv)
        return inv


def _sync(app) -> SyncRun:
    with app.app_context():
        run = run_payment_sync()
        assert run.status == "ok", run.error
        db.session.expunge(run)
        return run


def _minor(amount: Decimal, cur="EUR") -> int:
    return int(amount * 100)


def _outbox(app, kind=None) -> list[WritebackItem]:
    with app.app_context():
        q = select(WritebackItem).order_by(WritebackItem.id)
        if kind:
            q = q.where(WritebackItem.kind == kind)
        rows = db.session.execute(q).scalars().all()
        for r in rows:
            db.session.expunge(r)
        return rows


def test_partial_then_full_payment(app, pushed, stripe_sandbox):
    inv = _inv(app, pushed["invoice_id"])
    assert inv.payment_status == "open"
    half = _minor(inv.total) // 2
    _sync(app)  # consume the push's own events
    stripe_sandbox.pay_invoice(pushed["stripe_id"], half)
    run = _sync(app)
    inv = _inv(app, pushed["invoice_id"])
    assert inv.payment_status == "partially_paid"
    assert inv.amount_paid == Decimal(half) / 100
    assert inv.amount_remaining == inv.total - inv.amount_paid
    assert run.requests <= 2
    notes = [r.payload["content"] for r in _outbox(app, "deal_note")]
    assert any("Partial payment received" in n for n in notes)
    fields = _outbox(app, "deal_fields")[-1].payload["fields"]
    assert fields["payment_status"] == "Partially paid"
    assert Decimal(fields["amount_outstanding"]) == inv.amount_remaining
    stripe_sandbox.pay_invoice(pushed["stripe_id"])
    _sync(app)
    inv = _inv(app, pushed["invoice_id"])
    assert inv.payment_status == "paid" and inv.amount_remaining == 0
    assert inv.collected == inv.total


def test_refund_and_credit_note_change_collected_and_credited(app, pushed, stripe_sandbox):
    inv = _inv(app, pushed["invoice_id"])
    stripe_sandbox.pay_invoice(pushed["stripe_id"])
    _sync(app)
    charge = stripe_sandbox.sandbox.store.get("invoice", pushed["stripe_id"])
    ch_id = _charge_of(stripe_sandbox, pushed["stripe_id"])
    stripe_sandbox.refund(ch_id, 1000)
    _sync(app)
    inv = _inv(app, pushed["invoice_id"])
    assert charge is not None
    assert inv.amount_refunded == Decimal("10.00")
    assert inv.collected == inv.total - Decimal("10.00")
    assert inv.payment_status == "partially_refunded"
    notes = [r.payload["content"] for r in _outbox(app, "deal_note")]
    assert any("Refund on" in n for n in notes)


def _charge_of(stripe_sandbox, stripe_invoice_id: str) -> str:
    store = stripe_sandbox.sandbox.store
    for ch in store.all("charge"):
        pi = store.get("payment_intent", ch["payment_intent"])
        if (
            pi
            and (pi.get("metadata") or {}).get("invoice") == stripe_invoice_id
            or ch.get("invoice") == stripe_invoice_id
            or _pi_invoice(store, pi) == stripe_invoice_id
        ):
            return ch["id"]
    raise AssertionError("no charge")


def _pi_invoice(store, pi) -> str | None:
    for ip in store.all("invoice_payment"):
        if (ip.get("payment") or {}).get("payment_intent") == (pi or {}).get("id"):
            return ip["invoice"]
    return None


def test_pre_payment_credit_note_reduces_outstanding(app, pushed, stripe_sandbox):
    inv = _inv(app, pushed["invoice_id"])
    stripe_sandbox.credit_note(pushed["stripe_id"], 500, refund=False)
    _sync(app)
    after = _inv(app, pushed["invoice_id"])
    assert after.amount_credited == Decimal("5.00")
    assert after.amount_remaining == inv.total - Decimal("5.00")
    assert after.payment_status == "open"


def test_void_and_payment_failed(app, pushed, stripe_sandbox):
    stripe_sandbox.fail_payment(pushed["stripe_id"])
    _sync(app)
    assert _inv(app, pushed["invoice_id"]).payment_status == "payment_failed"
    activities = _outbox(app, "deal_activity")
    assert activities and "payment failed" in activities[0].payload["subject"]
    stripe_sandbox.void_invoice(pushed["stripe_id"])
    _sync(app)
    assert _inv(app, pushed["invoice_id"]).payment_status == "void"


def test_overdue_from_stripe_and_told_once(app, pushed, stripe_sandbox):
    inv = _inv(app, pushed["invoice_id"])
    assert inv.due_at is not None
    stripe_sandbox.advance_clock(days=(inv.days_until_due or 30) + 2)
    _sync(app)
    with app.app_context():
        import datetime as dt

        mark_overdue(
            now=dt.datetime.now(dt.UTC) + dt.timedelta(days=(inv.days_until_due or 30) + 2)
        )
    assert _inv(app, pushed["invoice_id"]).payment_status == "overdue"
    overdue_notes = [r for r in _outbox(app, "deal_note") if "overdue" in r.payload["content"]]
    assert len(overdue_notes) == 1
    assert len(_outbox(app, "deal_activity")) == 1


def test_cycle_costs_one_request_per_hundred_events(app, pushed, stripe_sandbox):
    _sync(app)
    for _ in range(3):
        stripe_sandbox.pay_invoice(pushed["stripe_id"], 100)
    run = _sync(app)
    assert run.requests == 1
    again = _sync(app)  # nothing new: one request, nothing applied
    assert again.requests == 1 and again.counts["new"] == 0


def test_replayed_pull_changes_nothing(app, pushed, stripe_sandbox):
    stripe_sandbox.pay_invoice(pushed["stripe_id"], 1000)
    _sync(app)
    before = _inv(app, pushed["invoice_id"])
    notes_before = len(_outbox(app))
    with app.app_context():
        # Rewind the cursor: the same events come again and are skipped by id.
        state = db.session.get(SyncState, EVENTS_STATE)
        state.cursor_time = state.cursor_time.replace(year=state.cursor_time.year)
        import datetime as dt

        state.cursor_time -= dt.timedelta(hours=1)
        db.session.commit()
    _sync(app)
    after = _inv(app, pushed["invoice_id"])
    assert (after.amount_paid, after.payment_status) == (before.amount_paid, before.payment_status)
    assert len(_outbox(app)) == notes_before
    with app.app_context():
        dup = db.session.execute(select(func.count()).select_from(StripeEvent)).scalar()
        assert dup == len({e.id for e in db.session.execute(select(StripeEvent)).scalars()})


def test_cursor_older_than_stripe_keeps_events_rereads_known_invoices(app, pushed, stripe_sandbox):
    stripe_sandbox.pay_invoice(pushed["stripe_id"], 1000)
    with app.app_context():
        import datetime as dt

        state = db.session.get(SyncState, EVENTS_STATE) or SyncState(name=EVENTS_STATE)
        state.cursor_time = dt.datetime.now(dt.UTC) - dt.timedelta(days=45)
        db.session.add(state)
        db.session.commit()
    run = _sync(app)
    assert run.counts["fallback_invoices"] >= 1
    assert _inv(app, pushed["invoice_id"]).payment_status == "partially_paid"
