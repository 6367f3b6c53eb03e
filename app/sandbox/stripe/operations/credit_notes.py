"""Credit notes: create and void."""

from __future__ import annotations

from decimal import Decimal

from .. import money
from ..common import ACCOUNT_ID, metadata_update
from ..errors import invalid, missing, param_missing
from .totals import line_taxes, tax_entry


class CreditNotesMixin:
    """Mixed into ``StripeSandbox``: credit notes: create and void."""

    # ---- credit notes
    def create_credit_note(self, p: dict) -> dict:
        st = self.store
        inv = self.get("invoice", p.get("invoice"), param="invoice")
        if inv["status"] == "draft":
            raise invalid("You can't create a credit note for a draft invoice. Finalize the "
                          "invoice first, or edit the draft.", param="invoice")
        if inv["status"] == "void":
            raise invalid("You can't create a credit note for a void invoice.", param="invoice")
        cn_id = st.new_id("cn")
        lines_out, subtotal, excl_tax, incl_tax, tax_acc = self._credit_lines(inv, p)
        if "amount" in p:
            if lines_out:
                total = subtotal + excl_tax
                if p["amount"] != total:
                    raise invalid(f"The amount ({p['amount']}) must equal the sum of the credit "
                                  f"note lines ({total}).", param="amount")
            else:
                money.check_amount(p["amount"], inv["currency"], "amount")
                subtotal = p["amount"]
        if not lines_out and "amount" not in p:
            raise invalid("You must pass either `amount` or `lines` to create a credit note.",
                          param="lines", code="parameter_missing")
        total = subtotal + excl_tax
        self._check_creditable(inv, total)
        pre_amt, post_amt, refund_amount, credit_amount, oob_amount = self._credit_split(
            inv, p, total)
        before = self.render(inv)
        refunds_out = self._credit_refunds(inv, refund_amount) if refund_amount else []
        cust = st.get("customer", inv["customer"])
        if credit_amount and cust:
            cb = self.render(cust)
            cust["balance"] -= credit_amount
            self.emit_update("customer.updated", cust, cb)
        seq = len(inv.setdefault("_credit_notes", [])) + 1
        cn = {
            "id": cn_id,
            "object": "credit_note",
            "amount": total,
            "amount_shipping": 0,
            "created": self.now(),
            "currency": inv["currency"],
            "customer": inv["customer"],
            "customer_account": None,
            "customer_balance_transaction": st.new_id("cbtxn") if credit_amount else None,
            "discount_amount": 0,
            "discount_amounts": [],
            "effective_at": p.get("effective_at", self.now()),
            "invoice": inv["id"],
            "lines": self._list_body(lines_out, f"/v1/credit_notes/{cn_id}/lines"),
            "livemode": False,
            "memo": p.get("memo"),
            "metadata": metadata_update({}, p.get("metadata")),
            "number": f"{inv['number']}-CN-{seq:02d}",
            "out_of_band_amount": oob_amount or None,
            "pdf": f"https://pay.stripe.com/credit_notes/{ACCOUNT_ID}/test_{cn_id[3:]}/pdf",
            "post_payment_amount": post_amt,
            "pre_payment_amount": pre_amt,
            "pretax_credit_amounts": [],
            "reason": p.get("reason"),
            "refunds": refunds_out,
            "shipping_cost": None,
            "status": "issued",
            "subtotal": subtotal,
            "subtotal_excluding_tax": subtotal - incl_tax,
            "total": total,
            "total_excluding_tax": total - excl_tax - incl_tax,
            "total_taxes": [tax_entry(a[0], b, r, a[1]) for (r, b), a in tax_acc.items()],
            "type": "pre_payment" if not post_amt else (
                "post_payment" if not pre_amt else "mixed"),
            "voided_at": None,
            "_credit_amount": credit_amount,
        }
        st.add("credit_note", cn)
        inv["_credit_notes"].append(cn_id)
        inv["pre_payment_credit_notes_amount"] += pre_amt
        inv["post_payment_credit_notes_amount"] += post_amt
        self._recalc_amounts(inv)
        self.emit("credit_note.created", cn)
        if inv["status"] in ("open", "uncollectible") and inv["amount_remaining"] == 0:
            self._mark_paid(inv)
            self.emit("invoice.paid", inv)
        self.emit_update("invoice.updated", inv, before)
        return cn

    def _credit_lines(self, inv: dict, p: dict) -> tuple[list[dict], int, int, int, dict]:
        """The credit note's lines: (lines, subtotal, exclusive tax, inclusive tax, taxes by
        (rate, behaviour) as [amount, taxable amount])."""
        st = self.store
        lines_out: list[dict] = []
        subtotal = excl_tax = incl_tax = 0
        tax_acc: dict[tuple[str, str], list[int]] = {}
        for i, line in enumerate(p.get("lines") or []):
            pre = f"lines[{i}]"
            qty = line.get("quantity", 1)
            amount, rate_ids, desc, unit, lid = self._credit_line_source(inv, line, pre, qty)
            money.check_amount(amount, inv["currency"], f"{pre}[amount]")
            rates = [st.get("tax_rate", r) for r in rate_ids]
            taxes, incl, excl = line_taxes(amount, rates)
            incl_tax += incl
            excl_tax += excl
            for t in taxes:
                acc = tax_acc.setdefault((t["tax_rate_details"]["tax_rate"], t["tax_behavior"]),
                                         [0, 0])
                acc[0] += t["amount"]
                acc[1] += t["taxable_amount"]
            subtotal += amount
            lines_out.append({
                "id": st.new_id("cnli"),
                "object": "credit_note_line_item",
                "amount": amount,
                "description": desc,
                "discount_amount": 0,
                "discount_amounts": [],
                "invoice_line_item": lid,
                "livemode": False,
                "metadata": line.get("metadata") or {},
                "pretax_credit_amounts": [],
                "quantity": qty,
                "tax_rates": [self.render(r) for r in rates],
                "taxes": taxes,
                "type": line["type"],
                "unit_amount": int(unit) if unit is not None else None,
                "unit_amount_decimal": money.decimal_str(unit) if unit is not None else None,
            })
        return lines_out, subtotal, excl_tax, incl_tax, tax_acc

    def _credit_line_source(self, inv: dict, line: dict, pre: str, qty):
        """What one credit note line credits: (amount, tax rate ids, description, unit amount,
        invoice line id), from an invoice line or from a custom line."""
        st = self.store
        if line["type"] == "invoice_line_item":
            lid = line.get("invoice_line_item")
            if not lid:
                raise param_missing(f"{pre}[invoice_line_item]")
            item = next((st.get("invoiceitem", x) for x in inv["_items"]
                         if st.get("invoiceitem", x)["_line_id"] == lid), None)
            if item is None:
                raise missing("invoice line item", lid, f"{pre}[invoice_line_item]")
            if "amount" in line:
                amount = line["amount"]
            else:
                if item["quantity"] and qty > item["quantity"]:
                    raise invalid("The quantity to credit exceeds the quantity on the "
                                  "invoice line.", param=f"{pre}[quantity]")
                net = item["net_amount"]
                amount = money.round_half_up(Decimal(net) * qty / (item["quantity"] or 1))
            return (amount, item["tax_rates"] or inv["default_tax_rates"], item["description"],
                    None, lid)
        if "unit_amount" in line:
            unit = Decimal(line["unit_amount"])
        elif "unit_amount_decimal" in line:
            unit = money.to_decimal(line["unit_amount_decimal"], f"{pre}[unit_amount_decimal]")
        else:
            raise param_missing(f"{pre}[unit_amount]")
        amount = money.round_half_up(unit * qty)
        rate_ids = self._tax_rate_ids(line.get("tax_rates"), f"{pre}[tax_rates]")
        return amount, rate_ids, line.get("description"), unit, None

    def _check_creditable(self, inv: dict, total: int) -> None:
        st = self.store
        if total <= 0:
            raise invalid("The credit note total must be greater than 0.", param="amount")
        credited = sum(st.get("credit_note", c)["total"] for c in inv.get("_credit_notes", [])
                       if st.get("credit_note", c)["status"] == "issued")
        creditable = inv["total"] - credited
        if total > creditable:
            raise invalid(
                f"The credit note total ({total}) exceeds the amount of the invoice that can "
                f"still be credited ({creditable}).", param="amount")

    @staticmethod
    def _credit_split(inv: dict, p: dict, total: int) -> tuple[int, int, int, int, int]:
        """Split the total between pre-payment (reduces what is still owed) and post-payment,
        and check the post-payment part is refunded, credited or settled out of band:
        (pre, post, refund, credit, out of band)."""
        pre_amt = min(total, inv["amount_remaining"]) if inv["status"] in (
            "open", "uncollectible") else 0
        post_amt = total - pre_amt
        refund_amount = p.get("refund_amount", 0)
        credit_amount = p.get("credit_amount", 0)
        oob_amount = p.get("out_of_band_amount", 0)
        refunds_param = p.get("refunds") or []
        if refunds_param:
            refund_amount += sum(r.get("amount_refunded", 0) for r in refunds_param)
        if post_amt and refund_amount + credit_amount + oob_amount != post_amt:
            raise invalid(
                f"The sum of credit amount, refund amount and out of band amount "
                f"({refund_amount + credit_amount + oob_amount}) must equal the credit note "
                f"post-payment amount ({post_amt}).", param="refund_amount")
        if not post_amt and (refund_amount or credit_amount or oob_amount):
            raise invalid("You can only refund or credit amounts that have been paid; this "
                          "credit note only reduces the amount due.", param="refund_amount")
        return pre_amt, post_amt, refund_amount, credit_amount, oob_amount

    def _credit_refunds(self, inv: dict, refund_amount: int) -> list[dict]:
        """Refund ``refund_amount`` from the invoice's charges, oldest payment first."""
        st = self.store
        refunds_out = []
        left = refund_amount
        for ip_id in inv["_payments"]:
            ip = st.get("invoice_payment", ip_id)
            pi = st.get("payment_intent", ip["payment"]["payment_intent"])
            ch = st.get("charge", pi["latest_charge"])
            room = ch["amount"] - ch["amount_refunded"]
            take = min(room, left)
            if take > 0:
                ref = self._refund(ch, take)
                refunds_out.append({"amount_refunded": take, "refund": ref["id"],
                                    "payment_record_refund": None, "type": "refund"})
                left -= take
            if left == 0:
                break
        if left:
            raise invalid("The refund amount exceeds what was paid on this invoice.",
                          param="refund_amount")
        return refunds_out

    def void_credit_note(self, cn: dict) -> dict:
        if cn["status"] == "void":
            raise invalid(f"Credit note {cn['id']} is already void.")
        inv = self.get("invoice", cn["invoice"])
        if cn["refunds"]:
            raise invalid("You can't void a credit note that refunded a payment.")
        if cn["pre_payment_amount"] and inv["status"] == "paid" and inv["amount_paid"] < (
                inv["total"]):
            raise invalid("You can't void this credit note: the invoice it reduced is now "
                          "paid.")
        before = self.render(inv)
        cn["status"] = "void"
        cn["voided_at"] = self.now()
        inv["pre_payment_credit_notes_amount"] -= cn["pre_payment_amount"]
        inv["post_payment_credit_notes_amount"] -= cn["post_payment_amount"]
        if cn["_credit_amount"]:
            cust = self.store.get("customer", inv["customer"])
            if cust:
                cb = self.render(cust)
                cust["balance"] += cn["_credit_amount"]
                self.emit_update("customer.updated", cust, cb)
        self._recalc_amounts(inv)
        self.emit("credit_note.voided", cn)
        self.emit_update("invoice.updated", inv, before)
        return cn
