"""Which Stripe customer an invoice is billed to: found or made once per organization.

The order, as finance expects it:
1. the customer id stored on the Pipedrive organization (or person);
2. the customer the desk linked to that organization before (Stripe's search
   lags up to a minute, so the desk's own record comes before it);
3. a customer whose metadata names the organization (search);
4. a customer with the billing email (list: read-after-write);
5. a new customer, with metadata naming the organization and the person.

A link row is claimed (inserted, unique per organization) before 3-5 run, so
two pushes for one organization never both create a customer; creating uses an
idempotency key derived from the organization, so a retry after a lost answer
replays instead of making a second one. Name, email, address and tax id are
sent again only when they changed since they were last sent (a digest is kept).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from app.audit.operations import record
from app.extensions import db
from app.intake.models import PdOrganization, PdPerson
from app.invoices.models import Invoice
from app.push.models import StripeCustomerLink
from app.push.stripe_calls import Calls
from app.stripe_api.client import StripeGatewayError
from app.types import utcnow
from app.writeback.mapping import CONTACT_TARGETS, known_field, resolve

CLAIM_SECONDS = 120  # longer than Stripe's search lag: a successor's search sees the customer


class Deferred(Exception):
    """Another push is finding or creating this organization's customer: try again shortly."""


@dataclass
class Resolved:
    customer_id: str
    source: str  # link, pipedrive, metadata, email, created
    contact: tuple[str, int] | None  # ("organization", id) whose Pipedrive field to set


def party(invoice: Invoice) -> str:
    if invoice.org_id:
        return f"org:{invoice.org_id}"
    if invoice.person_id:
        return f"person:{invoice.person_id}"
    if invoice.billing_email:
        return f"email:{invoice.billing_email.strip().lower()}"
    return f"invoice:{invoice.id}"


def _contact(invoice: Invoice) -> tuple[str, int] | None:
    if invoice.org_id:
        return ("organization", invoice.org_id)
    if invoice.person_id:
        return ("person", invoice.person_id)
    return None


ADDRESS_KEYS = ("line1", "line2", "postal_code", "city", "state", "country")


def customer_params(invoice: Invoice, *, for_update: bool) -> dict:
    """Name, email, address, tax id and the Pipedrive ids, as Stripe takes them.

    Empty values are left out (Stripe refuses "" for most of them), except in
    metadata, where an update's "" removes a key the desk set before.
    """
    address = {k: str((invoice.address or {}).get(k) or "") for k in ADDRESS_KEYS}
    address = {k: v for k, v in address.items() if v}
    metadata = {
        "pipedrive_org_id": str(invoice.org_id or ""),
        "pipedrive_person_id": str(invoice.person_id or ""),
        "vat_id": invoice.vat_id or "",
        "source": "billing-desk",
    }
    params: dict = {
        "name": invoice.customer_name or "",
        "email": invoice.billing_email or "",
        "address": address,
        "metadata": metadata,
    }
    params = {k: v for k, v in params.items() if v}
    if not for_update:
        params["metadata"] = {k: v for k, v in metadata.items() if v}
    return params


