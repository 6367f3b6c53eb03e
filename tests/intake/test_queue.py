from __future__ import annotations

import re

import pytest
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
    assert f'<p class="muted" id="queue-count">{_ready_count(app)} deals ready to bill.</p>' in html


def _walk(client, url: str) -> list[int]:
    seen: list[int] = []
    for _ in range(20):
        html = client.get(url).get_data(as_text=True)
        seen += _rows(html)
        more = re.search(r'href="(/queue/\?after=[^"]+)"', html)
        if not more:
            break
        url = more.group(1).replace("&amp;", "&")
    return seen


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_value_sort_never_compares_currencies(app, client, make_user, login, synced, direction):
    """Issue 14: sorting by value put JPY on top (raw amounts compared across
    currencies). Deals are grouped by currency, A to Z, each ordered by amount; the
    keyset pages still cover every ready deal once."""
    login(make_user("finance"))
    seen = _walk(client, f"/queue/?sort=value&direction={direction}")
    assert len(seen) == len(set(seen)) == _ready_count(app)
    with app.app_context():
        keys = [(d.currency, d.value) for d in (db.session.get(PdDeal, i) for i in seen)]
    currencies = [c for c, _v in keys]
    assert len(set(currencies)) > 2 and currencies == sorted(currencies)
    for cur in set(currencies):
        values = [v for c, v in keys if c == cur]
        assert values == sorted(values, reverse=direction == "desc"), cur
    page = client.get("/queue/").get_data(as_text=True)
    assert "Value, per currency (A–Z)" in page  # the sort says what it does


def test_installments_flag_finds_the_deals_with_plans(app, client, make_user, login, synced):
    """Issue 14: the flag found no deal while seeded deals have installment plans (the
    intake read installments only when a draft was made)."""
    store = synced.app.extensions["pipedrive_sandbox"].store
    planned = {int(i["deal_id"]) for i in store.t["installments"].values()}
    with app.app_context():
        ready = set(db.session.execute(
            select(PdDeal.id).where(PdDeal.ready.is_(True), PdDeal.id.in_(planned))
        ).scalars())
        flagged = set(db.session.execute(
            select(PdDeal.id).where(PdDeal.has_installments.is_(True))
        ).scalars())
    assert len(ready) == 5 and ready <= flagged <= planned  # the five of issue 14
    login(make_user("finance"))
    html = client.get("/queue/?flag=installments").get_data(as_text=True)
    assert set(_rows(html)) == ready
    row = html.split(f'<tr data-deal="{min(ready)}">')[1].split("</tr>")[0]
    assert "Installments" in row


def test_search_and_filters(app, client, make_user, login, synced):
    login(make_user("finance"))
    with app.app_context():
        deal = db.session.execute(select(PdDeal).where(PdDeal.ready.is_(True))).scalars().first()
        pipeline = db.session.get(PdPipeline, deal.pipeline_id)
        title_word = deal.title.split()[0]
    html = client.get(f"/queue/?q={title_word}").get_data(as_text=True)
    assert deal.id in _rows(html)
    html = client.get(f"/queue/?pipeline={pipeline.id}").get_data(as_text=True)
    n = _ready_count(app, PdDeal.pipeline_id == pipeline.id)
    assert f"{n} deal{'' if n == 1 else 's'} ready to bill" in html
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


@pytest.mark.parametrize("args, total, sentence", [
    ({}, 0, "No deals ready to bill."),
    ({}, 1, "1 deal ready to bill."),
    ({}, 1234, "1,234 deals ready to bill."),
    ({"currency": "EUR"}, 0, "No deals ready to bill match these filters."),
    ({"currency": "EUR"}, 1, "1 deal ready to bill matches these filters."),
    ({"currency": "EUR"}, 7, "7 deals ready to bill match these filters."),
    ({"q": "acme"}, 1, "1 deal ready to bill matches this search."),
    ({"q": "acme"}, 2, "2 deals ready to bill match this search."),
    ({"q": "acme"}, 1001, "More than 1,000 deals ready to bill match this search."),
    ({"q": "acme", "flag": "zero"}, 1,
     "1 deal ready to bill matches this search and these filters."),
])
def test_count_reads_right_for_none_one_and_many(args, total, sentence):
    """Issue 14: the count said "1 deal ready to bill match"."""
    from app.queue.query import QueueFilters, count_sentence

    assert count_sentence(total, QueueFilters.from_args(args)) == sentence


