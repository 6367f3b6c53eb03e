"""Storing deals from Pipedrive, a page at a time, with the change records they make.

A page is stored deal by deal, each whole or not at all (app.intake.problems):
first every deal is read into a detached copy (no database work), which decides
the batched calls for products, installments and unknown contacts; then each
deal is written, derived (app.intake.snapshots) and, when its state changed,
recorded as a DealChange.
"""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.intake.contacts import fetch_contacts
from app.intake.fetching import chunks, fetch_installments, fetch_products
from app.intake.mapping import FieldResolver
from app.intake.models import DealChange, PdDeal, PdOrganization, PdPerson, SyncRun
from app.intake.problems import Problems
from app.intake.readiness import Rules
from app.intake.runs import new_counts
from app.intake.snapshots import (
    apply_deal,
    apply_installments,
    apply_products,
    deal_state,
    diff,
    finish_deal,
)
from app.pipedrive.client import PipedriveClient
from app.types import utcnow


def store_page(
    client: PipedriveClient,
    run: SyncRun,
    items: list[dict],
    rules: Rules,
    resolver: FieldResolver,
    counts: dict,
    *,
    known_contacts: bool,
    source: str = "pull",
    problems: Problems | None = None,
) -> None:
    """Store one page of deals, each whole or not at all: the page is stored in one
    savepoint, and only when that fails again deal by deal, so a deal that cannot be
    stored is set aside with its reason (see Problems) and the page, and the run, go
    on with the others."""
    problems = problems or Problems(run)
    # First read every deal into a detached copy (no database work): which deals can
    # be billed, and which contacts they need, decides the batched calls below.
    read = _read(items, problems)
    counts["deals"] += len(items)
    products, installments = _fetch_lines(
        client, [p.id for _d, p in read if rules.candidate(p)])
    if not known_contacts:
        counts["persons"] += _fetch_new_contacts(client, [p for _d, p in read], problems)

    # Then store each deal whole, or not at all.
    works = [
        (data["id"], lambda data=data: _store_deal(
            data, run, source, rules, resolver, products, installments))
        for data, _probe in read
    ]
    for (deal_id, _work), outcome in zip(
        works, problems.attempt_each("deal", works), strict=True
    ):
        if outcome is not None:
            counts[outcome] += 1
            counts["products"] += len(products.get(deal_id, []))
    problems.resolve_stored()
    db.session.flush()


def _read(items: list[dict], problems: Problems) -> list[tuple[dict, PdDeal]]:
    """Each deal that can be read, as (its data, a detached copy); the others are set
    aside in `problems`."""
    read: list[tuple[dict, PdDeal]] = []
    for data in items:

        def parse(data=data) -> PdDeal:
            probe = PdDeal(id=data["id"])
            apply_deal(probe, data)
            return probe

        probe = problems.check("deal", data["id"], parse)
        if probe is not None:
            read.append((data, probe))
    return read


def _fetch_lines(client: PipedriveClient, wanted: list[int]) -> tuple[dict, dict]:
    """The products of the `wanted` deals, and the installments of those that can have them."""
    products = fetch_products(client, wanted) if wanted else {}
    # Installments exist only on deals with one-time products and no recurring ones.
    splittable = [
        deal_id for deal_id, items in products.items()
        if items and all((i.get("billing_frequency") or "one-time") == "one-time" for i in items)
    ]
    installments = fetch_installments(client, splittable) if splittable else {}
    return products, installments


def _fetch_new_contacts(client: PipedriveClient, deals: list[PdDeal],
                        problems: Problems) -> int:
    """Read the persons and organizations these deals name that the desk does not know."""
    persons = {p.person_id for p in deals if p.person_id}
    orgs = {p.org_id for p in deals if p.org_id}
    have_p = (
        set(db.session.execute(select(PdPerson.id).where(PdPerson.id.in_(persons))).scalars())
        if persons
        else set()
    )
    have_o = (
        set(
            db.session.execute(
                select(PdOrganization.id).where(PdOrganization.id.in_(orgs))
            ).scalars()
        )
        if orgs
        else set()
    )
    return fetch_contacts(client, persons - have_p, orgs - have_o, problems)


def _store_deal(data: dict, run: SyncRun, source: str, rules: Rules, resolver: FieldResolver,
                products: dict, installments: dict) -> str:
    """Write one deal and derive it; returns created, updated or unchanged."""
    deal = db.session.get(PdDeal, data["id"])
    created = deal is None
    before = None if created else deal_state(deal)
    if created:
        deal = PdDeal(id=data["id"])
        db.session.add(deal)
    apply_deal(deal, data)
    if deal.id in products:
        apply_products(deal, products[deal.id])
    if deal.id in installments:
        apply_installments(deal, installments[deal.id])
    finish_deal(deal, rules, resolver)
    after = deal_state(deal)
    deal.synced_at = utcnow()
    if not created and before == after:
        return "unchanged"
    db.session.add(
        DealChange(
            deal_id=deal.id,
            run_id=run.id,
            source=source,
            kind="created" if created else "updated",
            changes={} if created else diff(before, after),
        )
    )
    return "created" if created else "updated"


def refresh_deals(
    client: PipedriveClient,
    run: SyncRun,
    deal_ids: list[int],
    source: str = "webhook",
    problems: Problems | None = None,
) -> dict:
    """Targeted refresh of named deals (webhooks, 'refresh' buttons). A deal that
    cannot be stored is set aside in `problems` (counted as "problems")."""
    problems = problems or Problems(run)
    counts = new_counts()
    rules, resolver = Rules(), FieldResolver()
    for chunk in chunks(deal_ids):
        items = list(
            client.iter_v2("/api/v2/deals", {"ids": chunk, "status": "open,won,lost,deleted"})
        )
        found = {d["id"] for d in items}
        for missing in set(chunk) - found:
            problems.stored.setdefault("deal", set()).add(missing)  # nothing left to store
            deal = db.session.get(PdDeal, missing)
            if deal is not None and not deal.is_deleted:
                deal.is_deleted, deal.status = True, "deleted"
                finish_deal(deal, rules, resolver)
        store_page(
            client,
            run,
            items,
            rules,
            resolver,
            counts,
            known_contacts=False,
            source=source,
            problems=problems,
        )
    if problems.failed:
        counts["problems"] = len(problems.failed)
    return counts
