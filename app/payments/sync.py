"""Applying Stripe's facts to desk invoices: events pulled, webhooks, re-reads.

The pull reads the Events API from a stored cursor, newest first, 100 a page,
filtered to the types the desk cares about: a cycle costs one request per 100
events however many invoices the desk knows (zero per unchanged invoice). Each
object is applied once, from its newest event (Stripe lists events newest
first, so among events of the same second the list order decides). Webhooks are
the fast path: the same code, but the object is re-read from Stripe because a
webhook may arrive late and out of order. Applying an object is idempotent and
keyed by Stripe ids, so duplicates, replays and shuffles end in the same state.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.exc import DBAPIError

from app.audit.operations import lock_chain, record
from app.extensions import db
from app.intake.models import SyncRun, SyncState
from app.invoices.models import Invoice
from app.money import format_money, from_minor
from app.payments import crm
from app.payments.models import (
    ForeignStripeInvoice,
    InvoiceStripeState,
    StripeCustomerSeen,
    StripeEvent,
    StripePayment,
)
from app.payments.states import derive, label
from app.stripe_api.client import StripeGateway, StripeGatewayError
from app.types import utcnow
from app.web.database import MAX_DB_INT, id_value, insert_ignore, transient_kind

log = logging.getLogger("billing_desk.payments")

EVENTS_STATE = "stripe.events"
EVENT_RETENTION = dt.timedelta(days=30)  # Stripe lists events of the last 30 days
OVERLAP = 300  # seconds re-read at the edge of the cursor; duplicates are skipped by id
# An event dated further ahead than this is refused: no real clock (a Stripe test clock
# or the sandbox's included) runs that far ahead, and a cursor or "Stripe's clock" moved
# to the year 9999 would stop the pull for good.
MAX_EVENT_AHEAD = dt.timedelta(days=400)
EVENT_TYPES = [
    "invoice.finalized",
    "invoice.sent",
    "invoice.updated",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice.overdue",
    "invoice.created",
    "invoice.deleted",
    "invoice_payment.paid",
    "credit_note.created",
    "credit_note.voided",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
    "customer.updated",
    "customer.deleted",
]  # Stripe takes at most 20 types per request


def _dt(ts: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ts, dt.UTC) if ts else None


def _obj(value):
    """SDK objects and plain dicts alike, as plain JSON data (Stripe's own JSON when
    the SDK kept the response: no Decimal or SDK types inside, safe to store raw)."""
    if value is None:
        return None
    response = getattr(value, "last_response", None)
    if response is not None and getattr(response, "body", None):
        return json.loads(response.body)
    if hasattr(value, "to_dict"):
        return json.loads(json.dumps(value.to_dict(), default=str))
    return value


def event_problem(event, now: dt.datetime | None = None) -> str | None:
    """Why an event (signed by Stripe or listed by its API) cannot be applied; None when
    it can. The reason is what a webhook answers with and what a stored event keeps."""
    if not isinstance(event, dict):
        return "the event is not a JSON object"
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > 255:
        return "the event has no id"
    etype = event.get("type")
    if not isinstance(etype, str) or not etype or len(etype) > 100:
        return "the event has no type"
    created = event.get("created")
    if not isinstance(created, int) or isinstance(created, bool) or created <= 0:
        return "the event has no creation time"
    if created > ((now or utcnow()) + MAX_EVENT_AHEAD).timestamp():
        return "the event is dated too far in the future"
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return "data.object is not an object"
    oid = obj.get("id")
    if not isinstance(oid, str) or not oid or len(oid) > 255:
        return "data.object has no id"
    return None


def desk_invoice_for(stripe_invoice: dict) -> Invoice | None:
    sid = stripe_invoice.get("id")
    inv = db.session.execute(select(Invoice).where(Invoice.stripe_invoice_id == sid)).scalar()
    if inv is not None:
        return inv
    desk_id = id_value((stripe_invoice.get("metadata") or {}).get("desk_invoice_id"))
    if desk_id is not None:
        inv = db.session.get(Invoice, desk_id)
        if inv is not None and inv.stripe_invoice_id in (None, sid):
            return inv
    return None


def stripe_state(invoice: Invoice) -> InvoiceStripeState:
    """The invoice's Stripe state row, made on first need. A push finishing and a
    webhook for the same invoice can both get here first: the row is inserted with
    ON CONFLICT DO NOTHING, so the second waits for the first and reads its row."""
    st = db.session.get(InvoiceStripeState, invoice.id)
    if st is None:
        insert_ignore(
            InvoiceStripeState,
            invoice_id=invoice.id, stripe_total=Decimal(0), stripe_subtotal=Decimal(0),
        )
        st = db.session.get(InvoiceStripeState, invoice.id, populate_existing=True)
    return st


def snapshot(invoice: Invoice) -> dict:
    """What an audit entry keeps of a Stripe update: words and amounts with their currency,
    as the invoice's timeline shows them ("EUR 2,700.00", never "2700.000000")."""
    cur = invoice.currency

    def money(value: Decimal | None) -> str:
        return format_money(value or Decimal(0), cur)

    return {
        "payment_status": label(invoice.payment_status) if invoice.payment_status else None,
        "stripe_status": invoice.stripe_status,
        "paid": money(invoice.amount_paid),
        "refunded": money(invoice.amount_refunded),
        "credited": money(invoice.amount_credited),
        "remaining": money(invoice.amount_remaining),
    }


