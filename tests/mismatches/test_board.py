"""The mismatch board: each rule appears with its explanation, goes away when the data
is right again, and an acknowledged one stays quiet until its data changes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from app.intake.models import PdDeal
from app.invoices.models import Invoice
from app.mismatches.models import Mismatch
from app.mismatches.operations import acknowledge, open_count, recompute
from app.payments.models import ForeignStripeInvoice, InvoiceStripeState, StripeCustomerSeen
from tests.conftest import csrf_token


def _deal(deal_id=1, value="100", currency="EUR", status="won", email="ap@example.com"):
    return PdDeal(
        id=deal_id,
        title=f"Deal {deal_id}",
        value=Decimal(value),
        currency=currency,
        status=status,
        ready=True,
        billing_email=email,
        content_hash="h1",
    )


def _invoice(deal_id=1, total="100", currency="EUR", status="pushed", stripe_status="open", **kw):
    return Invoice(
        deal_id=deal_id,
        currency=currency,
        status=status,
        total=Decimal(total),
        subtotal=Decimal(total),
        stripe_status=stripe_status,
        deal_hash="h1",
        stripe_invoice_id=kw.pop("stripe_invoice_id", None),
        stripe_customer_id=kw.pop("stripe_customer_id", None),
        **kw,
    )


def _rules(app) -> dict[int, Mismatch]:
    with app.app_context():
        recompute()
        db.session.commit()
        rows = db.session.execute(select(Mismatch).where(Mismatch.resolved_at.is_(None))).scalars()
        out = {m.rule: m for m in rows}
        for m in out.values():
            db.session.expunge(m)
        return out


def test_clean_books_have_no_mismatch(app):
    with app.app_context():
        db.session.add_all([_deal(), _invoice(stripe_invoice_id="in_1")])
        db.session.commit()
    assert _rules(app) == {}


def test_each_rule_explains_itself(app):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=5)
    with app.app_context():
        db.session.add_all(
            [
                _deal(1, value="150"),  # 1: value differs
                _deal(2, status="lost"),  # 5: lost but open invoice
                _deal(3, currency="USD"),  # 7: currency differs
                _deal(4),  # 9: two live invoices
                _deal(5),  # 4: void while won
                _deal(6, email="crm@example.com"),  # 12: emails differ
            ]
        )
        db.session.add_all(
            [
                _invoice(1, stripe_invoice_id="in_1"),
                _invoice(2, stripe_invoice_id="in_2"),
                _invoice(3, currency="EUR", status="draft", stripe_status=None),
                _invoice(4, status="draft", stripe_status=None),
                _invoice(4, status="submitted", stripe_status=None),
                _invoice(5, stripe_status="void", stripe_invoice_id="in_5"),
                _invoice(
                    6,
                    stripe_invoice_id="in_6",
                    stripe_customer_id="cus_6",
                    amount_paid=Decimal("100"),
                    amount_refunded=Decimal("30"),
                    payment_status="partially_refunded",
                ),
                _invoice(1, total="0", status="cancelled", stripe_status=None),
            ]
        )
        db.session.flush()
        over = _invoice(
            6,
            total="0",
            stripe_invoice_id="in_6b",
            stripe_customer_id="cus_6",
            payment_status="overdue",
            due_at=past,
            amount_remaining=Decimal("0"),
        )
        db.session.add(over)
        db.session.add(StripeCustomerSeen(id="cus_6", email="stripe@example.com"))
        db.session.add(
            ForeignStripeInvoice(
                id="in_x",
                customer="cus_6",
                number="X-1",
                status="open",
                currency="EUR",
                total=Decimal("9"),
            )
        )
        inv1 = db.session.execute(select(Invoice).where(Invoice.deal_id == 1)).scalars().first()
        db.session.add(
            InvoiceStripeState(
                invoice_id=inv1.id, stripe_total=Decimal("120"), stripe_subtotal=Decimal("120")
            )
        )
        db.session.commit()
    found = _rules(app)
    assert {1, 4, 5, 6, 7, 8, 9, 10, 11, 12} <= set(found)
    assert "EUR 150.00 in Pipedrive" in found[1].explanation
    assert "void in Stripe" in found[4].explanation
    assert "lost in Pipedrive" in found[5].explanation
    assert "EUR 70.00 collected after EUR 30.00 refunded" in found[6].explanation
    assert "USD" in found[7].explanation and "EUR" in found[7].explanation
    assert "did not create" in found[8].explanation
    assert "2 live invoices" in found[9].explanation
    assert "overdue since" in found[10].explanation
    assert "Stripe now shows EUR 120.00" in found[11].explanation
    assert "stripe@example.com" in found[12].explanation


def test_mismatch_goes_away_when_fixed_and_comes_back(app):
    with app.app_context():
        db.session.add_all([_deal(1, value="150"), _invoice(1, stripe_invoice_id="in_1")])
        db.session.commit()
    assert 1 in _rules(app)
    with app.app_context():
        db.session.get(PdDeal, 1).value = Decimal("100")
        db.session.commit()
    assert 1 not in _rules(app)
    with app.app_context():
        db.session.get(PdDeal, 1).value = Decimal("90")
        db.session.commit()
    assert 1 in _rules(app)


def test_a_new_row_reads_back_as_written(app):
    """New rows go in by COPY on PostgreSQL and by executemany on SQLite: either way the
    facts come back as the rule gave them, the hash is the facts' digest, the times are
    aware UTC and the row links its deal."""
    import hashlib
    import json

    before = dt.datetime.now(dt.UTC)
    with app.app_context():
        db.session.add_all([_deal(7, value="150.50"), _invoice(7, stripe_invoice_id="in_7")])
        db.session.commit()
    m = _rules(app)[1]
    assert m.subject == "deal:7" and m.deal_id == 7
    assert m.severity in ("high", "medium", "low") and "150.50" in m.explanation
    assert isinstance(m.facts, dict) and m.facts
    canonical = json.dumps(m.facts, sort_keys=True, default=str)
    assert m.data_hash == hashlib.sha256(canonical.encode()).hexdigest()
    assert m.first_seen == m.last_seen and m.first_seen.tzinfo is not None
    assert before - dt.timedelta(seconds=1) <= m.first_seen <= dt.datetime.now(dt.UTC)
    assert m.resolved_at is None and m.acknowledged_at is None


def test_acknowledged_stays_quiet_until_data_changes(app, make_user):
    user = make_user("finance")
    with app.app_context():
        db.session.add_all([_deal(1, value="150"), _invoice(1, stripe_invoice_id="in_1")])
        db.session.commit()
    m = _rules(app)[1]
    with app.app_context():
        row = db.session.get(Mismatch, m.id)
        from app.auth.models import User

        acknowledge(row, db.session.get(User, user.id), "Recurring part billed monthly")
        db.session.commit()
        recompute()
        db.session.commit()
        assert open_count() == 0
        db.session.get(PdDeal, 1).value = Decimal("170")
        db.session.commit()
        recompute()
        db.session.commit()
        assert open_count() == 1


def test_board_page_ack_needs_a_note(app, client, make_user, login):
    with app.app_context():
        db.session.add_all([_deal(1, value="150"), _invoice(1, stripe_invoice_id="in_1")])
        db.session.commit()
    m = _rules(app)[1]
    login(make_user("finance"))
    html = client.get("/mismatches/").get_data(as_text=True)
    assert "Deal value differs from the invoiced total" in html and "Acknowledge" in html
    token = csrf_token(client, "/mismatches/")
    bad = client.post(
        f"/mismatches/{m.id}/acknowledge",
        data={"note": " "},
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert bad.status_code == 422 and "Say why" in bad.get_data(as_text=True)
    ok = client.post(
        f"/mismatches/{m.id}/acknowledge",
        data={"note": "agreed discount"},
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert ok.status_code == 200 and "agreed discount" in ok.get_data(as_text=True)
    assert "0 open mismatches" in client.get("/mismatches/").get_data(as_text=True)
    assert "agreed discount" in client.get("/mismatches/?quiet=1").get_data(as_text=True)


def test_sales_cannot_see_the_board(client, make_user, login):
    login(make_user("sales"))
    assert client.get("/mismatches/").status_code == 403
