"""Stripe webhooks, the fast path (as dj-stripe does it).

Verify the signature on the raw body; refuse (400, with the reason) an event that is
not one; store the raw event first, in its own commit (deduped on its id: a
duplicate delivery, or the pull storing the same event at the same moment, is a
no-op); then process it in one transaction, re-reading the object from Stripe (the
payload may be stale or out of order), in the documented lock order (see
app.audit.operations), run again whole on a deadlock. A failure is recorded on the
stored event (status "failed", the error) and answered 500, so Stripe retries and
`flask desk stripe replay` can apply it later.
"""

from __future__ import annotations

import json
import logging

import stripe
from flask import Blueprint, jsonify, request

from app.audit.operations import lock_chain, set_system_actor
from app.auth.permissions import public
from app.connections.store import SecretUnreadable, effective
from app.extensions import db
from app.intake.webhooks import read_body
from app.payments.models import StripeEvent
from app.payments.sync import event_problem, failure_text, handle_stored, mark_failed, store_event
from app.stripe_api.client import StripeGateway, StripeGatewayError
from app.stripe_api.factory import stripe_gateway
from app.web.database import retry_transient

log = logging.getLogger("billing_desk.webhooks")
bp = Blueprint("stripe_webhooks", __name__)

# A stored event in one of these states is done: a second delivery changes nothing.
DONE = ("processed", "ignored", "superseded", "quarantined")


@bp.route("/webhooks/stripe", methods=["POST"])
@public
def receive():
    try:
        secret = effective("STRIPE_WEBHOOK_SECRET")
    except SecretUnreadable:
        # Saved under a key this process does not have (README, "Rotating the
        # encryption key"): Stripe retries a 503, so nothing is lost once it is fixed.
        log.error("stripe webhook refused: the saved STRIPE_WEBHOOK_SECRET cannot be "
                  "decrypted with the configured encryption keys")
        return jsonify({"ok": False, "error": "webhook signing secret unreadable here"}), 503
    if not secret:
        return jsonify({"ok": False, "error": "webhook signing secret not configured"}), 503
    payload, too_large = read_body()
    if too_large is not None:
        return too_large
    signature = request.headers.get("Stripe-Signature", "")
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, secret, stripe.Webhook.DEFAULT_TOLERANCE
        )
    except (ValueError, stripe.SignatureVerificationError):
        log.info("stripe webhook refused: bad signature")
        return jsonify({"ok": False, "error": "invalid signature"}), 400
    try:  # signed, but not necessarily an event: the checks below say what is wrong
        event = json.loads(payload)
    except ValueError:
        return jsonify({"ok": False, "error": "the body is not JSON"}), 400
    problem = event_problem(event)
    if problem is not None:
        log.warning("stripe webhook refused: %s", problem)
        return jsonify({"ok": False, "error": problem}), 400
    event_id = event["id"]
    set_system_actor("system:stripe-webhook")
    try:
        if store_event(event, "webhook") is None:
            row = db.session.get(StripeEvent, event_id)
            if row is not None and row.status in DONE:
                db.session.rollback()
                return jsonify({"ok": True, "duplicate": True})
        db.session.commit()  # stored first: kept whatever happens next
        gateway = stripe_gateway()
        retry_transient(lambda: _process(event_id, gateway), what=f"stripe webhook {event_id}")
    except StripeGatewayError as exc:
        log.warning("stripe webhook %s not processed: %s", event_id, exc)
        _keep_failure(event_id, failure_text(exc))
        return jsonify({"ok": False, "error": "could not process now; retry"}), 500
    except Exception as exc:  # noqa: BLE001 - whatever failed, Stripe must retry
        log.exception("stripe webhook %s failed", event_id)
        _keep_failure(event_id, failure_text(exc))
        return jsonify({"ok": False, "error": "processing failed; retry"}), 500
    finally:
        set_system_actor(None)
    return jsonify({"ok": True})


def _process(event_id: str, gateway: StripeGateway) -> None:
    lock_chain()  # first, before the invoice row (lock order)
    row = db.session.get(StripeEvent, event_id, populate_existing=True)
    if row is not None and row.status not in DONE:  # else another delivery did it
        handle_stored(row, gateway, reread=True)
    db.session.commit()


def _keep_failure(event_id: str, error: str) -> None:
    db.session.rollback()
    try:
        mark_failed(event_id, error)
        db.session.commit()
    except Exception:  # noqa: BLE001 - the event is stored; Stripe retries it anyway
        db.session.rollback()
        log.exception("stripe webhook %s: its failure could not be recorded", event_id)
