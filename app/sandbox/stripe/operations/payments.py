"""Payments, charges and refunds."""

from __future__ import annotations

import secrets

from .. import money
from ..common import ADDRESS_NULL, DAY, DECLINE_TOKENS, metadata_update
from ..errors import StripeError, invalid, param_invalid


class PaymentsMixin:
    """Mixed into ``StripeSandbox``: payments, charges and refunds."""

    # ---- payments
    def pay(self, inv: dict, p: dict) -> dict:
        if inv["status"] == "paid":
            raise invalid("Invoice is already paid.")
        if inv["status"] == "void":
            raise invalid("This invoice is void and can no longer be paid.")
        if inv["status"] == "draft":
            self.finalize(inv)
            if inv["status"] == "paid":
                return inv
        if p.get("paid_out_of_band"):
            if "payment_method" in p or "source" in p:
                raise invalid("You cannot pass `payment_method` when `paid_out_of_band` is "
                              "true.", param="paid_out_of_band")
            before = self.render(inv)
            inv["amount_paid"] = inv["amount_due"]
            self._mark_paid(inv)
            self.emit("invoice.paid", inv)
            self.emit_update("invoice.updated", inv, before)
            return inv
        cust = self.get("customer", inv["customer"])
        pm = (p.get("payment_method") or inv["default_payment_method"]
              or cust["invoice_settings"]["default_payment_method"])
        if not pm:
            raise StripeError("Cannot charge a customer that has no active card",
                              status=402, type="card_error", code="missing", param="card")
        self._check_payment_method(pm, "payment_method")
        amount = inv["amount_remaining"]
        ok = self.charge_invoice(inv, amount, pm)
        if not ok:
            raise StripeError("Your card was declined.", status=402, type="card_error",
                              code="card_declined", decline_code=DECLINE_TOKENS[pm],
                              param="payment_method", keep_changes=True)
        return inv

    def charge_invoice(self, inv: dict, amount: int, pm: str = "pm_card_visa") -> bool:
        """A payment attempt on an open invoice (API /pay, or the customer paying)."""
        if inv["status"] not in ("open", "uncollectible"):
            raise invalid(f"Invoice {inv['id']} is {inv['status']} and cannot be paid.")
        if amount <= 0 or amount > inv["amount_remaining"]:
            raise invalid(f"The payment amount must be between 1 and the amount remaining "
                          f"({inv['amount_remaining']}).", param="amount")
        money.check_amount(amount, inv["currency"], "amount")
        money.check_charge_amount(amount, inv["currency"])
        now = self.now()
        before = self.render(inv)
        failed = pm in DECLINE_TOKENS
        pi = self._new_payment_intent(inv, amount, failed, now)
        ch = self._new_charge(inv, pi, amount, pm, failed, now)
        pi["latest_charge"] = ch["id"]
        inv["attempted"] = True
        inv["attempt_count"] += 1
        self.emit("payment_intent.created", pi)
        if failed:
            return self._payment_failed(inv, pi, ch, pm, now, before)
        return self._payment_succeeded(inv, pi, ch, amount, now, before)

    def _new_payment_intent(self, inv: dict, amount: int, failed: bool, now: int) -> dict:
        st = self.store
        pi_id = st.new_id("pi")
        pi = {
            "id": pi_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": 0 if failed else amount,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": None,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic",
            "client_secret": f"{pi_id}_secret_{secrets.token_hex(12)}",
            "confirmation_method": "automatic",
            "created": now,
            "currency": inv["currency"],
            "customer": inv["customer"],
            "customer_account": None,
            "description": f"Payment for Invoice {inv['number']}",
            "excluded_payment_method_types": None,
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": {},
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": f"pm_{pi_id[3:]}",
            "payment_method_configuration_details": None,
            "payment_method_options": {},
            "payment_method_types": ["card"],
            "processing": None,
            "receipt_email": None,
            "review": None,
            "setup_future_usage": None,
            "shipping": None,
            "source": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "requires_payment_method" if failed else "succeeded",
            "transfer_data": None,
            "transfer_group": None,
            "managed_payments": {"enabled": False},
        }
        st.add("payment_intent", pi)
        return pi

    def _new_charge(self, inv: dict, pi: dict, amount: int, pm: str, failed: bool,
                    now: int) -> dict:
        st = self.store
        pi_id = pi["id"]
        ch_id = st.new_id("ch")
        ch = {
            "id": ch_id,
            "object": "charge",
            "amount": amount,
            "amount_captured": 0 if failed else amount,
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "application_fee_amount": None,
            "balance_transaction": None if failed else st.new_id("txn"),
            "billing_details": {"address": dict(ADDRESS_NULL), "email": None, "name": None,
                                "phone": None, "tax_id": None},
            "calculated_statement_descriptor": "BILLING DESK",
            "captured": not failed,
            "created": now,
            "currency": inv["currency"],
            "customer": inv["customer"],
            "description": pi["description"],
            "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": "card_declined" if failed else None,
            "failure_message": "Your card was declined." if failed else None,
            "fraud_details": {},
            "livemode": False,
            "metadata": {},
            "on_behalf_of": None,
            "outcome": {
                "advice_code": None, "network_advice_code": None, "network_decline_code": None,
                "network_status": "declined_by_network" if failed else "approved_by_network",
                "reason": DECLINE_TOKENS.get(pm),
                "seller_message": "The bank did not return any further details with this "
                "decline." if failed else "Payment complete.",
                "type": "issuer_declined" if failed else "authorized",
            },
            "paid": not failed,
            "payment_intent": pi_id,
            "payment_method": pi["payment_method"],
            "payment_method_details": {"card": card_details(amount, failed),
                                       "type": "card"},
            "receipt_email": None,
            "receipt_number": None,
            "receipt_url": f"https://pay.stripe.com/receipts/payment/test_{ch_id[3:]}",
            "refunded": False,
            "review": None,
            "shipping": None,
            "source": None,
            "source_transfer": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "failed" if failed else "succeeded",
            "transfer_data": None,
            "transfer_group": None,
            "_refunds": [],
        }
        st.add("charge", ch)
        return ch

    def _payment_failed(self, inv: dict, pi: dict, ch: dict, pm: str, now: int,
                        before: dict) -> bool:
        ch_id = ch["id"]
        pi["last_payment_error"] = {
            "charge": ch_id, "code": "card_declined", "decline_code": DECLINE_TOKENS[pm],
            "message": "Your card was declined.", "type": "card_error",
        }
        self.emit("charge.failed", ch)
        self.emit("payment_intent.payment_failed", pi)
        if inv["collection_method"] == "charge_automatically":
            inv["next_payment_attempt"] = now + 3 * DAY
        self.emit("invoice.payment_failed", inv)
        self.emit_update("invoice.updated", inv, before)
        return False

    def _payment_succeeded(self, inv: dict, pi: dict, ch: dict, amount: int, now: int,
                           before: dict) -> bool:
        st = self.store
        pi_id = pi["id"]
        ip = {
            "id": st.new_id("inpay"),
            "object": "invoice_payment",
            "amount_paid": amount,
            "amount_requested": amount,
            "created": now,
            "currency": inv["currency"],
            "invoice": inv["id"],
            "is_default": not inv["_payments"],
            "livemode": False,
            "payment": {"payment_intent": pi_id, "type": "payment_intent"},
            "status": "paid",
            "status_transitions": {"canceled_at": None, "paid_at": now},
        }
        st.add("invoice_payment", ip)
        inv["_payments"].append(ip["id"])
        inv["amount_paid"] += amount
        self.emit("charge.succeeded", ch)
        self.emit("payment_intent.succeeded", pi)
        self._recalc_amounts(inv)
        self.emit("invoice_payment.paid", ip)
        if inv["amount_remaining"] == 0:
            self._mark_paid(inv)
            self.emit("invoice.paid", inv)
            self.emit("invoice.payment_succeeded", inv)
        self.emit_update("invoice.updated", inv, before)
        return True

    # ---- refunds
    def create_refund(self, p: dict) -> dict:
        st = self.store
        if "charge" in p and "payment_intent" in p:
            raise invalid("You may only specify one of these parameters: charge, "
                          "payment_intent.", param="payment_intent")
        if "charge" in p:
            ch = self.get("charge", p["charge"], param="charge")
        elif "payment_intent" in p:
            pi = self.get("payment_intent", p["payment_intent"], param="payment_intent")
            if pi["status"] != "succeeded":
                raise invalid(f"This PaymentIntent ({pi['id']}) does not have a successful "
                              "charge to refund.", param="payment_intent")
            ch = st.get("charge", pi["latest_charge"])
        else:
            raise invalid("One of the following params should be provided for this request: "
                          "payment_intent or charge.", code="parameter_missing")
        if ch["status"] != "succeeded":
            raise invalid(f"Charge {ch['id']} has not succeeded and cannot be refunded.")
        left = ch["amount"] - ch["amount_refunded"]
        if left == 0:
            raise invalid(f"Charge {ch['id']} has already been refunded.",
                          code="charge_already_refunded")
        amount = p.get("amount", left)
        if amount <= 0:
            raise param_invalid("amount", "Refund amount must be positive.",
                                "parameter_invalid_integer")
        if amount > left:
            cur = ch["currency"]
            raise invalid(
                f"Refund amount ({money.format_major(amount, cur)}) is greater than unrefunded "
                f"amount on charge ({money.format_major(left, cur)})", param="amount",
                code="amount_too_large")
        money.check_amount(amount, ch["currency"], "amount")
        return self._refund(ch, amount, p.get("reason"), p.get("metadata"))

    def _refund(self, ch: dict, amount: int, reason=None, metadata=None) -> dict:
        st = self.store
        before = self.render(ch)
        ref = {
            "id": st.new_id("re"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": st.new_id("txn"),
            "charge": ch["id"],
            "created": self.now(),
            "currency": ch["currency"],
            "customer": ch["customer"],
            "customer_account": None,
            "destination_details": {"card": {"type": "refund"}, "type": "card"},
            "metadata": metadata_update({}, metadata),
            "payment_intent": ch["payment_intent"],
            "payment_method": ch["payment_method"],
            "reason": reason,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
        st.add("refund", ref)
        ch["_refunds"].append(ref["id"])
        ch["amount_refunded"] += amount
        ch["refunded"] = ch["amount_refunded"] == ch["amount"]
        self.emit("refund.created", ref)
        self.emit("charge.refunded", ch, {k: v for k, v in before.items()
                                          if k in ("amount_refunded", "refunded", "refunds")})
        return ref


def card_details(amount: int, failed: bool) -> dict:
    return {
        "amount_authorized": None if failed else amount,
        "authorization_code": None if failed else "123456",
        "brand": "visa",
        "checks": {"address_line1_check": None, "address_postal_code_check": None,
                   "cvc_check": "pass"},
        "country": "US",
        "exp_month": 12,
        "exp_year": 2034,
        "extended_authorization": {"status": "disabled"},
        "fingerprint": "SandboxFp4242abcd",
        "funding": "credit",
        "incremental_authorization": {"status": "unavailable"},
        "installments": None,
        "last4": "4242",
        "mandate": None,
        "multicapture": {"status": "unavailable"},
        "network": "visa",
        "network_token": {"used": False},
        "network_transaction_id": None if failed else "123456789012345",
        "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
        "regulated_status": "unregulated",
        "three_d_secure": None,
        "transaction_link_id": None,
        "wallet": None,
    }
