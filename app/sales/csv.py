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
    return [*first, "currency", "deals_won", "sold", "invoices", *queries.AMOUNTS]


def _figures(currency: str, g: queries.Figures) -> list:
    x = queries.exact_text
    return [currency, g.deals_won, x(g.sold, currency), g.invoices,
            *(x(getattr(g, name), currency) for name in queries.AMOUNTS)]


def _deal_rows(f: SalesFilters, now: dt.datetime, local) -> Iterator[list]:
    """The deal list, with each deal's invoices in Stripe (numbers and due dates, in the
    order they were issued), read for each batch of deals at once."""
    yield ["deal_id", "title", "owner", "pipeline", "won_at", "deal_value", "deal_currency",
           "paid_status", "invoice_currency", *queries.DEAL_AMOUNTS, "invoice_numbers",
           "due_dates"]
    x = queries.exact_text
    q = queries.deals_select(f, now).execution_options(yield_per=FETCH)
    for batch in db.session.execute(q).partitions():
        deals = [queries.to_deal_row(raw) for raw in batch]
        invoices = queries.deal_invoice_refs([d.id for d in deals])
        for d in deals:
            cur = d.invoice_currency
            amounts = (
                ["" for _ in queries.DEAL_AMOUNTS]
                if d.mixed or cur is None
                else [x(getattr(d, name), cur) for name in queries.DEAL_AMOUNTS]
            )
            refs = invoices.get(d.id, [])
            yield [d.id, _text(d.title), _text(d.owner), _text(d.pipeline),
                   local(d.won_time) if d.won_time else "", x(d.value, d.currency), d.currency,
                   d.status, "several" if d.mixed else (cur or ""), *amounts,
                   "; ".join(_text(number) for number, _ in refs),
                   "; ".join(local(due) if due else "none" for _, due in refs)]


def rows(table: str, f: SalesFilters, now: dt.datetime, local) -> Iterator[list]:
    """The table's rows, header first. `local` shows a UTC time in the user's zone."""
    if table == "deals":
        yield from _deal_rows(f, now, local)
        return
    s = queries.summary(f, now)
    if table == "totals":
        yield [*_figures_header([]), "receivable_today", "dso_days_countback"]
        for currency in s.currencies:
            g = s.totals.get(currency, queries.Figures())
            dso = s.dso(currency)
            yield [*_figures(currency, g),
                   queries.exact_text(s.receivable.get(currency, queries.ZERO), currency),
                   "" if dso is None else plain_decimal(dso)]
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