def stripe_clock(state: InvoiceStripeState | None = None) -> dt.datetime:
    """"Now" for payment states: the desk's clock, or Stripe's when Stripe's is ahead.

    Stripe's clock is the time of the newest event the desk has read (overall, and for
    this invoice). They agree in production; a Stripe test clock (or the sandbox's,
    moved on weeks) runs ahead, and an invoice Stripe calls overdue must be judged by
    the clock Stripe used, not fall back to "open" when the desk next looks at it.
    """
    times = [utcnow()]
    cursor = db.session.get(SyncState, EVENTS_STATE)
    if cursor is not None and cursor.cursor_time is not None:
        times.append(cursor.cursor_time)
    if state is not None and state.last_event_created:
        times.append(_dt(state.last_event_created))
    return max(times)


def refresh_status(invoice: Invoice, now: dt.datetime | None = None) -> str | None:
    st = db.session.get(InvoiceStripeState, invoice.id)
    invoice.payment_status = derive(
        stripe_status=invoice.stripe_status,
        total=invoice.total or Decimal(0),
        paid=invoice.amount_paid or Decimal(0),
        refunded=invoice.amount_refunded or Decimal(0),
        credited=invoice.amount_credited or Decimal(0),
        remaining=invoice.amount_remaining or Decimal(0),
        due_at=invoice.due_at,
        payment_failed=bool(st and st.payment_failed_at),
        disputed=bool(st and st.disputed),
        now=now or stripe_clock(st),
    )
    return invoice.payment_status


def record_change(invoice: Invoice, before: dict) -> None:
    """Audit what a Stripe fact changed on the invoice (nothing when it changed nothing)."""
    after = snapshot(invoice)
    if before != after:
        db.session.flush()
        record("invoice.stripe_update", "invoice", invoice.id, before, after)


