"""A push whose steps were all done finishes on Retry; pushes racing webhooks and
write-backs on PostgreSQL all end pushed; the push page says when its worker is gone."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
import requests
import stripe
from sqlalchemy import select

from app.extensions import db
from app.push import runner
from app.push.models import PushJob
from app.push.queueing import enqueue_push
from app.push.status import worker_hint
from app.push.worker import work_push_queue
from app.types import utcnow
from tests.push.helpers import approved_invoice, invoice, job_for, push_now, stripe_invoices_for

SECRET = "whsec_test_secret_for_the_desk"


def test_a_push_whose_steps_are_all_done_in_stripe_ends_pushed_on_retry(
    app, ctx, stripe_desk, approver, monkeypatch
):
    """Every step was done in Stripe, then finishing the push failed: Retry must read the
    invoice back and finish (it used to crash on every Retry: 'zip() argument 2 is
    longer than argument 1')."""
    iid = approved_invoice(approver.id)
    real_finish = runner.finish_done
    calls = {"n": 0}

    def finish_fails_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the worker lost its footing after the last step")
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(runner, "finish_done", finish_fails_once)
    assert push_now([iid])["failed"] == 1
    job = job_for(iid)
    assert invoice(iid).status == "push_failed"
    assert {s.status for s in job.steps} == {"done"}  # everything happened in Stripe

    counts = push_now([iid])  # Retry
    assert counts["done"] == 1, counts
    inv = invoice(iid)
    assert inv.status == "pushed"
    found = stripe_invoices_for(stripe_desk, iid)
    assert len(found) == 1 and found[0]["status"] == "open"
    assert inv.stripe_invoice_id == found[0]["id"]
    assert inv.stripe_number == found[0]["number"]  # read back from Stripe, not guessed


def _running_job(iid: int, worker: str, lease_until: dt.datetime) -> PushJob:
    from app.approvals import workflow

    inv = invoice(iid)
    workflow.transition(inv, "push_start", None)
    job = PushJob(invoice_id=iid, version=inv.approved_version, status="running",
                  worker=worker, lease_until=lease_until, attempts=1, requests=0,
                  started_at=utcnow(), next_attempt_at=utcnow())
    db.session.add(job)
    db.session.commit()
    return job


def _heartbeat(at: dt.datetime | None) -> None:
    from app.payments.models import JobSchedule

    row = db.session.get(JobSchedule, "push.work") or JobSchedule(
        id="push.work", description="push", interval_seconds=2)
    row.heartbeat_at = at
    db.session.add(row)
    db.session.commit()


def test_the_push_page_says_when_the_worker_that_was_pushing_has_died(
    app, ctx, stripe_desk, approver, make_user, client, login
):
    import socket

    iid = approved_invoice(approver.id)
    _heartbeat(utcnow())
    dead = f"{socket.gethostname()}:{2**22 + 12345}"  # above pid_max: no such process
    job = _running_job(iid, dead, utcnow() + dt.timedelta(seconds=100))
    hint = worker_hint(job)
    assert hint and "has stopped" in hint and dead in hint

    login(make_user("finance"))
    page = client.get(f"/invoices/{iid}/push/status").get_data(as_text=True)
    assert 'id="push-worker-hint"' in page and "has stopped" in page

    # A worker elsewhere whose lease ran out.
    job.worker, job.lease_until = "otherhost:42", utcnow() - dt.timedelta(seconds=5)
    db.session.commit()
    assert "has not reported" in worker_hint(job)

    # A live worker with its lease, and a scheduler that reports: nothing to say.
    job.lease_until = utcnow() + dt.timedelta(seconds=100)
    db.session.commit()
    assert worker_hint(job) is None
    assert 'id="push-worker-hint"' not in client.get(
        f"/invoices/{iid}/push/status").get_data(as_text=True)

    # No scheduler at all.
    _heartbeat(utcnow() - dt.timedelta(minutes=5))
    assert "No scheduler has reported" in worker_hint(job)


def test_forty_pushes_racing_webhooks_and_write_backs_all_end_pushed(
    app, stripe_desk, approver, caplog
):
    """On PostgreSQL: four push workers, a webhook sender delivering every invoice event
    (twice) as it happens, and the write-back outbox, all on the same invoices."""
    from app.writeback.operations import process_outbox

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("a PostgreSQL lock race (SQLite has one writer at a time)")
        ids = [approved_invoice(approver.id, org_id=900 + n % 8, deal_id=7000 + n,
                                email=f"ap@org{900 + n % 8}.example") for n in range(40)]
        _, results = enqueue_push(ids, None)
        db.session.commit()
        assert all(r.ok for r in results)
    app.config["STRIPE_WEBHOOK_SECRET"] = SECRET
    client = app.test_client()
    stop = threading.Event()
    answers: list[int] = []
    errors: list[BaseException] = []

    def deliver(event: dict) -> None:
        body = json.dumps(event)
        t = int(time.time())
        sig = stripe.WebhookSignature._compute_signature(f"{t}.{body}", SECRET)
        answers.append(client.post("/webhooks/stripe", data=body,
                                   content_type="application/json",
                                   headers={"Stripe-Signature": f"t={t},v1={sig}"}).status_code)

    def webhooks() -> None:
        seen: set[str] = set()
        try:
            while True:
                last_round = stop.is_set()
                listed = requests.get(f"{stripe_desk.url}/v1/events", params={"limit": 100},
                                      auth=(stripe_desk.api_key, ""), timeout=30).json()
                for event in reversed(listed["data"]):
                    if event["id"] in seen or not event["type"].startswith("invoice."):
                        continue
                    seen.add(event["id"])
                    deliver(event)
                    deliver(event)  # Stripe delivers at least once
                if last_round:
                    return
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    def write_backs() -> None:
        try:
            with app.app_context():
                while not stop.is_set():
                    process_outbox(now=utcnow() + dt.timedelta(days=1))
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    caplog.set_level("INFO")
    sides = [threading.Thread(target=webhooks), threading.Thread(target=write_backs)]
    for t in sides:
        t.start()
    try:
        with app.app_context():
            counts = work_push_queue(limit=80, threads=4)
    finally:
        stop.set()
        for t in sides:
            t.join(120)
    assert not errors, errors
    assert counts["done"] == 40, counts
    assert answers and set(answers) == {200}, sorted(set(answers))
    with app.app_context():
        statuses = db.session.execute(
            select(PushJob.status).where(PushJob.invoice_id.in_(ids))).scalars().all()
        assert statuses == ["done"] * 40
        for iid in ids:
            assert invoice(iid).status == "pushed"
            assert len(stripe_invoices_for(stripe_desk, iid)) == 1
    # No deadlock reached a user: whatever PostgreSQL detected was run again.
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
