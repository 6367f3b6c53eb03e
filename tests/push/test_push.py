"""The push itself: what Stripe ends up with, how many requests, and what finance sees."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import stripe
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.extensions import db
from app.invoices.totals import for_invoice
from app.push import runner
from app.push.finishing import FINALIZED_HINT
from app.push.models import LEASE, PushJob, StripeCustomerLink, StripeTaxRate
from app.push.queueing import enqueue_push
from app.push.worker import scheduled_push, work_push_queue
from app.writeback.models import WritebackItem
from tests.push.helpers import (
    approved_invoice,
    finalized_without_email,
    invoice,
    job_for,
    stripe_customers_for_org,
    stripe_invoices_for,
    stripe_lines,
)


def push(*ids, user=None):
    _, results = enqueue_push(ids, user)
    db.session.commit()
    assert all(r.ok for r in results), [r.message for r in results]
    return work_push_queue()


def posts(ledger) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in ledger]


def test_push_makes_one_finalized_sent_invoice_with_the_approved_lines(
    stripe_desk, approver, ctx
):
    iid = approved_invoice(approver.id, discounts=[("percentage", "5")], lines=[
        ("Consulting", 10, "120.00", 19, "exclusive", ("percentage", Decimal(10))),
        ("Licence", 3, "333.33", 7, "inclusive", None),
        ("Travel", Decimal("2.5"), "80.10", 0, "none", ("amount", Decimal(5))),
    ])
    assert push(iid)["done"] == 1
    inv = invoice(iid)
    approved = for_invoice(inv)
    [si] = stripe_invoices_for(stripe_desk, iid)
    assert inv.status == "pushed" and inv.push_error is None
    assert (si["status"], si["total"], si["subtotal"], si["amount_due"]) == (
        "open", approved.total, approved.subtotal, approved.amount_due)
    assert len(stripe_lines(stripe_desk, si)) == len(approved.push_lines)
    assert si["metadata"]["desk_invoice_id"] == str(iid)
    assert si["metadata"]["pipedrive_deal_id"] == "9001"
    assert si["auto_advance"] is False and si["collection_method"] == "send_invoice"
    assert inv.stripe_invoice_id == si["id"] and inv.stripe_number == si["number"]
    assert inv.hosted_invoice_url == si["hosted_invoice_url"]
    assert inv.due_at == dt.datetime.fromtimestamp(si["due_date"], dt.UTC)
    [cus] = stripe_customers_for_org(stripe_desk, 501)
    assert cus["id"] == inv.stripe_customer_id == si["customer"]
    assert cus["metadata"] == {"pipedrive_org_id": "501", "pipedrive_person_id": "601",
                               "desk_billing_email": "ap@acme.example",
                               "vat_id": "DE123456789", "source": "billing-desk"}
    assert (cus["name"], cus["email"], cus["address"]["city"]) == (
        "Acme GmbH", "ap@acme.example", "Berlin")
    sent = [e for e in stripe_desk.sandbox.store.all("event") if e["type"] == "invoice.sent"]
    assert len(sent) == 1
    # Every Stripe call that changed something carried the step's key.
    job = job_for(iid)
    keys = {r["idempotency_key"] for r in stripe_desk.ledger() if r["method"] == "POST"}
    for name in ("invoice", "lines:0", "finalize", "send"):
        assert f"desk:{iid}:v1:{name}" in keys
        assert job.step_named(name).stripe_id == si["id"]
    # Every step is in the audit log, and the write-backs are queued with the push.
    steps = db.session.execute(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "push.step")
    ).scalar()
    assert steps == len(job.steps)
    actions = set(db.session.execute(select(AuditEntry.action)).scalars())
    assert {"invoice.push_start", "invoice.push_done", "push.queued",
            "stripe_customer.linked"} <= actions
    kinds = sorted(w.kind for w in db.session.execute(select(WritebackItem)).scalars())
    assert kinds == ["contact_customer", "deal_fields", "deal_note"]


def test_a_known_customer_costs_four_requests_even_with_fifty_lines(stripe_desk, approver, ctx):
    first = approved_invoice(approver.id)
    push(first)
    fifty = [(f"Item {i}", 1 + i % 3, f"{10 + i}.{i % 100:02d}", 19, "exclusive", None)
             for i in range(50)]
    second = approved_invoice(approver.id, lines=fifty, deal_id=9002)
    stripe_desk.reset_ledger()
    push(second)
    ledger = stripe_desk.ledger()
    [si] = stripe_invoices_for(stripe_desk, second)
    assert posts(ledger) == [
        "POST /v1/invoices", f"POST /v1/invoices/{si['id']}/add_lines",
        f"POST /v1/invoices/{si['id']}/finalize", f"POST /v1/invoices/{si['id']}/send",
    ]
    assert len(stripe_lines(stripe_desk, si)) == 50
    assert si["total"] == for_invoice(invoice(second)).total
    assert job_for(second).requests == 4


def test_changed_bill_to_updates_the_same_customer_and_says_so(stripe_desk, approver, ctx):
    first = approved_invoice(approver.id)
    push(first)
    # Someone changes the customer's email in Stripe; the desk must not undo it silently
    # (the mismatch board's rule 12 names the difference instead).
    client = stripe.StripeClient(stripe_desk.api_key, base_addresses={"api": stripe_desk.url})
    client.v1.customers.update(invoice(first).stripe_customer_id,
                               params={"email": "accounts@acme.example"})
    second = approved_invoice(approver.id, name="Acme Holding GmbH", deal_id=9002)
    stripe_desk.reset_ledger()
    push(second)
    [cus] = stripe_customers_for_org(stripe_desk, 501)
    assert (cus["name"], cus["email"]) == ("Acme Holding GmbH", "accounts@acme.example")
    assert posts(stripe_desk.ledger())[0] == f"POST /v1/customers/{cus['id']}"
    assert len(stripe_desk.ledger()) == 5
    [entry] = db.session.execute(
        select(AuditEntry).where(AuditEntry.action == "stripe_customer.updated")).scalars()
    assert entry.object_id == cus["id"] and entry.after["invoice_id"] == second
    assert "name" in entry.after["fields"] and "email" not in entry.after["fields"]


def test_two_billing_emails_of_one_organization_are_two_customers(stripe_desk, approver, ctx):
    """Issue 14, defect 10: the second push overwrote the first contact's email."""
    first = approved_invoice(approver.id, email="ap@acme.example")
    second = approved_invoice(approver.id, email="billing@acme.example", deal_id=9002)
    push(first)
    push(second)
    customers = {c["email"]: c for c in stripe_customers_for_org(stripe_desk, 501)}
    assert set(customers) == {"ap@acme.example", "billing@acme.example"}
    assert invoice(first).stripe_customer_id == customers["ap@acme.example"]["id"]
    assert invoice(second).stripe_customer_id == customers["billing@acme.example"]["id"]
    for email, cus in customers.items():
        assert cus["metadata"]["desk_billing_email"] == email
    # Each Stripe invoice went to its own contact.
    [si1], [si2] = stripe_invoices_for(stripe_desk, first), stripe_invoices_for(stripe_desk, second)
    assert (si1["customer_email"], si2["customer_email"]) == (
        "ap@acme.example", "billing@acme.example")
    # A re-push of the first contact reuses its customer: no search, no create, no update.
    third = approved_invoice(approver.id, email="AP@acme.example ", deal_id=9003)
    stripe_desk.reset_ledger()
    push(third)
    assert invoice(third).stripe_customer_id == customers["ap@acme.example"]["id"]
    assert not any("/customers" in p for p in posts(stripe_desk.ledger()))
    assert len(stripe_customers_for_org(stripe_desk, 501)) == 2
    emails = {c["email"] for c in stripe_customers_for_org(stripe_desk, 501)}
    assert emails == {"ap@acme.example", "billing@acme.example"}


