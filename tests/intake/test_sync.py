from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from app.extensions import db
from app.intake.models import DealChange, PdDeal, PdDealProduct, PdPerson, SyncRun
from app.intake.operations import run_deal_sync


def _count(model, *where):
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar()


def test_first_run_imports_everything(app, synced):
    with app.app_context():
        ledger_deals = synced.get("/api/v2/deals", limit=500, status="open,won,lost,deleted")
        assert _count(PdDeal) >= 150
        assert _count(PdDeal, PdDeal.ready.is_(True)) > 10
        assert _count(PdPerson) > 10
        jpy = db.session.execute(select(PdDeal).where(PdDeal.currency == "JPY")).scalars().first()
        assert jpy is not None and jpy.value == jpy.value.to_integral_value()
        assert isinstance(jpy.value, Decimal)
        assert ledger_deals.status_code == 200


def test_incremental_run_fetches_only_changes(app, synced):
    with app.app_context():
        deal_id = db.session.execute(
            select(PdDeal.id).where(PdDeal.ready.is_(True)).limit(1)
        ).scalar()
    synced.reset_ledger()
    synced.ui_edit(deal_id, title="Renamed by sales")
    with app.app_context():
        run = run_deal_sync()
        assert run.status == "ok", run.error
        assert run.counts["updated"] == 1
        assert db.session.get(PdDeal, deal_id).title == "Renamed by sales"
        change = db.session.execute(
            select(DealChange).where(DealChange.deal_id == deal_id, DealChange.kind == "updated")
        ).scalar_one()
        assert change.changes["title"][1] == "Renamed by sales"
        assert run.tokens <= 50


def test_rerun_without_changes_changes_nothing(app, synced):
    with app.app_context():
        before = _count(PdDealProduct)
        run = run_deal_sync()
        assert run.status == "ok"
        assert run.counts["updated"] == 0 and run.counts["created"] == 0
        assert _count(PdDealProduct) == before
        assert _count(SyncRun) == 2
