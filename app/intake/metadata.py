"""Pipedrive's reference data: pipelines, stages, users, field definitions, products.

Read whole (they are small) and upserted by Pipedrive's id; fields by entity and
field code, so the desk shows and stores field names, never hash keys.
"""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.intake.models import PdField, PdPipeline, PdProduct, PdStage, PdUser
from app.pipedrive.client import PipedriveClient

FIELD_PATHS = (("deal", "dealFields"), ("person", "personFields"),
               ("organization", "organizationFields"))


def refresh_metadata(client: PipedriveClient) -> dict[str, int]:
    """Pipelines, stages, users and custom field definitions (names, not hashes)."""
    counts = {
        "pipelines": _pipelines(client),
        "stages": _stages(client),
        "users": _users(client),
        "fields": _fields(client),
        "products_catalogue": _products(client),
    }
    db.session.flush()
    return counts


def _pipelines(client: PipedriveClient) -> int:
    seen = set()
    for p in client.iter_v2("/api/v2/pipelines"):
        row = db.session.get(PdPipeline, p["id"]) or PdPipeline(id=p["id"])
        row.name, row.order_nr = p.get("name") or "", p.get("order_nr") or 0
        row.active = not p.get("is_deleted", False)
        db.session.add(row)
        seen.add(p["id"])
    return len(seen)


def _stages(client: PipedriveClient) -> int:
    n = 0
    for s in client.iter_v2("/api/v2/stages"):
        row = db.session.get(PdStage, s["id"]) or PdStage(id=s["id"])
        row.pipeline_id, row.name, row.order_nr = (
            s["pipeline_id"],
            s.get("name") or "",
            (s.get("order_nr") or 0),
        )
        db.session.add(row)
        n += 1
    return n


def _users(client: PipedriveClient) -> int:
    body = client.request("GET", "/v1/users")
    n = 0
    for u in body.get("data") or []:
        row = db.session.get(PdUser, u["id"]) or PdUser(id=u["id"])
        row.name, row.email = u.get("name") or "", u.get("email")
        db.session.add(row)
        n += 1
    return n


def _fields(client: PipedriveClient) -> int:
    n = 0
    for entity, path in FIELD_PATHS:
        for f in client.iter_v2(f"/api/v2/{path}"):
            code = f.get("field_code") or f.get("key")
            existing = db.session.execute(
                select(PdField).where(PdField.entity == entity, PdField.field_code == code)
            ).scalar_one_or_none()
            row = existing or PdField(entity=entity, field_code=code)
            row.name = f.get("field_name") or f.get("name") or code
            row.field_type = f.get("field_type") or "varchar"
            row.is_custom = bool(f.get("is_custom_field", True))
            row.options = f.get("options")
            db.session.add(row)
            n += 1
    return n


def _products(client: PipedriveClient) -> int:
    n = 0
    for prod in client.iter_v2("/api/v2/products"):
        row = db.session.get(PdProduct, prod["id"]) or PdProduct(id=prod["id"])
        row.name, row.code = prod.get("name") or "", prod.get("code") or None
        db.session.add(row)
        n += 1
    return n