def test_a_stored_pipedrive_customer_of_another_contact_is_not_overwritten(
    stripe_desk, approver, ctx
):
    from app.intake.models import PdField, PdOrganization

    stored = _customer(stripe_desk, name="Acme", email="ap@acme.example",
                       metadata={"pipedrive_org_id": "501"})
    db.session.add(PdField(entity="organization", field_code="a" * 40,
                           name="Stripe customer id", field_type="varchar"))
    db.session.add(PdOrganization(id=501, name="Acme", custom_fields={"a" * 40: stored.id}))
    db.session.commit()
    iid = approved_invoice(approver.id, email="billing@acme.example")
    push(iid)
    assert invoice(iid).stripe_customer_id != stored.id
    kept = _retrieve_customer(stripe_desk, stored.id)
    assert kept.email == "ap@acme.example"
    # The organization's field keeps naming its first contact's customer.
    kinds = {w.kind for w in db.session.execute(select(WritebackItem)).scalars()}
    assert "contact_customer" not in kinds


def _retrieve_customer(stripe_desk, customer_id):
    client = stripe.StripeClient(stripe_desk.api_key, base_addresses={"api": stripe_desk.url})
    return client.v1.customers.retrieve(customer_id)


def _customer(stripe_desk, **params):
    client = stripe.StripeClient(stripe_desk.api_key, base_addresses={"api": stripe_desk.url})
    return client.v1.customers.create(params=params)


