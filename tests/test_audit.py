from __future__ import annotations

import datetime as dt

from sqlalchemy import select, text

from app.audit.models import AuditEntry
from app.audit.operations import changes, record, set_system_actor, verify_chain
from app.extensions import db


def _entries(app, n):
    with app.app_context():
        set_system_actor("system:test")
        try:
            for i in range(n):
                record("thing.update", "thing", i % 3, {"v": str(i)}, {"v": str(i + 1)})
            db.session.commit()
        finally:
            set_system_actor(None)


def test_record_keeps_who_what_before_and_after(app):
    _entries(app, 1)
    with app.app_context():
        entry = db.session.execute(select(AuditEntry)).scalar_one()
        assert entry.actor_label == "system:test" and entry.actor_id is None
        assert entry.before == {"v": "0"} and entry.after == {"v": "1"}
        assert entry.at.tzinfo is not None and entry.at.utcoffset() == dt.timedelta(0)
        assert len(entry.entry_hash) == 64


def test_decimals_are_kept_exactly_and_floats_refused(app):
    from decimal import Decimal

    import pytest

    with app.app_context():
        e = record("invoice.update", "invoice", 1, None, {"amount": Decimal("12000.10")})
        assert e.after == {"amount": "12000.10"}
        with pytest.raises(TypeError):
            record("invoice.update", "invoice", 1, None, {"amount": 0.1})
        db.session.rollback()


def test_chain_is_intact_then_detects_a_changed_entry(app):
    _entries(app, 5)
    with app.app_context():
        assert verify_chain().ok
        ids = select(AuditEntry.id).order_by(AuditEntry.id)
        target = db.session.execute(ids.offset(2)).scalar()
        db.session.execute(
            text("UPDATE audit_entry SET action = 'thing.delete' WHERE id = :i"), {"i": target}
        )
        db.session.commit()
        report = verify_chain()
        assert not report.ok and report.broken_at == target and "changed" in report.problem


def test_chain_detects_a_deleted_entry(app):
    _entries(app, 5)
    with app.app_context():
        ids = db.session.execute(select(AuditEntry.id).order_by(AuditEntry.id)).scalars().all()
        db.session.execute(text("DELETE FROM audit_entry WHERE id = :i"), {"i": ids[1]})
        db.session.commit()
        report = verify_chain(batch=2)
        assert not report.ok and report.broken_at == ids[2] and "deleted" in report.problem


def test_verify_page_and_command(app, client, make_user, login):
    login(make_user("admin"))
    assert "Intact" in client.get("/admin/audit/verify").get_data(as_text=True)
    with app.app_context():
        db.session.execute(text("UPDATE audit_entry SET object_id = 'x'"))
        db.session.commit()
    assert "Broken at entry" in client.get("/admin/audit/verify").get_data(as_text=True)
    result = app.test_cli_runner().invoke(args=["desk", "audit", "verify"])
    assert result.exit_code == 1 and "BROKEN" in result.output


