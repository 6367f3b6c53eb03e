"""Field mappings resolved by name: the desk never stores or shows hash keys."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.intake.models import FieldMapping, PdField

# purpose -> where to look by default (entity, field name), in order.
DEFAULT_MAPPINGS: dict[str, list[tuple[str, str]]] = {
    "billing_email": [
        ("deal", "Billing email"),
        ("organization", "Billing email"),
        ("person", "Billing email"),
    ],
    "po_number": [("deal", "PO number")],
    "vat_id": [("deal", "VAT ID"), ("organization", "VAT ID")],
    "payment_terms": [("deal", "Payment terms"), ("organization", "Payment terms")],
    # The organization's own address field (not a custom one) until the admin maps another.
    "billing_address": [("organization", "Address")],
}


class FieldResolver:
    """Turns (entity, field name) into Pipedrive's key, once per sync or request."""

    def __init__(self) -> None:
        rows = db.session.execute(select(PdField)).scalars().all()
        self.by_name = {(f.entity, f.name.lower()): f for f in rows}
        mapped = db.session.execute(select(FieldMapping)).scalars().all()
        self.mappings: dict[str, list[tuple[str, str]]] = {
            k: list(v) for k, v in DEFAULT_MAPPINGS.items()
        }
        for m in mapped:
            self.mappings[m.purpose] = [(m.entity, m.field_name)]

    def field(self, entity: str, name: str) -> PdField | None:
        return self.by_name.get((entity, name.lower()))

    def value(self, purpose: str, records: dict[str, object | None]):
        """The first non-empty mapped value among the given records (deal, org, person)."""
        for entity, name in self.mappings.get(purpose, []):
            record = records.get(entity)
            f = self.field(entity, name)
            if record is None or f is None:
                continue
            if f.is_custom:
                raw = (getattr(record, "custom_fields", None) or {}).get(f.field_code)
            elif f.field_type == "address":  # Pipedrive's own address field, kept as a column
                raw = getattr(record, "address", None)
            else:
                continue
            if raw in (None, "", []):
                continue
            if f.field_type == "enum" and f.options:
                labels = {str(o.get("id")): o.get("label") for o in f.options}
                raw = labels.get(str(raw), raw)
            return raw
        return None