def test_customer_found_by_billing_email_is_reused_and_named(stripe_desk, approver, ctx):
    existing = _customer(stripe_desk, email="ap@acme.example", name="Acme (by hand)")
    iid = approved_invoice(approver.id)
    push(iid)
    assert invoice(iid).stripe_customer_id == existing.id
    [cus] = stripe_customers_for_org(stripe_desk, 501)
    assert cus["id"] == existing.id and cus["name"] == "Acme GmbH"
    link = db.session.execute(select(StripeCustomerLink)).scalar_one()
    assert (link.party, link.source, link.stripe_customer_id) == (
        "org:501:email:ap@acme.example", "email", existing.id)


def test_customer_found_by_metadata_once_search_caught_up(stripe_desk, approver, ctx):
    # Its email was changed in Stripe, but the desk's metadata names the contact.
    existing = _customer(stripe_desk, email="accounts@acme.example",
                         metadata={"pipedrive_org_id": "501",
                                   "desk_billing_email": "ap@acme.example"})
    other_contact = _customer(stripe_desk, email="other@acme.example",
                              metadata={"pipedrive_org_id": "501"})
    stripe_desk.advance_clock(seconds=120)  # search lags a minute behind, like Stripe's
    iid = approved_invoice(approver.id)
    push(iid)
    assert invoice(iid).stripe_customer_id == existing.id
    customers = {c["id"]: c["email"] for c in stripe_customers_for_org(stripe_desk, 501)}
    # Neither customer's email was overwritten.
    assert customers == {existing.id: "accounts@acme.example",
                         other_contact.id: "other@acme.example"}


def test_another_organizations_customer_with_the_same_email_is_not_taken(
    stripe_desk, approver, ctx
):
    theirs = _customer(stripe_desk, email="ap@acme.example", metadata={"pipedrive_org_id": "77"})
    iid = approved_invoice(approver.id)
    push(iid)
    assert invoice(iid).stripe_customer_id != theirs.id


def test_customer_id_stored_on_the_pipedrive_organization_comes_first(
    stripe_desk, approver, ctx
):
    from app.intake.models import PdField, PdOrganization

    stored = _customer(stripe_desk, name="Stored")
    _customer(stripe_desk, email="ap@acme.example")  # would match by email: not used
    db.session.add(PdField(entity="organization", field_code="a" * 40,
                           name="Stripe customer id", field_type="varchar"))
    db.session.add(PdOrganization(id=501, name="Acme", custom_fields={"a" * 40: stored.id}))
    db.session.commit()
    iid = approved_invoice(approver.id)
    push(iid)
    assert invoice(iid).stripe_customer_id == stored.id
    # Already on the organization: no write-back of the customer id.
    kinds = {w.kind for w in db.session.execute(select(WritebackItem)).scalars()}
    assert "contact_customer" not in kinds


def test_tax_rates_are_reused_from_stripe_or_created_once(stripe_desk, approver, ctx):
    client = stripe.StripeClient(stripe_desk.api_key, base_addresses={"api": stripe_desk.url})
    by_hand = client.v1.tax_rates.create(params={"display_name": "MwSt", "percentage": "19",
                                                 "inclusive": False})
    lines = [("A", 1, "100", 19, "exclusive", None), ("B", 1, "50", 7, "inclusive", None),
             ("C", 1, "10", 19, "inclusive", None)]
    push(approved_invoice(approver.id, lines=lines))
    push(approved_invoice(approver.id, lines=lines, org_id=502, deal_id=9002))
    rates = {r.key: r.stripe_id for r in db.session.execute(select(StripeTaxRate)).scalars()}
    assert rates["19:exclusive"] == by_hand.id
    created = [r for r in stripe_desk.ledger() if r["method"] == "POST"
               and r["path"] == "/v1/tax_rates" and r["idempotency_key"].startswith("desk:")]
    assert len(created) == 2  # 7% inclusive and 19% inclusive, once each
    store_rates = stripe_desk.sandbox.store.all("tax_rate")
    assert len(store_rates) == 3


