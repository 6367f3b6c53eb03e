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
