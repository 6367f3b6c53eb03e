"""Persons and organizations: stored by Pipedrive's id, read in batches, re-derived.

A deal's billing email comes from its person or organization (or a mapped
field), so re-reading a contact re-derives the deals that name it.
"""

from __future__ import annotations

from sqlalchemy import or_, select

from app.extensions import db
from app.intake.fetching import PAGE, chunks
from app.intake.mapping import FieldResolver
from app.intake.models import PdDeal, PdOrganization, PdPerson
from app.intake.parsing import id_of, parse_time
from app.intake.problems import Problems
from app.intake.readiness import Rules
from app.intake.snapshots import finish_deal
from app.pipedrive.client import PipedriveClient
from app.types import utcnow


def upsert_person(data: dict) -> PdPerson:
    row = db.session.get(PdPerson, data["id"]) or PdPerson(id=data["id"])
    row.name = data.get("name") or ""
    row.emails = [
        {"value": e.get("value"), "primary": bool(e.get("primary")), "label": e.get("label")}
        for e in (data.get("emails") or [])
        if e.get("value")
    ]
    row.org_id = id_of(data.get("org_id"))
    row.custom_fields = data.get("custom_fields") or {}
    row.update_time = parse_time(data.get("update_time"))
    row.synced_at = utcnow()
    db.session.add(row)
    return row


def upsert_organization(data: dict) -> PdOrganization:
    row = db.session.get(PdOrganization, data["id"]) or PdOrganization(id=data["id"])
    row.name = data.get("name") or ""
    row.address = (
        data.get("address")
        if isinstance(data.get("address"), dict)
        else ({"value": data["address"]} if data.get("address") else None)
    )
    row.custom_fields = data.get("custom_fields") or {}
    row.update_time = parse_time(data.get("update_time"))
    row.synced_at = utcnow()
    db.session.add(row)
    return row


def store(problems: Problems | None, entity: str, data: dict, upsert) -> bool:
    """Upsert one record; with `problems`, a record that fails is set aside alone."""
    if problems is None:
        upsert(data)
        return True
    return problems.attempt(entity, data["id"], lambda: upsert(data)) is not None


def import_contacts(client: PipedriveClient, counts: dict, problems: Problems) -> None:
    """First import: every person and organization, 500 per call."""
    for p in client.iter_v2("/api/v2/persons", limit=PAGE):
        counts["persons"] += store(problems, "person", p, upsert_person)
    for o in client.iter_v2("/api/v2/organizations", limit=PAGE):
        counts["organizations"] += store(problems, "organization", o, upsert_organization)
    db.session.flush()


def fetch_contacts(
    client: PipedriveClient,
    person_ids: set[int],
    org_ids: set[int],
    problems: Problems | None = None,
) -> int:
    """Read the named persons and organizations, 100 per call; returns how many were stored."""
    n = 0
    for chunk in chunks(sorted(person_ids)):
        for p in client.iter_v2("/api/v2/persons", {"ids": chunk}, limit=PAGE):
            n += store(problems, "person", p, upsert_person)
    for chunk in chunks(sorted(org_ids)):
        for o in client.iter_v2("/api/v2/organizations", {"ids": chunk}, limit=PAGE):
            n += store(problems, "organization", o, upsert_organization)
    db.session.flush()
    return n


def refresh_contacts(
    client: PipedriveClient, person_ids=(), org_ids=(), problems: Problems | None = None
) -> None:
    """Re-read persons/organizations (webhooks) and re-derive their deals' billing email."""
    fetch_contacts(client, set(person_ids), set(org_ids), problems)
    rules, resolver = Rules(), FieldResolver()
    q = select(PdDeal)
    conds = []
    if person_ids:
        conds.append(PdDeal.person_id.in_(list(person_ids)))
    if org_ids:
        conds.append(PdDeal.org_id.in_(list(org_ids)))
    if not conds:
        return
    for deal in db.session.execute(q.where(or_(*conds))).scalars():
        finish_deal(deal, rules, resolver)
    db.session.flush()
