"""Jobs that apply Pipedrive changes: queued syncs and received webhooks."""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.extensions import db
from app.intake.contacts import refresh_contacts
from app.intake.deals import refresh_deals
from app.intake.models import PipedriveWebhookEvent
from app.intake.problems import STATUS_PROBLEMS, Problems, plain_error
from app.intake.runs import start_run
from app.pipedrive.client import BudgetExhausted, PipedriveError
from app.pipedrive.factory import pipedrive_client
from app.types import utcnow
from app.web.params import parse_pd_id

log = logging.getLogger("billing_desk.jobs")
JOB_WEBHOOKS = "pipedrive.webhooks"


BAD_ID = "Its record id is not a Pipedrive id; the event was set aside unapplied."


def _deal_id(event: PipedriveWebhookEvent) -> int | None:
    if event.entity == "deal":
        return parse_pd_id(event.entity_id)
    data = event.payload.get("data") or event.payload.get("previous") or {}
    return parse_pd_id(data.get("deal_id")) if isinstance(data, dict) else None


def _target(event: PipedriveWebhookEvent) -> tuple[str, int] | None:
    """The record an event makes the desk re-read."""
    if event.entity in ("deal", "deal_product", "deal_installment"):
        deal_id = _deal_id(event)
        return ("deal", deal_id) if deal_id else None
    if event.entity in ("person", "organization"):
        record_id = parse_pd_id(event.entity_id)
        return (event.entity, record_id) if record_id else None
    return None


def _unusable(event: PipedriveWebhookEvent) -> bool:
    """A deal, person or organization event without a usable id (stored before the
    receiver checked ids): set aside with its reason, never blocking the others."""
    return event.entity in ("deal", "person", "organization") and _target(event) is None


def process_webhooks(limit: int = 500) -> int:
    """Apply received webhooks with one targeted refresh per batch.

    A record that cannot be stored fails only its own events (with the reason in
    plain words); the rest of the batch is applied. Whatever stops the whole batch
    is recorded on the run, so Sync health shows it.
    """
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
    targets = {e.id: _target(e) for e in events}
    deals = {i for kind, i in filter(None, targets.values()) if kind == "deal"}
    persons = {i for kind, i in filter(None, targets.values()) if kind == "person"}
    orgs = {i for kind, i in filter(None, targets.values()) if kind == "organization"}
    run = start_run(JOB_WEBHOOKS, "webhook")
    problems = Problems(run)
    client = None
    failed: dict[tuple[str, int], str] = {}
    try:
        client = pipedrive_client()
        counts = refresh_deals(client, run, sorted(deals), problems=problems) if deals else {}
        if persons or orgs:
            refresh_contacts(client, persons, orgs, problems)
        failed = dict(problems.failed)
        status, error = "processed", None
        run.status, run.counts = "ok", {**counts, "events": len(events)}
        if failed:
            run.status, run.error = STATUS_PROBLEMS, problems.summary()
            run.counts["problems"] = len(failed)
    except BudgetExhausted as exc:
        # Leave the events for later; the pull will also catch the changes.
        db.session.rollback()
        run = db.session.merge(run)
        run.status, run.error, run.finished_at = "paused", str(exc), utcnow()
        db.session.commit()
        return 0
    except Exception as exc:  # noqa: BLE001 - recorded on the run and the events
        if not isinstance(exc, PipedriveError):
            log.exception("webhook batch (run %s) failed", run.id)
        db.session.rollback()
        run = db.session.merge(run)
        status, error = "failed", plain_error(exc)
        run.status, run.error = "failed", error
        run.counts = {"events": len(events)}
        events = [db.session.merge(e) for e in events]
    now = utcnow()
    for e in events:
        reason = BAD_ID if _unusable(e) else failed.get(targets.get(e.id) or ("", 0))
        if reason:
            e.status, e.error, e.processed_at = "failed", reason, now
        else:
            e.status, e.error, e.processed_at = status, error, now
    run.finished_at = now
    if client is not None:
        run.requests, run.tokens = client.usage.requests, client.usage.tokens
    db.session.commit()
    return len(events)