def test_totals_that_differ_by_one_minor_unit_stop_before_finalizing(
    stripe_desk, approver, ctx, monkeypatch
):
    iid = approved_invoice(approver.id)
    real = runner.for_invoice

    def off_by_one(inv):
        totals = real(inv)
        totals.total += 1
        return totals

    monkeypatch.setattr(runner, "for_invoice", off_by_one)
    assert push(iid)["failed"] == 1
    inv = invoice(iid)
    [si] = stripe_invoices_for(stripe_desk, iid)
    assert si["status"] == "draft"  # never finalized, never sent
    assert inv.status == "push_failed"
    expected = real(inv).total
    assert f"Stripe's total is EUR {Decimal(expected) / 100:,.2f}" in inv.push_error
    assert f"the approved one EUR {Decimal(expected + 1) / 100:,.2f}" in inv.push_error
    assert si["id"] in inv.push_error and "not finalized" in inv.push_error
    assert "approved again" in inv.push_hint
    assert not any(r["path"].endswith("/finalize") for r in stripe_desk.ledger())


def test_double_queueing_makes_one_job_and_one_stripe_invoice(stripe_desk, approver, ctx):
    iid = approved_invoice(approver.id)
    _, first = enqueue_push([iid], None)
    db.session.commit()
    _, second = enqueue_push([iid], None)
    db.session.commit()
    assert first[0].ok and not second[0].ok
    assert second[0].message == "It is being pushed already."
    work_push_queue()
    work_push_queue()
    assert db.session.execute(select(func.count()).select_from(PushJob)).scalar() == 1
    assert len(stripe_invoices_for(stripe_desk, iid)) == 1
    _, third = enqueue_push([iid], None)
    assert "in Stripe already" in third[0].message


def test_unapproved_or_held_invoices_are_not_queued(stripe_desk, approver, ctx):
    draft = approved_invoice(approver.id, deal_id=1)
    held = approved_invoice(approver.id, deal_id=2)
    stale = approved_invoice(approver.id, deal_id=3)
    inv = invoice(draft)
    inv.status, inv.approved_version, inv.approved_by_id = "draft", None, None
    db.session.commit()
    inv = invoice(held)
    inv.on_hold, inv.hold_reason = True, "customer disputes scope"
    db.session.commit()
    invoice(stale).version = 2  # edited after approval (cannot happen through the editor)
    db.session.commit()
    batch, results = enqueue_push([draft, held, stale], None)
    db.session.commit()
    messages = [r.message for r in results]
    assert not any(r.ok for r in results)
    assert "approved invoice" in messages[0]
    assert "on hold" in messages[1]
    assert "approved again" in messages[2]
    assert batch.total == 0 and len(batch.refused) == 3


def test_a_refusal_from_stripe_is_explained_with_what_was_done(stripe_desk, approver, ctx):
    iid = finalized_without_email(approver.id)  # Stripe cannot email the invoice
    inv = invoice(iid)
    assert inv.status == "push_failed"
    assert "does not have an email address" in inv.push_error
    assert f"finalized in Stripe as {inv.stripe_number}" in inv.push_error
    # Not "correct the invoice": a finalized invoice cannot be edited; the ways out are named.
    assert inv.push_hint == FINALIZED_HINT
    [si] = stripe_invoices_for(stripe_desk, iid)
    assert si["status"] == "open" and si["id"] == inv.stripe_invoice_id


def test_a_retry_after_a_refusal_sends_only_the_refused_step_with_a_new_key(
    stripe_desk, approver, ctx, monkeypatch
):
    from app.push.stripe_calls import Calls
    from app.stripe_api.client import StripeGatewayError

    real_send = Calls.send

    def refuse_once(self, invoice_id, key):
        monkeypatch.setattr(Calls, "send", real_send)
        raise StripeGatewayError("Stripe refused the request: sending is paused.",
                                 retryable=False, hint="Ask an admin to check Stripe.")

    monkeypatch.setattr(Calls, "send", refuse_once)
    iid = approved_invoice(approver.id)
    assert push(iid)["failed"] == 1
    assert invoice(iid).push_hint == f"Ask an admin to check Stripe. {FINALIZED_HINT}"
    stripe_desk.reset_ledger()
    push(iid)
    inv = invoice(iid)
    assert inv.status == "pushed" and inv.push_error is None
    [si] = stripe_invoices_for(stripe_desk, iid)
    assert posts(stripe_desk.ledger()) == [f"POST /v1/invoices/{si['id']}/send"]
    assert stripe_desk.ledger()[0]["idempotency_key"] == f"desk:{iid}:v1:send:retry1"


