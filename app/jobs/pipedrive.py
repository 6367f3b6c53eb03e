"""Jobs that apply Pipedrive changes: queued syncs and received webhooks."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.intake.models import PipedriveWebhookEvent
from app.intake.sync import refresh_contacts, refresh_deals, start_run
from app.pipedrive.client import BudgetExhausted, PipedriveError
from app.pipedrive.factory import pipedrive_client
from app.types import utcnow

JOB_WEBHOOKS = "pipedrive.webhooks"


def _deal_id(event: PipedriveWebhookEvent) -> int | None:
    if event.entity == "deal":
        return int(event.entity_id)
    data = event.payload.get("data") or event.payload.get("previous") or {}
    deal_id = data.get("deal_id")
    return int(deal_id) if deal_id not in (None, "") else None


def process_webhooks(limit: int = 500) -> int:
    """Apply received webhooks with one targeted refresh per batch."""
    events = (
        db.session.execute(
            select(PipedriveWebhookEvent)
            .where(PipedriveWebhookEvent.status == "received")
            .order_by(PipedriveWebhookEvent.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    if not events:
        return 0
    deals, persons, orgs = set(), set(), set()
    for e in events:
        if e.entity in ("deal", "deal_product", "deal_installment"):
            deal_id = _deal_id(e)
            if deal_id:
                deals.add(deal_id)
        elif e.entity == "person":
            persons.add(int(e.entity_id))
        elif e.entity == "organization":
            orgs.add(int(e.entity_id))
    run = start_run(JOB_WEBHOOKS, "webhook")
    client = None
    try:
        client = pipedrive_client()
        counts = refresh_deals(client, run, sorted(deals)) if deals else {}
        if persons or orgs:
            refresh_contacts(client, persons, orgs)
        status, error = "processed", None
        run.status, run.counts = "ok", {**counts, "events": len(events)}
    except BudgetExhausted as exc:
        # Leave the events for later; the pull will also catch the changes.
        db.session.rollback()
        run = db.session.merge(run)
        run.status, run.error, run.finished_at = "paused", str(exc), utcnow()
        db.session.commit()
        return 0
    except PipedriveError as exc:
        db.session.rollback()
        run = db.session.merge(run)
        status, error = "failed", str(exc)
        run.status, run.error = "failed", error
        events = [db.session.merge(e) for e in events]
    now = utcnow()
    for e in events:
        e.status, e.error, e.processed_at = status, error, now
    run.finished_at = now
    if client is not None:
        run.requests, run.tokens = client.usage.requests, client.usage.tokens
    db.session.commit()
    return len(events)
