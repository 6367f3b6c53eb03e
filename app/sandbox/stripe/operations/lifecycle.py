"""Invoice state transitions: finalize, send, void, uncollectible, delete."""

from __future__ import annotations

from .. import money
from ..common import ACCOUNT_ID, DAY
from ..errors import invalid


class LifecycleMixin:
    """Mixed into ``StripeSandbox``: invoice state transitions:
    finalize, send, void, uncollectible, delete."""

    # ---- state transitions
    def finalize(self, inv: dict, p: dict | None = None) -> dict:
        if inv["status"] != "draft":
            raise invalid("This invoice is already finalized, you can't re-finalize a "
                          "non-draft invoice.")
        if inv["total"] > money.MAX_AMOUNT:
            raise invalid(
                f"The invoice total ({inv['total']}) is greater than the maximum amount "
                f"allowed ({money.MAX_AMOUNT}).", code="amount_too_large")
        before = self.render(inv)
        cust = self.get("customer", inv["customer"])
        now = self.now()
        inv["status"] = "open"
        inv["status_transitions"]["finalized_at"] = now
        inv["effective_at"] = now
        inv["number"] = f"{cust['invoice_prefix']}-{cust['next_invoice_sequence']:04d}"
        cust["next_invoice_sequence"] += 1
        if cust["currency"] is None:
            cust["currency"] = inv["currency"]
        token = inv["id"].split("_", 1)[1]
        inv["hosted_invoice_url"] = f"https://invoice.stripe.com/i/{ACCOUNT_ID}/test_{token}"
        inv["invoice_pdf"] = f"https://pay.stripe.com/invoice/{ACCOUNT_ID}/test_{token}/pdf"
        if p and "auto_advance" in p:
            inv["auto_advance"] = p["auto_advance"]
        if inv["collection_method"] == "send_invoice":
            if inv["_days_until_due"] is not None:
                inv["due_date"] = now + inv["_days_until_due"] * DAY
        elif inv["auto_advance"]:
            inv["next_payment_attempt"] = now + 3600
        # customer balance: a credit (negative balance) is applied to the invoice
        balance = cust["balance"]
        inv["starting_balance"] = balance
        total = inv["total"]
        if total <= 0:
            # nothing to collect; a negative total (credit lines) becomes customer credit
            applied = 0
            inv["ending_balance"] = balance + total
        else:
            # a credit (negative balance) reduces what is due; a debt is added to it
            applied = max(balance, -total) if balance < 0 else balance
            inv["ending_balance"] = balance - applied
        inv["_balance_applied"] = applied
        if balance != inv["ending_balance"]:
            cb = self.render(cust)
            cust["balance"] = inv["ending_balance"]
            self.emit_update("customer.updated", cust, cb)
        inv["webhooks_delivered_at"] = now
        self.recalc(inv)
        self.emit("invoice.finalized", inv)
        minimum = money.MINIMUM_CHARGE.get(inv["currency"], 0)
        if 0 < inv["amount_due"] < minimum:
            # Stripe: below the minimum charge amount, the invoice is marked paid and the
            # amount due is added to the customer's balance for the next invoice.
            cb = self.render(cust)
            cust["balance"] += inv["amount_due"]
            inv["ending_balance"] = cust["balance"]
            inv["_balance_applied"] -= inv["amount_due"]
            self._recalc_amounts(inv)
            self.emit_update("customer.updated", cust, cb)
        if inv["amount_due"] == 0:
            self._mark_paid(inv)
            self.emit("invoice.paid", inv)
        self.emit_update("invoice.updated", inv, before)
        return inv

    def send(self, inv: dict) -> dict:
        if inv["status"] == "draft":
            raise invalid("You can't send a draft invoice. Finalize the invoice first.")
        if inv["status"] == "void":
            raise invalid("You can't send a void invoice.")
        if inv["collection_method"] != "send_invoice":
            raise invalid("You can only manually send an invoice if its collection method is "
                          "'send_invoice'.")
        # Sent to the customer's address; one given to the customer after finalization counts.
        cust = self.store.get("customer", inv["customer"]) or {}
        if not (inv["customer_email"] or cust.get("email")):
            raise invalid("This invoice cannot be sent because the customer does not have an "
                          "email address.", code="email_invalid")
        self.emit("invoice.sent", inv)
        return inv

    def void(self, inv: dict) -> dict:
        if inv["status"] == "draft":
            raise invalid("You can't void a draft invoice. Delete the draft instead.")
        if inv["status"] not in ("open", "uncollectible"):
            raise invalid(f"You can only void open or uncollectible invoices; this invoice is "
                          f"{inv['status']}.")
        if inv["amount_paid"] > 0:
            raise invalid("You can't void an invoice that has been partially paid. Use a "
                          "credit note instead.")
        before = self.render(inv)
        inv["status"] = "void"
        inv["status_transitions"]["voided_at"] = self.now()
        inv["next_payment_attempt"] = None
        self._recalc_amounts(inv)
        self._restore_balance(inv)
        self.emit("invoice.voided", inv)
        self.emit_update("invoice.updated", inv, before)
        return inv

    def _restore_balance(self, inv: dict) -> None:
        if inv["_balance_applied"]:
            cust = self.store.get("customer", inv["customer"])
            if cust:
                cb = self.render(cust)
                cust["balance"] += inv["_balance_applied"]
                self.emit_update("customer.updated", cust, cb)

    def mark_uncollectible(self, inv: dict) -> dict:
        if inv["status"] != "open":
            raise invalid(f"You can only mark open invoices as uncollectible; this invoice is "
                          f"{inv['status']}.")
        before = self.render(inv)
        inv["status"] = "uncollectible"
        inv["status_transitions"]["marked_uncollectible_at"] = self.now()
        inv["next_payment_attempt"] = None
        self.emit("invoice.marked_uncollectible", inv)
        self.emit_update("invoice.updated", inv, before)
        return inv

    def delete_invoice(self, inv: dict) -> dict:
        if inv["status"] != "draft":
            raise invalid("You can only delete draft invoices. Void finalized invoices "
                          "instead.")
        # The event renders the invoice with its lines: emit it before they are gone.
        self.emit("invoice.deleted", inv)
        for iid in inv["_items"]:
            self.store.delete("invoiceitem", iid)
        self.store.delete("invoice", inv["id"])
        return {"id": inv["id"], "object": "invoice", "deleted": True}

    def delete_invoiceitem(self, item: dict) -> dict:
        if item["invoice"]:
            inv = self.store.get("invoice", item["invoice"])
            self._require_draft(inv, "remove invoice items from")
            before = self.render(inv)
            inv["_items"].remove(item["id"])
            self.store.delete("invoiceitem", item["id"])
            self.recalc(inv)
            self.emit_update("invoice.updated", inv, before)
        else:
            self.store.delete("invoiceitem", item["id"])
        self.emit("invoiceitem.deleted", item)
        return {"id": item["id"], "object": "invoiceitem", "deleted": True}

    def _mark_paid(self, inv: dict) -> None:
        inv["status"] = "paid"
        inv["status_transitions"]["paid_at"] = self.now()
        inv["next_payment_attempt"] = None
        self._recalc_amounts(inv)
