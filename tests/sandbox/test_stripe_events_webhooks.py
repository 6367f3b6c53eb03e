"""Events (list filters, cursors, retention) and webhook delivery (signatures, retries,
duplicate / shuffled / delayed switches, overdue on clock advance)."""

from __future__ import annotations

import pytest
import stripe


def _invoice_flow(client, sandbox, amount=10000):
    cus = client.v1.customers.create(params={"email": "hook@example.com"})
    inv = client.v1.invoices.create(params={"customer": cus.id, "collection_method":
                                            "send_invoice", "days_until_due": 7})
    client.v1.invoices.add_lines(inv.id, params={"lines": [{"amount": amount}]})
    inv = client.v1.invoices.finalize_invoice(inv.id)
    return cus, inv


# ---------------------------------------------------------------- events API
def test_every_state_change_has_an_event(stripe_client, stripe_sandbox):
    cus, inv = _invoice_flow(stripe_client, stripe_sandbox)
    stripe_client.v1.invoices.send_invoice(inv.id)
    stripe_sandbox.pay_invoice(inv.id, 3000)
    stripe_sandbox.pay_invoice(inv.id)
    types = [e.type for e in stripe_client.v1.events.list(params={"limit": 100}).data][::-1]
    for expected in ("customer.created", "invoice.created", "invoice.updated",
                     "invoice.finalized", "invoice.sent", "payment_intent.succeeded",
                     "charge.succeeded", "invoice_payment.paid", "invoice.paid",
                     "invoice.payment_succeeded"):
        assert expected in types, expected
    assert types.index("invoice.created") < types.index("invoice.finalized") < types.index(
        "invoice.paid")
    assert types.count("invoice_payment.paid") == 2
    assert types.count("invoice.paid") == 1


def test_event_shape_request_and_previous_attributes(stripe_client, stripe_sandbox):
    cus = stripe_client.v1.customers.create(params={"name": "Old"},
                                            options={"idempotency_key": "cus-create-1"})
    stripe_client.v1.customers.update(cus.id, params={"name": "New"})
    created, updated = stripe_client.v1.events.list(params={"limit": 2}).data[::-1]
    assert created.type == "customer.created" and created.id.startswith("evt_")
    assert created.request.idempotency_key == "cus-create-1"
    assert created.request.id.startswith("req_")
    assert created.data.object.id == cus.id and created.api_version
    assert updated.data.previous_attributes.to_dict() == {"name": "Old"}
    assert updated.data.object.name == "New"
    assert stripe_client.v1.events.retrieve(updated.id).type == "customer.updated"
    # automatic (non-API) events carry no request id
    _, inv = _invoice_flow(stripe_client, stripe_sandbox)
    stripe_sandbox.pay_invoice(inv.id)
    paid = stripe_client.v1.events.list(params={"type": "invoice.paid"}).data[0]
    assert paid.request.id is None


def test_events_filters_and_cursors(stripe_client, stripe_sandbox):
    for i in range(3):
        stripe_client.v1.customers.create(params={"name": f"c{i}"})
    t0 = stripe_sandbox.now()
    stripe_sandbox.advance_clock(seconds=100)
    _invoice_flow(stripe_client, stripe_sandbox)
    all_events = stripe_client.v1.events.list(params={"limit": 100}).data
    created = [e.created for e in all_events]
    assert created == sorted(created, reverse=True)  # newest first

    only = stripe_client.v1.events.list(params={"type": "customer.created", "limit": 100})
    assert len(only.data) == 4 and {e.type for e in only.data} == {"customer.created"}
    several = stripe_client.v1.events.list(
        params={"types": ["invoice.created", "invoice.finalized"]})
    assert [e.type for e in several.data] == ["invoice.finalized", "invoice.created"]
    wildcard = stripe_client.v1.events.list(params={"type": "invoice.*", "limit": 100})
    assert {e.type for e in wildcard.data} >= {"invoice.created", "invoice.finalized",
                                               "invoice.updated"}
    early = stripe_client.v1.events.list(params={"created": {"lte": t0}, "limit": 100})
    assert [e.type for e in early.data] == ["customer.created"] * 3
    late = stripe_client.v1.events.list(params={"created": {"gt": t0}, "limit": 100})
    assert len(late.data) + 3 == len(all_events)

    page1 = stripe_client.v1.events.list(params={"limit": 2})
    page2 = stripe_client.v1.events.list(params={"limit": 2,
                                                 "starting_after": page1.data[-1].id})
    assert [e.id for e in page1.data + page2.data] == [e.id for e in all_events[:4]]
    before = stripe_client.v1.events.list(params={"limit": 2, "ending_before": page2.data[0].id})
    assert [e.id for e in before.data] == [e.id for e in page1.data]
    assert not before.has_more
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.events.list(params={"type": "x", "types": ["y"]})
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.events.list(params={"limit": 101})


def test_events_older_than_30_days_disappear(stripe_client, stripe_sandbox):
    old = stripe_client.v1.customers.create()
    stripe_sandbox.advance_clock(days=31)
    stripe_client.v1.customers.create()
    events = stripe_client.v1.events.list().data
    assert len(events) == 1 and events[0].data.object.id != old.id
    assert stripe_client.v1.customers.retrieve(old.id).id == old.id  # objects stay


# ---------------------------------------------------------------- webhooks
def _endpoint(client, receiver, events=("*",)):
    return client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": list(events)})