def apply_invoice(obj: dict, *, event: dict | None = None) -> Invoice | None:
    """Bring a desk invoice in line with Stripe's invoice object."""
    invoice = desk_invoice_for(obj)
    if invoice is None:
        _maybe_foreign(obj)
        return None
    st = stripe_state(invoice)
    created = (event or {}).get("created", 0)
    if event and created < (st.last_event_created or 0) and obj.get("_from_payload"):
        return invoice  # an older payload never overwrites newer state
    before = snapshot(invoice)
    cur = obj.get("currency", invoice.currency.lower())
    invoice.stripe_invoice_id = obj["id"]
    invoice.stripe_customer_id = obj.get("customer") or invoice.stripe_customer_id
    invoice.stripe_number = obj.get("number") or invoice.stripe_number
    invoice.hosted_invoice_url = obj.get("hosted_invoice_url") or invoice.hosted_invoice_url
    invoice.invoice_pdf = obj.get("invoice_pdf") or invoice.invoice_pdf
    invoice.stripe_status = obj.get("status")
    invoice.amount_paid = from_minor(obj.get("amount_paid") or 0, cur)
    invoice.amount_remaining = from_minor(obj.get("amount_remaining") or 0, cur)
    pre = obj.get("pre_payment_credit_notes_amount") or 0
    post = obj.get("post_payment_credit_notes_amount") or 0
    invoice.amount_credited = from_minor(pre + post, cur)
    invoice.due_at = _dt(obj.get("due_date")) or invoice.due_at
    paid_at = (obj.get("status_transitions") or {}).get("paid_at")
    if paid_at and invoice.amount_paid > 0:  # paid by a credit note is not a payment
        invoice.last_payment_at = max(filter(None, [invoice.last_payment_at, _dt(paid_at)]))
    st.stripe_total = from_minor(obj.get("total") or 0, cur)
    st.stripe_subtotal = from_minor(obj.get("subtotal") or 0, cur)
    st.amount_due = from_minor(obj.get("amount_due") or 0, cur)
    st.pre_payment_credit = from_minor(pre, cur)
    st.post_payment_credit = from_minor(post, cur)
    lines = obj.get("lines") or {}
    st.line_count = lines.get("total_count") or len(lines.get("data") or [])
    if event:
        if event.get("type") == "invoice.payment_failed" and invoice.stripe_status == "open":
            st.payment_failed_at = _dt(created) or utcnow()
        if created >= (st.last_event_created or 0):
            st.last_event_created, st.last_event_id = created, event.get("id")
    if invoice.stripe_status == "paid":
        st.payment_failed_at = None
    invoice.stripe_synced_at = utcnow()
    refresh_status(invoice)
    record_change(invoice, before)
    return invoice


def _maybe_foreign(obj: dict) -> None:
    """Rule 8's raw material: a Stripe invoice the desk did not create, for a known customer."""
    customer = obj.get("customer")
    if not customer or (obj.get("metadata") or {}).get("desk_invoice_id"):
        return
    known = db.session.execute(
        select(Invoice.id).where(Invoice.stripe_customer_id == customer).limit(1)
    ).first()
    if not known:
        return
    row = db.session.get(ForeignStripeInvoice, obj["id"]) or ForeignStripeInvoice(
        id=obj["id"], customer=customer
    )
    row.number = obj.get("number")
    row.status = obj.get("status")
    row.currency = (obj.get("currency") or "").upper()
    row.total = from_minor(obj.get("total") or 0, row.currency or "USD")
    row.hosted_invoice_url = obj.get("hosted_invoice_url")
    row.seen_at = utcnow()
    db.session.add(row)


