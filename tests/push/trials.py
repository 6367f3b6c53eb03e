"""Randomized fault trials: push an invoice while something breaks at one step, resume,
and check that Stripe ends up with exactly one invoice (approved lines and totals) and
exactly one customer per organization. Used by the suite (200) and the bench (1,000).

Redo trials (issue 15): the finalize answer is lost and finalize and the events pull
fail afterwards; then finance does what people do with a failed push, in random order:
edit, approve and push again, retry, check in Stripe, void or adopt (one asks, another
confirms), void and draft again, pull the events; and now and then an edit as the desk
allowed it before the fix, leaving an earlier version's invoice finalized in Stripe.
After every move: at most one open or paid Stripe invoice per desk invoice and per deal.
Suite: a few dozen; bench: 1,000.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from app.extensions import db
from app.invoices.totals import for_invoice
from app.push.models import LEASE, StripeTaxRate
from app.push.queueing import enqueue_push
from app.push.stripe_calls import push_gateway
from app.push.worker import work_push_queue
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

    _, results = enqueue_push([iid], None)
    db.session.commit()
    assert results[0].ok, results[0].message
    now = dt.datetime.now(dt.UTC)
    for _round in range(8):
        try:
            work_push_queue(hook=hook, now=now, gateway=gateway)
        except Crash:
            db.session.rollback()  # the process died: what it did not commit is gone
        if invoice(iid).status in ("pushed", "push_failed"):
            break
        stats.resumes += 1
        now += LEASE + dt.timedelta(minutes=10)  # past any lease or retry delay
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
    gateway = push_gateway()  # one worker's gateway, as in the scheduler
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


# -- redo trials (issue 15, defect 1) ----------------------------------------------------

FINALIZE = STEP_PATHS["finalize"]
EVENTS = r"^/v1/events"
MOVES = ("edit", "edit", "retry", "read_back", "decide", "decide", "events", "void_redraft",
         "edit_before_fix", "edit_before_fix")
LIVE_IN_STRIPE = ("open", "paid")


@dataclass
class RedoStats:
    trials: int = 0
    moves: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    lost_then_failed: int = 0  # trials whose push ended "push failed" although finalized
    duplicates: list = field(default_factory=list)  # (trial, deal, Stripe ids) found


def live_for_deal(sandbox, deal_id: int) -> dict[str, list[str]]:
    """Open or paid Stripe invoices of the desk for one deal, by desk invoice id."""
    store = sandbox.sandbox.store
    with store.lock:
        found: dict[str, list[str]] = {}
        for i in store.all("invoice"):
            meta = i.get("metadata") or {}
            if meta.get("pipedrive_deal_id") == str(deal_id) and i["status"] in LIVE_IN_STRIPE:
                found.setdefault(meta.get("desk_invoice_id"), []).append(i["id"])
        return found


def _push_rounds(gateway, iid: int) -> None:
    now = dt.datetime.now(dt.UTC)
    for _round in range(8):
        work_push_queue(now=now, gateway=gateway)
        if invoice(iid).status in ("pushed", "push_failed"):
            return
        now += LEASE + dt.timedelta(minutes=10)


def _finalize_faults(sandbox, rng: random.Random) -> None:
    """The finalize answer lost (mostly), then finalize failing for a while (or for good)."""
    if rng.random() < 0.85:
        sandbox.fault("lose", count=1, path=FINALIZE, method="POST")
    failing = rng.choice([0, 2, 12, 200, 200])
    if failing:
        sandbox.fault(rng.choice(["500", "503"]), count=failing, path=FINALIZE, method="POST")
    if rng.random() < 0.2:  # and sometimes an answer lost earlier in the push too
        sandbox.fault("lose", count=1, path=rng.choice([STEP_PATHS["invoice"],
                                                        STEP_PATHS["lines"]]), method="POST")


def run_redo_trial(sandbox, people, rng: random.Random, n: int, stats: RedoStats,
                   gateway) -> None:
    from app.approvals import workflow
    from app.invoices import editing
    from app.invoices.drafting import recompute
    from app.invoices.models import EDITABLE
    from app.payments.operations import run_payment_sync
    from app.push import recovery
    from tests.push.helpers import approve

    finance, other, approver = people
    sandbox.clear_faults()
    deal = 50_000 + n
    iid = approved_invoice(approver.id, org_id=60_000 + n, person_id=None, lines=_lines(rng),
                           deal_id=deal, email=f"ap@redo{n}.example", name=f"Redo {n}",
                           collection_method=rng.choice(["send_invoice",
                                                         "charge_automatically"]))
    stats.trials += 1
    events_down = rng.random() < 0.7

    def faults_again() -> None:
        sandbox.clear_faults()
        if events_down:
            sandbox.fault("500", count=100_000, path=EVENTS, method="GET")

    faults_again()
    _finalize_faults(sandbox, rng)
    _, results = enqueue_push([iid], None)
    db.session.commit()
    assert results[0].ok, results[0].message
    _push_rounds(gateway, iid)
    faults_again()
    if invoice(iid).status == "push_failed" and live_for_deal(sandbox, deal):
        stats.lost_then_failed += 1

    def check(context: str) -> None:
        live = live_for_deal(sandbox, deal)
        ids = [sid for sids in live.values() for sid in sids]
        if len(ids) > 1:
            stats.duplicates.append((n, deal, context, ids))

    check("first push")
    moves = [rng.choice(MOVES) for _ in range(rng.randint(4, 9))]
    if rng.random() < 0.3:  # the issue's own sequence: edited right after the failed push
        moves.insert(0, "edit_before_fix")
    for move in moves:
        stats.moves[move] += 1
        inv = invoice(iid)
        try:
            if move in ("edit", "edit_before_fix"):
                line = inv.lines[0]
                if move == "edit":
                    editing.update_line(inv, line, {"unit_price": line.unit_price + 1},
                                        finance, inv.version)
                else:  # the state an edit made before issue 15 left: no refusal asked
                    if inv.status not in EDITABLE or inv.stripe_status not in (None, "draft"):
                        raise recovery.RecoveryRefused("not editable")
                    line.unit_price += 1
                    workflow.content_edited(inv, finance)
                    recompute(inv)
                db.session.commit()
                approve(iid, finance.id, approver.id)
                if rng.random() < 0.5:
                    _finalize_faults(sandbox, rng)
                _, results = enqueue_push([iid], None)
                db.session.commit()
                if not results[0].ok:
                    raise recovery.RecoveryRefused(results[0].message)
                _push_rounds(gateway, iid)
                faults_again()
            elif move == "retry":
                _, results = enqueue_push([iid], None)
                db.session.commit()
                if not results[0].ok:
                    raise recovery.RecoveryRefused(results[0].message)
                _push_rounds(gateway, iid)
            elif move == "read_back":
                if rng.random() < 0.2:  # Stripe unreachable while finance checks
                    sandbox.fault("500", count=12, path=r"^/v1/invoices/in_", method="GET")
                try:
                    recovery.read_back(inv, finance)
                finally:
                    faults_again()
            elif move == "decide":  # as the page leads: check in Stripe, then choose
                if recovery.needs_read_back(inv):
                    recovery.read_back(inv, finance)
                    db.session.commit()
                    inv = invoice(iid)
                choices = recovery.awaiting_choice(inv)
                if not choices:
                    raise recovery.RecoveryRefused("nothing to decide")
                job = choices[0]
                recovery.request_choice(inv, job.id, rng.choice(recovery.CHOICES), finance)
                db.session.commit()
                recovery.confirm_choice(invoice(iid), job.id, other)
            elif move == "events":
                run_payment_sync()
            elif move == "void_redraft":
                if "void_redraft" not in recovery.options(inv):
                    raise recovery.RecoveryRefused("nothing to void")
                new = recovery.void_and_redraft(inv, finance)
                db.session.commit()
                iid = new.id
                approve(iid, finance.id, approver.id)
            db.session.commit()
        except (editing.EditRefused, recovery.RecoveryRefused, AssertionError) as exc:
            db.session.rollback()
            stats.refused[move] += 1
            if isinstance(exc, AssertionError):
                raise
        check(move)
    sandbox.clear_faults()


def run_redo_trials(sandbox, people, count: int, seed: int) -> RedoStats:
    rng = random.Random(seed)
    stats = RedoStats()
    gateway = push_gateway()
    for n in range(count):
        run_redo_trial(sandbox, people, rng, n, stats, gateway)
    return stats