def test_webhooks_signed_and_verifiable(stripe_client, stripe_sandbox, stripe_webhook_receiver):
    ep = _endpoint(stripe_client, stripe_webhook_receiver,
                   ("invoice.paid", "invoice.finalized"))
    _, inv = _invoice_flow(stripe_client, stripe_sandbox)
    stripe_sandbox.pay_invoice(inv.id)
    stripe_sandbox.drain_webhooks()
    got = stripe_webhook_receiver.received
    events = [stripe.Webhook.construct_event(r["payload"], r["signature"], ep.secret)
              for r in got]
    assert [e.type for e in events] == ["invoice.finalized", "invoice.paid"]
    assert events[1].data.object.id == inv.id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(got[0]["payload"], got[0]["signature"], "whsec_wrong")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(got[0]["payload"].replace("invoice", "invoicE", 1),
                                       got[0]["signature"], ep.secret)
    # delivered events no longer count as pending
    listed = stripe_client.v1.events.list(params={"type": "invoice.paid"}).data[0]
    assert listed.pending_webhooks == 0


def test_webhook_retried_until_2xx(stripe_client, stripe_sandbox, stripe_webhook_receiver):
    _endpoint(stripe_client, stripe_webhook_receiver, ("customer.created",))
    stripe_webhook_receiver.fail_next = 2
    cus = stripe_client.v1.customers.create()
    stripe_sandbox.drain_webhooks()
    got = stripe_webhook_receiver.events()
    assert len(got) == 3 and {e["data"]["object"]["id"] for e in got} == {cus.id}
    attempts = stripe_sandbox.webhook_attempts()
    assert [a["ok"] for a in attempts] == [False, False, True]
    assert [a["status"] for a in attempts] == [500, 500, 200]


def test_duplicate_delivery_switch(stripe_client, stripe_sandbox, stripe_webhook_receiver):
    _endpoint(stripe_client, stripe_webhook_receiver, ("customer.created",))
    stripe_sandbox.settings(webhook_duplicate=True)
    stripe_client.v1.customers.create()
    stripe_client.v1.customers.create()
    stripe_sandbox.drain_webhooks()
    ids = [e["id"] for e in stripe_webhook_receiver.events()]
    assert len(ids) == 4 and len(set(ids)) == 2
    assert all(ids.count(i) == 2 for i in ids)


def test_delayed_delivery_switch(stripe_client, stripe_sandbox, stripe_webhook_receiver):
    _endpoint(stripe_client, stripe_webhook_receiver, ("customer.created",))
    # 1e6 s compressed by the fixture's time scale (0.0005) is still 500 s: nothing arrives
    stripe_sandbox.settings(webhook_delay_seconds=1_000_000)
    stripe_client.v1.customers.create()
    r = stripe_sandbox.http.post(f"{stripe_sandbox.url}/_sandbox/webhooks/drain",
                                 json={"timeout": 0.2}, timeout=10)
    assert r.json() == {"drained": False, "pending": 1}
    assert stripe_webhook_receiver.received == []
    event = stripe_client.v1.events.list().data[0]
    assert event.pending_webhooks == 1


def test_shuffled_delivery_switch(stripe_client, stripe_sandbox,
                                                stripe_webhook_receiver):
    _endpoint(stripe_client, stripe_webhook_receiver, ("customer.created",))
    # hold deliveries back, then release the backlog shuffled
    stripe_sandbox.settings(webhook_shuffle=True, webhook_hold=True)
    created = [stripe_client.v1.customers.create(params={"name": str(i)}).id
               for i in range(12)]
    assert stripe_webhook_receiver.received == []
    stripe_sandbox.settings(webhook_hold=False)
    stripe_sandbox.drain_webhooks()
    delivered = [e["data"]["object"]["id"] for e in stripe_webhook_receiver.events()]
    assert sorted(delivered) == sorted(created)
    assert delivered != created  # 12! orders: a shuffle keeping creation order is ~2e-9


def test_in_order_delivery_by_default(stripe_client, stripe_sandbox, stripe_webhook_receiver):
    _endpoint(stripe_client, stripe_webhook_receiver, ("customer.created",))
    created = [stripe_client.v1.customers.create().id for _ in range(5)]
    stripe_sandbox.drain_webhooks()
    assert [e["data"]["object"]["id"] for e in stripe_webhook_receiver.events()] == created


def test_overdue_event_when_clock_passes_due_date(stripe_client, stripe_sandbox,
                                                  stripe_webhook_receiver):
    ep = _endpoint(stripe_client, stripe_webhook_receiver, ("invoice.overdue",))
    _, inv = _invoice_flow(stripe_client, stripe_sandbox)  # due in 7 days
    _, paid = _invoice_flow(stripe_client, stripe_sandbox)
    stripe_sandbox.pay_invoice(paid.id)
    stripe_sandbox.advance_clock(days=6)
    assert stripe_client.v1.events.list(params={"type": "invoice.overdue"}).data == []
    stripe_sandbox.advance_clock(days=2)
    stripe_sandbox.advance_clock(days=2)  # emitted once only
    overdue = stripe_client.v1.events.list(params={"type": "invoice.overdue"}).data
    assert [e.data.object.id for e in overdue] == [inv.id]
    stripe_sandbox.drain_webhooks()
    [r] = stripe_webhook_receiver.received
    # signatures use wall-clock time, so they verify even after the sandbox clock moved
    event = stripe.Webhook.construct_event(r["payload"], r["signature"], ep.secret)
    assert event.type == "invoice.overdue"