def apply_invoice_payment(obj: dict) -> Invoice | None:
    payment = obj.get("payment") or {}
    row = db.session.get(StripePayment, obj["id"])
    invoice = db.session.execute(
        select(Invoice).where(Invoice.stripe_invoice_id == obj.get("invoice"))
    ).scalar()
    cur = (obj.get("currency") or (invoice.currency if invoice else "usd")).upper()
    new = row is None
    if row is None:
        row = StripePayment(
            id=obj["id"], stripe_invoice_id=obj.get("invoice"), currency=cur, amount=Decimal(0)
        )
        db.session.add(row)
    row.invoice_id = invoice.id if invoice else row.invoice_id
    row.payment_intent = payment.get("payment_intent") or row.payment_intent
    row.charge = payment.get("charge") or row.charge
    row.amount = from_minor(obj.get("amount_paid") or 0, cur)
    row.status = obj.get("status") or "paid"
    # The payment's own date: Stripe sets the invoice's paid_at only once it is paid in
    # full, so a part payment would otherwise leave "last payment date" empty.
    row.paid_at = (
        _dt((obj.get("status_transitions") or {}).get("paid_at"))
        or row.paid_at
        or _dt(obj.get("created"))
    )
    if invoice is not None and row.status == "paid" and row.amount > 0 and row.paid_at:
        before = snapshot(invoice)
        invoice.last_payment_at = max(filter(None, [invoice.last_payment_at, row.paid_at]))
        st = stripe_state(invoice)
        if new:
            # The pull applies a payment before the invoice update that follows it: when
            # the invoice as last applied does not count this payment yet, count it now,
            # so what the CRM is told of it adds up. Stripe's next invoice object (absolute
            # amounts) settles the figures either way.
            db.session.flush()
            known = sum(
                db.session.execute(
                    select(StripePayment.amount).where(
                        StripePayment.invoice_id == invoice.id, StripePayment.status == "paid"
                    )
                ).scalars(),
                Decimal(0),
            )
            missing = known - (invoice.amount_paid or Decimal(0))
            if missing > 0:
                invoice.amount_paid = known
                invoice.amount_remaining = max(
                    Decimal(0), (invoice.amount_remaining or Decimal(0)) - missing
                )
        if st.payment_failed_at is not None and row.paid_at >= st.payment_failed_at:
            st.payment_failed_at = None  # a payment that went through after the failed one
        refresh_status(invoice)
        record_change(invoice, before)
    db.session.flush()
    return invoice


def apply_charge(obj: dict) -> Invoice | None:
    """Refunds act on the charge: its amount_refunded is absolute, so order does not matter."""
    pi = obj.get("payment_intent")
    row = (
        db.session.execute(
            select(StripePayment).where(
                or_(StripePayment.payment_intent == pi, StripePayment.charge == obj.get("id"))
            )
        )
        .scalars()
        .first()
        if (pi or obj.get("id"))
        else None
    )
    if row is None:
        return None
    row.charge = obj.get("id")
    row.amount_refunded = from_minor(obj.get("amount_refunded") or 0, row.currency)
    invoice = db.session.get(Invoice, row.invoice_id) if row.invoice_id else None
    if invoice is not None:
        before = snapshot(invoice)
        refunded = sum(
            (
                p.amount_refunded
                for p in db.session.execute(
                    select(StripePayment).where(StripePayment.invoice_id == invoice.id)
                ).scalars()
            ),
            Decimal(0),
        )
        invoice.amount_refunded = refunded
        refresh_status(invoice)
        record_change(invoice, before)
    return invoice


def apply_dispute(obj: dict, opened: bool) -> Invoice | None:
    row = (
        db.session.execute(
            select(StripePayment).where(
                or_(
                    StripePayment.charge == obj.get("charge"),
                    StripePayment.payment_intent == obj.get("payment_intent"),
                )
            )
        )
        .scalars()
        .first()
    )
    if row is None or row.invoice_id is None:
        return None
    invoice = db.session.get(Invoice, row.invoice_id)
    before = snapshot(invoice)
    st = stripe_state(invoice)
    st.disputed = opened and obj.get("status") not in ("won", "lost")
    refresh_status(invoice)
    record_change(invoice, before)
    return invoice


def credit_note_events(stripe_invoice_id: str) -> list[tuple[str, int, dict]]:
    """The stored credit note events of one Stripe invoice, oldest first: (type, created,
    the credit note as the event carried it)."""
    rows = db.session.execute(
        select(StripeEvent.type, StripeEvent.created, StripeEvent.payload)
        .where(
            StripeEvent.type.in_(("credit_note.created", "credit_note.voided")),
            StripeEvent.payload["data"]["object"]["invoice"].as_string() == stripe_invoice_id,
        )
        .order_by(StripeEvent.created, StripeEvent.id)
    ).all()
    return [(etype, created, (payload.get("data") or {}).get("object") or {})
            for etype, created, payload in rows]


