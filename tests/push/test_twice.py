"""Issue 15, defect 1: billed twice. A push whose finalize answer was lost, with finalize
and the events pull failing afterwards, ended "push failed" while Stripe had finalized
the invoice; it could then be edited, approved again and pushed again. Now the desk
reads back from Stripe what became of it before the invoice can be edited or pushed
again, and an earlier version's finalized invoice is voided or adopted by two users."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.approvals import workflow
from app.auth.models import User
from app.extensions import db
from app.invoices import editing
from app.invoices.drafting import recompute
from app.push import recovery
from app.push.models import LEASE, PushJob
from app.push.queueing import enqueue_push
from app.push.worker import work_push_queue
from tests.push.helpers import approve, approved_invoice, invoice, job_for, stripe_invoices_for


def push_until_failed(sandbox, iid: int) -> list:
    """Queue the invoice's push and work the queue, a lease apart, until the push has
    given up (at most 8 rounds); then lift the sandbox's faults. Returns enqueue's results."""
    _, results = enqueue_push([iid], None)
    db.session.commit()
    now = dt.datetime.now(dt.UTC)
    for _ in range(8):
        work_push_queue(now=now)
        if invoice(iid).status == "push_failed":
            break
        now += LEASE + dt.timedelta(minutes=10)
    sandbox.clear_faults()
    return results


def lost_finalize(sandbox, approver_id: int, **kw) -> int:
    """An invoice whose finalize reached Stripe, whose answer was lost and whose every
    later try failed: the push ended "push failed" (needs an app context; commits)."""
    iid = approved_invoice(approver_id, **kw)
    sandbox.fault("lose", count=1, path=r"/finalize$", method="POST")
    sandbox.fault("500", count=200, path=r"/finalize$", method="POST")
    sandbox.fault("500", count=200, path=r"^/v1/events", method="GET")
    results = push_until_failed(sandbox, iid)
    assert results[0].ok, results[0].message
    assert invoice(iid).status == "push_failed"
    return iid


def _user(make_user, *roles):
    return db.session.get(User, make_user(*roles).id)


def _live(sandbox, iid) -> list[str]:
    return [i["id"] for i in stripe_invoices_for(sandbox, iid)
            if i["status"] in ("open", "paid")]


def _edited_before_the_fix(iid: int, user, price: str = "130.00") -> None:
    """What the desk let finance do before: edit the failed invoice (a new version)."""
    inv = invoice(iid)
    inv.lines[0].unit_price = Decimal(price)
    workflow.content_edited(inv, user)
    recompute(inv)
    db.session.commit()


def test_a_lost_finalize_answer_blocks_editing_until_stripe_is_asked(
        stripe_desk, approver, make_user, ctx):
    iid = lost_finalize(stripe_desk, approver.id)
    [sid] = _live(stripe_desk, iid)  # Stripe did finalize it
    inv = invoice(iid)
    assert "may have finalized it" in inv.push_error
    assert "not finalized" not in inv.push_error
    finance = _user(make_user, "finance")
    with pytest.raises(editing.EditRefused, match="Check in Stripe"):
        editing.update_line(inv, inv.lines[0], {"unit_price": Decimal("130.00")}, finance,
                            inv.version)
    db.session.rollback()
    assert recovery.options(invoice(iid))[0] == "read_back"

    message = recovery.read_back(invoice(iid), finance)
    db.session.commit()
    assert "finalized in Stripe" in message
    inv = invoice(iid)
    assert (inv.stripe_invoice_id, inv.stripe_status) == (sid, "open")
    assert job_for(iid).step_named("finalize").status == "done"
    # Still not editable (it is finalized), and retrying only finishes the same invoice.
    with pytest.raises(editing.EditRefused):
        editing.update_line(inv, inv.lines[0], {"unit_price": Decimal("1")}, finance,
                            inv.version)
    db.session.rollback()
    _, results = enqueue_push([iid], None)
    db.session.commit()
    assert results[0].ok, results[0].message
    work_push_queue()
    assert invoice(iid).status == "pushed"
    assert _live(stripe_desk, iid) == [sid]


def test_read_back_of_a_draft_lets_it_be_edited_and_pushed_once(
        stripe_desk, approver, make_user, ctx):
    iid = approved_invoice(approver.id)
    stripe_desk.fault("503", count=200, path=r"/finalize$", method="POST")  # never arrives
    push_until_failed(stripe_desk, iid)
    finance = _user(make_user, "finance")
    assert recovery.edit_refusal(invoice(iid))
    assert "is draft in Stripe" in recovery.read_back(invoice(iid), finance)
    db.session.commit()
    inv = invoice(iid)
    assert recovery.edit_refusal(inv) is None
    editing.update_line(inv, inv.lines[0], {"unit_price": Decimal("130.00")}, finance,
                        inv.version)
    db.session.commit()
    approve(iid, finance.id, approver.id)
    _, results = enqueue_push([iid], None)
    db.session.commit()
    assert results[0].ok, results[0].message
    work_push_queue()
    assert invoice(iid).status == "pushed"
    assert len(_live(stripe_desk, iid)) == 1
    assert len(stripe_invoices_for(stripe_desk, iid)) == 1  # the old draft was deleted


def test_an_earlier_version_finalized_in_stripe_is_voided_with_four_eyes(
        stripe_desk, approver, make_user, ctx):
    iid = lost_finalize(stripe_desk, approver.id)
    [first] = _live(stripe_desk, iid)
    finance, other = _user(make_user, "finance"), _user(make_user, "finance")
    _edited_before_the_fix(iid, finance)
    approve(iid, finance.id, approver.id)
    _, results = enqueue_push([iid], None)
    db.session.rollback()
    assert not results[0].ok and "bill the customer twice" in results[0].message
    assert "Check in Stripe" in results[0].message
    with pytest.raises(editing.EditRefused, match="may be billed in Stripe"):
        inv = invoice(iid)
        editing.update_line(inv, inv.lines[0], {"unit_price": Decimal("1")}, finance,
                            inv.version)
    db.session.rollback()

    recovery.read_back(invoice(iid), finance)
    db.session.commit()
    [job] = recovery.awaiting_choice(invoice(iid))
    assert job.stripe_status == "open"
    recovery.request_choice(invoice(iid), job.id, "void", finance)
    db.session.commit()
    with pytest.raises(recovery.RecoveryRefused, match="another user must confirm"):
        recovery.confirm_choice(invoice(iid), job.id, finance)
    db.session.rollback()
    _, results = enqueue_push([iid], None)
    db.session.rollback()
    assert not results[0].ok and "another user must confirm" in results[0].message
    assert "is void in Stripe" in recovery.confirm_choice(invoice(iid), job.id, other)
    db.session.commit()
    assert [i["status"] for i in stripe_invoices_for(stripe_desk, iid)
            if i["id"] == first] == ["void"]
    _, results = enqueue_push([iid], None)
    db.session.commit()
    assert results[0].ok, results[0].message
    work_push_queue()
    assert invoice(iid).status == "pushed"
    [second] = _live(stripe_desk, iid)
    assert second != first and invoice(iid).stripe_invoice_id == second


def test_an_earlier_version_billing_the_same_total_can_be_adopted(
        stripe_desk, approver, make_user, ctx):
    iid = lost_finalize(stripe_desk, approver.id)
    [first] = _live(stripe_desk, iid)
    finance, other = _user(make_user, "finance"), _user(make_user, "finance")
    inv = invoice(iid)
    inv.memo = "PO 4711"
    workflow.content_edited(inv, finance)  # a memo-only edit, made before the fix
    db.session.commit()
    recovery.read_back(invoice(iid), finance)
    db.session.commit()
    [job] = recovery.awaiting_choice(invoice(iid))
    recovery.request_choice(invoice(iid), job.id, "adopt", finance)
    db.session.commit()
    recovery.confirm_choice(invoice(iid), job.id, other)
    db.session.commit()
    inv = invoice(iid)
    assert (inv.status, inv.stripe_invoice_id, inv.stripe_status) == ("pushed", first, "open")
    assert recovery.earlier_in_stripe(inv) == []
    assert _live(stripe_desk, iid) == [first]


def test_adopting_a_different_total_is_refused(stripe_desk, approver, make_user, ctx):
    iid = lost_finalize(stripe_desk, approver.id)
    finance = _user(make_user, "finance")
    _edited_before_the_fix(iid, finance)
    recovery.read_back(invoice(iid), finance)
    db.session.commit()
    [job] = recovery.awaiting_choice(invoice(iid))
    with pytest.raises(recovery.RecoveryRefused, match="Void it, or change the invoice back"):
        recovery.request_choice(invoice(iid), job.id, "adopt", finance)


def test_a_push_never_deletes_its_way_past_a_finalized_earlier_version(
        stripe_desk, approver, make_user, ctx):
    """The desk thought the earlier draft was never finalized (finalize not even sent),
    but Stripe has it finalized: the next push reads it back and stops."""
    from app.stripe_api.factory import stripe_gateway

    iid = approved_invoice(approver.id)
    stripe_desk.fault("500", count=200, path=r"/finalize$", method="POST")
    push_until_failed(stripe_desk, iid)
    job = job_for(iid)
    job.step_named("finalize").status = "pending"
    sid = job.stripe_invoice_id
    db.session.commit()
    stripe_gateway().client.v1.invoices.finalize_invoice(sid, params={"auto_advance": False})
    finance = _user(make_user, "finance")
    _edited_before_the_fix(iid, finance)
    approve(iid, finance.id, approver.id)
    _, results = enqueue_push([iid], None)
    db.session.commit()
    assert results[0].ok
    work_push_queue()
    inv = invoice(iid)
    assert inv.status == "push_failed"
    assert "would bill the customer twice" in inv.push_error
    assert _live(stripe_desk, iid) == [sid]
    assert db.session.execute(select(PushJob).where(
        PushJob.stripe_invoice_id == sid)).scalar_one().stripe_status == "open"


def test_the_board_shows_an_earlier_versions_invoice_until_it_is_decided(
        app, client, login, stripe_desk, approver, make_user, ctx):
    from app.mismatches.models import Mismatch
    from app.mismatches.operations import recompute

    def board() -> list[Mismatch]:
        recompute()
        db.session.commit()
        return list(db.session.execute(select(Mismatch).where(
            Mismatch.rule == 15, Mismatch.resolved_at.is_(None))).scalars())

    iid = lost_finalize(stripe_desk, approver.id)
    [first] = _live(stripe_desk, iid)
    finance, other = _user(make_user, "finance"), _user(make_user, "finance")
    assert board() == []  # the current push: rule 14 says it, with "Check in Stripe"
    [row14] = db.session.execute(select(Mismatch).where(Mismatch.rule == 14)).scalars()
    assert "may have finalized it" in row14.explanation
    _edited_before_the_fix(iid, finance)
    [row] = board()
    assert (row.invoice_id, row.severity, row.facts["stripe_id"]) == (iid, "high", first)
    assert "billed twice" in row.explanation
    recovery.read_back(invoice(iid), finance)
    db.session.commit()
    [row] = board()
    assert "is open there" in row.explanation
    [job] = recovery.awaiting_choice(invoice(iid))
    recovery.request_choice(invoice(iid), job.id, "void", finance)
    db.session.commit()
    recovery.confirm_choice(invoice(iid), job.id, other)
    db.session.commit()
    assert board() == []


def test_read_back_and_the_four_eyes_choice_from_the_invoice_page(
        app, client, login, stripe_desk, approver, make_user):
    from tests.conftest import TEST_PASSWORD, csrf_token

    with app.app_context():
        iid = lost_finalize(stripe_desk, approver.id)
        a = make_user("finance")
        _edited_before_the_fix(iid, db.session.get(User, a.id))
    b = make_user("finance")

    def post(who=client, **data):
        data["csrf_token"] = csrf_token(who, "/push/")
        return who.post(f"/invoices/{iid}/push/recover", data=data,
                        headers={"HX-Request": "true"})

    login(a)
    page = client.get(f"/invoices/{iid}/push/status").get_data(as_text=True)
    assert "Check in Stripe" in page and "may be billed in Stripe" in page
    r = post(action="read_back")
    assert r.status_code == 200, r.get_data(as_text=True)
    page = r.get_data(as_text=True)
    assert "void it or adopt it" in page and "Ask to void it" in page
    with app.app_context():
        [job] = recovery.awaiting_choice(invoice(iid))
        job_id = job.id
    assert post(action="void", job=job_id).status_code == 200
    r = post(action="confirm", job=job_id)
    assert r.status_code == 422 and "another user must confirm" in r.get_data(as_text=True)
    second = app.test_client()
    second.post("/login", data={"email": b.email, "password": TEST_PASSWORD,
                                "csrf_token": csrf_token(second, "/login")})
    r = post(second, action="confirm", job=job_id)
    assert r.status_code == 200 and "is void in Stripe" in r.get_data(as_text=True)
    assert _live(stripe_desk, iid) == []


def test_after_voiding_the_earlier_invoice_the_events_pull_leaves_it_editable(
        stripe_desk, approver, make_user, ctx):
    from app.payments.operations import run_payment_sync

    iid = lost_finalize(stripe_desk, approver.id)
    finance, other = _user(make_user, "finance"), _user(make_user, "finance")
    _edited_before_the_fix(iid, finance)
    recovery.read_back(invoice(iid), finance)
    db.session.commit()
    [job] = recovery.awaiting_choice(invoice(iid))
    recovery.request_choice(invoice(iid), job.id, "void", finance)
    db.session.commit()
    recovery.confirm_choice(invoice(iid), job.id, other)
    db.session.commit()
    assert run_payment_sync().status == "ok"  # it sees the voided invoice's events
    inv = invoice(iid)
    assert recovery.edit_refusal(inv) is None
    editing.update_line(inv, inv.lines[0], {"unit_price": Decimal("140.00")}, finance,
                        inv.version)
    db.session.commit()
    assert invoice(iid).lines[0].unit_price == Decimal("140.00")
