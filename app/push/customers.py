"""Which Stripe customer an invoice is billed to: one per billing contact.

A billing contact is the Pipedrive organization (or, without one, the person)
together with the billing email: ``org:501:email:ap@acme.example``. Two billing
emails of one organization are two Stripe customers, each keeping its own
email; pushing the same contact again reuses its customer. Every customer the
desk makes carries metadata naming the organization, the person and the
billing email (``desk_billing_email``), so it is found again even when the
desk's own record is lost.

The order, as finance expects it:
1. the customer the desk linked to this contact before (Stripe's search lags
   up to a minute, so the desk's own record comes first);
2. the customer id stored on the Pipedrive organization (or person), if that
   customer has this billing email or none yet;
3. a customer whose metadata names the organization and this billing email
   (search);
4. a customer with the billing email that names no other organization (list:
   read-after-write);
5. a new customer, with metadata naming the organization, person and email.

The desk never overwrites a customer's email: the email is part of the
contact, so a different address is a different customer. Name, address and
tax id of the contact's own customer are updated only when the approved
bill-to changed them since they were last sent (a digest is kept), and every
such update is written to the audit log (``stripe_customer.updated``). Giving
a customer an address it did not have is an explicit, audited step of its own
(app.push.recovery: "set the billing email and send").

A link row is claimed (inserted, unique per contact) before 3-5 run, so two
pushes for one contact never both create a customer; creating uses an
idempotency key derived from the contact, so a retry after a lost answer
replays instead of making a second one.
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
from app.push.commits import commit_step
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


def billing_email(invoice: Invoice) -> str:
    """The billing email as the desk compares it: trimmed, lower case ("" when none)."""
    return (invoice.billing_email or "").strip().lower()


def party(invoice: Invoice) -> str:
    """The billing contact: organization (or person) and billing email."""
    email = billing_email(invoice)
    if invoice.org_id:
        base = f"org:{invoice.org_id}"
    elif invoice.person_id:
        base = f"person:{invoice.person_id}"
    elif email:
        return f"email:{email}"
    else:
        return f"invoice:{invoice.id}"
    return f"{base}:email:{email}" if email else base


def same_contact(customer, invoice: Invoice) -> bool:
    """Whether a Stripe customer can stand for this invoice's billing contact: it has
    the billing email (or no email at all), and names no other organization."""
    meta = customer.metadata.to_dict() if getattr(customer, "metadata", None) else {}
    org = meta.get("pipedrive_org_id")
    if org and invoice.org_id and org != str(invoice.org_id):
        return False
    theirs = (customer.email or "").strip().lower()
    return theirs in ("", billing_email(invoice))


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
        "desk_billing_email": billing_email(invoice),
        "vat_id": invoice.vat_id or "",
        "source": "billing-desk",
    }
    params: dict = {
        "name": invoice.customer_name or "",
        # An update never sends the email: the email is what the customer was chosen by.
        "email": "" if for_update else (invoice.billing_email or "").strip(),
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
            commit_step()
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
    commit_step()
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


def _pick_by_metadata(customers, invoice: Invoice):
    """Among customers whose metadata names the organization (or person), the one of
    this billing email: named in the desk's metadata, or else its own email."""
    email = billing_email(invoice)
    for cus in customers:
        meta = cus.metadata.to_dict() if cus.metadata else {}
        if not invoice.org_id and meta.get("pipedrive_org_id"):
            continue
        marked = meta.get("desk_billing_email")
        if marked is not None:
            if marked == email:
                return cus
        elif (cus.email or "").strip().lower() == email:
            return cus
    return None


