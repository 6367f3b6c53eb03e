"""Every job the scheduler runs, registered under its stable id."""

from __future__ import annotations

import logging

from app.extensions import db
from app.intake.models import SyncRun
from app.jobs.registry import runner

log = logging.getLogger("billing_desk.jobs")


def _args(run: SyncRun) -> dict:
    return (run.counts or {}).get("args") or {}


def _refresh_sales(run_id: int) -> None:
    """After a job changed the numbers: rebuild the sales rollup in its own transaction.

    The job's work is committed first, so a failed rebuild never undoes it nor fails
    the run (the page falls back to live sums once the rollup is stale).
    """
    from app.sales.rollup import refresh_rollup

    db.session.commit()
    try:
        state = refresh_rollup()
        db.session.commit()
        outcome = {"sales_rollup_rows": state.row_count}
    except Exception as exc:  # noqa: BLE001 - recorded on the run
        db.session.rollback()
        log.exception("sales rollup after %s failed", run_id)
        outcome = {"sales_rollup_error": str(exc)[:500]}
    run = db.session.get(SyncRun, run_id)
    run.counts = {**(run.counts or {}), **outcome}


@runner("pipedrive.deals")
def pipedrive_deals(run: SyncRun) -> None:
    from app.intake.operations import run_deal_sync

    full = bool(_args(run).get("full") or (run.counts or {}).get("full"))
    run = run_deal_sync(run, full=full)
    if run.status != "failed":
        _refresh_sales(run.id)


@runner("sales.rollup")
def sales_rollup(run: SyncRun) -> None:
    from app.sales.rollup import refresh_rollup

    state = refresh_rollup()
    run.counts = {"rows": state.row_count, "ms": state.duration_ms}


@runner("pipedrive.webhooks")
def pipedrive_webhooks(run: SyncRun) -> None:
    from app.jobs.pipedrive import process_webhooks

    run.counts = {"events": process_webhooks()}


@runner("stripe.payments")
def stripe_payments(run: SyncRun) -> None:
    from app.payments.sync import pull_events
    from app.stripe_api.factory import stripe_gateway

    gateway = stripe_gateway()
    run.counts = pull_events(gateway, run)
    run = db.session.merge(run)
    run.requests = gateway.usage.requests
    _refresh_sales(run.id)


@runner("invoices.overdue")
def invoices_overdue(run: SyncRun) -> None:
    from app.payments.operations import mark_overdue

    run.counts = {"overdue": mark_overdue()}


@runner("mismatches.recompute")
def mismatches_recompute(run: SyncRun) -> None:
    from app.mismatches.operations import recompute

    run.counts = recompute()


@runner("writeback.retry")
def writeback_retry(run: SyncRun) -> None:
    from app.writeback.operations import process_outbox

    result = process_outbox()
    run.counts = result if isinstance(result, dict) else {"processed": result}


@runner("stripe.invoice_refresh")
def stripe_invoice_refresh(run: SyncRun) -> None:
    from app.invoices.models import Invoice
    from app.payments.sync import apply_invoice, reread_object
    from app.stripe_api.factory import stripe_gateway

    invoice = db.session.get(Invoice, int(_args(run)["invoice_id"]))
    gateway = stripe_gateway()
    obj = reread_object(gateway, "invoice", invoice.stripe_invoice_id) if invoice else None
    if obj:
        apply_invoice(obj)
    run.requests = gateway.usage.requests
    run.counts = {"refreshed": 1 if obj else 0}


@runner("pipedrive.deal_refresh")
def pipedrive_deal_refresh(run: SyncRun) -> None:
    from app.intake.deals import refresh_deals
    from app.intake.problems import STATUS_PROBLEMS, Problems
    from app.pipedrive.factory import pipedrive_client

    client = pipedrive_client()
    problems = Problems(run)
    run.counts = refresh_deals(
        client, run, [int(_args(run)["deal_id"])], source="manual", problems=problems
    )
    run.requests, run.tokens = client.usage.requests, client.usage.tokens
    if problems.failed:
        run.status, run.error = STATUS_PROBLEMS, problems.summary()
