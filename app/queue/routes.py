from __future__ import annotations

from types import SimpleNamespace

from flask import Blueprint, abort, render_template, request
from sqlalchemy import select

from app.auth.permissions import requires
from app.extensions import db
from app.intake.models import (
    DealChange,
    PdDeal,
    PdOrganization,
    PdPerson,
    PdPipeline,
    PdStage,
    PdUser,
    SyncRun,
)
from app.intake.operations import last_sync, request_sync
from app.intake.parsing import dec
from app.invoices.queries import drifted_among
from app.queue.query import (
    MARKERS,
    QueueFilters,
    count_sentence,
    deal_flags,
    filter_options,
    queue_count,
    queue_page,
)
from app.web.layout import wants_fragment

bp = Blueprint("queue", __name__)


def _drifted_ids(deal_ids) -> set[int]:
    return drifted_among(deal_ids)


def _markers(deal_ids) -> dict:
    """deal id -> its newest invoice not yet in Stripe (draft, submitted, approved or
    push failed), for the row's marker."""
    from app.invoices.queries import live_invoices_for

    return {
        deal_id: inv
        for deal_id, inv in live_invoices_for(deal_ids).items()
        if inv.status in MARKERS
    }


@bp.route("/queue/")
@requires("queue.view")
def index():
    f = QueueFilters.from_args(request.args)
    rows, next_token = queue_page(f)
    ids = [r[0].id for r in rows]
    drifted, markers = _drifted_ids(ids), _markers(ids)
    context = dict(
        f=f,
        rows=[(r, deal_flags(r[0], r[0].id in drifted), markers.get(r[0].id)) for r in rows],
        next_token=next_token,
        count=count_sentence(queue_count(f), f),
        markers=MARKERS,
    )
    if wants_fragment():
        target = request.htmx.target or ""
        if target == "queue-rows" and f.after:
            return render_template("queue/_rows.html", **context)
        return render_template("queue/_results.html", **context)
    state, run = last_sync()
    # The filter lists belong to the full page only, not to the results fragment.
    return render_template(
        "queue/index.html", state=state, run=run, options=filter_options(), **context
    )


@bp.route("/queue/sync", methods=["POST"])
@requires("queue.sync")
def sync_now():
    """Queue a sync for the scheduler process and show its progress."""
    run = request_sync(trigger="manual")
    db.session.commit()
    state, _ = last_sync()
    return render_template("queue/_sync.html", run=run, state=state), 202


@bp.route("/queue/sync/<int:run_id>")
@requires("queue.view")
def sync_status(run_id: int):
    run = db.session.get(SyncRun, run_id) or abort(404)
    state, _ = last_sync()
    return render_template("queue/_sync.html", run=run, state=state)


@bp.route("/deals/<pd_id:deal_id>")
@requires("deals.view")
def deal(deal_id: int):
    deal = db.session.get(PdDeal, deal_id) or abort(404)
    person = db.session.get(PdPerson, deal.person_id) if deal.person_id else None
    org = db.session.get(PdOrganization, deal.org_id) if deal.org_id else None
    owner = db.session.get(PdUser, deal.owner_id) if deal.owner_id else None
    pipeline = db.session.get(PdPipeline, deal.pipeline_id) if deal.pipeline_id else None
    stage = db.session.get(PdStage, deal.stage_id) if deal.stage_id else None
    history = (
        db.session.execute(
            select(DealChange)
            .where(DealChange.deal_id == deal.id)
            .order_by(DealChange.id.desc())
            .limit(50)
        )
        .scalars()
        .all()
    )
    from app.invoices.drafting import live_invoice_for
    from app.invoices.queries import invoices_for_deal

    discounts, discounts_error = _deal_discounts(deal)
    return render_template(
        "deals/show.html",
        deal=deal,
        person=person,
        org=org,
        owner=owner,
        pipeline=pipeline,
        stage=stage,
        history=history,
        invoices=invoices_for_deal(deal.id),
        live_invoice=live_invoice_for(deal.id),
        discounts=discounts,
        discounts_error=discounts_error,
        flags=deal_flags(deal, deal.id in _drifted_ids([deal.id])),
    )


def _deal_discounts(deal: PdDeal) -> tuple[list, str | None]:
    """The deal-level discounts as Pipedrive has them now (read only, nothing stored:
    the intake cannot batch them), or those read at the last draft with the reason
    Pipedrive could not be read."""
    from app.pipedrive.client import PipedriveError
    from app.pipedrive.factory import pipedrive_client

    try:
        client = pipedrive_client(max_retries=0, timeout=5.0)
        body = client.request("GET", f"/api/v2/deals/{deal.id}/discounts")
    except PipedriveError as exc:
        return list(deal.discounts), str(exc)
    return [
        SimpleNamespace(description=d.get("description") or "", amount=dec(d.get("amount")),
                        type=d.get("type") or "amount")
        for d in body.get("data") or []
    ], None
