"""PostgreSQL races between the webhook handler, the events pull and the jobs (B1, B2).

Each test holds a lock in the test's own transaction, starts the other side in a
thread (its own app context, so its own session and connection), waits until
PostgreSQL shows that side waiting for a lock, then goes on: the order of events is
forced, not left to timing.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import stripe
from sqlalchemy import select, text

from app.audit.operations import lock_chain
from app.extensions import db
from app.invoices.models import Invoice
from app.payments.models import StripeEvent
from app.payments.sync import store_event

SECRET = "whsec_test_secret_for_the_desk"


@pytest.fixture
def pg(app):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("a PostgreSQL lock race")
    return app


def wait_for_a_waiter(app, locktype: str | None = None, bound: float = 30.0) -> None:
    """Until another connection waits for a lock (of `locktype`) in this database."""
    query = "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid " \
            "WHERE NOT l.granted AND a.datname = current_database()"
    if locktype:
        query += " AND l.locktype = :t"
    deadline = time.monotonic() + bound
    with app.app_context(), db.engine.connect() as conn:
        while conn.execute(text(query), {"t": locktype}).scalar() == 0:
            conn.rollback()
            assert time.monotonic() < deadline, "the other side never came to wait for a lock"
            time.sleep(0.01)  # polling a condition, not waiting for one to happen


def in_thread(app, work) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run():
        with app.app_context():
            try:
                out["value"] = work()
            except Exception as exc:  # noqa: BLE001 - reported to the test
                db.session.rollback()
                out["error"] = exc
            finally:
                db.session.remove()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _event(event_id: str) -> dict:
    return {"id": event_id, "object": "event", "type": "customer.updated",
            "created": int(time.time()), "data": {"object": {"id": "cus_1", "object": "customer"}}}


def test_an_event_stored_by_the_pull_and_a_webhook_at_once_is_stored_once(pg):
    """B2: the second insert of the same event waits for the first, then does nothing
    (it used to fail with a pk_stripe_event unique violation and undo the whole pull)."""
    with pg.app_context():
        assert store_event(_event("evt_race"), "webhook") is not None  # not committed yet

        def pull_stores_it():
            row = store_event(_event("evt_race"), "pull")
            db.session.commit()
            return row

        thread, out = in_thread(pg, pull_stores_it)
        wait_for_a_waiter(pg, "transactionid")
        db.session.commit()
        thread.join(60)
    assert "error" not in out, out.get("error")
    assert out["value"] is None  # a duplicate: nothing stored a second time
    with pg.app_context():
        assert db.session.get(StripeEvent, "evt_race").source == "webhook"


def test_a_webhook_and_a_job_holding_the_audit_lock_do_not_deadlock(
    pg, pushed, stripe_sandbox, caplog
):
    """B1: a job holds the audit chain lock and then wants the invoice row; the
    webhook for that invoice must not be holding the row while it waits for the chain
    lock (it used to: a deadlock, and the webhook answered 500)."""
    pg.config["STRIPE_WEBHOOK_SECRET"] = SECRET
    sid = pushed["stripe_id"]
    stripe_sandbox.pay_invoice(sid, 1000)
    event = {**_event("evt_deadlock"), "type": "invoice.updated",
             "data": {"object": {"id": sid, "object": "invoice"}}}
    body = json.dumps(event)
    t = int(time.time())
    sig = stripe.WebhookSignature._compute_signature(f"{t}.{body}", SECRET)
    client = pg.test_client()
    caplog.set_level("INFO")
    with pg.app_context():
        lock_chain()  # the job: the audit chain lock first ...

        def webhook():
            return client.post("/webhooks/stripe", data=body, content_type="application/json",
                               headers={"Stripe-Signature": f"t={t},v1={sig}"}).status_code

        thread, out = in_thread(pg, webhook)
        wait_for_a_waiter(pg, "advisory")  # the webhook waits for the chain lock
        # ... then the invoice row, as the lock order says.
        db.session.execute(select(Invoice.id).where(Invoice.stripe_invoice_id == sid)
                           .with_for_update()).all()
        db.session.commit()
        thread.join(60)
    assert out.get("value") == 200, out
    # Not even a deadlock that a retry then hid: the locks were taken in one order.
    assert not [r for r in caplog.records if "deadlock" in r.getMessage()]
    with pg.app_context():
        assert db.session.get(Invoice, pushed["invoice_id"]).payment_status == "partially_paid"


def test_two_first_stripe_states_of_one_invoice_at_once_make_one_row(pg):
    """A push finishing and a webhook for its invoice both make the invoice's Stripe
    state row: the second waits for the first and reads its row (it used to fail with a
    pk_invoice_stripe_state unique violation and leave the push 'failed')."""
    from app.payments.sync import stripe_state
    from tests.approvals.conftest import new_invoice

    with pg.app_context():
        invoice_id = new_invoice().id
        db.session.commit()
    with pg.app_context():
        stripe_state(db.session.get(Invoice, invoice_id)).line_count = 2
        db.session.flush()  # inserted, not committed

        def webhook_side():
            state = stripe_state(db.session.get(Invoice, invoice_id))
            db.session.commit()
            return state.line_count

        thread, out = in_thread(pg, webhook_side)
        wait_for_a_waiter(pg, "transactionid")
        db.session.commit()
        thread.join(60)
    assert "error" not in out, out.get("error")
    assert out["value"] == 2


def test_writing_an_invoice_row_takes_the_audit_chain_lock_first(pg):
    """LOCK ORDER step 1 holds on every path: a flush that writes an invoice row takes
    the chain lock before the row's (an edit that flushed before recording its audit
    entry used to hold the row and then wait for the chain)."""
    from tests.approvals.conftest import new_invoice

    mine = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND granted")
    with pg.app_context():
        invoice_id = new_invoice().id
        db.session.commit()
        assert db.session.execute(mine).scalar() == 0
        db.session.get(Invoice, invoice_id).memo = "changed"
        db.session.flush()
        assert db.session.execute(mine).scalar() == 1
        db.session.rollback()
        assert db.session.execute(mine).scalar() == 0
        from app.approvals.workflow import load_for_update

        load_for_update(invoice_id)
        assert db.session.execute(mine).scalar() == 1
        db.session.rollback()
