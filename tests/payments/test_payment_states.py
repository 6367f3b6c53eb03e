"""The payment state precedence (app.payments.states), when an invoice falls overdue, and
the two overdue defects of issue 14: a failed payment that fell past due stayed "payment
failed"; a "due on receipt" invoice became overdue the moment it was sent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.extensions import db
from app.invoices.models import Invoice
from app.payments.operations import mark_overdue, run_payment_sync
from app.payments.states import PRECEDENCE, derive, overdue_cutoff, past_due
from app.writeback.models import WritebackItem
from tests.fixtures_desk import send_to_stripe

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
YESTERDAY = NOW - dt.timedelta(days=1)
TODAY_EARLY = NOW.replace(hour=1)
TOMORROW = NOW + dt.timedelta(days=1)


def _state(**facts) -> str | None:
    base = {
        "stripe_status": "open",
        "total": Decimal("100"),
        "paid": Decimal(0),
        "refunded": Decimal(0),
        "credited": Decimal(0),
        "remaining": Decimal("100"),
        "due_at": TOMORROW,
        "payment_failed": False,
        "disputed": False,
        "now": NOW,
    }
    return derive(**(base | facts))


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"stripe_status": None}, None),
        ({"stripe_status": "draft"}, None),
        ({}, "open"),
        ({"paid": Decimal(40), "remaining": Decimal(60)}, "partially_paid"),
        ({"payment_failed": True}, "payment_failed"),
        # A failed attempt outranks a part payment; lateness outranks both.
        ({"payment_failed": True, "paid": Decimal(40), "remaining": Decimal(60)},
         "payment_failed"),
        ({"payment_failed": True, "due_at": YESTERDAY}, "overdue"),
        ({"paid": Decimal(40), "remaining": Decimal(60), "due_at": YESTERDAY}, "overdue"),
        # Due earlier today: still the due day, not overdue.
        ({"due_at": TODAY_EARLY}, "open"),
        ({"due_at": None}, "open"),
        # Nothing owed any more: paid, refunded, credited, never overdue.
        ({"stripe_status": "paid", "paid": Decimal(100), "remaining": Decimal(0),
          "due_at": YESTERDAY}, "paid"),
        ({"stripe_status": "paid", "paid": Decimal(100), "remaining": Decimal(0),
          "refunded": Decimal(100)}, "refunded"),
        ({"stripe_status": "paid", "paid": Decimal(100), "remaining": Decimal(0),
          "refunded": Decimal(10)}, "partially_refunded"),
        ({"stripe_status": "paid", "remaining": Decimal(0), "credited": Decimal(100),
          "due_at": YESTERDAY, "payment_failed": True}, "credited"),
        ({"stripe_status": "paid", "paid": Decimal(60), "remaining": Decimal(0),
          "credited": Decimal(40)}, "paid"),
        # Part credited and still owed: open (the status shows the credit and what is due).
        ({"credited": Decimal(30), "remaining": Decimal(70)}, "open"),
        # Ended in Stripe or needing a person: above everything else.
        ({"stripe_status": "void", "due_at": YESTERDAY, "payment_failed": True}, "void"),
        ({"stripe_status": "uncollectible", "due_at": YESTERDAY}, "uncollectible"),
        ({"stripe_status": "paid", "paid": Decimal(100), "remaining": Decimal(0),
          "disputed": True}, "disputed"),
    ],
)
def test_one_precedence(facts, expected):
    assert _state(**facts) == expected


def test_every_state_has_its_place_in_the_precedence():
    from app.payments.states import PAYMENT_STATES

    assert set(PRECEDENCE) == set(PAYMENT_STATES)


def test_overdue_once_the_due_day_has_ended_in_the_company_zone():
    sent = dt.datetime(2026, 12, 4, 10, 0, tzinfo=UTC)  # due on receipt: due when sent
    assert not past_due(sent, sent + dt.timedelta(seconds=1), ZoneInfo("UTC"))
    assert not past_due(sent, dt.datetime(2026, 12, 4, 23, 59, 59, tzinfo=UTC), ZoneInfo("UTC"))
    assert past_due(sent, dt.datetime(2026, 12, 5, 0, 0, tzinfo=UTC), ZoneInfo("UTC"))
    # In Tokyo the 4th ends at 15:00 UTC; in New York at 05:00 UTC on the 5th.
    tokyo, new_york = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")
    assert past_due(sent, dt.datetime(2026, 12, 4, 15, 0, tzinfo=UTC), tokyo)
    assert not past_due(sent, dt.datetime(2026, 12, 5, 4, 59, tzinfo=UTC), new_york)
    assert past_due(sent, dt.datetime(2026, 12, 5, 5, 0, tzinfo=UTC), new_york)
    assert overdue_cutoff(NOW, ZoneInfo("UTC")) == NOW.replace(hour=0)


def test_the_time_zone_setting_is_checked_at_start_up(tmp_path):
    from functools import partial

    from app.config import ConfigError
    from app.config import load_settings as load

    load_settings = partial(load, instance_path=tmp_path, testing=True)
    assert load_settings({"DESK_TIMEZONE": "Europe/Berlin"})["DESK_TIMEZONE"] == "Europe/Berlin"
    assert load_settings({})["DESK_TIMEZONE"] == "UTC"
    with pytest.raises(ConfigError, match="DESK_TIMEZONE"):
        load_settings({"DESK_TIMEZONE": "Mars/Olympus"})


# -- through the Stripe sandbox ---------------------------------------------------------


def _sync(app) -> None:
    with app.app_context():
        run = run_payment_sync()
        assert run.status == "ok", run.error


def _inv(app, invoice_id) -> Invoice:
    with app.app_context():
        inv = db.session.get(Invoice, invoice_id)
        db.session.expunge(inv)
        return inv


def _outbox(app, kind: str) -> list[dict]:
    with app.app_context():
        return [
            w.payload
            for w in db.session.execute(
                select(WritebackItem).where(WritebackItem.kind == kind).order_by(WritebackItem.id)
            ).scalars()
        ]


def test_a_failed_payment_that_falls_past_due_becomes_overdue(app, pushed, stripe_sandbox):
    inv = _inv(app, pushed["invoice_id"])
    stripe_sandbox.fail_payment(pushed["stripe_id"])
    _sync(app)
    assert _inv(app, inv.id).payment_status == "payment_failed"
    # Stripe's clock moves past the due date; Stripe says overdue, and so must the desk
    # (judged by Stripe's clock, which is ahead of the desk's here), without a nudge.
    stripe_sandbox.advance_clock(days=(inv.days_until_due or 30) + 2)
    _sync(app)
    assert _inv(app, inv.id).payment_status == "overdue"
    fields = _outbox(app, "deal_fields")[-1]["fields"]
    assert fields["payment_status"] == "Overdue"
    subjects = [a["subject"] for a in _outbox(app, "deal_activity")]
    assert any("payment failed" in s for s in subjects)
    assert sum("is overdue" in s for s in subjects) == 1
    # The overdue job agrees, and tells nothing twice.
    with app.app_context():
        assert mark_overdue() == 0
    assert sum("is overdue" in a["subject"] for a in _outbox(app, "deal_activity")) == 1


def test_the_overdue_job_catches_a_failed_payment_past_due(app, pushed, stripe_sandbox):
    stripe_sandbox.fail_payment(pushed["stripe_id"])
    _sync(app)
    inv = _inv(app, pushed["invoice_id"])
    with app.app_context():
        assert mark_overdue(now=inv.due_at + dt.timedelta(days=2)) == 1
    assert _inv(app, inv.id).payment_status == "overdue"
    assert _outbox(app, "deal_fields")[-1]["fields"]["payment_status"] == "Overdue"


def _zone_where_it_is_early_morning(now: dt.datetime) -> str:
    """An Etc/GMT zone in which `now` is between 02:00 and 03:00 (so a few hours later is
    still the same day there)."""
    offset = (2 - now.hour) % 24
    if offset > 14:
        offset -= 24
    # Etc/GMT zones have the sign inverted: Etc/GMT-3 is UTC+3.
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def test_due_on_receipt_is_not_overdue_the_day_it_is_sent(app, draft, desk_on_stripe):
    sandbox_now = dt.datetime.fromtimestamp(desk_on_stripe.now(), UTC)
    app.config["DESK_TIMEZONE"] = _zone_where_it_is_early_morning(sandbox_now)
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        inv.collection_method, inv.days_until_due, inv.due_date = "send_invoice", 0, None
        db.session.commit()
    stripe_id = send_to_stripe(app, draft["invoice_id"])
    _sync(app)
    inv = _inv(app, draft["invoice_id"])
    assert inv.due_at is not None and inv.payment_status == "open"
    # Three hours on, Stripe's clock passed the due moment and it sends invoice.overdue.
    desk_on_stripe.advance_clock(seconds=3 * 3600)
    assert any(
        e["type"] == "invoice.overdue" and e["data"]["object"]["id"] == stripe_id
        for e in desk_on_stripe.sandbox.store.all("event")
    )
    _sync(app)
    with app.app_context():
        assert mark_overdue() == 0
    assert _inv(app, inv.id).payment_status == "open"
    assert not [a for a in _outbox(app, "deal_activity") if "overdue" in a["subject"]]
    assert not [n for n in _outbox(app, "deal_note") if "overdue" in n["content"]]
    assert _outbox(app, "deal_fields")[-1]["fields"]["payment_status"] == "Open"
    # The next day it is overdue, and the owner is told once.
    with app.app_context():
        assert mark_overdue(now=inv.due_at + dt.timedelta(days=1)) == 1
    assert _inv(app, inv.id).payment_status == "overdue"
    assert len([a for a in _outbox(app, "deal_activity") if "overdue" in a["subject"]]) == 1


def test_a_payment_after_a_failed_one_clears_the_failure(app, pushed, stripe_sandbox):
    inv = _inv(app, pushed["invoice_id"])
    stripe_sandbox.fail_payment(pushed["stripe_id"])
    _sync(app)
    stripe_sandbox.pay_invoice(pushed["stripe_id"], int(inv.total * 100) // 2)
    _sync(app)
    assert _inv(app, inv.id).payment_status == "partially_paid"


def test_the_payment_note_counts_the_payment_it_reports(app, pushed, stripe_sandbox):
    """The pull applies a payment before the invoice update that follows it: the note
    must not say "Partial payment ... collected EUR 0.00" for a payment in full."""
    from app.money import format_money

    _sync(app)
    inv = _inv(app, pushed["invoice_id"])
    stripe_sandbox.pay_invoice(pushed["stripe_id"])
    _sync(app)
    [note] = [n["content"] for n in _outbox(app, "deal_note") if "received" in n["content"]]
    total = format_money(inv.total, "EUR")
    assert f"Payment received for {inv.stripe_number}: {total}." in note
    assert f"Collected {total}, outstanding EUR 0.00." in note
    assert _inv(app, inv.id).payment_status == "paid"


def test_the_credit_note_note_gives_the_outstanding_after_the_credit(app, pushed,
                                                                   stripe_sandbox):
    """Likewise for a credit note: its note's "Outstanding" already counts the credit."""
    from app.money import format_money

    _sync(app)
    inv = _inv(app, pushed["invoice_id"])
    stripe_sandbox.credit_note(pushed["stripe_id"], 27_000, refund=False)
    _sync(app)
    [note] = [n["content"] for n in _outbox(app, "deal_note") if "Credit note" in n["content"]]
    after = format_money(inv.total - Decimal("270.00"), "EUR")
    assert f": EUR 270.00. Outstanding {after}." in note
    assert _inv(app, inv.id).amount_remaining == inv.total - Decimal("270.00")
