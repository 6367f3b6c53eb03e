"""Filters: presets in the user's time zone, typed dates validated and kept."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from app.sales.filters import SalesFilters

NOW = dt.datetime(2026, 2, 14, 23, 30, tzinfo=dt.UTC)  # already 15 Feb in Berlin
BERLIN = ZoneInfo("Europe/Berlin")


def parse(zone=BERLIN, **args):
    return SalesFilters.from_args(args, zone, now=NOW, owners={1, 2}, pipelines={10},
                                  statuses={"paid": "Paid"})


def test_default_is_this_year_in_the_users_zone():
    f = parse()
    assert f.preset == "year" and not f.errors
    assert (f.start_date, f.end_date) == (dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    assert f.start == dt.datetime(2025, 12, 31, 23, 0, tzinfo=dt.UTC)  # midnight in Berlin
    assert f.days == 46  # 1 Jan to 15 Feb (Berlin), not 14 Feb (UTC)


def test_month_and_quarter_presets():
    assert (parse(period="month").start_date, parse(period="month").end_date) == (
        dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    q = parse(period="quarter")
    assert (q.start_date, q.end_date) == (dt.date(2026, 1, 1), dt.date(2026, 3, 31))
    assert parse(period="all").start is None


def test_custom_dates_end_exclusive_after_the_last_day():
    f = parse(**{"from": "2026-01-10", "to": "2026-01-20"})
    assert f.preset == "custom" and not f.errors
    assert f.end == dt.datetime(2026, 1, 20, 23, 0, tzinfo=dt.UTC)
    assert parse(**{"from": "2026-01-10"}).end_date == dt.date(2026, 2, 15)


def test_bad_input_is_explained_and_kept():
    f = parse(**{"from": "31/01/2026", "to": "2026-13-01", "owner": "7", "pipeline": "x",
                 "period": "decade", "status": "rich"})
    assert set(f.errors) == {"from", "to", "owner", "pipeline", "period", "status"}
    assert "YYYY-MM-DD" in f.errors["from"]
    assert f.from_raw == "31/01/2026" and f.owner_raw == "7"
    assert f.fallback and f.start_date == dt.date(2026, 1, 1)  # this year meanwhile
    f = parse(**{"from": "2026-02-01", "to": "2026-01-01"})
    assert f.errors == {"to": "The end date is before the start date."}
    assert parse(**{"to": "2026-01-01"}).errors.keys() == {"from"}
    assert "between 2000 and 2100" in parse(**{"from": "1999-12-31"}).errors["from"]
