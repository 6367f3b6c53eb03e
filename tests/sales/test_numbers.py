"""The sales figures, per currency: paid, partially paid, refunded, credited before and
after payment, overdue and void invoices; aging at its boundaries; DSO."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from app.extensions import db
from app.sales import queries, rollup
from app.sales.filters import SalesFilters
from tests.sales.conftest import NOW

D = Decimal
DAY = dt.timedelta(days=1)
UTC = ZoneInfo("UTC")


def filters(**args):
    return SalesFilters.from_args(args, UTC, now=NOW, statuses=queries.DEAL_STATUSES)


@pytest.fixture(autouse=True, params=["live", "rollup"])
def source(request, monkeypatch):
    """Every figure holds both summed live and read from the rollup.

    "rollup": each summary first rebuilds the rollup from the data as it is then,
    and must have been served from it.
    """
    if request.param == "rollup":
        live_summary = queries.summary

        def from_rollup(f, now):
            rollup.refresh_rollup(now)
            db.session.commit()
            s = live_summary(f, now)
            assert s.as_of == now
            return s

        monkeypatch.setattr(queries, "summary", from_rollup)
    return request.param


@pytest.fixture
def book(people, make_deal, make_invoice):
    """EUR and USD deals of two owners in two pipelines (see each line)."""
    later, past = NOW + 20 * DAY, NOW - 45 * DAY
    ids = {}
    # Owner 1, pipeline 10, EUR
    ids["paid"] = make_deal("1000")
    make_invoice(ids["paid"], "1000", paid="1000", payment_status="paid", stripe_status="paid")
    ids["partial"] = make_deal("500")
    make_invoice(ids["partial"], "500", paid="200", payment_status="partially_paid", due=later)
    ids["split"] = make_deal("200")  # one invoice paid, one open: partially paid
    make_invoice(ids["split"], "100", paid="100", payment_status="paid", stripe_status="paid")
    make_invoice(ids["split"], "100", due=later)
    ids["open"] = make_deal("100")
    make_invoice(ids["open"], "100", due=later)
    # Owner 2: refunded (pipeline 11), credited before payment (11), credited after
    # payment with the money given back (10), won but not invoiced (a draft only, 11).
    ids["refunded"] = make_deal("300", owner=2, pipeline=11)
    make_invoice(ids["refunded"], "300", paid="300", refunded="100",
                 payment_status="partially_refunded", stripe_status="paid")
    ids["credited"] = make_deal("400", owner=2, pipeline=11)
    make_invoice(ids["credited"], "400", credited="400", payment_status="credited",
                 stripe_status="paid")
    ids["post_credit"] = make_deal("600", owner=2, pipeline=10)
    make_invoice(ids["post_credit"], "600", paid="600", credited="100", refunded="100",
                 payment_status="partially_refunded", stripe_status="paid")
    ids["draft_only"] = make_deal("250", owner=2, pipeline=11)
    make_invoice(ids["draft_only"], "250", status="draft")
    # Owner 1, pipeline 11, USD: overdue, and a void invoice (excluded everywhere).
    ids["overdue"] = make_deal("2000", "USD", pipeline=11)
    make_invoice(ids["overdue"], "2000", "USD", payment_status="overdue", due=past)
    ids["void"] = make_deal("700", "USD", pipeline=11)
    make_invoice(ids["void"], "700", "USD", payment_status="void", stripe_status="void")
    # Outside the period (2025): only aging and "open today" see it.
    ids["last_year"] = make_deal("50", "USD", won=dt.datetime(2025, 2, 1, tzinfo=dt.UTC))
    make_invoice(ids["last_year"], "50", "USD", payment_status="overdue", due=NOW - 100 * DAY,
                 pushed=dt.datetime(2025, 2, 2, tzinfo=dt.UTC))
    # Not sold: lost.
    make_deal("999", status="lost")
    return ids


def test_totals_per_currency(app, book):
    with app.app_context():
        s = queries.summary(filters(period="year"), NOW)
    eur, usd = s.totals["EUR"], s.totals["USD"]
    assert (eur.sold, eur.deals_won) == (D("3350"), 8)
    assert (eur.invoiced, eur.invoices) == (D("3100"), 8)
    assert eur.credited == D("400")  # before payment; the one after it was refunded
    assert eur.refunded == D("200")  # a refund, and a credit note paid back as a refund
    assert eur.collected == D("2000")  # paid 2200 - refunded 200
    assert eur.outstanding == D("500")
    assert eur.overdue == eur.written_off == D("0")
    assert eur.reconciles and usd.reconciles
    assert (usd.sold, usd.deals_won) == (D("2700"), 2)  # the void invoice's deal was sold
    assert (usd.invoiced, usd.invoices) == (D("2000"), 1)  # the void invoice is not
    assert usd.collected == D("0")
    assert usd.outstanding == usd.overdue == D("2000")
    assert set(s.totals) == {"EUR", "USD"}  # never a mixed line


def test_per_owner_and_pipeline(app, book):
    with app.app_context():
        s = queries.summary(filters(period="year"), NOW)
    o1, o2 = s.by_owner[(1, "EUR")], s.by_owner[(2, "EUR")]
    assert (o1.sold, o1.invoiced, o1.collected, o1.outstanding) == (
        D("1800"), D("1800"), D("1300"), D("500"))
    assert (o2.sold, o2.invoiced, o2.credited, o2.collected, o2.refunded, o2.outstanding) == (
        D("1550"), D("1300"), D("400"), D("700"), D("200"), D("0"))
    assert s.by_owner[(1, "USD")].overdue == D("2000")
    p10, p11 = s.by_pipeline[(10, "EUR")], s.by_pipeline[(11, "EUR")]
    assert (p10.sold, p10.invoiced, p10.credited, p10.collected) == (
        D("2400"), D("2400"), D("0"), D("1800"))
    assert (p11.sold, p11.invoiced, p11.credited, p11.collected) == (
        D("950"), D("700"), D("400"), D("200"))
    names = [(name, cur) for _, name, cur, _ in s.owner_rows()]
    assert names == [("Olga Owner", "EUR"), ("Olga Owner", "USD"), ("Piet Seller", "EUR")]


def test_filters_narrow_the_sums(app, book):
    with app.app_context():
        s = queries.summary(filters(owner="2", period="year"), NOW)
        all_time = queries.summary(filters(period="all"), NOW)
    assert set(s.totals) == {"EUR"} and s.totals["EUR"].sold == D("1550")
    assert all_time.totals["USD"].invoiced == D("2050")  # last year's invoice too
    assert all_time.dso("USD") == D("499.0")  # DSO is a snapshot, whatever the period


def test_aging_and_dso(app, book):
    with app.app_context():
        s = queries.summary(filters(period="year"), NOW)
    aging = dict(s.aging_rows())
    assert dict(aging["EUR"])["current"] == D("500")
    usd = dict(aging["USD"])
    assert usd["d31_60"] == D("2000") and usd["d90_plus"] == D("50")
    assert sum(usd.values()) == s.receivable["USD"] == D("2050")
    # Countback from 15 Jun. EUR: 500 open, 3100 invoiced on 10 Jun: 5 days + 500/3100.
    assert s.dso("EUR") == D("5.2")
    # USD: 2050 open; 2000 invoiced on 10 Jun, then 50 on 2 Feb 2025: 498 days + 50/50.
    assert s.dso("USD") == D("499.0")


def test_dso_of_invoices_sent_today_is_one_day_at_most(app, people, make_deal, make_invoice):
    """Issue 14: invoices sent today and unpaid showed a DSO of 335 days (the days of the
    year so far), whatever had been invoiced before the desk existed."""
    for total in ("1000", "500"):
        make_invoice(make_deal(total), total, due=NOW + 30 * DAY,
                     pushed=NOW - dt.timedelta(hours=2))
    half = make_deal("300")
    make_invoice(half, "300", paid="300", payment_status="paid", stripe_status="paid",
                 pushed=NOW - dt.timedelta(hours=1))
    with app.app_context():
        for period in ("year", "month", "all"):
            s = queries.summary(filters(period=period), NOW)
            assert s.receivable["EUR"] == D("1500")
            assert s.dso("EUR") == D("0.8")  # 1500 open of 1800 invoiced today


def test_countback_dso():
    today = dt.date(2026, 6, 15)

    def dso(open_, rows):
        return queries.countback_dso({"EUR": D(open_)}, [(d, "EUR", D(a)) for d, a in rows],
                                     today)["EUR"]

    assert dso("0", []) == D("0")
    assert dso("100", [(today, "100")]) == D("1.0")
    # Days without invoicing count: 100 of 200 invoiced 9 days ago.
    assert dso("100", [(today - 9 * DAY, "200")]) == D("9.5")
    daily = [(today, "50"), (today - 2 * DAY, "60"), (today - 2 * DAY, "40")]
    assert dso("100", daily) == D("2.5")
    assert dso("151", daily) is None  # more open than was ever invoiced
    # Each currency counts back over its own invoicing only.
    both = queries.countback_dso(
        {"EUR": D("10"), "JPY": D("1000")},
        [(today, "JPY", D("500")), (today, "EUR", D("20")), (today - DAY, "JPY", D("500"))],
        today)
    assert both == {"EUR": D("0.5"), "JPY": D("2.0")}