def test_changes_lists_only_differing_fields():
    assert changes({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b": (2, 3), "c": (None, 4)}


def test_browse_newest_first_with_filters_and_pages(app, client, make_user, login):
    app.config["AUDIT_PAGE_SIZE"] = 4
    admin = make_user("admin")
    _entries(app, 9)
    login(admin)
    first = client.get("/admin/audit/?action=thing.").get_data(as_text=True)
    assert first.count("<code>thing.update</code>") == 4
    assert "Older entries" in first
    with app.app_context():
        newest = db.session.execute(
            select(AuditEntry).where(AuditEntry.action == "thing.update")
            .order_by(AuditEntry.id.desc())
        ).scalars().first()
    assert "thing 2" in first.split("<tbody>")[1].split("</tr>")[0]  # newest first (i=8 -> 2)
    assert newest.object_id == "2"
    by_object = client.get("/admin/audit/?object=thing:1").get_data(as_text=True)
    assert by_object.count("<code>thing.update</code>") == 3
    by_actor = client.get("/admin/audit/?actor=system:test").get_data(as_text=True)
    assert "user.create" not in by_actor and "thing.update" in by_actor
    frag = client.get("/admin/audit/?object=user", headers={"HX-Request": "true"})
    html = frag.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="audit-results">') and "user.create" in html


def test_bad_dates_are_explained_next_to_the_field(client, make_user, login):
    login(make_user("admin"))
    html = client.get("/admin/audit/?start=2026-13-01&end=").get_data(as_text=True)
    assert "Use a date such as" in html and 'value="2026-13-01"' in html
    html = client.get("/admin/audit/?start=2026-11-02&end=2026-11-01").get_data(as_text=True)
    assert "The end date is before the start date." in html


def test_date_range_uses_the_users_time_zone(app, client, make_user, login):
    admin = make_user("admin", timezone="Pacific/Auckland")
    with app.app_context():
        # 2026-11-20 12:30 UTC is already 21 Nov in Auckland (UTC+13).
        e = record("thing.update", "thing", 99)
        e.at = dt.datetime(2026, 11, 20, 12, 30, tzinfo=dt.UTC)
        db.session.commit()
    login(admin)
    html = client.get("/admin/audit/?object=thing&start=2026-11-21&end=2026-11-21")
    assert "thing 99" in html.get_data(as_text=True)
    html = client.get("/admin/audit/?object=thing&start=2026-11-20&end=2026-11-20")
    assert "thing 99" not in html.get_data(as_text=True)


# -- issue 14, defect 17: the filter takes what the rows show, invoice numbers resolve,
#    values read as words -------------------------------------------------------------


def _audited_invoice(app, **kw) -> int:
    from tests.approvals.conftest import new_invoice

    with app.app_context():
        set_system_actor("system:test")
        try:
            invoice = new_invoice(**kw)
            record("invoice.create", "invoice", invoice.id, None, {"status": "draft"})
            record("thing.update", "thing", invoice.id, {"v": "0"}, {"v": "1"})  # same id
            db.session.commit()
            return invoice.id
        finally:
            set_system_actor(None)


def test_object_filter_takes_what_the_rows_show(app, client, make_user, login):
    _audited_invoice(app)  # another invoice first: the filter must tell them apart
    invoice_id = _audited_invoice(app)
    login(make_user("admin"))
    page = client.get("/admin/audit/?object=invoice").get_data(as_text=True)
    assert f"invoice {invoice_id}" in page  # how a row names its object
    for typed in (f"invoice {invoice_id}", f"invoice:{invoice_id}", f"invoice #{invoice_id}",
                  f"Invoice: #{invoice_id}", f"  invoice   {invoice_id} "):
        html = client.get("/admin/audit/", query_string={"object": typed}).get_data(
            as_text=True)
        body = html.split("<tbody>")[1]
        assert body.count("<code>invoice.create</code>") == 1, typed
        assert "thing.update" not in body, typed
        assert f"invoice {invoice_id}" in body, typed


def test_an_invoice_number_finds_the_invoice(app, client, make_user, login):
    from app.invoices.models import Invoice
    from app.writeback.operations import enqueue

    invoice_id = _audited_invoice(app, stripe_number="DESK-0001", stripe_status="open")
    other = _audited_invoice(app)
    with app.app_context():
        desk_number = db.session.get(Invoice, invoice_id).number
        mine = enqueue("deal_note", "numbers:mine", "deal", 1, {}, invoice_id=invoice_id)
        enqueue("deal_note", "numbers:other", "deal", 1, {}, invoice_id=other)
        db.session.commit()
        writeback = f"writeback {mine.id}<"
    login(make_user("admin"))
    for typed in ("DESK-0001", "desk-0001", desk_number, desk_number.lower()):
        html = client.get("/admin/audit/", query_string={"object": typed}).get_data(
            as_text=True)
        body = html.split("<tbody>")[1]
        assert body.count("<code>invoice.create</code>") == 1, typed
        assert f"invoice {invoice_id}" in body and f"invoice {other}<" not in body, typed
        # ... with what the desk did for it under other objects: one write-back, its own.
        assert body.count("<code>writeback.queued</code>") == 1 and writeback in body, typed
        assert f"is invoice {invoice_id} ({desk_number}, Stripe DESK-0001)" in html, typed
    # The row names the invoice by its numbers too.
    assert f"{desk_number} · DESK-0001" in html
    # A number that is no invoice: said next to the field, the typed text kept, no 500.
    resp = client.get("/admin/audit/", query_string={"object": "DESK-9999"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "No invoice is numbered “DESK-9999”" in html and 'value="DESK-9999"' in html
    assert 'name="object" value="DESK-9999" placeholder="invoice 3, user 2 or BD-00003" ' \
           'aria-invalid="true"' in html
    html = client.get("/admin/audit/", query_string={"object": "gizmo 3"}).get_data(
        as_text=True)
    assert "Nothing called “gizmo” is in the audit log." in html


def test_values_read_as_words_not_python(app, client, make_user, login):
    from decimal import Decimal

    with app.app_context():
        record("invoice.line_update", "invoice", 77,
               {"quantity": Decimal("1.000000"), "tax_rate": Decimal("0.000000"),
                "edited_fields": ["quantity"], "address": None, "description": "Setup"},
               {"quantity": Decimal("1E+3"), "tax_rate": Decimal("2E+1"),
                "edited_fields": ["quantity", "tax_rate"],
                "address": {"line1": "Hauptstr. 1", "city": "Berlin"},
                "description": "1.50"})
        record("invoice.discount_add", "invoice", 77, None,
               {"value": Decimal("-0.50"), "rate": Decimal("1E-7")})
        db.session.commit()
    login(make_user("admin"))
    html = client.get("/admin/audit/?object=invoice 77").get_data(as_text=True)
    assert "<del>1</del> → <ins>1000</ins>" in html
    assert "<del>0</del> → <ins>20</ins>" in html
    assert "<del>quantity</del> → <ins>quantity, tax_rate</ins>" in html
    assert "<del>—</del> → <ins>city: Berlin<br>line1: Hauptstr. 1</ins>" in html
    assert "<ins>1.50</ins>" in html  # people's text stays as typed
    assert "<del>—</del> → <ins>-0.5</ins>" in html and "<ins>0.0000001</ins>" in html
    for raw in ("[&#39;", "{&#39;", "None", "E+3", "E+1", "E-7", ">0.000000<"):
        assert raw not in html, raw
    with app.app_context():
        assert verify_chain().ok  # reading the log leaves the chain as it was


def test_show_value_rules():
    from decimal import Decimal

    from app.audit.display import show_value

    assert show_value(None) == "—" and show_value([]) == "—"
    assert show_value(True) == "yes" and show_value(3) == "3"
    assert show_value(Decimal("120.000000")) == "120"
    assert show_value("120.000000") == "120" and show_value("1E+3") == "1000"
    assert show_value("007.50") == "007.50"  # not how a Decimal is stored: someone's text
    assert show_value("1.50", "po_number") == "1.50"
    assert show_value(["a", Decimal("2.50")]) == "a, 2.5"
    assert show_value({"a": 1, "b": ["x", "y"]}) == "a: 1\nb: x, y"
    assert show_value([{"name": "PO", "value": "7"}, {"name": "CC", "value": "9"}]) == (
        "name: PO, value: 7; name: CC, value: 9")


# --- issue 15 defect 13: deleting the newest entries is detected ---------------------


def _ids(app):
    with app.app_context():
        return db.session.execute(select(AuditEntry.id).order_by(AuditEntry.id)).scalars().all()


def _delete_newest(app, n):
    ids = _ids(app)
    with app.app_context():
        db.session.execute(text("DELETE FROM audit_entry WHERE id >= :i"), {"i": ids[-n]})
        db.session.commit()
    return ids


def test_deleting_the_newest_entries_is_detected(app):
    _entries(app, 5)
    ids = _delete_newest(app, 2)
    with app.app_context():
        report = verify_chain()
    assert not report.ok and report.checked == 3
    assert "newest entries were deleted" in report.problem
    assert f"entry {ids[-1]} was written" in report.problem and "2 of 5 missing" in report.problem
    result = app.test_cli_runner().invoke(args=["desk", "audit", "verify"])
    assert result.exit_code == 1 and "BROKEN: the newest entries were deleted" in result.output


def test_new_entries_after_a_deletion_do_not_hide_it(app):
    _entries(app, 5)
    ids = _delete_newest(app, 1)
    _entries(app, 3)  # the desk goes on writing
    with app.app_context():
        report = verify_chain()
    assert not report.ok and "entries were deleted" in report.problem
    assert f"the chain head had entry {ids[-1]}" in report.problem


def test_a_head_rewritten_in_the_database_is_refused(app):
    _entries(app, 5)
    ids = _delete_newest(app, 2)
    with app.app_context():
        last_hash = db.session.execute(
            select(AuditEntry.entry_hash).where(AuditEntry.id == ids[2])
        ).scalar_one()
        # Someone with database access makes the head fit the shortened log.
        db.session.execute(
            text("UPDATE audit_head SET last_id = :i, last_hash = :h, entry_count = 3"),
            {"i": ids[2], "h": last_hash},
        )
        db.session.commit()
        report = verify_chain()
    assert not report.ok and "signature does not match" in report.problem
    _entries(app, 1)  # the next entry does not launder it
    with app.app_context():
        report = verify_chain()
    assert not report.ok and "signature did not match" in report.problem


def test_a_deleted_head_is_detected(app):
    _entries(app, 3)
    _delete_newest(app, 1)
    with app.app_context():
        db.session.execute(text("DELETE FROM audit_head"))
        db.session.commit()
        assert "chain head is missing" in verify_chain().problem
    _entries(app, 1)
    with app.app_context():
        assert "chain head was missing" in verify_chain().problem


def test_an_intact_log_with_its_head_verifies(app):
    with app.app_context():
        assert verify_chain().ok  # empty log, no head yet
    _entries(app, 4)
    with app.app_context():
        report = verify_chain(batch=3)
    assert report.ok and report.checked == 4


def test_a_database_put_back_to_an_older_copy_is_detected(app):
    """The head row can be put back together with the log (an older copy of the
    database, or a saved head row restored); the copy in the instance folder cannot."""
    from app.audit.operations import read_head_file

    _entries(app, 3)
    with app.app_context():
        old_head = db.session.execute(text("SELECT * FROM audit_head")).mappings().one()
    _entries(app, 2)
    with app.app_context():
        assert read_head_file()["count"] == 5
        assert verify_chain().ok
        db.session.execute(text("DELETE FROM audit_entry WHERE id > :i"),
                           {"i": old_head["last_id"]})
        db.session.execute(
            text("UPDATE audit_head SET last_id = :l, last_hash = :h, entry_count = :c, "
                 "mac = :m"),
            {"l": old_head["last_id"], "h": old_head["last_hash"],
             "c": old_head["entry_count"], "m": old_head["mac"]},
        )
        db.session.commit()
        report = verify_chain()
    assert not report.ok and "database was put back to an older copy" in report.problem


def test_a_rolled_back_savepoint_does_not_move_the_copy_ahead(app):
    from app.audit.operations import read_head_file

    _entries(app, 2)
    with app.app_context():
        with db.session.begin_nested():
            record("thing.update", "thing", 1, None, {"v": "kept"})
        savepoint = db.session.begin_nested()
        record("thing.update", "thing", 1, None, {"v": "undone"})
        savepoint.rollback()
        db.session.commit()
        assert read_head_file()["count"] == 3
        assert verify_chain().ok


def test_an_edited_copy_of_the_head_is_detected(app):
    import json

    from app.audit.operations import head_file

    _entries(app, 2)
    with app.app_context():
        copy = json.loads(head_file().read_text())
        head_file().write_text(json.dumps({**copy, "count": 1}))
        assert "was edited" in verify_chain().problem


def test_reseal_after_a_change_of_secret_key(app):
    _entries(app, 3)
    app.config["SECRET_KEY"] = "another-secret-key-" + "y" * 32
    _entries(app, 1)
    with app.app_context():
        assert "signature did not match" in verify_chain().problem
    result = app.test_cli_runner().invoke(args=["desk", "audit", "reseal", "--yes"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        report = verify_chain()
        assert report.ok and report.checked == 5
        assert db.session.execute(
            select(AuditEntry.action).order_by(AuditEntry.id.desc()).limit(1)
        ).scalar_one() == "audit.resealed"
        # A broken chain is not resealed.
        db.session.execute(text("UPDATE audit_entry SET object_id = 'x' WHERE id = "
                                "(SELECT MIN(id) FROM audit_entry)"))
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["desk", "audit", "reseal", "--yes"])
    assert result.exit_code != 0 and "cannot be resealed" in result.output


def test_the_chain_lock_is_taken_once_per_transaction_and_held_to_its_end(app):
    """The lock order (app.audit.operations): `lock_chain()` first, `record()` takes it
    again without waiting on itself, and it is held until the commit."""
    import pytest

    from app.audit.operations import _PG_CHAIN_LOCK, lock_chain

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the advisory lock is PostgreSQL's")
        lock_chain()
        record("test.locked", "thing", 1)  # re-entrant: does not wait for itself
        held = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND objid = :lo")
        lo = _PG_CHAIN_LOCK & 0xFFFFFFFF
        assert db.session.execute(held, {"lo": lo}).scalar() == 1
        db.session.commit()
        assert db.session.execute(held, {"lo": lo}).scalar() == 0
