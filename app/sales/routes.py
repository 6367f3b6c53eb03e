"""The sales pages: paid status per deal, summaries, aging, a deal's money timeline,
CSV exports. Read-only; amounts and dates only."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from sqlalchemy import func, select

from app.auth.permissions import requires
from app.extensions import db
from app.intake.models import PdDeal, PdOrganization, PdPipeline, PdUser
from app.invoices.models import Invoice
from app.sales import charts, queries, timeline
from app.sales import csv as sales_csv
from app.sales.filters import PRESETS, SalesFilters
from app.types import utcnow
from app.web.layout import user_zone

bp = Blueprint("sales", __name__, url_prefix="/sales")

PAGE_SIZE = 50


def _filters(now) -> tuple[SalesFilters, dict]:
    options = queries.filter_options()
    f = SalesFilters.from_args(
        request.args,
        user_zone(),
        now=now,
        owners={i for i, _ in options["owners"]},
        pipelines={i for i, _ in options["pipelines"]},
        statuses=queries.DEAL_STATUSES,
    )
    return f, options


@bp.route("/")
@requires("sales.view")
def index():
    now = utcnow()
    f, options = _filters(now)
    s = queries.summary(f, now)
    # Without a paid-status filter the list is exactly the won deals the summary counted.
    total = (
        queries.deals_count(f, now) if f.status else sum(g.deals_won for g in s.totals.values())
    )
    context = dict(
        f=f,
        options=options,
        presets=PRESETS,
        statuses=queries.DEAL_STATUSES,
        deal_amounts=queries.DEAL_AMOUNTS,
        s=s,
        deals=queries.deals_page(f, now, PAGE_SIZE),
        total=total,
        pages=max(1, -(-total // PAGE_SIZE)),
        buckets=queries.AGING_BUCKETS,
        flow_charts={c: charts.flow_chart(c, s.totals[c]) for c in sorted(s.totals)},
        aging_charts={
            c: charts.aging_chart(c, [(k, queries.AGING_BUCKETS[k], a) for k, a in rows])
            for c, rows in s.aging_rows()
        },
        tables=sales_csv.TABLES,
    )
    if request.htmx and not request.htmx.boosted:
        return render_template("sales/_results.html", **context)
    return render_template("sales/index.html", **context)


@bp.route("/deals/<pd_id:deal_id>")
@requires("sales.view")
def deal(deal_id: int):
    deal = db.session.get(PdDeal, deal_id) or abort(404)
    now = utcnow()
    invoices = queries.stripe_invoices(deal_id=deal.id)
    return render_template(
        "sales/deal.html",
        deal=deal,
        owner=db.session.get(PdUser, deal.owner_id) if deal.owner_id else None,
        pipeline=db.session.get(PdPipeline, deal.pipeline_id) if deal.pipeline_id else None,
        org=db.session.get(PdOrganization, deal.org_id) if deal.org_id else None,
        status=queries.deal_status(now, deal.id),
        statuses=queries.DEAL_STATUSES,
        positions=queries.positions(now, deal_id=deal.id),
        invoices=invoices,
        entries=timeline.build(invoices, now),
        drafts=db.session.execute(
            select(func.count()).where(
                Invoice.deal_id == deal.id, Invoice.status.not_in(("pushed", "cancelled"))
            )
        ).scalar_one(),
        payment_label=timeline.status_text,
    )


@bp.route("/export/<any(totals, owners, pipelines, aging, deals):table>.csv")
@requires("sales.export")
def export(table: str):
    now = utcnow()
    f, _ = _filters(now)
    if f.errors:
        # The page shows what is wrong next to each field.
        return redirect(url_for("sales.index", **request.args), 303)
    zone = user_zone()

    def local(value):
        return value.astimezone(zone).isoformat(timespec="seconds")

    return sales_csv.response(table, f, now, f.today, local)
