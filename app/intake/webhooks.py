"""Pipedrive webhooks: the fast path. The periodic pull stays the safety net.

The endpoint only authenticates, validates and stores the event (deduped on
`meta.id`); the scheduler process applies it with a targeted refresh, so the web
worker never calls Pipedrive and a replayed delivery changes nothing.
"""

from __future__ import annotations

import hmac
import json
import logging

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import RequestEntityTooLarge

from app.auth.permissions import public
from app.extensions import db
from app.intake.models import PipedriveWebhookEvent
from app.web.database import id_value

log = logging.getLogger("billing_desk.webhooks")
bp = Blueprint("pipedrive_webhooks", __name__)

ENTITIES = {"deal", "deal_product", "deal_installment", "person", "organization"}
ACTIONS = {"create", "change", "delete"}


def _setting(name: str) -> str | None:
    try:
        from app.connections.store import effective

        return effective(name)
    except (ImportError, KeyError):  # not (yet) a setting admins can save in the desk
        return current_app.config.get(name)


def _credentials() -> tuple[str | None, str | None]:
    return _setting("PIPEDRIVE_WEBHOOK_USER"), _setting("PIPEDRIVE_WEBHOOK_PASSWORD")


def _authorized() -> bool:
    user, password = _credentials()
    auth = request.authorization
    if not user or not password or auth is None or auth.type != "basic":
        return False
    return hmac.compare_digest(auth.username or "", user) and hmac.compare_digest(
        auth.password or "", password
    )


# Larger than any real delivery (a Stripe invoice event with hundreds of lines is well
# under it); a body beyond it is refused before it is read.
WEBHOOK_MAX_CONTENT_LENGTH = 1024 * 1024


def read_body() -> tuple[bytes, tuple | None]:
    """The raw request body, or a 413 answer when it is larger than the webhooks take
    (WEBHOOK_MAX_CONTENT_LENGTH in the config, else 1 MiB)."""
    request.max_content_length = current_app.config.get(
        "WEBHOOK_MAX_CONTENT_LENGTH", WEBHOOK_MAX_CONTENT_LENGTH
    )
    try:
        return request.get_data(cache=True), None
    except RequestEntityTooLarge:
        limit = request.max_content_length
        return b"", (jsonify({"ok": False, "error": f"the body is larger than {limit} bytes"}),
                     413)


def _bad(message: str):
    return jsonify({"ok": False, "error": message}), 400


@bp.route("/webhooks/pipedrive", methods=["POST"])
@public
def receive():
    if not _authorized():
        return (
            jsonify({"ok": False, "error": "authentication required"}),
            401,
            {"WWW-Authenticate": 'Basic realm="Billing Desk webhooks"'},
        )
    body, too_large = read_body()
    if too_large is not None:
        return too_large
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return _bad("body must be a JSON object")
    meta = payload.get("meta")
    if not isinstance(meta, dict):
        return _bad("meta is missing")
    event_id = meta.get("id")
    entity = meta.get("entity")
    action = meta.get("action")
    entity_id = id_value(meta.get("entity_id"))
    if not event_id or not isinstance(event_id, (str, int)) or isinstance(event_id, bool) \
            or len(str(event_id)) > 255:
        return _bad("meta.id is missing")
    if not isinstance(entity, str) or (
        entity not in ENTITIES and entity not in ("product", "note", "activity")
    ):
        return _bad(f"unsupported entity {str(entity)[:40]!r}")
    if not isinstance(action, str) or action not in ACTIONS:
        return _bad(f"unsupported action {str(action)[:40]!r}")
    if entity_id is None:
        return _bad("meta.entity_id must be a number")
    if "data" in payload and payload["data"] is not None and not isinstance(payload["data"], dict):
        return _bad("data must be an object")
    existing = db.session.execute(
        select(PipedriveWebhookEvent.id).where(PipedriveWebhookEvent.event_id == str(event_id))
    ).first()
    if existing:
        return jsonify({"ok": True, "duplicate": True})
    db.session.add(
        PipedriveWebhookEvent(
            event_id=str(event_id),
            entity=entity,
            action=action,
            entity_id=str(entity_id),
            payload=payload,
            status="received" if entity in ENTITIES else "ignored",
        )
    )
    try:
        db.session.commit()
    except IntegrityError:  # the same event delivered twice at the same moment
        db.session.rollback()
        return jsonify({"ok": True, "duplicate": True})
    return jsonify({"ok": True})