def test_stripe_unreachable_is_retried_automatically_then_resumes(stripe_desk, approver, ctx):
    iid = approved_invoice(approver.id)
    stripe_desk.fault("503", count=50, path=r"/finalize$")
    assert push(iid)["retrying"] == 1
    inv = invoice(iid)
    assert inv.status == "pushing"
    assert "tried again automatically" in inv.push_error
    job = job_for(iid)
    assert job.status == "queued" and job.next_attempt_at > dt.datetime.now(dt.UTC)
    assert work_push_queue() == {"done": 0, "failed": 0, "retrying": 0, "deferred": 0}
    stripe_desk.clear_faults()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)
    assert work_push_queue(now=later)["done"] == 1
    assert invoice(iid).status == "pushed"
    assert len(stripe_invoices_for(stripe_desk, iid)) == 1


def test_after_three_automatic_retries_the_push_fails_and_says_why(stripe_desk, approver, ctx):
    iid = approved_invoice(approver.id)
    stripe_desk.fault("500", count=1000, path=r"^/v1/invoices$")
    push(iid)
    for minutes in (1, 5, 30):
        work_push_queue(now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes))
    inv = invoice(iid)
    assert inv.status == "push_failed"
    assert "could not be reached" in inv.push_error
    assert "resumes from this step" in inv.push_hint
    assert stripe_invoices_for(stripe_desk, iid) == []


def test_a_dead_worker_is_taken_over_after_its_lease(stripe_desk, approver, ctx):
    class Died(BaseException):
        pass

    def die(step, when):
        if (step, when) == ("finalize", "after"):
            raise Died()

    iid = approved_invoice(approver.id)
    enqueue_push([iid], None)
    db.session.commit()
    with pytest.raises(Died):
        work_push_queue(hook=die)
    db.session.rollback()
    assert work_push_queue()["done"] == 0  # still leased to the dead worker
    after_lease = dt.datetime.now(dt.UTC) + LEASE + dt.timedelta(seconds=1)
    assert work_push_queue(now=after_lease)["done"] == 1
    [si] = stripe_invoices_for(stripe_desk, iid)
    assert si["status"] == "open" and invoice(iid).stripe_number == si["number"]
    finalizes = [r for r in stripe_desk.ledger() if r["path"].endswith("/finalize")]
    assert [r["replayed"] for r in finalizes] == [False, True]


def test_a_new_version_deletes_the_draft_an_old_failed_push_left(
    stripe_desk, approver, ctx, monkeypatch
):
    iid = approved_invoice(approver.id)
    real = runner.for_invoice
    monkeypatch.setattr(runner, "for_invoice", lambda inv: _plus_one(real(inv)))
    push(iid)
    [old] = stripe_invoices_for(stripe_desk, iid)
    monkeypatch.setattr(runner, "for_invoice", real)
    inv = invoice(iid)  # edited and approved again (the approval module's work)
    inv.status, inv.version, inv.approved_version = "approved", 2, 2
    db.session.commit()
    push(iid)
    remaining = stripe_invoices_for(stripe_desk, iid)
    assert [i["id"] for i in remaining] != [old["id"]] and len(remaining) == 1
    assert remaining[0]["status"] == "open"


def _plus_one(totals):
    totals.total += 1
    return totals


def test_the_scheduler_tick_records_a_run_only_when_it_pushed(stripe_desk, approver, ctx):
    from app.intake.models import SyncRun

    assert scheduled_push() == {"done": 0, "failed": 0, "retrying": 0, "deferred": 0}
    assert db.session.execute(select(func.count()).select_from(SyncRun)).scalar() == 0
    iids = [approved_invoice(approver.id, deal_id=9000 + n, org_id=900 + n) for n in range(3)]
    enqueue_push(iids, None)
    db.session.commit()
    stripe_desk.reset_ledger()
    counts = scheduled_push()  # several worker threads share the queue
    assert counts["done"] == 3
    run = db.session.execute(select(SyncRun)).scalar_one()
    assert (run.job, run.status, run.counts["done"]) == ("push.work", "ok", 3)
    assert run.requests == len(stripe_desk.ledger())
    for iid in iids:
        assert len(stripe_invoices_for(stripe_desk, iid)) == 1


