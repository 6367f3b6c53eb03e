"""Invoice totals: recalculation, discounts, taxes and rendered lines."""

from __future__ import annotations

from decimal import Decimal

from .. import money
from ..store import public


class TotalsMixin:
    """Mixed into ``StripeSandbox``: invoice totals:
    recalculation, discounts, taxes and rendered lines."""

    # ---- totals
    def recalc(self, inv: dict) -> None:
        """Compute line and invoice totals as Stripe does (per-line rounding, half up)."""
        st = self.store
        items = [st.get("invoiceitem", i) for i in inv["_items"]]
        cur = inv["currency"]
        disc_totals: dict[str, int] = {}
        tax_totals: dict[tuple[str, str], list[int]] = {}
        excl_tax = incl_tax = 0
        line_after, line_discounts = self._line_discounts(items, cur)
        subtotal = sum(line_after)
        self._invoice_discounts(inv, items, line_after, line_discounts)
        # taxes per line on the discounted amount
        for n, item in enumerate(items):
            taxable = line_after[n]
            rate_ids = item["tax_rates"] or inv["default_tax_rates"]
            rates = [st.get("tax_rate", r) for r in rate_ids]
            taxes, incl, excl = line_taxes(taxable, rates)
            incl_tax += incl
            excl_tax += excl
            for t in taxes:
                key = (t["tax_rate_details"]["tax_rate"], t["tax_behavior"])
                acc = tax_totals.setdefault(key, [0, 0])
                acc[0] += t["amount"]
                acc[1] += t["taxable_amount"]
            for d in line_discounts[n]:
                disc_totals[d["discount"]] = disc_totals.get(d["discount"], 0) + d["amount"]
            item["net_amount"] = line_after[n]
            item["_calc"] = {"discount_amounts": line_discounts[n], "taxes": taxes}
        gross = sum(it["amount"] for it in items)
        total_disc = sum(disc_totals.values())
        total = gross - total_disc + excl_tax
        inv["subtotal"] = subtotal
        inv["subtotal_excluding_tax"] = subtotal - incl_tax
        inv["total"] = total
        inv["total_excluding_tax"] = total - excl_tax - incl_tax
        inv["total_discount_amounts"] = [
            {"amount": a, "discount": d} for d, a in disc_totals.items()
        ]
        inv["total_pretax_credit_amounts"] = [
            {"amount": a, "credit_balance_transaction": None, "discount": d, "type": "discount"}
            for d, a in disc_totals.items()
        ]
        inv["total_taxes"] = [
            tax_entry(a[0], behavior, rid, a[1]) for (rid, behavior), a in tax_totals.items()
        ]
        inv["_incl_tax"] = incl_tax
        inv["_excl_tax"] = excl_tax
        self._recalc_amounts(inv)

    def _line_discounts(self, items: list[dict],
                        cur: str) -> tuple[list[int], list[list[dict]]]:
        """Each line's own discounts, applied in order: (amounts after, discount amounts)."""
        line_after: list[int] = []
        line_discounts: list[list[dict]] = []
        for item in items:
            remaining = item["amount"]
            amounts = []
            for did in item["discounts"]:
                off = self._discount_off(did, remaining, cur)
                remaining -= off
                amounts.append({"amount": off, "discount": did})
            line_after.append(remaining)
            line_discounts.append(amounts)
        return line_after, line_discounts

    def _invoice_discounts(self, inv: dict, items: list[dict], line_after: list[int],
                           line_discounts: list[list[dict]]) -> None:
        """Apply the invoice-level discounts, prorated over the discountable lines, to
        ``line_after`` and ``line_discounts`` in place."""
        for did in inv["discounts"]:
            idx = [i for i, it in enumerate(items) if it["discountable"] and line_after[i] > 0]
            base = sum(line_after[i] for i in idx)
            coupon = self._coupon_of(did)
            if not idx or base <= 0:
                continue
            if coupon["percent_off"] is not None:
                shares = {
                    i: money.round_half_up(line_after[i] * Decimal(coupon["_pct"]) / 100)
                    for i in idx
                }
            else:
                total_off = min(coupon["amount_off"], base)
                shares, given = {}, 0
                for n, i in enumerate(idx):
                    if n == len(idx) - 1:
                        shares[i] = total_off - given
                    else:
                        shares[i] = money.round_half_up(Decimal(total_off) * line_after[i] / base)
                        given += shares[i]
            for i, off in shares.items():
                off = min(off, line_after[i])
                line_after[i] -= off
                line_discounts[i].append({"amount": off, "discount": did})

    def _recalc_amounts(self, inv: dict) -> None:
        due = inv["total"] + inv["_balance_applied"] - inv["pre_payment_credit_notes_amount"]
        inv["amount_due"] = max(0, due)
        if inv["status"] == "paid":
            inv["amount_remaining"] = 0
        else:
            inv["amount_remaining"] = max(0, inv["amount_due"] - inv["amount_paid"])
        inv["amount_overpaid"] = max(0, inv["amount_paid"] - inv["amount_due"])

    def _coupon_of(self, discount_id: str) -> dict:
        disc = self.store.get("discount", discount_id)
        return self.store.get("coupon", disc["source"]["coupon"])

    def _discount_off(self, discount_id: str, amount: int, currency: str) -> int:
        if amount <= 0:
            return 0
        coupon = self._coupon_of(discount_id)
        if coupon["percent_off"] is not None:
            return min(amount, money.round_half_up(amount * Decimal(coupon["_pct"]) / 100))
        return min(amount, coupon["amount_off"])

    def _invoice_lines_list(self, inv: dict) -> dict:
        """The invoice embeds its first 10 lines only (has_more tells there are more:
        page through /v1/invoices/{id}/lines), as Stripe does."""
        ids = inv["_items"]
        lines = [self.render_line(self.store.get("invoiceitem", i), inv) for i in ids[:10]]
        return self._list_body(lines, f"/v1/invoices/{inv['id']}/lines", len(ids) > 10)

    def render_line(self, item: dict, inv: dict, expand=None) -> dict:
        calc = item.get("_calc", {"discount_amounts": [], "taxes": []})
        return {
            "id": item["_line_id"],
            "object": "line_item",
            "amount": item["amount"],
            "currency": item["currency"],
            "description": item["description"],
            "discount_amounts": calc["discount_amounts"],
            "discountable": item["discountable"],
            "discounts": list(item["discounts"]),
            "invoice": inv["id"],
            "livemode": False,
            "metadata": dict(item["metadata"]),
            "parent": {
                "invoice_item_details": {
                    "invoice_item": item["id"],
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": None,
                },
                "subscription_item_details": None,
                "type": "invoice_item_details",
            },
            "period": dict(item["period"]),
            "pretax_credit_amounts": [
                {"amount": d["amount"], "credit_balance_transaction": None,
                 "discount": d["discount"], "type": "discount"}
                for d in calc["discount_amounts"]
            ],
            "pricing": public(item["pricing"]),
            "quantity": item["quantity"],
            "quantity_decimal": item["quantity_decimal"],
            "subscription": None,
            "subtotal": item["amount"],
            "taxes": calc["taxes"],
        }


