"""The sales pages as each role sees them; the deal timeline; CSV exports."""

from __future__ import annotations

import csv
import datetime as dt
import inspect
import io
from decimal import Decimal

import pytest

from app.extensions import db
from app.types import utcnow

DAY = dt.timedelta(days=1)


@pytest.fixture
def two_deals(people, make_deal, make_invoice):
    now = utcnow()
    paid = make_deal("1000", title="Paid Co deal", won=now - 20 * DAY)
    inv = make_invoice(paid, "1000", paid="1000", payment_status="paid", stripe_status="paid",
                       pushed=now - 15 * DAY)
    late = make_deal("300", title="Late Ltd deal", won=now - 60 * DAY)
    make_invoice(late, "300", payment_status="overdue", due=now - 40 * DAY,
                 pushed=now - 70 * DAY)
    return {"paid": paid, "late": late, "paid_invoice": inv}


def test_sales_user_sees_paid_and_overdue(client, make_user, login, two_deals):
    login(make_user("sales"))
    resp = client.get("/sales/?period=all")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert f'data-deal="{two_deals["paid"]}"' in html
    row_paid = html.split(f'data-deal="{two_deals["paid"]}"')[1].split("</tr>")[0]
    row_late = html.split(f'data-deal="{two_deals["late"]}"')[1].split("</tr>")[0]
    assert 'data-paid-status="paid"' in row_paid and "Paid" in row_paid
    assert 'data-paid-status="overdue"' in row_late
    assert "DSO" in html and "countback" in html  # the formula is stated
    assert "Invoiced = Credited + Collected + Refunded + Outstanding + Written off" in html
    assert "<svg" in html and "style=" not in html.split("<svg", 1)[1]


def test_htmx_filter_returns_only_the_results(client, make_user, login, two_deals):
    login(make_user("sales"))
    resp = client.get("/sales/?period=all&status=overdue", headers={"HX-Request": "true"})
    html = resp.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="sales-results">')
    assert f'data-deal="{two_deals["late"]}"' in html
    assert f'data-deal="{two_deals["paid"]}"' not in html


def test_bad_filters_are_shown_next_to_the_field(client, make_user, login, two_deals):
    login(make_user("sales"))
    resp = client.get("/sales/?from=next+tuesday&owner=abc")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'id="from-error"' in html and "YYYY-MM-DD" in html
    assert 'value="next tuesday"' in html
    assert 'id="owner-error"' in html
    assert "showing this year meanwhile" in html
    # An export with the same bad filters goes back to the page instead of a 500.
    resp = client.get("/sales/export/deals.csv?from=next+tuesday")
    assert resp.status_code == 303 and "/sales/?from=next" in resp.headers["Location"]


@pytest.mark.parametrize("path, status", [
    ("/sales/", 200), ("/sales/export/owners.csv", 200),
    ("/approvals/", 403), ("/push/", 403), ("/admin/", 403), ("/invoices/", 403),
    ("/queue/", 403), ("/mismatches/", 403),
])
def test_sales_role_reaches_sales_only(client, make_user, login, path, status):
    login(make_user("sales"))
    with client.get(path) as resp:
        assert resp.status_code == status


@pytest.mark.parametrize("role, status", [
    ("sales", 200), ("finance", 200), ("admin", 200), ("approver", 403),
])
def test_who_sees_the_sales_pages(client, make_user, login, role, status):
    login(make_user(role))
    assert client.get("/sales/").status_code == status
    with client.get("/sales/export/deals.csv") as resp:  # closes the stream
        assert resp.status_code == status


