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


# -- poison events in the pull (issue 15, 6) and Stripe's clock (B6) ---------------------


def _inject_event(stripe_sandbox, event_id: str, etype: str, obj) -> None:
    """An event as Stripe would list it, whatever its object says."""
    sb = stripe_sandbox.sandbox
    sb.store.add("event", {
        "id": event_id, "object": "event", "api_version": "2026-10-28.endive",
        "created": sb.now(), "data": {"object": obj}, "livemode": False,
        "pending_webhooks": 0, "request": {"id": None, "idempotency_key": None},
        "type": etype,
    })


def test_poison_events_never_block_the_events_behind_them(
    app, pushed, stripe_sandbox, monkeypatch
):
    import requests

    import app.payments.sync as sync

    _sync(app)
    customer = _inv(app, pushed["invoice_id"]).stripe_customer_id
    # Someone else's invoice naming a desk invoice id no database integer can hold: it
    # stalled every pull ("Python int too large").
    resp = requests.post(
        f"{stripe_sandbox.url}/v1/invoices",
        headers={"Authorization": f"Bearer {stripe_sandbox.api_key}"},
        data={"customer": customer, "metadata[desk_invoice_id]": "9" * 20},
        timeout=10,
    )
    resp.raise_for_status()
    _inject_event(stripe_sandbox, "evt_poison_string", "invoice.updated", "in_nothing")
    _inject_event(stripe_sandbox, "evt_poison_apply", "customer.updated",
                  {"id": "cus_poison", "object": "customer"})
    real = sync.process_event

    def crash_on_poison(event, gateway, *, reread):
        if event["id"] == "evt_poison_apply":
            raise ValueError("not what it claims to be")
        return real(event, gateway, reread=reread)

    monkeypatch.setattr(sync, "process_event", crash_on_poison)
    stripe_sandbox.pay_invoice(pushed["stripe_id"], 1000)
    run = _sync(app)
    assert run.counts["quarantined"] == 2
    assert _inv(app, pushed["invoice_id"]).payment_status == "partially_paid"
    with app.app_context():
        string = db.session.get(StripeEvent, "evt_poison_string")
        assert (string.status, string.error) == ("quarantined", "data.object is not an object")
        crashed = db.session.get(StripeEvent, "evt_poison_apply")
        assert crashed.status == "failed"
        assert crashed.error == "ValueError: not what it claims to be"
    stripe_sandbox.pay_invoice(pushed["stripe_id"], 1000)
    assert _sync(app).counts["applied"] >= 1  # the next pull goes on as usual


def test_events_dropped_by_stripes_clock_are_recovered_from_the_invoices(
    app, pushed, stripe_sandbox
):
    """B6: Stripe keeps events 30 days by its own clock. When it has moved on more than
    that since the cursor (a test clock), the payment's events are gone unread although
    the desk's clock says the cursor is fresh: the pull must re-read the invoices."""
    import requests

    _sync(app)
    stripe_sandbox.pay_invoice(pushed["stripe_id"])  # paid in full: no overdue later
    stripe_sandbox.advance_clock(days=31)
    customer = _inv(app, pushed["invoice_id"]).stripe_customer_id
    requests.post(  # any newer event tells the desk where Stripe's clock is
        f"{stripe_sandbox.url}/v1/customers/{customer}",
        headers={"Authorization": f"Bearer {stripe_sandbox.api_key}"},
        data={"name": "Renamed"},
        timeout=10,
    ).raise_for_status()
    run = _sync(app)
    assert run.counts["fallback_invoices"] >= 1
    assert _inv(app, pushed["invoice_id"]).payment_status == "paid"


def test_a_deadlocked_pull_is_run_again_and_ends_ok(app, pushed, stripe_sandbox, monkeypatch,
                                                      caplog):
    """B1: a deadlock (or serialization failure) in the pull is not a failed run."""
    from sqlalchemy.exc import OperationalError

    import app.payments.operations as operations

    class Deadlock(Exception):
        sqlstate = "40P01"

    real, calls = operations.pull_events, []

    def deadlock_once(gateway, run):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE invoice ...", {}, Deadlock("deadlock detected"))
        return real(gateway, run)

    monkeypatch.setattr(operations, "pull_events", deadlock_once)
    stripe_sandbox.pay_invoice(pushed["stripe_id"], 1000)
    caplog.set_level("INFO")
    run = _sync(app)
    assert len(calls) == 2 and run.error is None
    assert _inv(app, pushed["invoice_id"]).payment_status == "partially_paid"
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")]
