"""Writing push results back to Pipedrive: fields by name, the note, the customer id,
retries with growing pauses while Pipedrive is down, and nothing lost or doubled."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.intake.models import FieldMapping, PdField
from app.invoices.models import Invoice
from app.pipedrive.client import PipedriveError
from app.writeback import operations as wb
from app.writeback.models import WritebackItem
from app.writeback.queries import unsettled_by_deal


def _items(kind=None):
    q = select(WritebackItem).order_by(WritebackItem.id)
    if kind:
        q = q.where(WritebackItem.kind == kind)
    db.session.expire_all()
    return list(db.session.execute(q).scalars())


def _field_codes(sandbox, entity_path: str) -> dict[str, str]:
    data = sandbox.get(f"/api/v2/{entity_path}", limit=500).json()["data"]
    return {f["field_name"]: f["field_code"] for f in data}


def _deal(sandbox, deal_id: int) -> dict:
    return sandbox.get(f"/api/v2/deals/{deal_id}").json()["data"]


def _notes(sandbox, deal_id: int) -> list[dict]:
    return sandbox.get("/v1/notes", deal_id=deal_id).json()["data"]


def _clear_pipedrive_faults(sandbox) -> None:
    requests.delete(f"{sandbox.url}/_sandbox/faults", timeout=10).raise_for_status()


def test_deal_fields_note_and_customer_id_reach_pipedrive(app, pushed_deal, synced):
    with app.app_context():
        counts = wb.process_outbox()
        assert counts["done"] == 3, counts
        inv = db.session.get(Invoice, pushed_deal["invoice_id"])
        codes = _field_codes(synced, "dealFields")
        deal = _deal(synced, inv.deal_id)
        values = {name: deal["custom_fields"].get(codes[name]) for name in (
            "Stripe customer id", "Stripe invoice id", "Invoice number", "Invoice status",
            "Amount invoiced", "Invoice URL", "Invoice due date")}
        assert values["Stripe customer id"] == inv.stripe_customer_id
        assert values["Stripe invoice id"] == inv.stripe_invoice_id
        assert values["Invoice number"] == inv.stripe_number
        assert values["Invoice status"] == "open"
        assert Decimal(str(values["Amount invoiced"]["value"])) == inv.total
        assert values["Amount invoiced"]["currency"] == "EUR"
        assert values["Invoice URL"] == inv.hosted_invoice_url
        assert values["Invoice due date"] == inv.due_at.date().isoformat()
        [note] = _notes(synced, inv.deal_id)
        due = inv.due_at.strftime("%d %b %Y").lstrip("0")
        amount = f"EUR {inv.total:,.2f}"
        assert f"Invoice {inv.stripe_number} sent: {amount} due {due}" in note["content"]
        assert f'href="{inv.hosted_invoice_url}"' in note["content"]
        if inv.org_id:
            org = synced.get(f"/api/v2/organizations/{inv.org_id}").json()["data"]
            org_code = _field_codes(synced, "organizationFields")["Stripe customer id"]
            assert org["custom_fields"][org_code] == inv.stripe_customer_id
        # The fields it created are recorded by name, so the next push reuses them.
        names = {f.name for f in db.session.execute(
            select(PdField).where(PdField.entity == "deal")).scalars()}
        assert {"Stripe invoice id", "Invoice URL", "Amount invoiced"} <= names
        assert all(i.status == "done" for i in _items())


def test_missing_fields_are_created_once(app, pushed_deal, synced):
    with app.app_context():
        wb.process_outbox()
        inv = db.session.get(Invoice, pushed_deal["invoice_id"])
        # A second push of the same deal's facts (as the payment sync does later).
        wb.enqueue("deal_fields", "again", "deal", inv.deal_id,
                   {"fields": {"invoice_status": "paid"}, "currency": "EUR"})
        db.session.commit()
        wb.process_outbox()
        posts = [e for e in synced.ledger()["entries"]
                 if e["method"] == "POST" and e["path"] == "/api/v2/dealFields"]
        assert len(posts) == 7
        codes = _field_codes(synced, "dealFields")
        assert list(codes).count("Invoice status") == 1
        assert _deal(synced, inv.deal_id)["custom_fields"][codes["Invoice status"]] == "paid"


def test_pipedrive_down_is_retried_later_with_growing_pauses_and_nothing_is_lost(
    app, client, login, pushed_deal, synced
):
    app.config["WRITEBACK_MAX_ATTEMPTS"] = 3
    synced.fail_next(count=10_000, status=503)
    with app.app_context():
        now = dt.datetime.now(dt.UTC)
        assert wb.process_outbox(now=now)["retrying"] == 3
        waits = []
        for _ in range(2):
            item = _items("deal_note")[0]
            waits.append(item.next_attempt_at - now)
            assert wb.process_outbox(now=now)["retrying"] == 0  # not due yet
            now = item.next_attempt_at
            wb.process_outbox(now=now)
        assert waits[0] == dt.timedelta(seconds=30) and waits[1] == dt.timedelta(seconds=60)
        items = _items()
        assert {i.status for i in items} == {"failed"} and {i.attempts for i in items} == {3}
        assert all("503" in i.last_error or "Pipedrive" in i.last_error for i in items)
        deal_id = items[0].deal_id
        assert [(d, f) for d, f, _p, _e in unsettled_by_deal()] == [(deal_id, 3)]
    # The invoice and the Write-backs page show them, with a Retry button.
    login(pushed_deal["finance"])
    page = client.get(f"/invoices/{pushed_deal['invoice_id']}").get_data(as_text=True)
    assert "Pipedrive write-back" in page and "given up after 3 tries" in page
    listing = client.get("/writebacks/").get_data(as_text=True)
    assert listing.count('data-state="failed"') == 3 and "Retry" in listing
    _clear_pipedrive_faults(synced)
    synced.set_burst(1000)  # the failed attempts above used up the 2-second burst window
    from tests.conftest import csrf_token

    token = csrf_token(client, "/writebacks/")
    for item_id in [i.id for i in items]:
        resp = client.post(f"/writebacks/{item_id}/retry", data={"csrf_token": token})
        assert resp.status_code == 303
    with app.app_context():
        assert {i.status for i in _items()} == {"pending"}
        counts = wb.process_outbox()
        assert counts["done"] == 3, (counts, [i.last_error for i in _items()])
        inv = db.session.get(Invoice, pushed_deal["invoice_id"])
        assert len(_notes(synced, inv.deal_id)) == 1
        codes = _field_codes(synced, "dealFields")
        deal = _deal(synced, inv.deal_id)
        assert deal["custom_fields"][codes["Stripe invoice id"]] == inv.stripe_invoice_id
        assert list(unsettled_by_deal()) == []


def test_a_note_whose_answer_was_lost_is_not_written_twice(app, pushed_deal, synced,
                                                           monkeypatch):
    from app.pipedrive.client import PipedriveClient

    real = PipedriveClient.request
    lost = {"done": False}

    def lose_note_answer(self, method, path, **kw):
        result = real(self, method, path, **kw)
        if (method, path) == ("POST", "/v1/notes") and not lost["done"]:
            lost["done"] = True
            raise PipedriveError("the connection broke after sending")
        return result

    monkeypatch.setattr(PipedriveClient, "request", lose_note_answer)
    with app.app_context():
        now = dt.datetime.now(dt.UTC)
        wb.process_outbox(now=now)
        [note_item] = _items("deal_note")
        assert note_item.status == "pending" and note_item.attempts == 1
        wb.process_outbox(now=now + dt.timedelta(minutes=5))
        [note_item] = _items("deal_note")
        assert note_item.status == "done" and note_item.result["found"] is True
        assert len(_notes(synced, note_item.deal_id)) == 1


def test_a_spent_daily_budget_pauses_without_using_up_attempts(app, pushed_deal, synced):
    synced.set_budget(daily_budget=100, budget_used=100)
    with app.app_context():
        counts = wb.process_outbox()
        assert counts["paused"] == 1
        items = _items()
        assert all(i.status == "pending" and i.attempts == 0 for i in items)
        assert any("budget" in (i.last_error or "") for i in items)
        assert min(i.next_attempt_at for i in items if i.last_error) > dt.datetime.now(dt.UTC)


def test_the_admin_mapping_renames_or_switches_off_fields(app, pushed_deal, synced):
    with app.app_context():
        db.session.add(FieldMapping(purpose="wb_deal_invoice_number", entity="deal",
                                    field_name="Rechnungsnummer"))
        db.session.add(FieldMapping(purpose="wb_deal_invoice_url", entity="deal",
                                    field_name=""))
        db.session.commit()
        wb.process_outbox()
        codes = _field_codes(synced, "dealFields")
        inv = db.session.get(Invoice, pushed_deal["invoice_id"])
        deal = _deal(synced, inv.deal_id)
        assert deal["custom_fields"][codes["Rechnungsnummer"]] == inv.stripe_number
        assert "Invoice number" not in codes and "Invoice URL" not in codes


def test_enqueue_is_once_per_key(app, ctx):
    first = wb.enqueue("deal_note", "k1", "deal", 1, {"content": "a"})
    again = wb.enqueue("deal_note", "k1", "deal", 1, {"content": "b"})
    db.session.commit()
    assert first.id == again.id and len(_items()) == 1


def test_json_bodies_carry_exact_decimals_and_refuse_floats():
    body = wb.dumps_exact({"value": Decimal("12000.50"), "n": [Decimal("0.125")], "s": "x"})
    assert body == '{"value":12000.50,"n":[0.125],"s":"x"}'
    assert json.loads(body, parse_float=Decimal)["value"] == Decimal("12000.50")
    with pytest.raises(TypeError):
        wb.dumps_exact({"value": 1.5})


def test_an_enum_field_gets_the_option_labelled_like_the_value(app, ctx):
    from app.writeback.mapping import field_value

    field = PdField(entity="deal", field_code="e" * 40, name="Invoice status",
                    field_type="enum", options=[{"id": 11, "label": "Open"},
                                                {"id": 12, "label": "Paid"}])
    assert field_value(field, "paid") == 12
    assert field_value(field, "void") is None  # no such option: left alone


def test_the_deal_moves_to_the_invoiced_stage_when_configured(app, draft, synced, stripe_desk,
                                                             approver):
    from tests.push.helpers import approve, push_now

    deal = _deal(synced, draft["deal_id"])
    stages = synced.get("/api/v2/stages", pipeline_id=deal["pipeline_id"]).json()["data"]
    target = next(s["id"] for s in stages if s["id"] != deal["stage_id"])
    app.config["WRITEBACK_INVOICED_STAGE_IDS"] = {deal["pipeline_id"]: target}
    with app.app_context():
        approve(draft["invoice_id"], draft["finance"].id, approver.id)
        push_now([draft["invoice_id"]])
        assert wb.process_outbox()["done"] == 4
    assert _deal(synced, draft["deal_id"])["stage_id"] == target


def test_an_item_being_sent_holds_no_row_lock_and_a_second_runner_leaves_it_alone(
    app, pushed_deal, synced, monkeypatch
):
    """The outbox used to hold the item's row lock across the call to Pipedrive and then
    take the audit chain lock: the reverse of the documented order (a deadlock with any
    transaction that holds the chain and wants the row). Now the item is claimed, the
    call made without locks, and the result recorded chain first, then row."""
    import threading

    seen: dict = {}
    real = wb.SENDERS["deal_note"]

    def sending(client, item):
        def other_side():
            with app.app_context():
                # Another transaction may lock the row at once (NOWAIT on PostgreSQL)...
                query = select(WritebackItem).where(WritebackItem.id == item.id)
                if db.engine.dialect.name == "postgresql":
                    query = query.with_for_update(nowait=True)
                seen["row"] = db.session.execute(query).scalar_one().status
                db.session.rollback()
                # ... and a second runner does not send what this one is sending.
                seen["second"] = wb.process_outbox()
                db.session.remove()

        thread = threading.Thread(target=other_side)
        thread.start()
        thread.join(60)
        return real(client, item)

    monkeypatch.setitem(wb.SENDERS, "deal_note", sending)
    with app.app_context():
        counts = wb.process_outbox()
        assert counts["done"] == 3, counts
    assert seen["row"] == "pending"
    assert seen["second"]["done"] == 0  # nothing sent twice
    with app.app_context():
        notes = _notes(synced, db.session.get(Invoice, pushed_deal["invoice_id"]).deal_id)
        assert len(notes) == 1
