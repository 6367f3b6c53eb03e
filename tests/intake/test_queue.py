from __future__ import annotations

import re

from sqlalchemy import func, select

from app.extensions import db
from app.intake.models import PdDeal, PdPipeline, SyncRun
from app.jobs.queue import run_queued
from tests.conftest import csrf_token


def _ready_count(app, *where):
    with app.app_context():
        return db.session.execute(
            select(func.count()).select_from(PdDeal).where(PdDeal.ready.is_(True), *where)
        ).scalar()


def _rows(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-deal="(\d+)"', html)]


def test_queue_lists_only_ready_deals_never_lost_or_deleted(app, client, make_user, login, synced):
    login(make_user("finance"))
    html = client.get("/queue/").get_data(as_text=True)
    ids = _rows(html)
    assert ids and len(ids) <= 50
    with app.app_context():
        statuses = {db.session.get(PdDeal, i).status for i in ids}
    assert statuses <= {"won", "open"}
    assert f"{_ready_count(app)} deals ready to bill" in html


def test_keyset_pages_cover_every_ready_deal_once(app, client, make_user, login, synced):
    login(make_user("finance"))
    seen: list[int] = []
    url = "/queue/?sort=value&direction=asc"
    for _ in range(20):
        html = client.get(url).get_data(as_text=True)
        seen += _rows(html)
        more = re.search(r'href="(/queue/\?after=[^"]+)"', html)
        if not more:
            break
        url = more.group(1).replace("&amp;", "&")
    assert len(seen) == len(set(seen)) == _ready_count(app)
    with app.app_context():
        values = [db.session.get(PdDeal, i).value for i in seen]
    assert values == sorted(values)


def test_search_and_filters(app, client, make_user, login, synced):
    login(make_user("finance"))
    with app.app_context():
        deal = db.session.execute(select(PdDeal).where(PdDeal.ready.is_(True))).scalars().first()
        pipeline = db.session.get(PdPipeline, deal.pipeline_id)
        title_word = deal.title.split()[0]
    html = client.get(f"/queue/?q={title_word}").get_data(as_text=True)
    assert deal.id in _rows(html)
    html = client.get(f"/queue/?pipeline={pipeline.id}").get_data(as_text=True)
    assert f"{_ready_count(app, PdDeal.pipeline_id == pipeline.id)} deals" in html
    html = client.get("/queue/?currency=JPY").get_data(as_text=True)
    with app.app_context():
        assert {db.session.get(PdDeal, i).currency for i in _rows(html)} <= {"JPY"}
    html = client.get("/queue/?flag=no_email").get_data(as_text=True)
    assert f"{_ready_count(app, PdDeal.billing_email.is_(None))} deal" in html
    html = client.get("/queue/?flag=recurring").get_data(as_text=True)
    assert "Recurring products" in html and _rows(html)


def test_bad_filter_values_are_explained_not_500(client, make_user, login, synced):
    login(make_user("finance"))
    resp = client.get("/queue/?owner=abc&after=garbage&flag=nope")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "Choose one from the list." in html
    assert "no longer valid" in html


def test_active_search_returns_only_the_results_fragment(client, make_user, login, synced):
    login(make_user("finance"))
    html = client.get("/queue/?q=zzz-no-such-deal", headers={"HX-Request": "true"}).get_data(
        as_text=True
    )
    assert html.lstrip().startswith('<section id="queue-results">')
    assert "No deals are ready to bill with these filters." in html


def test_flags_show_on_the_row(app, client, make_user, login, synced):
    login(make_user("finance"))
    with app.app_context():
        deal = (
            db.session.execute(
                select(PdDeal).where(PdDeal.ready.is_(True), PdDeal.billing_email.is_(None))
            )
            .scalars()
            .first()
        )
        if deal is None:
            deal = (
                db.session.execute(select(PdDeal).where(PdDeal.ready.is_(True))).scalars().first()
            )
            deal.billing_email = None
            db.session.commit()
        deal_id = deal.id
    html = client.get(f"/queue/?q={deal_id}").get_data(as_text=True)
    row = html.split(f'<tr data-deal="{deal_id}">')[1].split("</tr>")[0]
    assert "No billing email" in row


def test_sync_now_queues_for_the_scheduler_and_reports_progress(
    app, client, make_user, login, synced
):
    login(make_user("finance"))
    token = csrf_token(client, "/queue/")
    resp = client.post("/queue/sync", data={"csrf_token": token}, headers={"HX-Request": "true"})
    assert resp.status_code == 202
    html = resp.get_data(as_text=True)
    assert "Waiting for the scheduler" in html and 'hx-trigger="load delay:700ms"' in html
    # A second click joins the same run.
    again = client.post("/queue/sync", data={"csrf_token": token}, headers={"HX-Request": "true"})
    with app.app_context():
        queued = (
            db.session.execute(select(SyncRun).where(SyncRun.status == "queued")).scalars().all()
        )
        assert len(queued) == 1
        run_id = queued[0].id
        assert f"/queue/sync/{run_id}" in again.get_data(as_text=True)
        assert run_queued() == 1
    done = client.get(f"/queue/sync/{run_id}").get_data(as_text=True)
    assert "Sync finished" in done and "hx-trigger" not in done


def test_deal_page_shows_snapshot_history_and_contact(app, client, make_user, login, synced):
    login(make_user("approver"))
    with app.app_context():
        deal = (
            db.session.execute(
                select(PdDeal).where(PdDeal.ready.is_(True), PdDeal.product_count > 0)
            )
            .scalars()
            .first()
        )
        deal_id, title = deal.id, deal.title
    html = client.get(f"/deals/{deal_id}").get_data(as_text=True)
    assert title in html and "Sync history" in html and "first imported" in html
    assert "Billing email" in html
    assert client.get("/deals/987654321").status_code == 404


def test_sales_cannot_see_the_queue(client, make_user, login, synced):
    login(make_user("sales"))
    assert client.get("/queue/").status_code == 403


def test_a_deal_billed_in_stripe_leaves_the_queue(app, client, make_user, login, synced):
    from decimal import Decimal

    from app.invoices.models import Invoice

    login(make_user("finance"))
    with app.app_context():
        deal = db.session.execute(select(PdDeal).where(PdDeal.ready.is_(True))).scalars().first()
        invoice = Invoice(deal_id=deal.id, currency=deal.currency, status="draft",
                          total=Decimal(1), subtotal=Decimal(1))
        db.session.add(invoice)
        db.session.commit()
        deal_id, invoice_id = deal.id, invoice.id
    assert deal_id in _rows(client.get(f"/queue/?q={deal_id}").get_data(as_text=True))
    with app.app_context():
        db.session.get(Invoice, invoice_id).status = "pushed"
        db.session.commit()
    assert deal_id not in _rows(client.get(f"/queue/?q={deal_id}").get_data(as_text=True))
