from __future__ import annotations

import base64

from sqlalchemy import func, select

from app.extensions import db
from app.intake.models import PdDeal, PipedriveWebhookEvent
from app.jobs.pipedrive import BAD_ID, process_webhooks

AUTH = "Basic " + base64.b64encode(b"desk-hook:hook-secret-123").decode()


def _payload(event_id="evt-1", deal_id=1, entity="deal", action="change"):
    return {
        "meta": {
            "id": event_id,
            "action": action,
            "entity": entity,
            "entity_id": str(deal_id),
            "timestamp": "2026-11-21T10:00:00Z",
            "attempt": 1,
        },
        "data": {"id": deal_id, "title": "x"},
        "previous": {"title": "y"},
    }


def _configure(app):
    app.config.update(
        PIPEDRIVE_WEBHOOK_USER="desk-hook", PIPEDRIVE_WEBHOOK_PASSWORD="hook-secret-123"
    )


def _events(app):
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(PipedriveWebhookEvent)).scalar()


def test_wrong_or_missing_basic_auth_gets_401_and_stores_nothing(app, client):
    _configure(app)
    bad = "Basic " + base64.b64encode(b"desk-hook:wrong").decode()
    assert client.post("/webhooks/pipedrive", json=_payload()).status_code == 401
    assert (
        client.post(
            "/webhooks/pipedrive", json=_payload(), headers={"Authorization": bad}
        ).status_code
        == 401
    )
    assert _events(app) == 0


def test_unconfigured_credentials_refuse_everything(app, client):
    assert (
        client.post(
            "/webhooks/pipedrive", json=_payload(), headers={"Authorization": AUTH}
        ).status_code
        == 401
    )


def test_malformed_bodies_get_400_and_store_nothing(app, client):
    _configure(app)
    bodies = [
        b"not json",
        b"[]",
        b'{"data": {}}',
        b'{"meta": {"action": "change"}}',
        b'{"meta": {"id": "x", "entity": "deal", "action": "explode", "entity_id": "1"}}',
        b'{"meta": {"id": "x", "entity": "deal", "action": "change", "entity_id": "abc"}}',
    ]
    for body in bodies:
        resp = client.post(
            "/webhooks/pipedrive",
            data=body,
            content_type="application/json",
            headers={"Authorization": AUTH},
        )
        assert resp.status_code == 400, body
    assert _events(app) == 0


def test_replayed_webhook_is_stored_once(app, client):
    _configure(app)
    for _ in range(3):
        resp = client.post("/webhooks/pipedrive", json=_payload(), headers={"Authorization": AUTH})
        assert resp.status_code == 200
    assert _events(app) == 1


def test_webhook_triggers_a_targeted_refresh(app, client, synced):
    """A deal edited in Pipedrive reaches the desk through its webhook, not a full pull."""
    _configure(app)
    with app.app_context():
        deal_id = db.session.execute(
            select(PdDeal.id).where(PdDeal.ready.is_(True)).limit(1)
        ).scalar()
    synced.ui_edit(deal_id, title="Edited, announced by webhook")
    for _delivery in range(2):  # the second delivery is a replay and changes nothing
        client.post(
            "/webhooks/pipedrive",
            json=_payload(f"evt-{deal_id}", deal_id),
            headers={"Authorization": AUTH},
        )
    synced.reset_ledger()
    with app.app_context():
        assert process_webhooks() == 1
        assert db.session.get(PdDeal, deal_id).title == "Edited, announced by webhook"
        assert process_webhooks() == 0  # nothing left: the replay was deduped
    paths = [e["path"] for e in synced.ledger()["entries"]]
    assert any(p.startswith("/api/v2/deals") for p in paths)
    assert synced.ledger()["totals"]["tokens"] <= 30  # targeted: a few calls, not a full sync


def test_sandbox_webhooks_reach_the_desk_end_to_end(app, synced):
    """The sandbox's own delivery machinery posts to the desk's real endpoint, over
    HTTP with basic auth; the desk stores each event once and applies it."""
    import requests

    from app.sandbox.server import SandboxServer

    _configure(app)
    with SandboxServer(app) as desk:
        resp = requests.post(
            f"{synced.url}/v1/webhooks",
            headers=synced.headers(),
            json={
                "subscription_url": f"{desk.url}/webhooks/pipedrive",
                "event_action": "*",
                "event_object": "deal",
                "version": "2.0",
                "http_auth_user": "desk-hook",
                "http_auth_password": "hook-secret-123",
            },
            timeout=10,
        )
        assert resp.status_code in (200, 201), resp.text
        with app.app_context():
            deal_id = db.session.execute(
                select(PdDeal.id).where(PdDeal.ready.is_(True)).limit(1)
            ).scalar()
        synced.duplicate_webhooks(True)
        synced.ui_edit(deal_id, title="Through the sandbox")
        synced.drain_webhooks()
    with app.app_context():
        events = db.session.execute(select(PipedriveWebhookEvent)).scalars().all()
        assert len(events) == 1 and events[0].entity_id == str(deal_id)
        process_webhooks()
        assert db.session.get(PdDeal, deal_id).title == "Through the sandbox"


