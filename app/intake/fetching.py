"""Reading deals' products, installments and discounts from Pipedrive, in batches.

Pipedrive charges per call, not per record: products and installments are read
for 100 deals per call, 500 per page; discounts (no batch call) only when a
draft is made from the deal.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.extensions import db
from app.intake.models import PdDeal, PdDealDiscount
from app.intake.parsing import dec
from app.intake.snapshots import apply_installments
from app.pipedrive.client import PipedriveClient

BATCH = 100  # Pipedrive's maximum deal_ids / ids per call
PAGE = 500  # Pipedrive's maximum page size


def chunks(ids: Iterable[int], size: int = BATCH):
    """`ids` in lists of at most `size` (one call each)."""
    ids = list(ids)
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def _fetch_by_deal(client: PipedriveClient, path: str, deal_ids) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {i: [] for i in deal_ids}
    for chunk in chunks(deal_ids):
        for item in client.iter_v2(path, {"deal_ids": chunk}, limit=PAGE):
            out.setdefault(int(item["deal_id"]), []).append(item)
    return out


def fetch_products(client: PipedriveClient, deal_ids: list[int]) -> dict[int, list[dict]]:
    return _fetch_by_deal(client, "/api/v2/deals/products", deal_ids)


def fetch_installments(client: PipedriveClient, deal_ids: list[int]) -> dict[int, list[dict]]:
    return _fetch_by_deal(client, "/api/v2/deals/installments", deal_ids)


def fetch_deal_details(client: PipedriveClient, deal: PdDeal) -> None:
    """Discounts and installments, fetched just in time (Pipedrive has no batch for
    discounts): when a draft is made from the deal."""
    body = client.request("GET", f"/api/v2/deals/{deal.id}/discounts")
    deal.discounts = [
        PdDealDiscount(
            id=str(d["id"]),
            description=d.get("description") or "",
            amount=dec(d.get("amount")),
            type=d.get("type") or "amount",
        )
        for d in body.get("data") or []
    ]
    apply_installments(deal, fetch_installments(client, [deal.id])[deal.id])
    db.session.flush()