def _count_credit_note(invoice: Invoice, obj: dict) -> None:
    """The pull applies a credit note before the invoice update that counts it: when the
    invoice as last applied does not count it yet, count it now (what the CRM is told of
    it then adds up). Stripe's next invoice object settles the figures either way."""
    cur = invoice.currency
    live: dict[str, int] = {}
    for etype, _created, note in credit_note_events(invoice.stripe_invoice_id):
        if etype == "credit_note.voided":
            live.pop(note.get("id"), None)
        else:
            live[note.get("id")] = int(note.get("total") or note.get("amount") or 0)
    missing = from_minor(sum(live.values()), cur) - (invoice.amount_credited or Decimal(0))
    if missing <= 0 or obj.get("id") not in live:
        return
    before = snapshot(invoice)
    invoice.amount_credited = (invoice.amount_credited or Decimal(0)) + missing
    # Only the part credited before payment lowers what is still due.
    pre = obj.get("pre_payment_amount")
    lowers = min(missing, from_minor(pre, cur)) if pre is not None else missing
    invoice.amount_remaining = max(Decimal(0), (invoice.amount_remaining or Decimal(0)) - lowers)
    refresh_status(invoice)
    record_change(invoice, before)


def apply_customer(obj: dict, deleted: bool = False) -> None:
    row = db.session.get(StripeCustomerSeen, obj["id"]) or StripeCustomerSeen(id=obj["id"])
    row.email, row.name, row.deleted = obj.get("email"), obj.get("name"), deleted
    row.seen_at = utcnow()
    db.session.add(row)


# -- one event -----------------------------------------------------------------------


def _stripe_invoice_of(obj: dict) -> str | None:
    kind = obj.get("object")
    if kind == "invoice":
        return obj.get("id")
    if kind in ("invoice_payment", "credit_note"):
        return obj.get("invoice")
    if kind in ("charge", "dispute"):
        row = (
            db.session.execute(
                select(StripePayment).where(
                    or_(
                        StripePayment.charge
                        == (obj.get("id") if kind == "charge" else obj.get("charge")),
                        StripePayment.payment_intent == obj.get("payment_intent"),
                    )
                )
            )
            .scalars()
            .first()
        )
        return row.stripe_invoice_id if row else None
    return None


def lock_invoice(stripe_invoice_id: str | None) -> None:
    """Serialise work on one invoice: re-read-then-write by two webhooks at once must not
    let the older read win. PostgreSQL: a row lock; SQLite: its single write lock, taken
    now (before the re-read) with a no-op update."""
    if not stripe_invoice_id:
        return
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            select(Invoice.id)
            .where(Invoice.stripe_invoice_id == stripe_invoice_id)
            .with_for_update()
        )
    else:
        db.session.execute(
            Invoice.__table__.update()
            .where(Invoice.stripe_invoice_id == stripe_invoice_id)
            .values(stripe_synced_at=Invoice.stripe_synced_at)
        )


Handler = Callable[[dict, dict, "StripeGateway | None", bool], "Invoice | None | bool"]
HANDLERS: dict[str, Handler] = {}


def handles(*kinds: str) -> Callable[[Handler], Handler]:
    """Register a handler for the events whose object is of one of `kinds` (Stripe's
    `object` field: invoice, charge, ...). A handler gets (event, obj, gateway, reread)
    and returns the desk invoice it changed (the CRM is told), None (ignored) or True
    (processed, nothing to tell). Events of any other kind are stored and ignored."""

    def register(fn: Handler) -> Handler:
        for kind in kinds:
            HANDLERS[kind] = fn
        return fn

    return register


@handles("invoice")
def _on_invoice(event: dict, obj: dict, gateway, reread: bool):
    if event.get("type", "") == "invoice.deleted":
        return None
    return apply_invoice(obj, event=event)


@handles("invoice_payment")
def _on_invoice_payment(event: dict, obj: dict, gateway, reread: bool):
    invoice = apply_invoice_payment(obj)
    if invoice is not None and gateway is not None and reread:
        fresh = reread_object(gateway, "invoice", obj.get("invoice"))
        if fresh:
            apply_invoice(fresh, event=event)
    return invoice