def tax_entry(amount: int, behavior: str, rate_id: str, taxable: int) -> dict:
    return {
        "amount": amount,
        "tax_behavior": behavior,
        "tax_rate_details": {"tax_rate": rate_id},
        "taxability_reason": "standard_rated",
        "taxable_amount": taxable,
        "type": "tax_rate_details",
    }


def line_taxes(amount: int, rates: list[dict]) -> tuple[list[dict], int, int]:
    """A line's taxes on ``amount`` (after discounts): (tax entries, inclusive total,
    exclusive total). Inclusive rates are taken out of ``amount``; the last one takes the
    rounding rest."""
    taxes = []
    incl_tax = excl_tax = 0
    incl = [r for r in rates if r["inclusive"]]
    net = amount
    if incl:
        pct = sum(Decimal(r["_pct"]) for r in incl)
        net = money.round_half_up(Decimal(amount) * 100 / (100 + pct))
        contained, given = amount - net, 0
        for k, r in enumerate(incl):
            amt = contained - given if k == len(incl) - 1 else money.round_half_up(
                Decimal(net) * Decimal(r["_pct"]) / 100)
            given += amt
            taxes.append(tax_entry(amt, "inclusive", r["id"], net))
            incl_tax += amt
    for r in rates:
        if not r["inclusive"]:
            amt = money.round_half_up(Decimal(net) * Decimal(r["_pct"]) / 100)
            taxes.append(tax_entry(amt, "exclusive", r["id"], net))
            excl_tax += amt
    return taxes, incl_tax, excl_tax
