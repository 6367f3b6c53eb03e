"""The SVG charts: well-formed XML, no inline style, bars proportional, text escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

from app.sales import charts
from app.sales.queries import Figures

NS = "{http://www.w3.org/2000/svg}"


def test_flow_chart_is_well_formed_and_proportional():
    svg = charts.flow_chart("EUR", Figures(sold=Decimal("1000"), invoiced=Decimal("500"),
                                           collected=Decimal("250.50")))
    root = ET.fromstring(str(svg))  # noqa: S314 - our own output
    assert root.tag == f"{NS}svg" and root.get("role") == "img"
    assert "style" not in str(svg)
    bars = {r.get("class"): Decimal(r.get("width")) for r in root.iter(f"{NS}rect")}
    assert bars["bar bar-sold"] == Decimal("300.0")  # the full width
    assert bars["bar bar-invoiced"] == Decimal("150.0")
    assert bars["bar bar-collected"] == Decimal("75.2")
    assert bars["bar bar-overdue"] == Decimal("0.0")
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "EUR 250.50" in texts


def test_aging_chart_escapes_labels_and_handles_nothing_open():
    svg = charts.aging_chart("KWD", [("current", "<script>&", Decimal("0"))])
    root = ET.fromstring(str(svg))  # noqa: S314 - our own output
    assert [t.text for t in root.iter(f"{NS}text")][0] == "<script>&"
    assert root.find(f"{NS}title").text == "Open invoices by age (KWD)"
    assert Decimal(next(root.iter(f"{NS}rect")).get("width")) == 0