@handles("charge")
def _on_charge(event: dict, obj: dict, gateway, reread: bool):
    invoice = apply_charge(obj)
    if invoice is None and gateway is not None and reread:
        # The refund came before the payment it refunds (webhooks come in any order):
        # find that payment in Stripe, then apply the refund to it.
        payment = _invoice_payment_of(gateway, obj)
        if payment is not None:
            lock_invoice(payment.get("invoice"))
            apply_invoice_payment(payment)
            invoice = apply_charge(obj)
    return invoice


@handles("dispute")
def _on_dispute(event: dict, obj: dict, gateway, reread: bool):
    return apply_dispute(obj, opened=event.get("type", "") == "charge.dispute.created")


@handles("credit_note")
def _on_credit_note(event: dict, obj: dict, gateway, reread: bool):
    inv_id = obj.get("invoice")
    fresh = reread_object(gateway, "invoice", inv_id) if (gateway and reread) else None
    # The amounts come with the invoice (its credit note totals are absolute): re-read
    # it for a webhook; the pull applies the invoice.updated event Stripe sends with it.
    invoice = (
        apply_invoice(fresh, event=event)
        if fresh
        else desk_invoice_for({"id": inv_id, "metadata": {}})
    )
    if invoice is not None and not fresh and event.get("type", "") == "credit_note.created":
        _count_credit_note(invoice, obj)
    return invoice


@handles("customer")
def _on_customer(event: dict, obj: dict, gateway, reread: bool):
    apply_customer(obj, deleted=event.get("type", "") == "customer.deleted")
    return True


def process_event(event: dict, gateway: StripeGateway | None, *, reread: bool) -> str:
    """Apply one event through the handler registered for its object's kind (HANDLERS).
    `reread`: fetch the object fresh (webhooks), else trust the payload (the pull applies
    only each object's newest event). Returns processed/ignored."""
    etype = event.get("type", "")
    obj = _obj((event.get("data") or {}).get("object")) or {}
    kind = obj.get("object")
    if reread:
        lock_invoice(_stripe_invoice_of(obj))
    if (
        reread
        and gateway is not None
        and kind in ("invoice", "charge", "customer")
        and not etype.endswith(".deleted")
    ):
        obj = reread_object(gateway, kind, obj["id"]) or obj
    else:
        obj = dict(obj, _from_payload=True)
    handler = HANDLERS.get(kind)
    if handler is None:
        return "ignored"
    invoice = handler(event, obj, gateway, reread)
    if invoice is True:
        return "processed"
    if invoice is None:
        return "ignored"
    crm.tell(invoice, event)
    return "processed"


def _invoice_payment_of(gateway: StripeGateway, charge: dict) -> dict | None:
    intent = charge.get("payment_intent")
    if not intent:
        return None
    page = gateway.call(
        "invoice_payments.list", gateway.client.v1.invoice_payments.list,
        params={"payment": {"type": "payment_intent", "payment_intent": intent}, "limit": 1},
        mutating=False,
    )
    return _obj(page.data[0]) if page.data else None


def reread_object(gateway: StripeGateway, kind: str, object_id: str | None) -> dict | None:
    """Stripe's current copy of one invoice, charge or customer (`kind`) as a plain dict;
    None when there is no id or Stripe no longer has the object. Other gateway errors
    propagate."""
    if not object_id:
        return None
    services = {
        "invoice": gateway.client.v1.invoices,
        "charge": gateway.client.v1.charges,
        "customer": gateway.client.v1.customers,
    }
    try:
        return _obj(
            gateway.call(f"{kind}.retrieve", services[kind].retrieve, object_id, mutating=False)
        )
    except StripeGatewayError as exc:
        if exc.code == "resource_missing":
            return None
        raise