def test_deal_page_timeline_without_payment_details(app, client, make_user, login, two_deals):
    from app.invoices.models import Invoice
    from app.payments.models import StripeEvent, StripePayment

    now = utcnow()
    with app.app_context():
        inv = db.session.get(Invoice, two_deals["paid_invoice"])
        inv.amount_refunded, inv.amount_credited = Decimal("150"), Decimal("50")
        inv.payment_status = "partially_refunded"
        db.session.add(StripePayment(
            id="inpay_1", invoice_id=inv.id, stripe_invoice_id=inv.stripe_invoice_id,
            charge="ch_1", currency="EUR", amount=Decimal("1000"),
            amount_refunded=Decimal("100"), paid_at=now - 14 * DAY))
        card = {"card": {"brand": "visa", "last4": "4242", "exp_month": 12}}
        db.session.add(StripeEvent(
            id="evt_refund", type="charge.refunded", created=int((now - 10 * DAY).timestamp()),
            object_id="ch_1", source="webhook",
            payload={"data": {"object": {"id": "ch_1", "amount_refunded": 10000,
                                         "currency": "eur", "payment_method_details": card,
                                         "billing_details": {"email": "payer@secret.test"}}}}))
        db.session.add(StripeEvent(
            id="evt_cn", type="credit_note.created", created=int((now - 9 * DAY).timestamp()),
            object_id="cn_1", source="webhook",
            payload={"data": {"object": {"id": "cn_1", "invoice": inv.stripe_invoice_id,
                                         "total": 5000, "currency": "eur"}}}))
        db.session.commit()
    login(make_user("sales"))
    html = client.get(f"/sales/deals/{two_deals['paid']}").get_data(as_text=True)
    timeline = html.split('id="deal-timeline"')[1].split("</ol>")[0]
    kinds = [part.split('"')[0] for part in timeline.split('data-kind="')[1:]]
    assert kinds == ["created", "pushed", "payment", "refund", "credit_note", "refund"]
    assert "EUR 100.00" in timeline  # the refund event
    assert "EUR 50.00" in timeline  # the credit note
    assert "(date not recorded)" in timeline and "EUR 50.00" in timeline.split("Date not")[1]
    assert "https://invoice.stripe.com/i/test_" in html
    for secret in ("4242", "visa", "payer@secret.test", "exp_month"):
        assert secret not in html
    late = client.get(f"/sales/deals/{two_deals['late']}").get_data(as_text=True)
    assert 'data-paid-status="overdue"' in late and "EUR 300.00" in late
    assert client.get("/sales/deals/424242").status_code == 404


def test_csv_streams_exact_amounts(app, client, make_user, login, two_deals):
    from app.sales import csv as sales_csv
    from app.sales.filters import SalesFilters
    from app.sales.queries import DEAL_STATUSES

    login(make_user("sales"))
    resp = client.get("/sales/export/deals.csv?period=all")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert resp.is_streamed
    today = utcnow().date().isoformat()  # the test user's zone is UTC
    assert resp.headers["Content-Disposition"] == (
        f'attachment; filename="sales-deals-{today}.csv"')
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    by_id = {int(r["deal_id"]): r for r in rows}
    assert by_id[two_deals["paid"]]["paid_status"] == "paid"
    assert by_id[two_deals["paid"]]["collected"] == "1000.00"
    assert by_id[two_deals["late"]]["outstanding"] == "300.00"
    assert by_id[two_deals["late"]]["paid_status"] == "overdue"

    aging = client.get("/sales/export/aging.csv").get_data(as_text=True).splitlines()
    assert aging[0] == "currency,bucket,label,amount"
    assert "EUR,d31_60,31–60 days overdue,300.00" in aging
    owners = list(csv.reader(io.StringIO(
        client.get("/sales/export/owners.csv?period=all").get_data(as_text=True))))
    assert owners[0][:3] == ["owner_id", "owner", "currency"]
    assert owners[1][:7] == ["1", "Olga Owner", "EUR", "2", "1300.00", "2", "1300.00"]
    assert client.get("/sales/export/secrets.csv").status_code == 404

    # The body is a generator: rows are produced while the response is sent.
    with app.test_request_context("/sales/export/deals.csv"):
        f = SalesFilters.from_args({"period": "all"}, dt.UTC, statuses=DEAL_STATUSES)
        out = sales_csv.response("deals", f, utcnow(), utcnow().date(), str)
        assert out.is_streamed and inspect.isgenerator(out.response)
        assert next(out.response).startswith("deal_id,title,")
        out.response.close()  # ends the stream inside the context it borrowed


def test_csv_cells_cannot_start_a_formula(app, client, make_user, login, people, make_deal):
    make_deal("10", title="=HYPERLINK(\"http://evil\")")
    login(make_user("sales"))
    body = client.get("/sales/export/deals.csv?period=all").get_data(as_text=True)
    assert "'=HYPERLINK" in body and ",=HYPERLINK" not in body


def test_timeline_falls_back_to_the_invoice_amounts(app, client, make_user, login, people,
                                                    make_deal, make_invoice):
    """Paid, refunded and credited in Stripe, but no payment rows or events stored."""
    deal = make_deal("500")
    make_invoice(deal, "500", paid="500", refunded="20", credited="30",
                 payment_status="partially_refunded", stripe_status="paid")
    login(make_user("finance"))
    html = client.get(f"/sales/deals/{deal}").get_data(as_text=True)
    timeline = html.split('id="deal-timeline"')[1].split("</ol>")[0]
    undated = timeline.split("Date not recorded")[1:]
    assert len(undated) == 3
    assert [("EUR 500.00" in u, "EUR 20.00" in u, "EUR 30.00" in u) for u in undated] == [
        (True, False, False), (False, True, False), (False, False, True)]
