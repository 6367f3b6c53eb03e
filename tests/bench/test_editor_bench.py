"""Benchmark: editing one line of a 100-line invoice re-renders the totals
(target: p95 <= 30 ms server time)."""

from __future__ import annotations

import statistics
import time
from decimal import Decimal

import pytest

from app.extensions import db
from app.invoices.drafting import recompute
from app.invoices.models import Invoice, InvoiceLine
from tests.conftest import csrf_token

pytestmark = pytest.mark.bench


def test_edit_one_line_of_a_100_line_invoice(app, client, make_user, login, capsys):
    finance = make_user("finance")
    with app.app_context():
        inv = Invoice(
            deal_id=1,
            currency="EUR",
            status="draft",
            customer_name="Bench",
            billing_email="bench@example.com",
            days_until_due=30,
        )
        for i in range(100):
            inv.lines.append(
                InvoiceLine(
                    position=i,
                    description=f"Line {i}",
                    quantity=Decimal("1.5"),
                    unit_price=Decimal("123.45"),
                    tax_rate=Decimal("19") if i % 2 else Decimal(7),
                    tax_behavior="exclusive" if i % 3 else "inclusive",
                    edited_fields=[],
                    discount_type="percentage" if i % 5 == 0 else None,
                    discount_value=Decimal(10) if i % 5 == 0 else None,
                )
            )
        recompute(inv)
        db.session.add(inv)
        db.session.commit()
        invoice_id, line_id = inv.id, inv.lines[50].id
    login(finance)
    token = csrf_token(client, f"/invoices/{invoice_id}")
    headers = {"HX-Request": "true", "X-CSRFToken": token}
    samples = []
    for n in range(60):
        with app.app_context():
            version = db.session.get(Invoice, invoice_id).version
        form = {
            "description": "Line 50",
            "quantity": str(n % 7 + 1),
            "unit_price": "99.90",
            "discount_type": "",
            "discount_value": "",
            "tax_rate": "19",
            "tax_behavior": "exclusive",
            "current_version": str(version),
        }
        t = time.perf_counter()
        resp = client.post(f"/invoices/{invoice_id}/lines/{line_id}", data=form, headers=headers)
        samples.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
        assert 'id="invoice-totals"' in resp.get_data(as_text=True)
    samples = samples[5:]
    p95 = statistics.quantiles(samples, n=20)[18]
    with capsys.disabled():
        print(
            f"\n[editor] one line of a 100-line invoice: p50 {statistics.median(samples):.1f} ms,"
            f" p95 {p95:.1f} ms"
        )
    assert p95 <= 30