def test_a_deal_with_an_invoice_on_its_way_carries_a_marker(app, client, make_user, login,
                                                            synced):
    """Issue 14: a deal with a draft, a submitted invoice or a failed push looked like
    any other; its row now says so and links to the invoice."""
    from decimal import Decimal

    from app.invoices.models import Invoice

    login(make_user("finance"))
    with app.app_context():
        deals = db.session.execute(
            select(PdDeal.id).where(PdDeal.ready.is_(True)).order_by(PdDeal.id).limit(4)
        ).scalars().all()
        made = {}
        for deal_id, status in zip(deals, ("draft", "submitted", "push_failed"), strict=False):
            inv = Invoice(deal_id=deal_id, currency="EUR", status=status,
                          total=Decimal(1), subtotal=Decimal(1))
            db.session.add(inv)
            db.session.flush()
            made[deal_id] = (inv.id, status)
        db.session.commit()
    labels = {"draft": "Draft", "submitted": "Submitted", "push_failed": "Push failed"}
    for deal_id, (invoice_id, status) in made.items():
        html = client.get(f"/queue/?q={deal_id}").get_data(as_text=True)
        row = html.split(f'<tr data-deal="{deal_id}">')[1].split("</tr>")[0]
        assert f'href="/invoices/{invoice_id}"' in row and f'data-marker="{status}"' in row
        assert labels[status] in row
    plain = deals[3]
    html = client.get(f"/queue/?q={plain}").get_data(as_text=True)
    assert "data-marker" not in html.split(f'<tr data-deal="{plain}">')[1].split("</tr>")[0]


def _ready_deal_with_discounts(app, synced):
    store = synced.app.extensions["pipedrive_sandbox"].store
    with_discounts = {int(d["deal_id"]) for d in store.t["discounts"].values()}
    with app.app_context():
        deal = db.session.execute(
            select(PdDeal).where(PdDeal.ready.is_(True), PdDeal.id.in_(with_discounts),
                                 PdDeal.status == "won").order_by(PdDeal.id)
        ).scalars().first()
        return deal.id, deal.title


def test_deal_page_says_each_fact_once_and_shows_deal_discounts(app, client, make_user, login,
                                                                synced):
    """Issue 14, item 16: "#136 #136", "won, won", and no deal-level discounts."""
    store = synced.app.extensions["pipedrive_sandbox"].store
    deal_id, title = _ready_deal_with_discounts(app, synced)
    assert f"#{deal_id}" in title  # the seed names deals "Org - Pipeline #id"
    wanted = [d for d in store.t["discounts"].values() if int(d["deal_id"]) == deal_id]
    login(make_user("finance"))
    html = client.get(f"/deals/{deal_id}").get_data(as_text=True)
    heading = html.split("<h1>")[1].split("</h1>")[0]
    assert heading.count(f"#{deal_id}") == 1
    status = html.split('id="deal-status">')[1].split("</dd>")[0]
    assert status.startswith("Won on ") and status.lower().count("won") == 1
    section = html.split('id="deal-discounts"')[1].split("</article>")[0]
    for d in wanted:
        assert (d["description"] or "Discount") in section
    assert "No deal-level discounts" not in section


def test_create_draft_from_the_deal_page(app, client, make_user, login, synced):
    """Issue 14, item 16: finance creates a draft from a ready deal without an invoice,
    through the operation the queue's "Create drafts" uses; then the page links to it."""
    from app.invoices.models import Invoice

    deal_id, _title = _ready_deal_with_discounts(app, synced)
    login(make_user("approver"))
    assert 'id="deal-create-draft"' not in client.get(f"/deals/{deal_id}").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(make_user("finance"))
    html = client.get(f"/deals/{deal_id}").get_data(as_text=True)
    form = html.split('id="deal-create-draft"')[1].split("</form>")[0]
    opening = html.split('id="deal-create-draft"')[0].rsplit("<form", 1)[1]
    assert f"/deals/{deal_id}/draft" in opening and "Create draft" in form
    token = csrf_token(client, f"/deals/{deal_id}")
    resp = client.post(f"/deals/{deal_id}/draft", data={"csrf_token": token})
    assert resp.status_code == 303
    with app.app_context():
        invoice = db.session.execute(
            select(Invoice).where(Invoice.deal_id == deal_id)).scalar_one()
        assert invoice.status == "draft" and invoice.discounts  # the deal discount came along
        invoice_id = invoice.id
    html = client.get(f"/deals/{deal_id}").get_data(as_text=True)
    assert 'id="deal-create-draft"' not in html
    assert f'href="/invoices/{invoice_id}"' in html.split('id="deal-invoice-action"')[1]