def _update(calls: Calls, invoice: Invoice, customer_id: str, *, fill_email: bool = False):
    """Send the approved bill-to (name, address, tax id) to the contact's customer;
    audited. `fill_email`: the customer has no email yet and gets the billing email."""
    params = customer_params(invoice, for_update=True)
    suffix = ""
    if fill_email and billing_email(invoice):
        params["email"] = invoice.billing_email.strip()
        suffix = ":email"
    key = f"desk:{invoice.id}:v{invoice.approved_version}:customer_update:{customer_id}{suffix}"
    result = calls.update_customer(customer_id, params, key)
    record("stripe_customer.updated", "stripe_customer", customer_id, None,
           {"invoice_id": invoice.id, "party": party(invoice),
            "fields": sorted(k for k in params if k != "metadata"),
            **({"email": params["email"]} if "email" in params else {})})
    return result


def resolve_customer(calls: Calls, invoice: Invoice, job_id: int) -> Resolved:
    """Find or create the contact's customer; leaves the link row filled in (the caller
    commits)."""
    now = utcnow()
    digest = fields_hash(invoice)
    key = party(invoice)
    contact = _contact(invoice)
    in_pipedrive = stored_in_pipedrive(invoice)
    # The organization's field names one customer: written back only while it is empty.
    write_back = contact if in_pipedrive is None else None
    link = _link(key)

    if link and link.stripe_customer_id:
        if link.fields_hash == digest:
            return Resolved(link.stripe_customer_id, "link", write_back)
        try:
            _update(calls, invoice, link.stripe_customer_id)
        except StripeGatewayError as exc:
            if exc.code != "resource_missing":
                raise
            # Deleted in Stripe: forget it and look again below.
            link.stripe_customer_id = None
            link.fields_hash = None
            commit_step()
        else:
            _remember(link, link.stripe_customer_id, digest, link.source or "link", now)
            return Resolved(link.stripe_customer_id, "link", write_back)

    if in_pipedrive:
        stored = _existing(calls, in_pipedrive)
        if stored is not None and same_contact(stored, invoice):
            _update(calls, invoice, in_pipedrive, fill_email=not stored.email)
            link = link or _claim(invoice, job_id, now)
            _remember(link, in_pipedrive, digest, "pipedrive", now)
            return Resolved(in_pipedrive, "pipedrive", None)

    link = _claim(invoice, job_id, now)
    if link.stripe_customer_id:  # another push linked it while we looked
        return resolve_customer(calls, invoice, job_id)

    found, source = _search(calls, invoice)
    if found is not None:
        _update(calls, invoice, found)
    else:
        params = customer_params(invoice, for_update=False)
        create_key = f"desk:customer:{key}:{digest[:16]}"
        found, source = calls.create_customer(params, create_key).id, "created"
    _remember(link, found, digest, source, now)
    record("stripe_customer.linked", "stripe_customer", found, None,
           {"party": key, "source": source, "invoice_id": invoice.id})
    return Resolved(found, source, write_back)


def _search(calls: Calls, invoice: Invoice) -> tuple[str | None, str | None]:
    """A customer Stripe has for this contact, and how it was found: by the desk's
    metadata (the Pipedrive organization or person), then by billing email."""
    if invoice.org_id or invoice.person_id:
        field = "pipedrive_org_id" if invoice.org_id else "pipedrive_person_id"
        value = invoice.org_id or invoice.person_id
        result = calls.search_customers(f"metadata['{field}']:'{value}'")
        cus = _pick_by_metadata(result.data, invoice)
        if cus is not None:
            return cus.id, "metadata"
    if invoice.billing_email:
        cus = _pick_by_email(calls.customers_by_email(invoice.billing_email).data, invoice)
        if cus is not None:
            return cus.id, "email"
    return None, None


def _existing(calls: Calls, customer_id: str):
    """The customer, or None when Stripe has no such customer (any more)."""
    try:
        customer = calls.retrieve_customer(customer_id)
    except StripeGatewayError as exc:
        if exc.code != "resource_missing":
            raise
        return None
    return None if getattr(customer, "deleted", False) else customer


def _remember(link: StripeCustomerLink, customer_id: str, digest: str, source: str,
              now: dt.datetime) -> None:
    link.stripe_customer_id = customer_id
    link.fields_hash = digest
    link.source = source
    link.claimed_by_job_id = None
    link.claimed_until = None
    link.updated_at = now
