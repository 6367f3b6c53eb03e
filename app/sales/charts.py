"""Server-rendered SVG bar charts: no script, no inline style (the CSP allows neither).

Colours come from classes in static/app.css; sizes are SVG attributes computed with
Decimal (an amount never passes through float, not even to draw it).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from markupsafe import Markup, escape

from app.money import format_money

WIDTH = 640
LABEL_W = 190
VALUE_W = 150
BAR_H = 22
GAP = 10
TOP = 8

_SVG_NS = "http://www.w3.org/2000/svg"


def _num(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def bar_chart(chart_id: str, title: str, currency: str, bars: list[tuple[str, str, Decimal]]):
    """Horizontal bars: [(css key, label, amount)], one currency per chart."""
    span = Decimal(WIDTH - LABEL_W - VALUE_W)
    biggest = max((amount for _, _, amount in bars), default=Decimal(0))
    height = TOP * 2 + len(bars) * (BAR_H + GAP)
    title_id = f"{chart_id}-title"
    parts = [
        f'<svg xmlns="{_SVG_NS}" class="chart" id="{escape(chart_id)}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="{escape(title_id)}">',
        f'<title id="{escape(title_id)}">{escape(title)} ({escape(currency)})</title>',
    ]
    for i, (key, label, amount) in enumerate(bars):
        y = TOP + i * (BAR_H + GAP)
        width = (span * amount / biggest) if biggest > 0 and amount > 0 else Decimal(0)
        text_y = y + BAR_H - 6
        parts.append(
            f'<g class="bar-row">'
            f'<text x="0" y="{text_y}" class="chart-label">{escape(label)}</text>'
            f'<rect x="{LABEL_W}" y="{y}" width="{_num(width)}" height="{BAR_H}" rx="3" '
            f'class="bar bar-{escape(key)}"><title>{escape(label)}: '
            f'{escape(format_money(amount, currency))}</title></rect>'
            f'<text x="{WIDTH}" y="{text_y}" text-anchor="end" class="chart-value">'
            f"{escape(format_money(amount, currency))}</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated value is escaped


def aging_chart(currency: str, buckets: list[tuple[str, str, Decimal]]):
    return bar_chart(f"aging-chart-{currency.lower()}", "Open invoices by age", currency, buckets)


def flow_chart(currency: str, figures) -> Markup:
    bars = [
        ("sold", "Sold (won)", figures.sold),
        ("invoiced", "Invoiced", figures.invoiced),
        ("collected", "Collected", figures.collected),
        ("outstanding", "Outstanding", figures.outstanding),
        ("overdue", "Overdue", figures.overdue),
    ]
    return bar_chart(f"flow-chart-{currency.lower()}", "Sold, invoiced, collected", currency,
                     bars)
