"""Every row of the sales figures reconciles (issue 14, item 13):

    invoiced = credited + collected + refunded + outstanding + written off

over paid, partly paid, refunded, credited (before, after and across payment), void,
failed, written-off and overdue invoices in JPY, KWD and EUR; summed live and from the
rollup; in the totals, per owner, per pipeline, per deal, on the deal page's positions
and in every CSV. Each invoice's facts are the ones Stripe reports for that story.
Before the refunded and written-off columns, a refunded invoice (JPY 2,490,000
invoiced, 0 collected, 150,000 outstanding) could not add up.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from app.extensions import db
from app.sales import csv as sales_csv
from app.sales import queries, rollup
from app.sales.filters import SalesFilters
from tests.sales.conftest import NOW

D = Decimal
DAY = dt.timedelta(days=1)
PARTS = ("credited", "collected", "refunded", "outstanding", "written_off")

# (currency, total, facts, expected parts): facts are Stripe's amount_paid, the charges'
# amount_refunded, the credit notes' total, amount_remaining, and the statuses.
STORIES = {
    "paid": ("EUR", "1190.00", dict(paid="1190.00", payment_status="paid",
                                    stripe_status="paid"),
             dict(collected="1190.00")),
    "partial": ("EUR", "500.00", dict(paid="120.50", remaining="379.50",
                                      payment_status="partially_paid", due=20),
                dict(collected="120.50", outstanding="379.50")),
    "refunded_all": ("JPY", "2490000", dict(paid="2490000", refunded="2490000",
                                            payment_status="refunded", stripe_status="paid"),
                     dict(refunded="2490000")),
    "refunded_part": ("KWD", "12.340", dict(paid="12.340", refunded="2.000",
                                            payment_status="partially_refunded",
                                            stripe_status="paid"),
                      dict(collected="10.340", refunded="2.000")),
    "credited_before": ("EUR", "400.00", dict(credited="400.00", remaining="0",
                                              payment_status="credited", stripe_status="paid"),
                        dict(credited="400.00")),
    # A credit note after payment, paid back as a refund: refunded, not credited twice.
    "credit_refund": ("JPY", "150000", dict(paid="150000", credited="50000", refunded="50000",
                                            payment_status="partially_refunded",
                                            stripe_status="paid"),
                      dict(collected="100000", refunded="50000")),
    # A credit note after payment given as customer credit (no refund).
    "credit_balance": ("EUR", "300.00", dict(paid="300.00", credited="100.00",
                                             payment_status="paid", stripe_status="paid"),
                       dict(credited="100.00", collected="200.00")),
    # Half paid, then a credit note of 300: 250 reduce what is due, 50 are refunded.
    "credit_across": ("KWD", "1.000", dict(paid="0.500", credited="0.300", refunded="0.050",
                                           remaining="0.250", payment_status="partially_paid",
                                           due=10),
                      dict(credited="0.250", collected="0.450", refunded="0.050",
                           outstanding="0.250")),
    # Customer credit balance Stripe applied at finalization: 200 less is due.
    "balance_applied": ("EUR", "1000.00", dict(paid="800.00", remaining="0",
                                               payment_status="paid",
                                               stripe_status="paid"),
                        dict(credited="200.00", collected="800.00")),
    "failed": ("JPY", "98000", dict(payment_status="payment_failed", due=14),
               dict(outstanding="98000")),
    "overdue": ("KWD", "5.550", dict(paid="1.000", remaining="4.550",
                                     payment_status="overdue", due=-45),
                dict(collected="1.000", outstanding="4.550")),
    "written_off": ("EUR", "750.00", dict(remaining="750.00", payment_status="uncollectible",
                                          stripe_status="uncollectible", due=-120),
                    dict(written_off="750.00")),
    "void": ("JPY", "10000", dict(payment_status="void", stripe_status="void"), None),
}


@pytest.fixture
def stories(people, make_deal, make_invoice):
    ids = {}
    for n, (name, (cur, total, facts, _)) in enumerate(STORIES.items()):
        facts = dict(facts)
        due = facts.pop("due", None)
        deal = make_deal(total, cur, owner=1 + n % 2, pipeline=10 + n % 3 // 2,
                         title=f"{name} deal")
        make_invoice(deal, total, cur, due=None if due is None else NOW + due * DAY,
                     pushed=NOW - (n + 1) * DAY, **facts)
        ids[name] = deal
    return ids


def _check(figures, where):
    total = sum((getattr(figures, p) for p in PARTS), D(0))
    assert figures.invoiced == total, (where, figures)
    assert all(getattr(figures, p) >= 0 for p in PARTS), (where, figures)


@pytest.mark.parametrize("source", ["live", "rollup"])
def test_every_row_reconciles(app, stories, source):
    f = SalesFilters.from_args({"period": "all"}, ZoneInfo("UTC"), now=NOW,
                               statuses=queries.DEAL_STATUSES)
    with app.app_context():
        if source == "rollup":
            rollup.refresh_rollup(NOW)
            db.session.commit()
        s = queries.summary(f, NOW)
        assert (s.as_of is not None) == (source == "rollup")
        assert set(s.totals) == {"EUR", "JPY", "KWD"}
        for cur, g in s.totals.items():
            _check(g, cur)
        for rows in (s.owner_rows(), s.pipeline_rows()):
            for ident, _name, cur, g in rows:
                _check(g, (ident, cur))
        # Per currency, the parts are what each story says (void counts nowhere).
        for cur in ("EUR", "JPY", "KWD"):
            want = {p: D(0) for p in PARTS}
            for c, _total, _facts, parts in STORIES.values():
                if c == cur and parts:
                    for p, v in parts.items():
                        want[p] += D(v)
            assert {p: getattr(s.totals[cur], p) for p in PARTS} == want, cur
        assert s.totals["JPY"].invoiced == D("2738000")  # without the void one
        assert s.totals["EUR"].written_off == D("750.00")
        assert s.receivable["EUR"] == D("379.50")  # written off is not receivable
        assert s.totals["KWD"].overdue == D("4.550")


def test_each_deal_and_position_reconciles(app, stories):
    f = SalesFilters.from_args({"period": "all"}, ZoneInfo("UTC"), now=NOW,
                               statuses=queries.DEAL_STATUSES)
    with app.app_context():
        rows = {r.id: r for r in queries.deals_page(f, NOW, page_size=100)}
        for name, deal in stories.items():
            row = rows[deal]
            parts = STORIES[name][3]
            if parts is None:
                assert row.status == "not_invoiced" and row.invoice_currency is None
                continue
            _check(row, name)
            assert {p: getattr(row, p) for p in PARTS} == {
                p: D(parts.get(p, "0")) for p in PARTS}, name
            (pos,) = queries.positions(NOW, deal_id=deal)
            _check(pos, name)
        assert rows[stories["failed"]].status == "payment_failed"  # was "Invoiced"
        assert rows[stories["overdue"]].status == "overdue"


def test_csv_rows_reconcile_and_name_the_invoices(app, stories):
    f = SalesFilters.from_args({"period": "all"}, ZoneInfo("UTC"), now=NOW,
                               statuses=queries.DEAL_STATUSES)
    with app.test_request_context("/"):
        for table in ("totals", "owners", "pipelines"):
            out = list(sales_csv.rows(table, f, NOW, str))
            head, body = out[0], out[1:]
            assert body, table
            for row in map(dict, (zip(head, r, strict=True) for r in body)):
                parts = sum(D(row[p]) for p in PARTS)
                assert D(row["invoiced"]) == parts, (table, row)
        out = list(sales_csv.rows("deals", f, NOW, lambda t: t.date().isoformat()))
        head, body = out[0], out[1:]
        assert {"credited", "refunded", "written_off", "invoice_numbers", "due_dates"} <= set(
            head)
        deals = {int(r[0]): dict(zip(head, r, strict=True)) for r in body}
        refunded = deals[stories["refunded_all"]]
        assert (refunded["invoiced"], refunded["collected"], refunded["refunded"]) == (
            "2490000", "0", "2490000")
        overdue = deals[stories["overdue"]]
        assert overdue["invoice_numbers"].startswith("ST-")
        assert overdue["due_dates"] == (NOW - 45 * DAY).date().isoformat()
        assert overdue["paid_status"] == "overdue"
        for row in deals.values():
            if row["invoiced"]:
                assert D(row["invoiced"]) == sum(D(row[p]) for p in PARTS), row
