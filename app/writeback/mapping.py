"""Which Pipedrive fields the write-back fills, by name, following the admin's mapping.

A purpose (what the value means) maps to an entity and a field NAME; the key
(Pipedrive's hash) is looked up in the field definitions the desk knows
(`PdField`) and never stored anywhere else. A mapped field Pipedrive does not
have yet is created once and recorded. An admin mapping with an empty field
name switches that purpose off.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from app.intake.models import FieldMapping, PdField
from app.money import plain_decimal, round_major
from app.pipedrive.client import PipedriveClient, PipedriveError


@dataclass(frozen=True)
class Target:
    purpose: str
    entity: str
    name: str
    field_type: str  # the type a missing field is created with


# Demo defaults, until the admin maps them (FieldMapping rows with these purposes).
DEAL_TARGETS: dict[str, Target] = {
    key: Target(f"wb_deal_{key}", "deal", name, ftype)
    for key, name, ftype in (
        ("stripe_customer_id", "Stripe customer id", "varchar"),
        ("stripe_invoice_id", "Stripe invoice id", "varchar"),
        ("invoice_number", "Invoice number", "varchar"),
        ("invoice_status", "Invoice status", "varchar"),
        ("amount_invoiced", "Amount invoiced", "monetary"),
        ("invoice_url", "Invoice URL", "varchar"),
        ("invoice_due_date", "Invoice due date", "date"),
        # Written by the payment sync (app/payments) through the same outbox.
        ("payment_status", "Payment status", "varchar"),
        ("amount_collected", "Amount collected", "monetary"),
        ("amount_outstanding", "Amount outstanding", "monetary"),
        ("last_payment_date", "Last payment date", "date"),
    )
}
CONTACT_TARGETS: dict[str, Target] = {
    "organization": Target("wb_org_stripe_customer_id", "organization", "Stripe customer id",
                           "varchar"),
    "person": Target("wb_person_stripe_customer_id", "person", "Stripe customer id", "varchar"),
}
FIELD_PATHS = {"deal": "dealFields", "organization": "organizationFields",
               "person": "personFields"}


def resolve(target: Target) -> Target | None:
    """The target after the admin's mapping; None when the admin switched it off."""
    row = db.session.execute(
        select(FieldMapping.entity, FieldMapping.field_name)
        .where(FieldMapping.purpose == target.purpose)
    ).first()
    if row is None:
        return target
    entity, name = row
    if not (name or "").strip():
        return None
    return Target(target.purpose, entity, name.strip(), target.field_type)


def known_field(entity: str, name: str) -> PdField | None:
    rows = db.session.execute(
        select(PdField).where(PdField.entity == entity)
    ).scalars().all()
    wanted = name.strip().lower()
    for f in rows:
        if (f.name or "").strip().lower() == wanted:
            return f
    return None


def _upsert(entity: str, data: dict) -> PdField:
    code = data.get("field_code") or data.get("key")
    row = db.session.execute(
        select(PdField).where(PdField.entity == entity, PdField.field_code == code)
    ).scalar_one_or_none() or PdField(entity=entity, field_code=code)
    row.name = data.get("field_name") or data.get("name") or code
    row.field_type = data.get("field_type") or "varchar"
    row.is_custom = bool(data.get("is_custom_field", True))
    row.options = data.get("options")
    db.session.add(row)
    db.session.flush()
    return row


def ensure_field(client: PipedriveClient, target: Target) -> PdField:
    """The field for `target`, creating it in Pipedrive once if it does not exist.

    Before creating, the definitions are read again: someone may have added the
    field in Pipedrive, or an earlier attempt created it and then lost the answer
    (Pipedrive has no idempotency keys, so this read is what prevents a twin).
    """
    field = known_field(target.entity, target.name)
    if field is not None:
        return field
    path = f"/api/v2/{FIELD_PATHS[target.entity]}"
    for item in client.iter_v2(path):
        _upsert(target.entity, item)
    field = known_field(target.entity, target.name)
    if field is not None:
        return field
    body = client.request("POST", path, json={"field_name": target.name,
                                              "field_type": target.field_type})
    data = body.get("data") or {}
    if not (data.get("field_code") or data.get("key")):
        raise PipedriveError(f"Pipedrive did not return the new field “{target.name}”")
    return _upsert(target.entity, data)


def amount_text(value, currency: str) -> str:
    """An amount as the desk writes it to Pipedrive: with its currency's decimals, never an
    exponent nor the stored trailing zeros (KRW 270000, EUR 12.50, KWD 1.250)."""
    return f"{round_major(Decimal(value), currency):f}"


def field_value(field: PdField, value, currency: str | None = None, purpose: str | None = None):
    """`value` as Pipedrive takes it for this field's type (numbers stay Decimal).

    None when the field cannot hold it (an enum without a matching option): the
    caller leaves that field alone rather than write something wrong.
    """
    if value is None:
        return None
    ftype = field.field_type
    if ftype == "enum":
        return _enum_option(field, value, purpose)
    if ftype == "set":
        option = _enum_option(field, value, purpose)
        return [option] if option is not None else None
    if ftype == "monetary":
        code = (currency or "EUR").upper()
        return {"value": Decimal(amount_text(value, code)), "currency": code}
    if ftype == "double":
        return Decimal(amount_text(value, currency)) if currency else Decimal(value)
    if ftype == "date":
        if isinstance(value, dt.date):
            return value.isoformat()
        return str(value)[:10]
    if isinstance(value, Decimal):
        return amount_text(value, currency) if currency else plain_decimal(value)
    return str(value)


def _enum_option(field: PdField, value, purpose: str | None) -> int | None:
    """The admin's chosen option for this value, else the option labelled like it."""
    if purpose:
        try:
            from app.mappings.options import enum_option
        except ImportError:  # pragma: no cover - the admin's mapping screens are optional
            enum_option = None
        if enum_option is not None:
            option = enum_option(purpose, value)
            if option is not None:
                return int(option)
    wanted = str(value).strip().lower().replace("_", " ")
    for option in field.options or []:
        if str(option.get("label", "")).strip().lower() == wanted:
            return int(option["id"])
    return None
