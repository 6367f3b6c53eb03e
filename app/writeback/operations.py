"""Queue write-backs with the change they report, and send them to Pipedrive later.

`enqueue` adds a row in the caller's transaction (flush, never commit). The
scheduler calls `process_outbox`, which owns its transactions: one commit per
row, so one failing write-back never holds up or undoes another.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import uuid
from decimal import Decimal

import requests
from flask import current_app
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from app.audit.operations import lock_chain, record
from app.extensions import db
from app.intake.models import PdOrganization, PdPerson
from app.invoices.models import Invoice
from app.money import format_money
from app.payments.states import crm_status
from app.pipedrive.client import BudgetExhausted, PipedriveClient, PipedriveError
from app.pipedrive.factory import pipedrive_client
from app.types import utcnow
from app.writeback.mapping import (
    CONTACT_TARGETS,
    DEAL_TARGETS,
    amount_text,
    ensure_field,
    field_value,
    resolve,
)
from app.writeback.models import WritebackItem

log = logging.getLogger("billing_desk.writeback")

MAX_ATTEMPTS = 8
# How long a runner holds a write-back it is sending (far longer than the client's
# timeouts and retries): no other runner sends it meanwhile.
SEND_CLAIM = dt.timedelta(minutes=5)
BACKOFF_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 3600.0


def _setting(name: str, default):
    return current_app.config.get(name, default)


def backoff_delay(attempts: int) -> dt.timedelta:
    """30 s, 60 s, 2 min, ... capped at an hour (after `attempts` failures)."""
    base = float(_setting("WRITEBACK_BACKOFF_SECONDS", BACKOFF_SECONDS))
    cap = float(_setting("WRITEBACK_MAX_BACKOFF_SECONDS", MAX_BACKOFF_SECONDS))
    return dt.timedelta(seconds=min(cap, base * (2 ** max(0, attempts - 1))))


# -- queueing -------------------------------------------------------------------------


def enqueue(kind: str, dedupe_key: str, entity: str, entity_id: int, payload: dict, *,
            invoice_id: int | None = None, deal_id: int | None = None) -> WritebackItem:
    """Queue one write-back (once per dedupe key: a second call returns the first row)."""
    existing = db.session.execute(
        select(WritebackItem).where(WritebackItem.dedupe_key == dedupe_key)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    item = WritebackItem(kind=kind, dedupe_key=dedupe_key, entity=entity, entity_id=entity_id,
                         payload=payload, invoice_id=invoice_id, deal_id=deal_id,
                         status="pending", attempts=0, next_attempt_at=utcnow())
    try:
        with db.session.begin_nested():
            db.session.add(item)
    except IntegrityError:
        # Queued at the same moment by another worker: that row stands.
        return db.session.execute(
            select(WritebackItem).where(WritebackItem.dedupe_key == dedupe_key)
        ).scalar_one()
    record("writeback.queued", "writeback", item.id, None,
           {"kind": kind, "entity": entity, "entity_id": entity_id, "invoice_id": invoice_id})
    return item


def _due_text(invoice: Invoice) -> str:
    if invoice.due_at is None:
        return ""
    return " due " + invoice.due_at.strftime("%d %b %Y").lstrip("0")


def note_content(invoice: Invoice) -> str:
    """'Invoice INV-0042 sent: EUR 12,000.00 due 21 Dec 2026', with the link."""
    number = invoice.stripe_number or invoice.number
    verb = "sent" if invoice.collection_method == "send_invoice" else "finalized"
    amount = format_money(invoice.total, invoice.currency)
    text = f"Invoice {number} {verb}: {amount}{_due_text(invoice)}"
    if invoice.collection_method == "charge_automatically":
        text += " (charged automatically)"
    content = f"<p>{html.escape(text)}</p>"
    if invoice.hosted_invoice_url:
        url = html.escape(invoice.hosted_invoice_url, quote=True)
        content += f'<p><a href="{url}">{url}</a></p>'
    return content


def enqueue_for_pushed_invoice(invoice: Invoice) -> list[WritebackItem]:
    """What Pipedrive learns when an invoice is in Stripe: deal fields, a note, a stage."""
    prefix = f"invoice:{invoice.id}:v{invoice.approved_version}"
    due = invoice.due_at.date().isoformat() if invoice.due_at else None
    fields = {
        "stripe_customer_id": invoice.stripe_customer_id,
        "stripe_invoice_id": invoice.stripe_invoice_id,
        "invoice_number": invoice.stripe_number,
        "invoice_status": crm_status(invoice)["invoice_status"],
        "amount_invoiced": amount_text(invoice.total, invoice.currency),
        "invoice_url": invoice.hosted_invoice_url,
        "invoice_due_date": due,
    }
    items = [
        enqueue("deal_fields", f"{prefix}:deal_fields", "deal", invoice.deal_id,
                {"fields": fields, "currency": invoice.currency},
                invoice_id=invoice.id, deal_id=invoice.deal_id),
        enqueue("deal_note", f"{prefix}:deal_note", "deal", invoice.deal_id,
                {"content": note_content(invoice), "marker": invoice.hosted_invoice_url
                 or invoice.stripe_invoice_id},
                invoice_id=invoice.id, deal_id=invoice.deal_id),
    ]
    stage_id = _invoiced_stage(invoice)
    if stage_id:
        items.append(enqueue("deal_stage", f"{prefix}:deal_stage", "deal", invoice.deal_id,
                             {"stage_id": stage_id}, invoice_id=invoice.id,
                             deal_id=invoice.deal_id))
    return items


def _invoiced_stage(invoice: Invoice) -> int | None:
    """WRITEBACK_INVOICED_STAGE_IDS: {pipeline id: stage id}; "*" for every pipeline."""
    stages = _setting("WRITEBACK_INVOICED_STAGE_IDS", None) or {}
    if not stages:
        return None
    from app.intake.models import PdDeal

    deal = db.session.get(PdDeal, invoice.deal_id)
    pipeline = deal.pipeline_id if deal else None
    value = stages.get(pipeline, stages.get(str(pipeline), stages.get("*")))
    return int(value) if value else None


def enqueue_contact_customer(entity: str, entity_id: int, customer_id: str, *,
                             invoice_id: int | None = None,
                             deal_id: int | None = None) -> WritebackItem | None:
    """Store the Stripe customer id on the organization (or person), unless it is there."""
    model = PdOrganization if entity == "organization" else PdPerson
    target = resolve(CONTACT_TARGETS[entity])
    if target is None:
        return None
    from app.writeback.mapping import known_field

    snapshot = db.session.get(model, entity_id)
    field = known_field(target.entity, target.name)
    if snapshot is not None and field is not None:
        if (snapshot.custom_fields or {}).get(field.field_code) == customer_id:
            return None
    return enqueue("contact_customer", f"{entity}:{entity_id}:customer:{customer_id}", entity,
                   entity_id, {"stripe_customer_id": customer_id}, invoice_id=invoice_id,
                   deal_id=deal_id)


# -- sending --------------------------------------------------------------------------


class _ExactJSONSession(requests.Session):
    """Sends JSON bodies with Decimals as exact JSON numbers (never through float)."""

    def request(self, method, url, **kwargs):  # noqa: D401 - requests' signature
        body = kwargs.pop("json", None)
        if body is not None:
            kwargs["data"] = dumps_exact(body).encode()
            headers = dict(kwargs.get("headers") or {})
            headers["Content-Type"] = "application/json"
            kwargs["headers"] = headers
        return super().request(method, url, **kwargs)


def dumps_exact(value) -> str:
    """json.dumps, with Decimal written as the number it is ("12000.50", not 12000.5)."""
    numbers: dict[str, str] = {}
    token = uuid.uuid4().hex

    def swap(v):
        if isinstance(v, Decimal):
            marker = f"{token}:{len(numbers)}"
            numbers[marker] = f"{v:f}"
            return marker
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [swap(x) for x in v]
        if isinstance(v, float):
            raise TypeError("float refused in a Pipedrive request: use Decimal")
        return v

    text = json.dumps(swap(value), separators=(",", ":"))
    for marker, number in numbers.items():
        text = text.replace(f'"{marker}"', number)
    return text


def writeback_client() -> PipedriveClient:
    return pipedrive_client(session=_ExactJSONSession())


def _superseded(item: WritebackItem) -> set[str]:
    """The fields a later write-back to the same deal sends (or sent): newer facts, which
    this one (retried after it, say) must not overwrite with older ones."""
    later = db.session.execute(
        select(WritebackItem.payload).where(
            WritebackItem.kind == item.kind,
            WritebackItem.entity_id == item.entity_id,
            WritebackItem.id > item.id,
            WritebackItem.status.in_(("pending", "done")),
        )
    ).scalars()
    return {
        key
        for payload in later
        for key, value in ((payload or {}).get("fields") or {}).items()
        if value not in (None, "")
    }


def _send_deal_fields(client: PipedriveClient, item: WritebackItem) -> dict:
    newer = _superseded(item)
    values = {k: v for k, v in (item.payload.get("fields") or {}).items() if k not in newer}
    custom: dict = {}
    for key, value in values.items():
        target = DEAL_TARGETS.get(key)
        target = resolve(target) if target else None
        if target is None or target.entity != "deal" or value in (None, ""):
            continue
        field = ensure_field(client, target)
        converted = field_value(field, value, item.payload.get("currency"), target.purpose)
        if converted is not None:
            custom[field.field_code] = converted
    if not custom:
        return {"fields": 0}
    client.request("PATCH", f"/api/v2/deals/{item.entity_id}", json={"custom_fields": custom})
    return {"fields": len(custom)}


def _send_contact_customer(client: PipedriveClient, item: WritebackItem) -> dict:
    target = resolve(CONTACT_TARGETS[item.entity])
    if target is None:
        return {"skipped": "switched off in the mapping"}
    field = ensure_field(client, target)
    value = field_value(field, item.payload["stripe_customer_id"], purpose=target.purpose)
    if value is None:
        return {"skipped": f"the field “{field.name}” cannot hold a customer id"}
    path = "organizations" if item.entity == "organization" else "persons"
    client.request("PATCH", f"/api/v2/{path}/{item.entity_id}",
                   json={"custom_fields": {field.field_code: value}})
    model = PdOrganization if item.entity == "organization" else PdPerson
    snapshot = db.session.get(model, item.entity_id)
    if snapshot is not None:
        # The local snapshot learns it now, so the next push finds the id without a sync.
        snapshot.custom_fields = {**(snapshot.custom_fields or {}), field.field_code: value}
    return {"field": field.name}


def _send_note(client: PipedriveClient, item: WritebackItem) -> dict:
    marker = item.payload.get("marker")
    if item.attempts and marker:
        # Notes have no idempotency key: an earlier attempt may have created it and
        # lost the answer. Look before writing a second one.
        for note in (client.get("/v1/notes", deal_id=item.entity_id, limit=500).get("data")
                     or []):
            if marker in (note.get("content") or ""):
                return {"note_id": note.get("id"), "found": True}
    body = client.request("POST", "/v1/notes", json={
        "content": item.payload["content"], "deal_id": item.entity_id,
        "pinned_to_deal_flag": True,
    })
    return {"note_id": (body.get("data") or {}).get("id")}


def _send_stage(client: PipedriveClient, item: WritebackItem) -> dict:
    client.request("PATCH", f"/api/v2/deals/{item.entity_id}",
                   json={"stage_id": int(item.payload["stage_id"])})
    return {"stage_id": item.payload["stage_id"]}


def _send_activity(client: PipedriveClient, item: WritebackItem) -> dict:
    marker = item.payload.get("subject")
    if item.attempts and marker:
        # Like notes: no idempotency key, so look for the one an earlier attempt made.
        for activity in client.iter_v2("/api/v2/activities", {"deal_id": item.entity_id}):
            if activity.get("subject") == marker and not activity.get("is_deleted"):
                return {"activity_id": activity.get("id"), "found": True}
    body = {"subject": item.payload["subject"], "deal_id": item.entity_id, "type": "task"}
    if item.payload.get("owner_id"):
        body["owner_id"] = int(item.payload["owner_id"])
    if item.payload.get("note"):
        body["note"] = item.payload["note"]
    if item.payload.get("due_date"):
        body["due_date"] = item.payload["due_date"]
    data = client.request("POST", "/api/v2/activities", json=body).get("data") or {}
    return {"activity_id": data.get("id")}


SENDERS = {
    "deal_fields": _send_deal_fields,
    "contact_customer": _send_contact_customer,
    "deal_note": _send_note,
    "deal_stage": _send_stage,
    "deal_activity": _send_activity,
}


def _claim_due(limit: int, now: dt.datetime) -> list[int]:
    query = (
        select(WritebackItem.id)
        .where(WritebackItem.status == "pending", WritebackItem.next_attempt_at <= now)
        .order_by(WritebackItem.next_attempt_at, WritebackItem.id)
        .limit(limit)
    )
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(db.session.execute(query).scalars())


def process_outbox(limit: int = 100, now: dt.datetime | None = None,
                   client: PipedriveClient | None = None) -> dict:
    """Send what is due; on failure wait longer each time, and stop after the maximum."""
    now = now or utcnow()
    counts = {"done": 0, "retrying": 0, "failed": 0, "paused": 0}
    ids = _claim_due(limit, now)
    db.session.commit()
    if not ids:
        return counts
    max_attempts = int(_setting("WRITEBACK_MAX_ATTEMPTS", MAX_ATTEMPTS))
    try:
        client = client or writeback_client()
    except PipedriveError as exc:
        client, setup_error = None, str(exc)
    else:
        setup_error = None
    for item_id in ids:
        item = _lock(item_id)
        if item is None or item.status != "pending" or item.next_attempt_at > now:
            db.session.rollback()
            continue
        before = {"status": item.status, "attempts": item.attempts}
        # Claimed for the time it takes to send: another runner skips it meanwhile, and no
        # row lock is held across the call to Pipedrive. A runner that dies while sending
        # leaves it due again when the claim runs out (sent at least once, as before).
        item.next_attempt_at = max(now, utcnow()) + SEND_CLAIM
        db.session.commit()
        try:
            if client is None:
                raise PipedriveError(setup_error or "Pipedrive is not connected")
            result = SENDERS[item.kind](client, item)
        except BudgetExhausted as exc:
            db.session.rollback()
            item = _relock(item_id)
            # Not the write-back's fault: wait for the budget, without using an attempt.
            item.next_attempt_at = max(exc.resets_at, now)
            item.last_error = (f"Pipedrive's daily API budget is spent; resumes "
                               f"{exc.resets_at:%H:%M} UTC.")
            db.session.commit()
            counts["paused"] += 1
            break
        except PipedriveError as exc:
            db.session.rollback()
            item = _relock(item_id)
            item.attempts += 1
            item.last_error = f"Pipedrive: {exc}"
            if item.attempts >= max_attempts:
                item.status = "failed"
                counts["failed"] += 1
            else:
                item.next_attempt_at = now + backoff_delay(item.attempts)
                counts["retrying"] += 1
            record("writeback.attempt_failed", "writeback", item.id, before,
                   {"status": item.status, "attempts": item.attempts, "error": item.last_error})
            db.session.commit()
            continue
        item = _relock(item_id)
        item.attempts += 1
        item.status, item.done_at, item.result, item.last_error = "done", utcnow(), result, None
        record("writeback.done", "writeback", item.id, before,
               {"status": "done", "attempts": item.attempts, "result": result})
        db.session.commit()
        counts["done"] += 1
    return counts


def _lock(item_id: int) -> WritebackItem | None:
    return db.session.get(WritebackItem, item_id, with_for_update=True)


def _relock(item_id: int) -> WritebackItem:
    """The claimed item again, to record how its sending went: the audit chain lock
    first, then the row (the lock order in app.audit.operations)."""
    lock_chain()
    return db.session.get(WritebackItem, item_id, with_for_update=True,
                          populate_existing=True)


def retry(item: WritebackItem, user=None) -> WritebackItem:
    """Send a failed (or waiting) write-back again at the next run, attempts reset."""
    before = {"status": item.status, "attempts": item.attempts}
    item.status, item.attempts, item.next_attempt_at = "pending", 0, utcnow()
    record("writeback.retry", "writeback", item.id, before,
           {"status": item.status, "attempts": 0}, actor=user)
    return item


def open_items(invoice_id: int | None = None, deal_id: int | None = None,
               limit: int = 200) -> list[WritebackItem]:
    """Write-backs still to do or given up on, oldest first."""
    query = select(WritebackItem).where(
        or_(WritebackItem.status == "pending", WritebackItem.status == "failed")
    )
    if invoice_id is not None:
        query = query.where(WritebackItem.invoice_id == invoice_id)
    if deal_id is not None:
        query = query.where(WritebackItem.deal_id == deal_id)
    return list(db.session.execute(query.order_by(WritebackItem.id).limit(limit)).scalars())
