"""Issue 14, defect 7: the money fields the desk writes back to a deal come back from
Pipedrive as JSON numbers (Decimal here) and must not break the next pull or webhook
batch; and one deal that cannot be stored never stops a whole sync."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.intake.models import PdDeal, PipedriveWebhookEvent, SyncRun
from app.intake.operations import run_deal_sync
from app.jobs.pipedrive import process_webhooks
from tests.push.helpers import approve, push_now


def _money_field(synced, deal_id: int) -> object:
    fields = synced.get("/api/v2/dealFields", limit=500).json()["data"]
    code = {f["field_name"]: f["field_code"] for f in fields}["Amount invoiced"]
    return synced.get(f"/api/v2/deals/{deal_id}").json()["data"]["custom_fields"][code]


def test_pull_and_webhooks_go_on_after_the_desk_wrote_money_fields_back(
        app, draft, synced, stripe_desk, approver):
    from app.writeback.operations import process_outbox

    deal_id = draft["deal_id"]
    synced.set_burst(1000)  # the client waits out 429s in production; tests do not wait
    with app.app_context():
        approve(draft["invoice_id"], draft["finance"].id, approver.id)
        assert push_now([draft["invoice_id"]])["done"] == 1
        assert process_outbox()["done"] >= 1
        db.session.commit()
    assert _money_field(synced, deal_id)["value"]  # a monetary field: a JSON number
    synced.ui_edit(deal_id, title="Renamed after invoicing")
    with app.app_context():
        run = run_deal_sync()
        assert run.status == "ok", run.error
        deal = db.session.get(PdDeal, deal_id)
        assert deal.title == "Renamed after invoicing"
        stored = [v for v in deal.custom_fields.values() if isinstance(v, dict) and "value" in v]
        assert stored and all(not isinstance(v["value"], float) for v in stored)
        db.session.add(PipedriveWebhookEvent(
            event_id="evt-after-push", entity="deal", action="change", entity_id=str(deal_id),
            payload={"meta": {"id": "evt-after-push"}, "data": {"id": deal_id}}))
        db.session.commit()
        assert process_webhooks() == 1
        event = db.session.execute(select(PipedriveWebhookEvent)).scalar_one()
        assert event.status == "processed", event.error
        last = db.session.execute(select(SyncRun).order_by(SyncRun.id.desc())).scalars().first()
        assert last.job == "pipedrive.webhooks" and last.status == "ok"


def test_a_json_column_stores_decimals_exactly(app):
    """The root: JSON columns take the Decimals the Pipedrive client parses money into."""
    from decimal import Decimal

    with app.app_context():
        db.session.add(PdDeal(id=77, title="Exact", currency="KWD", status="won", custom_fields={
            "amount": {"value": Decimal("270000.125"), "currency": "KWD"},
            "rates": [Decimal("0.1"), Decimal("19")]}))
        db.session.commit()
        db.session.expire_all()
        fields = db.session.get(PdDeal, 77).custom_fields
        assert fields == {"amount": {"value": "270000.125", "currency": "KWD"},
                          "rates": ["0.1", "19"]}


def test_one_deal_that_cannot_be_stored_never_stops_the_sync(app, synced, monkeypatch):
    """It is set aside with its reason in plain words, the others are stored, the run
    says it finished with problems; the next run retries it and closes the problem."""
    import app.intake.deals as deals
    from app.intake.models import SyncProblem

    with app.app_context():
        bad, good = db.session.execute(
            select(PdDeal.id).where(PdDeal.ready.is_(True)).order_by(PdDeal.id).limit(2)
        ).scalars().all()
    synced.ui_edit(bad, title="Cannot be stored")
    synced.ui_edit(good, title="Stored fine")
    real = deals.finish_deal

    def finish_deal(deal, rules, resolver):
        real(deal, rules, resolver)
        if deal.id == bad:
            deal.currency = None  # NOT NULL: the database refuses this one deal

    monkeypatch.setattr(deals, "finish_deal", finish_deal)
    with app.app_context():
        run = run_deal_sync()
        assert run.status == "problems"
        assert "1 deal could not be stored" in run.error and "Sync health" in run.error
        assert run.counts["problems"] == 1 and run.counts["updated"] == 1
        assert db.session.get(PdDeal, good).title == "Stored fine"
        assert db.session.get(PdDeal, bad).title != "Cannot be stored"
        problem = db.session.execute(select(SyncProblem)).scalar_one()
        assert (problem.entity, problem.entity_id, problem.resolved_at) == ("deal", bad, None)
        assert problem.reason.startswith("The desk could not save the data")
        assert "INSERT" not in problem.reason and "UPDATE" not in problem.reason
    monkeypatch.setattr(deals, "finish_deal", real)
    with app.app_context():
        run = run_deal_sync()  # the deal did not change again: retried all the same
        assert run.status == "ok", run.error
        assert db.session.get(PdDeal, bad).title == "Cannot be stored"
        assert db.session.execute(select(SyncProblem)).scalar_one().resolved_at is not None


def test_a_webhook_batch_applies_the_good_deals_and_fails_only_the_bad_one(
        app, synced, monkeypatch):
    import app.intake.deals as deals

    with app.app_context():
        bad, good = db.session.execute(
            select(PdDeal.id).where(PdDeal.ready.is_(True)).order_by(PdDeal.id).limit(2)
        ).scalars().all()
        for n, deal_id in enumerate((bad, good)):
            db.session.add(PipedriveWebhookEvent(
                event_id=f"evt-{n}", entity="deal", action="change", entity_id=str(deal_id),
                payload={"meta": {"id": f"evt-{n}"}}))
        db.session.commit()
    synced.ui_edit(good, title="Changed by webhook")
    real = deals.apply_deal

    def apply_deal(deal, data):
        if data["id"] == bad:
            raise ValueError("unreadable won_time 'yesterday-ish'")  # a value we cannot read
        real(deal, data)

    monkeypatch.setattr(deals, "apply_deal", apply_deal)
    with app.app_context():
        assert process_webhooks() == 2
        events = {e.entity_id: e for e in db.session.execute(
            select(PipedriveWebhookEvent)).scalars()}
        assert events[str(good)].status == "processed"
        assert events[str(bad)].status == "failed"
        assert events[str(bad)].error.startswith("The desk could not read a value")
        assert "yesterday" not in events[str(bad)].error  # plain words, no data
        assert db.session.get(PdDeal, good).title == "Changed by webhook"
        run = db.session.execute(select(SyncRun).where(
            SyncRun.job == "pipedrive.webhooks")).scalar_one()
        assert run.status == "problems" and run.counts["problems"] == 1


def test_a_webhook_batch_that_breaks_is_recorded_in_plain_words(app, synced, monkeypatch):
    import app.jobs.pipedrive as jobs

    def broken(*_a, **_k):
        raise RuntimeError("psycopg.OperationalError: server closed the connection")

    monkeypatch.setattr(jobs, "refresh_deals", broken)
    with app.app_context():
        deal_id = db.session.execute(select(PdDeal.id).limit(1)).scalar()
        db.session.add(PipedriveWebhookEvent(
            event_id="evt-x", entity="deal", action="change", entity_id=str(deal_id),
            payload={"meta": {"id": "evt-x"}}))
        db.session.commit()
        assert process_webhooks() == 1
        run = db.session.execute(select(SyncRun).where(
            SyncRun.job == "pipedrive.webhooks")).scalar_one()
        assert run.status == "failed" and run.finished_at is not None
        assert "psycopg" not in run.error and "scheduler's log" in run.error
        assert db.session.execute(select(PipedriveWebhookEvent)).scalar_one().status == "failed"


def test_sync_health_the_queue_and_the_mismatch_board_show_a_deal_set_aside(
        app, client, make_user, login):
    import datetime as dt

    from app.intake.models import SyncProblem
    from app.mismatches.operations import recompute

    reason = ("The desk could not save the data in its database; the technical details "
              "are in the scheduler's log.")
    with app.app_context():
        run = SyncRun(job="pipedrive.deals", trigger="schedule", status="problems",
                      error="1 deal could not be stored and will be retried; everything else "
                            "was synced. Sync health lists which, and why.",
                      counts={"deals": 3, "created": 0, "updated": 2, "problems": 1},
                      finished_at=dt.datetime.now(dt.UTC))
        db.session.add(run)
        db.session.flush()
        db.session.add(SyncProblem(entity="deal", entity_id=4242, job="pipedrive.deals",
                                   run_id=run.id, reason=reason))
        db.session.commit()
        run_id = run.id
        assert recompute()["new"] >= 1
        db.session.commit()
    login(make_user("admin"))
    html = client.get("/health/").get_data(as_text=True)
    assert "Needs attention" in html and "Nothing needs attention" not in html
    assert "Deal #4242" in html and "could not save the data" in html
    assert "finished with problems" in html
    sync = client.get(f"/queue/sync/{run_id}").get_data(as_text=True)
    assert "Sync finished with problems" in sync and "Sync health lists which" in sync
    board = client.get("/mismatches/").get_data(as_text=True)
    assert "Deal #4242 could not be stored by the Pipedrive sync" in board


def test_sync_health_is_calm_only_when_all_is_well(app, client, make_user, login):
    login(make_user("admin"))
    assert "Nothing needs attention" in client.get("/health/").get_data(as_text=True)


def test_a_set_aside_deal_that_is_gone_from_pipedrive_stops_being_retried(app, synced):
    from app.intake.models import SyncProblem

    with app.app_context():
        db.session.add(SyncProblem(entity="deal", entity_id=987654, job="pipedrive.deals",
                                   reason="The desk could not read a value in the data."))
        db.session.commit()
        assert run_deal_sync().status == "ok"
        assert db.session.execute(select(SyncProblem)).scalar_one().resolved_at is not None
    synced.reset_ledger()
    with app.app_context():
        run_deal_sync()
    assert not [e for e in synced.ledger()["entries"] if "ids" in (e.get("query") or {})]
