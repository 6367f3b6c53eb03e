"""The steps of a push: what each one asks Stripe, and what it keeps of the answer.

`PushRun` is one run of one job. Each step method sends its Stripe call (with the
step's idempotency key) and writes the result on the step, the job and the
invoice; it never commits: app.push.runner records the step and commits it
before the next one is sent.
"""

from __future__ import annotations

import datetime as dt

from app.invoices.models import Invoice
from app.invoices.plan import ADD_LINES_CHUNK, build_plan
from app.invoices.totals import Totals
from app.money import format_money, from_minor
from app.push.customers import resolve_customer
from app.push.models import PushJob, PushStep
from app.push.stripe_calls import Calls
from app.push.taxes import cached, ensure_tax_rates
from app.stripe_api.client import StripeGatewayError
from app.writeback.operations import enqueue_contact_customer


class PushStopped(Exception):
    """The push must not go on (e.g. Stripe's totals differ); plain words and a hint."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class PushRun:
    """One run of one job: the job, its invoice, the calls, the approved totals."""

    def __init__(self, job: PushJob, invoice: Invoice, calls: Calls, totals: Totals):
        self.job = job
        self.invoice = invoice
        self.calls = calls
        self.totals = totals
        self.last_stripe = None  # Stripe's invoice as the last step of this run returned it
        self._plan = None

    def result_of(self, name: str) -> dict:
        step = self.job.step_named(name)
        return (step.result or {}) if step else {}

    @property
    def customer_id(self) -> str:
        return self.job.stripe_customer_id

    @property
    def stripe_invoice_id(self) -> str:
        return self.job.stripe_invoice_id

    def tax_rate_ids(self) -> dict[str, str]:
        return dict(self.result_of("tax_rates").get("ids") or cached())

    def plan(self):
        key = (self.customer_id, self.stripe_invoice_id)
        if self._plan is not None and self._plan[0] == key:
            return self._plan[1]
        calls, _ = build_plan(self.invoice, customer=self.customer_id,
                              tax_rate_ids=self.tax_rate_ids(),
                              stripe_invoice=self.stripe_invoice_id or "<invoice>",
                              totals=self.totals)
        self._plan = (key, calls)
        return calls

    # -- the steps
    def customer(self, step: PushStep) -> None:
        resolved = resolve_customer(self.calls, self.invoice, self.job.id)
        self.job.stripe_customer_id = resolved.customer_id
        self.invoice.stripe_customer_id = resolved.customer_id
        step.stripe_id = resolved.customer_id
        step.result = {"source": resolved.source}
        if resolved.contact:
            enqueue_contact_customer(*resolved.contact, resolved.customer_id,
                                     invoice_id=self.invoice.id, deal_id=self.invoice.deal_id)

    def tax_rates(self, step: PushStep) -> None:
        step.result = {"ids": ensure_tax_rates(self.calls, self.invoice, self.totals)}

    def create_invoice(self, step: PushStep) -> None:
        call = next(c for c in self.plan() if c.step == "invoice")
        created = self._earlier_draft(call.params) if step.attempts > 1 else None
        if created is None:
            created = self.calls.create_invoice(call.params, step.idempotency_key)
        step.stripe_id = created.id
        self.job.stripe_invoice_id = created.id
        self.invoice.stripe_invoice_id = created.id
        self.invoice.stripe_status = created.status

    def _earlier_draft(self, params: dict):
        """A create sent before may have arrived although its answer did not. Stripe
        replays it by its idempotency key only for 24 hours; a push resumed later would
        make a second draft. So a resent create first looks for the draft this push
        made: the customer's draft naming this desk invoice and approved version."""
        want = params["metadata"]
        for draft in self.calls.draft_invoices(params["customer"]):
            meta = draft.metadata.to_dict() if draft.metadata else {}
            if all(meta.get(k) == want[k] for k in ("desk_invoice_id", "desk_invoice_version")):
                return draft
        return None

    def add_lines(self, step: PushStep) -> None:
        index = int(step.name.split(":")[1])
        call = [c for c in self.plan() if c.step == "lines"][index]
        result = self._earlier_lines(index, len(call.params["lines"])) \
            if step.attempts > 1 else None
        if result is None:
            result = self.calls.add_lines(self.stripe_invoice_id, call.params,
                                          step.idempotency_key)
        step.stripe_id = result.id
        step.result = stripe_amounts(result)

    def _earlier_lines(self, index: int, size: int):
        """Like `_earlier_draft`, for lines sent again (Stripe may have forgotten the
        key): the draft invoice is the desk's alone, so its line count tells whether
        this chunk arrived. Returns the invoice when it did, None when it did not."""
        before = index * ADD_LINES_CHUNK
        count = sum(1 for _ in self.calls.invoice_lines(self.stripe_invoice_id))
        if count == before:
            return None
        if count == before + size:
            return self.calls.retrieve_invoice(self.stripe_invoice_id)
        raise PushStopped(
            f"The draft {self.stripe_invoice_id} in Stripe has {count} lines where "
            f"{before} or {before + size} were expected. The push stopped before finalizing: "
            "nothing was sent to the customer.",
            "Someone may have edited the draft in Stripe: remove the lines added there and "
            "retry, or edit the invoice and have it approved again (the push of the new "
            "version deletes this draft and makes a new one).",
        )

    def check(self, step: PushStep) -> None:
        last = self.job.steps[[s.name for s in self.job.steps].index("check") - 1]
        amounts = last.result if last.name.startswith("lines:") and last.result else None
        if not amounts:
            amounts = stripe_amounts(self.calls.retrieve_invoice(self.stripe_invoice_id))
        approved = {"subtotal": self.totals.subtotal, "total": self.totals.total,
                    "amount_due": self.totals.amount_due}
        step.result = {"stripe": amounts, "approved": approved}
        differ = [k for k in approved if amounts.get(k) != approved[k]]
        if differ:
            cur = self.invoice.currency

            def money(minor):
                return format_money(from_minor(int(minor), cur), cur)

            parts = [f"Stripe's {k.replace('_', ' ')} is {money(amounts.get(k) or 0)}, the "
                     f"approved one {money(approved[k])}" for k in differ]
            raise PushStopped(
                "Stripe's totals differ from the approved ones: " + "; ".join(parts) + ". "
                f"The push stopped before finalizing: the draft {self.stripe_invoice_id} in "
                "Stripe was not finalized and nothing was sent to the customer.",
                "Check the lines (rounding of quantities and unit prices, discounts), correct "
                "the invoice and have it approved again; the old draft is deleted then.",
            )

    def finalize(self, step: PushStep) -> None:
        call = next(c for c in self.plan() if c.step == "finalize")
        try:
            result = self.calls.finalize(self.stripe_invoice_id, call.params,
                                         step.idempotency_key)
        except StripeGatewayError as exc:
            # Finalized already (e.g. the key expired after a long outage): take it as done.
            if exc.retryable:
                raise
            result = self.calls.retrieve_invoice(self.stripe_invoice_id)
            if result.status == "draft":
                raise
        step.stripe_id = result.id
        self.record_stripe(result)

    def send(self, step: PushStep) -> None:
        result = self.calls.send(self.stripe_invoice_id, step.idempotency_key)
        step.stripe_id = result.id
        self.record_stripe(result)

    def record_stripe(self, result) -> None:
        self.last_stripe = result
        self.job.stripe_status = result.status
        inv = self.invoice
        inv.stripe_number = result.number
        inv.hosted_invoice_url = result.hosted_invoice_url
        inv.invoice_pdf = result.invoice_pdf
        inv.stripe_status = result.status
        if result.due_date:
            inv.due_at = dt.datetime.fromtimestamp(int(result.due_date), dt.UTC)
        inv.amount_remaining = from_minor(int(result.amount_remaining), inv.currency)

    def action(self, name: str):
        base = name.split(":")[0]
        return {"customer": self.customer, "tax_rates": self.tax_rates,
                "invoice": self.create_invoice, "lines": self.add_lines, "check": self.check,
                "finalize": self.finalize, "send": self.send}[base]


def stripe_amounts(stripe_invoice) -> dict:
    """Stripe's subtotal, total and amount due of an invoice, in minor units."""
    return {"subtotal": int(stripe_invoice.subtotal), "total": int(stripe_invoice.total),
            "amount_due": int(stripe_invoice.amount_due)}