def test_a_version_finalized_in_stripe_is_never_pushed_again_unless_void(
    stripe_desk, stripe_client, approver, ctx
):
    iid = finalized_without_email(approver.id)  # finalized, then sending fails
    inv = invoice(iid)
    inv.billing_email = "ap@acme.example"
    inv.status, inv.version, inv.approved_version = "approved", 2, 2  # edited, approved again
    db.session.commit()
    _, [result] = enqueue_push([iid], None)
    assert not result.ok
    assert "finalized in Stripe" in result.message and "bill the customer twice" in result.message
    # Once it is void in Stripe (and the desk has seen it), the new version may go.
    db.session.rollback()
    old_id = invoice(iid).stripe_invoice_id
    stripe_client.v1.invoices.void_invoice(old_id)
    from app.payments.sync import apply_invoice

    apply_invoice(stripe_client.v1.invoices.retrieve(old_id).to_dict())
    db.session.commit()
    assert push(iid)["done"] == 1
    statuses = sorted(i["status"] for i in stripe_invoices_for(stripe_desk, iid))
    assert statuses == ["open", "void"]


def test_a_create_resent_after_stripe_forgot_its_key_adopts_the_earlier_draft(
    stripe_desk, approver, ctx
):
    """Stripe replays an idempotent request for 24 hours only. A create whose answer was
    lost and that is resumed two days later must not make a second draft."""
    iid = approved_invoice(approver.id)
    stripe_desk.fault("lose", count=1000, path=r"^/v1/invoices$")
    assert push(iid)["retrying"] == 1
    [draft] = stripe_invoices_for(stripe_desk, iid)  # it arrived; the answer did not
    stripe_desk.clear_faults()
    stripe_desk.advance_clock(days=2)  # the idempotency key is forgotten
    stripe_desk.reset_ledger()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    assert work_push_queue(now=later)["done"] == 1
    [si] = stripe_invoices_for(stripe_desk, iid)
    assert si["id"] == draft["id"] == invoice(iid).stripe_invoice_id
    assert si["status"] == "open"
    assert "POST /v1/invoices" not in posts(stripe_desk.ledger())
    assert "GET /v1/invoices" in posts(stripe_desk.ledger())


def test_lines_resent_after_stripe_forgot_the_key_are_not_added_twice(
    stripe_desk, approver, ctx
):
    iid = approved_invoice(approver.id)
    stripe_desk.fault("lose", count=1000, path=r"/add_lines$")
    assert push(iid)["retrying"] == 1
    [draft] = stripe_invoices_for(stripe_desk, iid)
    lines = len(stripe_lines(stripe_desk, draft))
    assert lines == len(for_invoice(invoice(iid)).push_lines)  # they arrived
    stripe_desk.clear_faults()
    stripe_desk.advance_clock(days=2)
    stripe_desk.reset_ledger()
    assert work_push_queue(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))["done"] == 1
    [si] = stripe_invoices_for(stripe_desk, iid)
    assert len(stripe_lines(stripe_desk, si)) == lines
    assert si["status"] == "open" and si["total"] == for_invoice(invoice(iid)).total
    assert not any(p.endswith("/add_lines") for p in posts(stripe_desk.ledger()))


def test_a_draft_edited_in_stripe_stops_the_resent_lines_in_plain_words(
    stripe_desk, stripe_client, approver, ctx
):
    iid = approved_invoice(approver.id)
    stripe_desk.fault("lose", count=1000, path=r"/add_lines$")
    push(iid)
    [draft] = stripe_invoices_for(stripe_desk, iid)
    stripe_desk.clear_faults()
    stripe_client.v1.invoices.add_lines(draft["id"], {"lines": [
        {"description": "Added by hand", "amount": 100}]})
    work_push_queue(now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2))
    inv = invoice(iid)
    assert inv.status == "push_failed"
    assert "where 0 or" in inv.push_error and "nothing was sent" in inv.push_error
    assert stripe_invoices_for(stripe_desk, iid)[0]["status"] == "draft"


def test_stripe_lists_are_read_page_by_page_only_as_far_as_needed(
    stripe_desk, stripe_client, ctx
):
    from app.push.stripe_calls import Calls, push_gateway

    for n in range(150):
        stripe_client.v1.tax_rates.create({"display_name": f"Rate {n}", "percentage": 1,
                                           "inclusive": False})
    stripe_desk.reset_ledger()
    calls = Calls(push_gateway())
    assert len(list(calls.tax_rates())) == 150
    assert posts(stripe_desk.ledger()) == ["GET /v1/tax_rates"] * 2
    stripe_desk.reset_ledger()
    next(iter(calls.tax_rates()))
    assert posts(stripe_desk.ledger()) == ["GET /v1/tax_rates"]
