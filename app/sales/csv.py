"""CSV exports of the sales tables, streamed: rows go out as they are read, so a
large export never sits in memory. Amounts are exact decimal strings, one currency
per row; text from the CRM cannot start a spreadsheet formula."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator

from flask import Response, stream_with_context

from app.extensions import db
from app.money import plain_decimal
from app.sales import queries
from app.sales.filters import SalesFilters

TABLES = {
    "totals": "Totals per currency",
    "owners": "Per owner",
    "pipelines": "Per pipeline",
    "aging": "Aging",
    "deals": "Deals",
}
FETCH = 1000  # rows per round trip for the deal list


class _Line:
    """csv.writer target that hands back each formatted line instead of keeping it."""

    def write(self, value: str) -> str:
        return value


def _text(value) -> str:
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def _lines(rows: Iterable[list]) -> Iterator[str]:
    writer = csv.writer(_Line())
    for row in rows:
        yield writer.writerow(row)


def _figures_header(first: list[str]) -> list[str]:
    return [*first, "currency", "deals_won", "sold", "invoices", "invoiced", "credited",
            "collected", "outstanding", "overdue"]


def _figures(currency: str, g: queries.Figures) -> list:
    x = queries.exact_text
    return [currency, g.deals_won, x(g.sold, currency), g.invoices, x(g.invoiced, currency),
            x(g.credited, currency), x(g.collected, currency), x(g.outstanding, currency),
            x(g.overdue, currency)]


def rows(table: str, f: SalesFilters, now: dt.datetime, local) -> Iterator[list]:
    """The table's rows, header first. `local` shows a UTC time in the user's zone."""
    if table == "deals":
        yield ["deal_id", "title", "owner", "pipeline", "won_at", "deal_value", "deal_currency",
               "paid_status", "invoice_currency", "invoiced", "collected", "outstanding"]
        q = queries.deals_select(f, now).execution_options(yield_per=FETCH)
        for raw in db.session.execute(q):
            d = queries.to_deal_row(raw)
            x = queries.exact_text
            cur = d.invoice_currency
            amounts = (
                ["", "", ""]
                if d.mixed or cur is None
                else [x(d.invoiced, cur), x(d.collected, cur), x(d.outstanding, cur)]
            )
            yield [d.id, _text(d.title), _text(d.owner), _text(d.pipeline),
                   local(d.won_time) if d.won_time else "", x(d.value, d.currency), d.currency,
                   d.status, "several" if d.mixed else (cur or ""), *amounts]
        return
    s = queries.summary(f, now)
    if table == "totals":
        yield [*_figures_header([]), "receivable_today", "days_in_period", "dso_days"]
        for currency in s.currencies:
            g = s.totals.get(currency, queries.Figures())
            dso = s.dso(currency)
            yield [*_figures(currency, g),
                   queries.exact_text(s.receivable.get(currency, queries.ZERO), currency),
                   s.days or "", plain_decimal(dso)]
    elif table == "owners":
        yield _figures_header(["owner_id", "owner"])
        for ident, name, currency, g in s.owner_rows():
            yield [ident or "", _text(name), *_figures(currency, g)]
    elif table == "pipelines":
        yield _figures_header(["pipeline_id", "pipeline"])
        for ident, name, currency, g in s.pipeline_rows():
            yield [ident or "", _text(name), *_figures(currency, g)]
    elif table == "aging":
        yield ["currency", "bucket", "label", "amount"]
        for currency, buckets in s.aging_rows():
            for key, amount in buckets:
                yield [currency, key, queries.AGING_BUCKETS[key],
                       queries.exact_text(amount, currency)]
    else:  # pragma: no cover - the route only accepts TABLES
        raise KeyError(table)


def response(table: str, f: SalesFilters, now: dt.datetime, today: dt.date, local) -> Response:
    body = stream_with_context(_lines(rows(table, f, now, local)))
    filename = f"sales-{table}-{today.isoformat()}.csv"
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