def store_event(event: dict, source: str, *, problem: str | None = None) -> StripeEvent | None:
    """Keep the raw event; None if it was stored before (a duplicate delivery, or the
    same event stored by the pull and a webhook at the same moment: the insert is a
    no-op then, never a unique-key error). An event with a `problem` is kept as
    "quarantined" with its reason, and never applied."""
    obj = (event.get("data") or {}).get("object")
    oid = obj.get("id") if isinstance(obj, dict) else None
    created = event.get("created")
    inserted = insert_ignore(
        StripeEvent,
        id=event["id"],
        type=str(event.get("type") or "")[:100],
        created=created if isinstance(created, int) and 0 <= created <= MAX_DB_INT else 0,
        object_id=oid if isinstance(oid, str) and len(oid) <= 255 else None,
        source=source,
        payload=event,
        received_at=utcnow(),
        status="quarantined" if problem else "received",
        attempts=0,
        error=problem,
    )
    if not inserted:
        return None
    return db.session.get(StripeEvent, event["id"])


def handle_stored(row: StripeEvent, gateway: StripeGateway | None, *, reread: bool) -> None:
    row.attempts += 1
    row.status = process_event(row.payload, gateway, reread=reread)
    row.processed_at = utcnow()
    row.error = None


def failure_text(exc: BaseException) -> str:
    """What a failed event keeps: the kind of error and its message (no traceback)."""
    hint = getattr(exc, "hint", "")
    return f"{type(exc).__name__}: {exc} {hint}".strip()[:2000]


def mark_failed(event_id: str, error: str) -> None:
    """After a rollback: keep the event, with its error, for `flask desk stripe replay`
    (or Stripe's own retry of the webhook). Flushes; the caller commits."""
    row = db.session.get(StripeEvent, event_id)
    if row is not None:
        row.status, row.error = "failed", error
        row.attempts = (row.attempts or 0) + 1
        db.session.flush()


def apply_or_quarantine(row: StripeEvent, gateway: StripeGateway | None, *, reread: bool) -> bool:
    """Apply one stored event in a savepoint; an event that cannot be applied (its
    object is not what it claims, say) is kept as failed with its reason and the
    events behind it go on. Stripe being down and deadlocks still end the whole run
    (it is run again). True when applied."""
    event_id = row.id
    try:
        with db.session.begin_nested():
            handle_stored(row, gateway, reread=reread)
        return True
    except StripeGatewayError:
        raise
    except DBAPIError as exc:
        if transient_kind(exc):
            raise
        error = failure_text(exc.orig or exc)
    except Exception as exc:  # noqa: BLE001 - one poison event must not stop the rest
        error = failure_text(exc)
    log.warning("stripe event %s could not be applied, kept for replay: %s", event_id, error)
    mark_failed(event_id, error)
    return False


# -- the pull -------------------------------------------------------------------------


def _list_events(gateway: StripeGateway, cursor: dt.datetime | None) -> list[dict]:
    """Every event Stripe lists since the cursor (less the overlap), newest first."""
    params: dict = {"limit": 100, "types": EVENT_TYPES}
    if cursor is not None:
        params["created"] = {"gte": int(cursor.timestamp()) - OVERLAP}
    events: list[dict] = []
    while True:
        page = gateway.call(
            "events.list", gateway.client.v1.events.list, params=params, mutating=False
        )
        page = _obj(page)
        data = page.get("data") or []
        events += data
        last = data[-1].get("id") if data and isinstance(data[-1], dict) else None
        if not page.get("has_more") or not isinstance(last, str):
            break
        params = dict(params, starting_after=last)
    return events


