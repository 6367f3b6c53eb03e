"""The rollup gives the same figures as the live sums, for any period in any time zone;
the page says how fresh it is and sums live when it is stale or was never built."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from app.extensions import db
from app.jobs.queue import execute
from app.jobs.scheduler import JOBS
from app.sales import queries, rollup
from app.sales.filters import SalesFilters
from app.sales.models import SalesDaily, SalesRollupState
from tests.sales.conftest import NOW

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
UTC = dt.UTC


@pytest.fixture
def ledger(people, make_deal, make_invoice):
    """Deals and invoices near UTC midnight, in three currencies, in every state."""
    at = [
        dt.datetime(2026, 6, 1, 0, 0, tzinfo=UTC),  # exactly midnight
        dt.datetime(2026, 6, 1, 1, 30, tzinfo=UTC),
        dt.datetime(2026, 5, 31, 22, 15, tzinfo=UTC),
        dt.datetime(2026, 6, 10, 23, 59, 59, tzinfo=UTC),
        dt.datetime(2026, 6, 14, 18, 45, tzinfo=UTC),
        dt.datetime(2025, 12, 31, 23, 30, tzinfo=UTC),
    ]
    for i, when in enumerate(at):
        owner, pipeline = 1 + i % 2, 10 + i % 2
        eur = make_deal("1000.10", owner=owner, pipeline=pipeline, won=when)
        make_invoice(eur, "1000.10", paid="1000.10", payment_status="paid",
                     stripe_status="paid", pushed=when)
        make_invoice(eur, "300.33", paid="300.33", refunded="100.11",
                     payment_status="partially_refunded", stripe_status="paid",
                     pushed=when + HOUR)
        make_invoice(eur, "400", credited="400", payment_status="credited",
                     stripe_status="paid", pushed=when - HOUR)
        usd = make_deal("2000", "USD", owner=owner, pipeline=pipeline, won=when + 2 * HOUR)
        make_invoice(usd, "2000", "USD", payment_status="overdue", due=NOW - 45 * DAY,
                     pushed=when)
        make_invoice(usd, "700", "USD", payment_status="void", stripe_status="void",
                     pushed=when)
        make_invoice(usd, "150.5", "USD", paid="50", payment_status="partially_paid",
                     due=NOW - 3 * DAY, pushed=when + 30 * 60 * dt.timedelta(seconds=1))
        kwd = make_deal("1.125", "KWD", owner=owner, pipeline=None, won=when)
        make_invoice(kwd, "1.125", "KWD", due=NOW + DAY, pushed=when)
        make_invoice(kwd, "2.5", "KWD", pushed=when)  # open, no due date: current
        make_invoice(kwd, "9.999", "KWD", status="draft")
    make_deal("999", status="lost", won=at[0])


def _filters(zone: str, **args) -> SalesFilters:
    return SalesFilters.from_args(args, ZoneInfo(zone), now=NOW,
                                  statuses=queries.DEAL_STATUSES)


def _figures(s: queries.Summary):
    return s.totals, s.by_owner, s.by_pipeline, s.aging, s.receivable


PERIODS = [
    {"period": "year"},
    {"period": "month"},
    {"period": "all"},
    {"from": "2026-06-01", "to": "2026-06-01"},  # one local day: partial UTC days only
    {"from": "2026-05-31", "to": "2026-06-10"},
    {"from": "2026-06-01", "to": "2026-06-14", "owner": "2"},
    {"from": "2025-12-31", "to": "2026-06-01", "pipeline": "10"},
]
ZONES = ["UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Chatham"]


@pytest.mark.parametrize("zone", ZONES)
def test_rollup_equals_the_live_sums(app, ledger, zone):
    with app.app_context():
        live = {i: queries.summary(_filters(zone, **args), NOW) for i, args in enumerate(PERIODS)}
        assert all(s.as_of is None for s in live.values())
        rollup.refresh_rollup(NOW)
        db.session.commit()
        for i, args in enumerate(PERIODS):
            served = queries.summary(_filters(zone, **args), NOW)
            assert served.as_of == NOW
            assert _figures(served) == _figures(live[i]), (zone, args)
    # The data set is not empty where it matters.
    year = live[0].totals
    assert year["EUR"].credited > 0 and year["EUR"].collected > 0
    assert year["USD"].overdue > 0 and year["KWD"].invoices > 0


def test_rollup_rows_are_per_day_not_per_invoice(app, ledger):
    with app.app_context():
        state = rollup.refresh_rollup(NOW)
        db.session.commit()
        rows = db.session.query(SalesDaily).count()
        assert state.row_count == rows
        days = {d for (d,) in db.session.query(SalesDaily.day).distinct()}
    assert dt.date(2026, 6, 1) in days and dt.date(2025, 12, 31) in days


def test_a_stale_or_missing_rollup_is_not_used(app, ledger):
    f = _filters("Europe/Berlin", period="year")
    with app.app_context():
        assert queries.summary(f, NOW).as_of is None  # never built
        rollup.refresh_rollup(NOW - rollup.MAX_AGE - dt.timedelta(seconds=1))
        db.session.commit()
        assert queries.summary(f, NOW).as_of is None  # too old: live
        rollup.refresh_rollup(NOW - rollup.MAX_AGE + dt.timedelta(seconds=1))
        db.session.commit()
        assert queries.summary(f, NOW).as_of is not None


def test_split_period_keeps_whole_utc_days_only():
    berlin = ZoneInfo("Europe/Berlin")
    start = dt.datetime(2026, 6, 1, tzinfo=berlin).astimezone(UTC)  # 31 May 22:00 UTC
    end = dt.datetime(2026, 6, 4, tzinfo=berlin).astimezone(UTC)
    days, windows = rollup.split_period(start, end)
    assert days == (dt.date(2026, 6, 1), dt.date(2026, 6, 3))
    assert windows == [(start, dt.datetime(2026, 6, 1, tzinfo=UTC)),
                       (dt.datetime(2026, 6, 3, tzinfo=UTC), end)]
    assert rollup.split_period(None, None) == ((None, None), [])
    short = (start, start + 5 * HOUR)
    assert rollup.split_period(*short) == (None, [short])


def test_the_job_is_scheduled_and_recorded(app, ledger):
    assert any(job.id == "sales.rollup" and job.func.job_id == "sales.rollup" for job in JOBS)
    with app.app_context():
        run = execute("sales.rollup", trigger="manual")
        assert run.status == "ok" and run.counts["rows"] > 0
        assert db.session.get(SalesRollupState, 1).row_count == run.counts["rows"]


def test_the_page_says_as_of_when_served_from_the_rollup(app, client, make_user, login,
                                                        ledger):
    login(make_user("sales"))
    html = client.get("/sales/?period=all").get_data(as_text=True)
    assert 'id="sales-as-of"' not in html  # no rollup yet: summed live
    with app.app_context():
        state = rollup.refresh_rollup()
        db.session.commit()
        hhmm = state.refreshed_at.strftime("%H:%M")  # the test user's zone is UTC
    html = client.get("/sales/?period=all").get_data(as_text=True)
    assert 'id="sales-as-of"' in html and f"as of {hhmm}" in html


def test_the_syncs_that_change_the_numbers_rebuild_it(app, ledger, monkeypatch):
    """stripe.payments rebuilds the rollup after its pull (the pull itself is stubbed)."""
    from types import SimpleNamespace

    import app.payments.sync as payment_sync
    import app.stripe_api.factory as stripe_factory

    gateway = SimpleNamespace(usage=SimpleNamespace(requests=0))
    monkeypatch.setattr(stripe_factory, "stripe_gateway", lambda: gateway)
    monkeypatch.setattr(payment_sync, "pull_events", lambda gw, run: {"events": 0})
    with app.app_context():
        run = execute("stripe.payments", trigger="manual")
        assert run.status == "ok"
        state = db.session.get(SalesRollupState, 1)
        assert state is not None and run.counts["sales_rollup_rows"] == state.row_count > 0


def test_two_first_rebuilds_at_once_both_succeed(app):
    """B3: with no state row yet, two rebuilds both inserted it (a unique violation on
    PostgreSQL); the second now waits for the first and rebuilds after it."""
    from tests.payments.test_locking import in_thread, wait_for_a_waiter

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("a PostgreSQL race")
        rollup.refresh_rollup(NOW)  # not committed yet

        def second():
            rollup.refresh_rollup(NOW + HOUR)
            db.session.commit()

        thread, out = in_thread(app, second)
        wait_for_a_waiter(app)
        db.session.commit()
        thread.join(60)
    assert "error" not in out, out.get("error")
    with app.app_context():
        assert db.session.get(SalesRollupState, 1).refreshed_at == NOW + HOUR
