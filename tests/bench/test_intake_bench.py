"""Benchmarks for deal intake and the queue (make bench). Figures are printed.

- First import of 10,000 deals: Pipedrive tokens (target <= 1,500), next to a
  client that fetches each deal and its products one by one.
- Incremental cycle with 100 of 10,000 deals changed: tokens (target <= 50).
- Queue page with 10,000 ready deals: p95 server time (target <= 50 ms),
  filtered and not, on the database of this run (SQLite or PostgreSQL).
"""

from __future__ import annotations

import statistics
import time

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.intake.models import PdDeal

pytestmark = pytest.mark.bench


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18]


@pytest.fixture
def big(app, desk_on_pipedrive):
    sb = desk_on_pipedrive
    sb.set_budget(daily_budget=10_000_000)
    sb.set_burst(burst_limit=100_000)
    sb.seed(synthetic_deals=10_000)
    sb.reset_ledger()
    return sb


def test_import_and_incremental_tokens(app, big, capsys):
    from app.intake.operations import apply_default_rules, run_deal_sync

    t0 = time.perf_counter()
    with app.app_context():
        run = run_deal_sync(trigger="manual")
        assert run.status == "ok", run.error
        apply_default_rules()
        db.session.commit()
        deals = db.session.execute(select(func.count()).select_from(PdDeal)).scalar()
    took = time.perf_counter() - t0
    first = big.ledger()["totals"]["tokens"]

    # A naive client: each deal, then its products, one request each.
    big.reset_ledger()
    ids = [d["id"] for d in big.get("/api/v2/deals", limit=100).json()["data"]]
    for deal_id in ids:
        big.get(f"/api/v2/deals/{deal_id}")
        big.get(f"/api/v2/deals/{deal_id}/products")
    naive_per_deal = (big.ledger()["totals"]["tokens"] - 10) / len(ids)

    big.reset_ledger()
    with app.app_context():
        changed = db.session.execute(select(PdDeal.id).limit(100)).scalars().all()
    for deal_id in changed:
        big.ui_edit(deal_id, title=f"Changed {deal_id}")
    big.reset_ledger()
    with app.app_context():
        inc = run_deal_sync()
        assert inc.status == "ok" and inc.counts["updated"] == 100, inc.counts
    incremental = big.ledger()["totals"]["tokens"]
    with capsys.disabled():
        print(
            f"\n[intake] first import: {deals} deals in {took:.1f} s, {first} tokens "
            f"({first / deals:.3f} tokens/deal; one-by-one client: {naive_per_deal:.1f} "
            f"tokens/deal = {naive_per_deal * deals:,.0f} tokens)"
        )
        print(f"[intake] incremental, 100 of {deals} changed: {incremental} tokens")
    assert first <= 1500
    assert incremental <= 50


def test_queue_page_p95(app, client, big, make_user, login, capsys):
    from app.intake.models import PdDeal as Deal
    from app.intake.operations import apply_default_rules, run_deal_sync

    with app.app_context():
        run_deal_sync(trigger="manual")
        apply_default_rules()
        db.session.commit()
        ready = db.session.execute(
            select(func.count()).select_from(Deal).where(Deal.ready.is_(True))
        ).scalar()
        owner = db.session.execute(select(Deal.owner_id).limit(1)).scalar()
    login(make_user("finance"))
    urls = {
        "unfiltered": "/queue/",
        "filtered": f"/queue/?owner={owner}&currency=EUR&sort=value",
        "search": "/queue/?q=synthetic",
        "search, one match": "/queue/?q=Synthetic+deal+4242",
        "search, no match": "/queue/?q=no+such+customer",
        "flag": "/queue/?flag=no_email",
    }
    results = {}
    for name, url in urls.items():
        client.get(url)  # warm
        samples = []
        for _ in range(40):
            t = time.perf_counter()
            resp = client.get(url, headers={"HX-Request": "true"})
            samples.append((time.perf_counter() - t) * 1000)
            assert resp.status_code == 200
        results[name] = (_p95(samples), statistics.median(samples))
    kind = db.engine.dialect.name if False else app.config["SQLALCHEMY_DATABASE_URI"].split(":")[0]
    with capsys.disabled():
        for name, (p95, p50) in results.items():
            print(f"[queue:{kind}] {ready} ready deals, {name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    assert all(p95 <= 50 for p95, _ in results.values()), results