def _sort_events(
    events: list[dict], started: dt.datetime, counts: dict
) -> tuple[list[dict], list[dict], set[str]]:
    """Quarantine the malformed events; of the rest return (listed, fresh: not stored
    before, chosen: ids of each object's newest fresh event). Events come newest first."""
    newest: dict[str, dict] = {}
    fresh: list[dict] = []
    listed: list[dict] = []
    for ev in events:
        problem = event_problem(ev, started)
        if problem is not None:
            counts["quarantined"] += 1
            ev_id = ev.get("id") if isinstance(ev, dict) else None
            if not isinstance(ev_id, str) or not ev_id.strip() or len(ev_id) > 255:
                log.warning("stripe events pull: an event without an id skipped: %s", problem)
            elif store_event(ev, "pull", problem=problem) is not None:
                log.warning("stripe event %s quarantined: %s", ev_id, problem)
            continue
        listed.append(ev)
        if db.session.get(StripeEvent, ev["id"]) is not None:
            continue
        fresh.append(ev)
        oid = ((ev.get("data") or {}).get("object") or {}).get("id")
        key = f"{ev['type'].split('.')[0]}:{oid}"
        if ev["type"] in (
            "invoice.payment_failed",
            "credit_note.created",
            "credit_note.voided",
            "invoice_payment.paid",
        ):
            key = ev["id"]  # each of these is a fact of its own, not just a newer state
        newest.setdefault(key, ev)
    return listed, fresh, {ev["id"] for ev in newest.values()}


def _store_and_apply(fresh: list[dict], chosen: set[str], counts: dict) -> None:
    """Store the fresh events oldest first; apply the chosen, mark the rest superseded."""
    for ev in reversed(fresh):
        row = store_event(ev, "pull")
        if row is None:
            continue
        if ev["id"] in chosen:
            if apply_or_quarantine(row, None, reread=False):
                counts["applied"] += 1
            else:
                counts["quarantined"] += 1
        else:
            row.status, row.processed_at = "superseded", utcnow()


def pull_events(
    gateway: StripeGateway, run: SyncRun, *, now: Callable[[], dt.datetime] = utcnow
) -> dict:
    """One cycle of the Stripe change pull. Commits at the end."""
    state = db.session.get(SyncState, EVENTS_STATE)
    started = now()
    counts = {"events": 0, "new": 0, "applied": 0, "fallback_invoices": 0, "quarantined": 0}
    cursor = state.cursor_time if state is not None else None
    events = _list_events(gateway, cursor)
    counts["events"] = len(events)
    # Writes from here on, in the documented lock order (app.audit.operations).
    lock_chain()
    if state is None:
        insert_ignore(SyncState, name=EVENTS_STATE)
        state = db.session.get(SyncState, EVENTS_STATE)
    # Newest first: keep, per object, its newest event; apply oldest objects first.
    listed, fresh, chosen = _sort_events(events, started, counts)
    counts["new"] = len(fresh)
    _store_and_apply(fresh, chosen, counts)
    newest_created = max((ev["created"] for ev in listed), default=None)
    stripe_now = _dt(newest_created)
    # Stripe keeps events 30 days by its own clock: when the cursor is older than that,
    # by the desk's clock or by Stripe's (a test clock moved on, the newest event read
    # now), events may have been dropped unread; what they said is in the invoices.
    if cursor is not None and max(started, stripe_now or started) - cursor > EVENT_RETENTION:
        counts["fallback_invoices"] = reread_known_invoices(gateway)
    if stripe_now is not None:
        state.cursor_time = max(stripe_now, cursor) if cursor else stripe_now
    elif cursor is None or started - cursor > EVENT_RETENTION:
        state.cursor_time = started
    state.last_success_at = now()
    run.requests = gateway.usage.requests
    db.session.commit()
    return counts


def reread_known_invoices(gateway: StripeGateway) -> int:
    """The cursor is older than Stripe keeps events: read every invoice the desk pushed."""
    n = 0
    params: dict = {"limit": 100}
    while True:
        page = _obj(
            gateway.call(
                "invoices.list", gateway.client.v1.invoices.list, params=params, mutating=False
            )
        )
        data = page.get("data") or []
        for obj in data:
            if desk_invoice_for(obj) is not None:
                apply_invoice(obj)
                n += 1
            else:
                _maybe_foreign(obj)
        if not page.get("has_more") or not data:
            break
        params = dict(params, starting_after=data[-1]["id"])
    db.session.flush()
    return n
