from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select, text

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


def test_a_bulk_change_refreshes_the_planner_statistics(app, desk_on_pipedrive, monkeypatch):
    """The first import (and a rule change that re-derives many deals) analyzes the
    tables at once, so PostgreSQL does not plan the queue on a near-empty table until
    autovacuum comes by; a small incremental run leaves it to autovacuum."""
    import app.intake.sync as sync

    calls = []
    monkeypatch.setattr(sync, "BULK_CHANGE_ROWS", 100)
    monkeypatch.setattr(sync, "refresh_planner_statistics", lambda *m: calls.append(m))
    desk_on_pipedrive.seed()
    with app.app_context():
        assert run_deal_sync(trigger="manual").status == "ok"
        assert calls and calls[0][0] is PdDeal and PdDealProduct in calls[0]
        calls.clear()
        deal_id = db.session.execute(select(PdDeal.id).limit(1)).scalar()
    desk_on_pipedrive.ui_edit(deal_id, title="One change")
    with app.app_context():
        run = run_deal_sync()
        assert run.counts["updated"] == 1
        assert calls == []


def test_planner_statistics_match_the_table_on_postgresql(app, synced):
    from app.extensions import refresh_planner_statistics

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            refresh_planner_statistics(PdDeal)  # nothing to do, and no error
            return
        refresh_planner_statistics(PdDeal)
        db.session.commit()
        estimated = db.session.execute(
            text("SELECT reltuples FROM pg_class WHERE relname = 'pd_deal'")
        ).scalar()
        assert int(estimated) == _count(PdDeal)


def test_a_deal_reloaded_and_synced_again_keeps_its_hash_and_shows_no_drift(app, draft, synced):
    """deal_state is canonical: a deal parsed from Pipedrive ("1000.00") and the same
    deal reloaded from its Numeric(20, 6) columns ("1000.000000") hash the same, so
    re-deriving a reloaded deal (a contact webhook does) or syncing it again with the
    same data neither changes its content_hash nor makes its draft look drifted."""
    from app.intake.contacts import refresh_contacts
    from app.invoices.drafting import drift
    from app.invoices.models import Invoice
    from app.invoices.queries import drifted_among
    from app.mismatches.rules import deal_changed_after_invoicing
    from app.pipedrive.factory import pipedrive_client

    with app.app_context():
        deal = db.session.get(PdDeal, draft["deal_id"])
        drafted_hash = deal.content_hash
        assert db.session.get(Invoice, draft["invoice_id"]).deal_hash == drafted_hash
        person_id = deal.person_id
    with app.app_context():  # reloaded from the database, derived again
        refresh_contacts(pipedrive_client(), person_ids=[person_id])
        db.session.commit()
        assert db.session.get(PdDeal, draft["deal_id"]).content_hash == drafted_hash
    with app.app_context():  # and pulled again, with the same data
        for _ in range(2):  # the first also stores products the default rules now want
            run = run_deal_sync(full=True)
            assert run.status == "ok", run.error
        assert run.counts["updated"] == 0, run.counts
        assert _count(DealChange, DealChange.deal_id == draft["deal_id"],
                      DealChange.kind == "updated") == 0
        deal = db.session.get(PdDeal, draft["deal_id"])
        invoice = db.session.get(Invoice, draft["invoice_id"])
        assert deal.content_hash == drafted_hash
        assert drift(invoice, deal) is None and drifted_among([deal.id]) == set()
        invoice.status = "pushed"  # once sent, the mismatch board's rule 2 agrees
        db.session.flush()
        assert [h for h in deal_changed_after_invoicing()
                if h.subject == f"invoice:{invoice.id}"] == []
        db.session.rollback()


def test_migration_0019_rehashes_deals_and_carries_their_drafts_along(app, draft, synced):
    """Drafts made before the upgrade hold an old-style hash (str(Decimal)): the
    migration moves the ones built from the deal as it is to the canonical hash, so
    they do not all show drift; a draft built from other content keeps its drift."""
    import importlib.util
    from pathlib import Path

    from app.intake.snapshots import content_hash, deal_state
    from app.invoices.drafting import create_draft
    from app.invoices.models import Invoice
    from app.invoices.queries import drifted_among
    from app.pipedrive.factory import pipedrive_client

    path = next((Path(__file__).parents[2] / "migrations/versions").glob("0019_*.py"))
    spec = importlib.util.spec_from_file_location("migration_0019", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    with app.app_context():
        deal = db.session.get(PdDeal, draft["deal_id"])
        other = db.session.execute(select(PdDeal).where(
            PdDeal.ready.is_(True), PdDeal.id != deal.id, PdDeal.product_count > 0)
        ).scalars().first()
        drifted = create_draft(other, None, pipedrive_client())
        canonical, old_style = content_hash(deal_state(deal)), content_hash(deal_state(deal, str))
        assert canonical != old_style  # the stored numbers carry the column's zeros
        # As stored before the upgrade: the old-style hash on the deal and its draft;
        # the other deal changed after its draft was made.
        deal.content_hash = old_style
        db.session.get(Invoice, draft["invoice_id"]).deal_hash = old_style
        drifted.deal_hash = "0" * 64
        db.session.commit()
        assert drifted_among([deal.id, other.id]) == {other.id}
        with db.engine.begin() as conn:
            assert migration.rehash_deals(conn) == 1
        db.session.expire_all()
        assert db.session.get(PdDeal, deal.id).content_hash == canonical
        assert db.session.get(Invoice, draft["invoice_id"]).deal_hash == canonical
        assert drifted_among([deal.id, other.id]) == {other.id}