# -- poison deliveries with valid credentials (issue 15, 6) ----------------------------


def _post(client, body):
    data = body if isinstance(body, (bytes, str)) else __import__("json").dumps(body)
    return client.post("/webhooks/pipedrive", data=data, content_type="application/json",
                       headers={"Authorization": AUTH})


def _with_meta(**meta):
    payload = _payload("evt-poison")
    payload["meta"].update(meta)
    return payload


def test_poison_deliveries_are_refused_with_a_reason_and_store_nothing(app, client):
    _configure(app)
    cases = [
        (_with_meta(entity=["deal"]), "unsupported entity"),
        (_with_meta(entity={"deal": 1}), "unsupported entity"),
        (_with_meta(action=["change"]), "unsupported action"),
        (_with_meta(entity_id="²"), "meta.entity_id must be a number"),
        (_with_meta(entity_id="٣"), "meta.entity_id must be a number"),
        (_with_meta(entity_id="9" * 20), "meta.entity_id must be a number"),
        (_with_meta(entity_id=True), "meta.entity_id must be a number"),
        (_with_meta(id=["x"]), "meta.id is missing"),
        ([1, 2], "body must be a JSON object"),
        (b"\xff\xfe not json", "body must be a JSON object"),
    ]
    for body, reason in cases:
        resp = _post(client, body)
        assert resp.status_code == 400, (body, resp.status_code)
        assert reason in resp.get_json()["error"], body
    assert _events(app) == 0


def test_an_accepted_entity_id_is_one_the_worker_can_use(app, client):
    """"²" used to be stored, then crashed the webhook worker on every tick."""
    _configure(app)
    assert _post(client, _with_meta(entity_id=" 7")).status_code == 400
    assert _post(client, _payload("evt-ok", deal_id=7)).status_code == 200
    with app.app_context():
        row = db.session.execute(select(PipedriveWebhookEvent)).scalar_one()
        assert int(row.entity_id) == 7


def test_an_oversized_body_gets_a_plain_413(app, client):
    _configure(app)
    app.config["WEBHOOK_MAX_CONTENT_LENGTH"] = 2048
    payload = _payload("evt-big")
    payload["data"]["title"] = "x" * 4096
    resp = _post(client, payload)
    assert resp.status_code == 413
    assert resp.get_json() == {"ok": False, "error": "the body is larger than 2048 bytes"}
    assert _events(app) == 0


def test_a_stored_event_with_an_unusable_id_is_set_aside_and_the_others_applied(
    app, client, synced
):
    """Rows stored before the receiver checked ids ("²" passes isdigit(), fails int())
    used to crash the webhook worker on every tick; now each is set aside with why."""
    _configure(app)
    with app.app_context():
        deal_id = db.session.execute(
            select(PdDeal.id).where(PdDeal.ready.is_(True)).limit(1)
        ).scalar()
        for n, bad in enumerate(("²", "99999999999999999999", "-3")):
            db.session.add(PipedriveWebhookEvent(
                event_id=f"old-{n}", entity="deal", action="change", entity_id=bad,
                payload=_payload(f"old-{n}", 1)))
        db.session.commit()
    synced.ui_edit(deal_id, title="Applied beside the poison")
    client.post("/webhooks/pipedrive", json=_payload(f"evt-{deal_id}", deal_id),
                headers={"Authorization": AUTH})
    with app.app_context():
        assert process_webhooks() == 4
        assert db.session.get(PdDeal, deal_id).title == "Applied beside the poison"
        rows = db.session.execute(select(PipedriveWebhookEvent).order_by(
            PipedriveWebhookEvent.id)).scalars().all()
        assert [(r.status, r.error) for r in rows[:3]] == [("failed", BAD_ID)] * 3
        assert rows[3].status == "processed"
        assert process_webhooks() == 0
