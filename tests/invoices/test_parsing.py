"""Issue 14, defects 1 and 3: one rule for decimal separators; no typed rate dropped."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.extensions import db
from app.invoices.models import Invoice
from app.money import parse_amount, parse_decimal
from tests.conftest import csrf_token
from tests.invoices.test_editor import _line_form, _line_ids


@pytest.mark.parametrize(
    "typed, value",
    [
        ("1.5", "1.5"),
        ("1,5", "1.5"),  # was read as 15
        ("1,50", "1.5"),
        ("0,500", "0.5"),  # a group never starts with 0
        ("1234,567", "1234.567"),  # four digits before: not a group
        ("12,000.50", "12000.5"),
        ("12.000,50", "12000.5"),
        ("12 000,50", "12000.5"),
        ("12\u00a0000,50", "12000.5"),
        ("1'200.5", "1200.5"),
        ("1,234,567", "1234567"),
        ("1.234.567,8", "1234567.8"),
        ("-1,5", "-1.5"),
        (",5", "0.5"),
        ("1200", "1200"),
    ],
)
def test_accepted_forms(typed, value):
    assert parse_decimal(typed) == Decimal(value)


@pytest.mark.parametrize(
    "typed, words",
    [
        ("1,500", ["could be 1500 or 1.5: type 1500 or 1.5 to say which"]),
        ("1.500", ["could be 1500 or 1.5"]),
        ("12,345", ["could be 12345 or 12.345"]),
        ("1,23,4", ["wrong places"]),
        ("1.234.5", ["wrong places"]),
        ("1,2.3,4", ["wrong places"]),
        ("1e3", ["such as 1200.50"]),
        ("1.5E+2", ["such as 1200.50"]),
        ("12 €", ["such as 1200.50"]),
        ("1.", ["such as 1200.50"]),
        ("NaN", ["such as 1200.50"]),
    ],
)
def test_refused_forms_say_why(typed, words):
    with pytest.raises(ValueError) as exc:
        parse_decimal(typed)
    for w in words:
        assert w in str(exc.value)


def test_untouched_field_keeps_its_stored_value():
    # The editor renders a stored 1.125 as "1.125"; sent back unchanged it stays 1.125.
    assert parse_decimal("1.125", unchanged=Decimal("1.125")) == Decimal("1.125")
    with pytest.raises(ValueError):
        parse_decimal("1.125", unchanged=Decimal("7"))


def test_amounts_use_the_same_rule():
    assert parse_amount("6500,5", "GBP") == Decimal("6500.5")
    assert parse_amount("1.234,56", "EUR") == Decimal("1234.56")
    with pytest.raises(ValueError, match="could be"):
        parse_amount("1,500", "EUR")


def _post_line(client, app, draft, **changes):
    url = f"/invoices/{draft['invoice_id']}"
    token = csrf_token(client, url)
    line_id = _line_ids(app, draft["invoice_id"])[0]
    form = _line_form(app, draft["invoice_id"], line_id, **changes)
    resp = client.post(
        f"{url}/lines/{line_id}", data=form, headers={"HX-Request": "true", "X-CSRFToken": token}
    )
    return resp, line_id


def _line(app, invoice_id, line_id):
    with app.app_context():
        inv = db.session.get(Invoice, invoice_id)
        return next(ln for ln in inv.lines if ln.id == line_id)


def test_decimal_comma_in_the_editor_is_a_decimal(app, client, login, draft):
    login(draft["finance"])
    resp, line_id = _post_line(client, app, draft, quantity="1,5", unit_price="100,25")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    line = _line(app, draft["invoice_id"], line_id)
    assert line.quantity == Decimal("1.5") and line.unit_price == Decimal("100.25")


def test_ambiguous_quantity_is_refused_next_to_the_field_and_kept(app, client, login, draft):
    login(draft["finance"])
    resp, line_id = _post_line(client, app, draft, quantity="1,500")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "could be 1500 or 1.5" in html and 'value="1,500"' in html
    assert _line(app, draft["invoice_id"], line_id).quantity != Decimal(1500)


def test_rate_typed_on_a_no_tax_line_is_not_dropped(app, client, login, draft):
    login(draft["finance"])
    resp, line_id = _post_line(client, app, draft, tax_behavior="none", tax_rate="7,5")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "set to “no tax”, so 7,5% would not be applied" in html
    assert 'value="7,5"' in html
    with app.app_context():
        assert db.session.get(Invoice, draft["invoice_id"]).version == draft["version"]


def test_discount_value_takes_a_decimal_comma(app, client, login, draft):
    login(draft["finance"])
    url = f"/invoices/{draft['invoice_id']}"
    token = csrf_token(client, url)
    resp = client.post(
        f"{url}/discounts",
        headers={"HX-Request": "true", "X-CSRFToken": token},
        data={"description": "Loyalty", "type": "percentage", "value": "2,5",
              "current_version": str(draft["version"])},
    )
    assert resp.status_code == 200
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        assert inv.discounts[-1].value == Decimal("2.5")


def test_admin_tax_percentages_follow_the_same_rule():
    from app.rules.operations import parse_percent

    assert parse_percent("7,7") == Decimal("7.7")
    with pytest.raises(ValueError, match="could be 1500 or 1.5"):
        parse_percent("1,500")  # was read as 1.5 without a word
    with pytest.raises(ValueError, match="as a number"):
        parse_percent("1e1")


@pytest.mark.parametrize(
    "fmt, typed, value",
    [
        ("point", "1.5", "1.5"),
        ("point", "1,500", "1500"),
        ("point", "120.000", "120"),  # a KWD price as a point user types it
        ("point", "12,000.50", "12000.5"),
        ("comma", "1,5", "1.5"),
        ("comma", "1.500", "1500"),
        ("comma", "12.000,50", "12000.5"),
        ("comma", "12 000,50", "12000.5"),
    ],
)
def test_a_fixed_number_format_reads_its_own_separators(fmt, typed, value):
    assert parse_decimal(typed, fmt=fmt) == Decimal(value)


@pytest.mark.parametrize(
    "fmt, typed",
    [("point", "1,5"), ("point", "1.500,5"), ("comma", "1.5"), ("comma", "1,500.5"),
     ("point", "1.2.3")],
)
def test_a_fixed_number_format_refuses_the_other_convention(fmt, typed):
    with pytest.raises(ValueError, match="does not fit your number format"):
        parse_decimal(typed, fmt=fmt)


def test_the_editor_reads_numbers_in_the_users_format(app, client, login, draft):
    from app.auth.models import User

    with app.app_context():
        db.session.get(User, draft["finance"].id).number_format = "comma"
        db.session.commit()
    login(draft["finance"])
    resp, line_id = _post_line(client, app, draft, quantity="1.500", unit_price="100,25")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    line = _line(app, draft["invoice_id"], line_id)
    assert line.quantity == Decimal(1500) and line.unit_price == Decimal("100.25")


def test_the_account_page_saves_the_number_format_and_audits_it(app, client, login, draft):
    from app.audit.models import AuditEntry
    from app.auth.models import User

    login(draft["finance"])
    token = csrf_token(client, "/account")
    resp = client.post("/account", data={
        "csrf_token": token, "profile-name": "Fiona", "profile-timezone": "UTC",
        "profile-number_format": "point", "profile-submit": "Save"})
    assert resp.status_code == 303
    with app.app_context():
        assert db.session.get(User, draft["finance"].id).number_format == "point"
        entry = db.session.execute(
            db.select(AuditEntry).where(AuditEntry.action == "user.update")
            .order_by(AuditEntry.id.desc())).scalars().first()
        assert entry.after["number_format"] == "point"


def test_a_three_decimal_amount_typed_as_the_desk_shows_it_is_read_so():
    # The editor suggests "KWD 49.640"; typing 49.640 back must mean that amount.
    assert parse_amount("49.640", "KWD") == Decimal("49.64")
    assert parse_amount("211.840", "KWD") == Decimal("211.84")
    with pytest.raises(ValueError, match="could be 49640 or 49.64"):
        parse_amount("49,640", "KWD")  # a comma there is still asked back
    with pytest.raises(ValueError, match="could be 1500 or 1.5"):
        parse_amount("1.500", "EUR")
