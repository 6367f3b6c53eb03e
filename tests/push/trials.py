"""Randomized fault trials: push an invoice while something breaks at one step, resume,
and check that Stripe ends up with exactly one invoice (approved lines and totals) and
exactly one customer per organization. Used by the suite (200) and the bench (1,000).
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from app.extensions import db
from app.invoices.totals import for_invoice
from app.push import operations as ops
from app.push.models import StripeTaxRate
from tests.push.helpers import (
    approved_invoice,
    invoice,
    stripe_customers_for_org,
    stripe_invoices_for,
    stripe_lines,
)

# The Stripe call each step makes (where a sandbox fault is aimed).
STEP_PATHS = {
    "customer": r"^/v1/customers$",
    "tax_rate": r"^/v1/tax_rates$",
    "invoice": r"^/v1/invoices$",
    "lines": r"/add_lines$",
    "finalize": r"/finalize$",
    "send": r"/send$",
}
FAULTS = ("crash_before", "crash_after", "500", "503", "lose", "429", "outage")
TAXES = [(Decimal(0), "none"), (Decimal(19), "exclusive"), (Decimal(7), "inclusive"),
         (Decimal(20), "exclusive"), (Decimal("5.5"), "exclusive"), (Decimal(21), "inclusive")]


class Crash(BaseException):
    """The worker process dies here (not an Exception: nothing may catch it)."""


@dataclass
class TrialStats:
    trials: int = 0
    by_fault: Counter = field(default_factory=Counter)
    by_step: Counter = field(default_factory=Counter)
    resumes: int = 0
    orgs: set = field(default_factory=set)


def _lines(rng: random.Random) -> list:
    out = []
    for i in range(rng.randint(1, 6)):
        rate, behavior = rng.choice(TAXES)
        if rng.random() < 0.05:  # a rate nobody used yet: the push creates it
            rate = Decimal(rng.randint(1, 2500)) / 100
            behavior = rng.choice(["exclusive", "inclusive"])
        qty = rng.choice([Decimal(1), Decimal(rng.randint(1, 20)),
                          Decimal(rng.randint(1, 400)) / 4])
        price = Decimal(rng.randint(100, 250_000)) / 100
        disc = None
        if rng.random() < 0.25:
            disc = rng.choice([("percentage", Decimal(rng.randint(1, 30))),
                               ("amount", Decimal(rng.randint(1, 50)))])
        out.append((f"Item {i}", qty, price, rate, behavior, disc))
    return out


def _possible_steps(inv, known_org: bool) -> list[str]:
    totals = for_invoice(inv)
    cached = {r.key for r in db.session.query(StripeTaxRate)}
    from app.invoices.plan import tax_rate_key, tax_rates_needed

    steps = [] if known_org else ["customer"]
    if any(tax_rate_key(r, b) not in cached for r, b in tax_rates_needed(totals)):
        steps.append("tax_rate")
    steps += ["invoice", "lines", "finalize"]
    if inv.collection_method == "send_invoice":
        steps.append("send")
    return steps


def run_trial(sandbox, approver_id: int, rng: random.Random, n: int, stats: TrialStats,
              gateway=None) -> None:
    known = stats.orgs and rng.random() < 0.3
    org_id = rng.choice(sorted(stats.orgs)) if known else 10_000 + n
    stats.orgs.add(org_id)
    discounts = [("percentage", Decimal(rng.randint(1, 10)))] if rng.random() < 0.2 else []
    iid = approved_invoice(
        approver_id, org_id=org_id, person_id=20_000 + n, lines=_lines(rng),
        discounts=discounts, deal_id=30_000 + n, email=f"ap@org{org_id}.example",
        name=f"Org {org_id}",
        collection_method=rng.choice(["send_invoice", "send_invoice", "charge_automatically"]),
    )
    inv = invoice(iid)
    step = rng.choice(_possible_steps(inv, bool(known)))
    fault = rng.choice(FAULTS)
    stats.trials += 1
    stats.by_fault[fault] += 1
    stats.by_step[step] += 1

    crash_at = None
    if fault.startswith("crash"):
        crash_at = (step, fault.split("_")[1])
    elif fault == "outage":  # more 5xx than the gateway retries: the push must wait
        sandbox.fault("500", count=12, path=STEP_PATHS[step], method="POST")
    else:
        sandbox.fault(fault, count=rng.randint(1, 3), path=STEP_PATHS[step], method="POST")

    def hook(name: str, when: str) -> None:
        nonlocal crash_at
        if crash_at == (name, when):
            crash_at = None
            raise Crash()

    _, results = ops.enqueue_push([iid], None)
    db.session.commit()
    assert results[0].ok, results[0].message
    now = dt.datetime.now(dt.UTC)
    for _round in range(8):
        try:
            ops.work_push_queue(hook=hook, now=now, gateway=gateway)
        except Crash:
            db.session.rollback()  # the process died: what it did not commit is gone
        if invoice(iid).status in ("pushed", "push_failed"):
            break
        stats.resumes += 1
        now += ops.LEASE + dt.timedelta(minutes=10)  # past any lease or retry delay
    sandbox.clear_faults()
    check(sandbox, iid, org_id, context=f"trial {n}: {fault} at {step}")


def check(sandbox, iid: int, org_id: int, context: str = "") -> None:
    inv = invoice(iid)
    assert inv.status == "pushed", (context, inv.status, inv.push_error)
    approved = for_invoice(inv)
    found = stripe_invoices_for(sandbox, iid)
    assert len(found) == 1, (context, [i["id"] for i in found])
    [si] = found
    assert si["id"] == inv.stripe_invoice_id, context
    assert si["status"] in ("open", "paid"), (context, si["status"])
    assert (si["subtotal"], si["total"], si["amount_due"]) == (
        approved.subtotal, approved.total, approved.amount_due), context
    lines = stripe_lines(sandbox, si)
    assert len(lines) == len(approved.push_lines), context
    assert sorted(ln["amount"] for ln in lines) == sorted(
        pl.amount for pl in approved.push_lines), context
    customers = stripe_customers_for_org(sandbox, org_id)
    assert len(customers) == 1, (context, [c["id"] for c in customers])
    assert customers[0]["id"] == si["customer"] == inv.stripe_customer_id, context


def run_trials(sandbox, approver_id: int, count: int, seed: int) -> TrialStats:
    rng = random.Random(seed)
    stats = TrialStats()
    gateway = ops.push_gateway()  # one worker's gateway, as in the scheduler
    for n in range(count):
        run_trial(sandbox, approver_id, rng, n, stats, gateway)
    # Across all trials: one Stripe invoice per desk invoice, one customer per organization.
    store = sandbox.sandbox.store
    with store.lock:
        invoices = store.all("invoice")
        customers = store.all("customer")
    assert len(invoices) == count
    assert len(customers) == len(stats.orgs)
    return stats
