"""Stripe webhooks, the fast path.

Verify the signature on the raw body, store the raw event, dedupe on its id,
process it in one transaction re-reading the object from Stripe (the payload may
be stale or out of order). Any failure answers 500 so Stripe retries; a stored
event that failed stays for `flask desk stripe replay`.
"""

from __future__ import annotations

import json
import logging

import stripe
from flask import Blueprint, jsonify, request
from sqlalchemy.exc import IntegrityError

from app.audit.operations import set_system_actor
from app.auth.permissions import public
from app.connections.store import effective
from app.extensions import db
from app.payments.sync import handle_stored, store_event
from app.stripe_api.client import StripeGatewayError
from app.stripe_api.factory import stripe_gateway

log = logging.getLogger("billing_desk.webhooks")
bp = Blueprint("stripe_webhooks", __name__)


@bp.route("/webhooks/stripe", methods=["POST"])
@public
def receive():
    secret = effective("STRIPE_WEBHOOK_SECRET")
    if not secret:
        return jsonify({"ok": False, "error": "webhook signing secret not configured"}), 503
    payload = request.get_data(cache=False, as_text=False)
    signature = request.headers.get("Stripe-Signature", "")
    try:
        stripe.Webhook.construct_event(payload, signature, secret)
    except (ValueError, stripe.SignatureVerificationError):
        log.info("stripe webhook refused: bad signature")
        return jsonify({"ok": False, "error": "invalid signature"}), 400
    event = json.loads(payload)
    set_system_actor("system:stripe-webhook")
    try:
        row = store_event(event, "webhook")
        if row is None:
            db.session.rollback()
            return jsonify({"ok": True, "duplicate": True})
        handle_stored(row, stripe_gateway(), reread=True)
        db.session.commit()
    except IntegrityError:  # the same event delivered twice at the same moment
        db.session.rollback()
        return jsonify({"ok": True, "duplicate": True})
    except StripeGatewayError as exc:
        db.session.rollback()
        log.warning("stripe webhook %s not processed: %s", event.get("id"), exc)
        return jsonify({"ok": False, "error": "could not process now; retry"}), 500
    except Exception:  # noqa: BLE001 - whatever failed, Stripe must retry
        db.session.rollback()
        log.exception("stripe webhook %s failed", event.get("id"))
        return jsonify({"ok": False, "error": "processing failed; retry"}), 500
    finally:
        set_system_actor(None)
    return jsonify({"ok": True})