def fields_hash(invoice: Invoice) -> str:
    body = json.dumps(customer_params(invoice, for_update=True), sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def stored_in_pipedrive(invoice: Invoice) -> str | None:
    """The Stripe customer id on the organization (or person) snapshot, by field name."""
    for entity, model, entity_id in (
        ("organization", PdOrganization, invoice.org_id),
        ("person", PdPerson, invoice.person_id),
    ):
        if not entity_id:
            continue
        target = resolve(CONTACT_TARGETS[entity])
        if target is None:
            continue
        field = known_field(target.entity, target.name)
        snapshot = db.session.get(model, entity_id)
        if field is None or snapshot is None:
            continue
        value = (snapshot.custom_fields or {}).get(field.field_code)
        if isinstance(value, str) and value.startswith("cus_"):
            return value
    return None


def _link(key: str) -> StripeCustomerLink | None:
    return db.session.execute(
        select(StripeCustomerLink).where(StripeCustomerLink.party == key)
    ).scalar_one_or_none()


def _claim(invoice: Invoice, job_id: int, now: dt.datetime) -> StripeCustomerLink:
    """Take the organization's link row for this push, or raise Deferred."""
    key = party(invoice)
    until = now + dt.timedelta(seconds=CLAIM_SECONDS)
    link = _link(key)
    if link is None:
        link = StripeCustomerLink(party=key, org_id=invoice.org_id, person_id=invoice.person_id,
                                  claimed_by_job_id=job_id, claimed_until=until)
        try:
            with db.session.begin_nested():
                db.session.add(link)
        except IntegrityError:
            link = _link(key)
            if link is None:  # pragma: no cover - the other insert rolled back: next run
                raise Deferred() from None
        else:
            db.session.commit()
            return link
    if link.stripe_customer_id:
        return link
    # Conditional update: of two pushes whose claims expired, exactly one wins.
    won = db.session.execute(
        update(StripeCustomerLink)
        .where(
            StripeCustomerLink.id == link.id,
            StripeCustomerLink.stripe_customer_id.is_(None),
            or_(
                StripeCustomerLink.claimed_by_job_id.is_(None),
                StripeCustomerLink.claimed_by_job_id == job_id,
                StripeCustomerLink.claimed_until < now,
            ),
        )
        .values(claimed_by_job_id=job_id, claimed_until=until)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    db.session.refresh(link)
    if link.stripe_customer_id:
        return link
    if not won:
        raise Deferred()
    return link


def _pick_by_email(customers, invoice: Invoice):
    """A customer with the billing email, unless its metadata names another organization."""
    fallback = None
    for cus in customers:
        meta = cus.metadata.to_dict() if cus.metadata else {}
        org = meta.get("pipedrive_org_id")
        if invoice.org_id and org == str(invoice.org_id):
            return cus
        if not org and fallback is None:
            fallback = cus
    return fallback


def _update(calls: Calls, invoice: Invoice, customer_id: str):
    key = f"desk:{invoice.id}:v{invoice.approved_version}:customer_update:{customer_id}"
    return calls.update_customer(customer_id, customer_params(invoice, for_update=True), key)


def resolve_customer(calls: Calls, invoice: Invoice, job_id: int) -> Resolved:
    """Find or create the customer; leaves the link row filled in (the caller commits)."""
    now = utcnow()
    digest = fields_hash(invoice)
    key = party(invoice)
    contact = _contact(invoice)
    in_pipedrive = stored_in_pipedrive(invoice)
    link = _link(key)

    if link and link.stripe_customer_id and in_pipedrive in (None, link.stripe_customer_id):
        if link.fields_hash != digest:
            try:
                _update(calls, invoice, link.stripe_customer_id)
            except StripeGatewayError as exc:
                if exc.code != "resource_missing":
                    raise
                # Deleted in Stripe: forget it and look again below.
                link.stripe_customer_id = None
                link.fields_hash = None
                db.session.commit()
            else:
                _remember(link, link.stripe_customer_id, digest, link.source or "link", now)
                return Resolved(link.stripe_customer_id, "link", contact)
        else:
            return Resolved(link.stripe_customer_id, "link", contact)

    if in_pipedrive:
        try:
            _update(calls, invoice, in_pipedrive)
        except StripeGatewayError as exc:
            if exc.code != "resource_missing":
                raise
        else:
            link = link or _claim(invoice, job_id, now)
            _remember(link, in_pipedrive, digest, "pipedrive", now)
            return Resolved(in_pipedrive, "pipedrive", contact)

    link = _claim(invoice, job_id, now)
    if link.stripe_customer_id:  # another push linked it while we looked
        return resolve_customer(calls, invoice, job_id)

    found, source = None, None
    if invoice.org_id or invoice.person_id:
        field = "pipedrive_org_id" if invoice.org_id else "pipedrive_person_id"
        value = invoice.org_id or invoice.person_id
        result = calls.search_customers(f"metadata['{field}']:'{value}'")
        for cus in result.data:
            meta = cus.metadata.to_dict() if cus.metadata else {}
            if invoice.org_id or not meta.get("pipedrive_org_id"):
                found, source = cus.id, "metadata"
                break
    if found is None and invoice.billing_email:
        cus = _pick_by_email(calls.customers_by_email(invoice.billing_email).data, invoice)
        if cus is not None:
            found, source = cus.id, "email"
    if found is not None:
        _update(calls, invoice, found)
    else:
        params = customer_params(invoice, for_update=False)
        create_key = f"desk:customer:{key}:{digest[:16]}"
        found, source = calls.create_customer(params, create_key).id, "created"
    _remember(link, found, digest, source, now)
    record("stripe_customer.linked", "stripe_customer", found, None,
           {"party": key, "source": source, "invoice_id": invoice.id})
    return Resolved(found, source, contact)


def _remember(link: StripeCustomerLink, customer_id: str, digest: str, source: str,
              now: dt.datetime) -> None:
    link.stripe_customer_id = customer_id
    link.fields_hash = digest
    link.source = source
    link.claimed_by_job_id = None
    link.claimed_until = None
    link.updated_at = now
