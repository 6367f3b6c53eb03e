"""Which deals are ready to bill: the billing rules per pipeline, and their effect.

A deal is ready when its pipeline's rule says so (in a ready stage, won, both,
or either); a deal in a pipeline without a rule is never ready, though a won one
is still worth fetching products for.
"""

from __future__ import annotations

from sqlalchemy import select

from app.audit.operations import record
from app.extensions import BULK_CHANGE_ROWS, db, refresh_planner_statistics
from app.intake.models import BillingRule, PdDeal


class Rules:
    """Billing rules, loaded once per run."""

    def __init__(self) -> None:
        self.by_pipeline = {
            r.pipeline_id: r for r in db.session.execute(select(BillingRule)).scalars()
        }

    def candidate(self, deal: PdDeal) -> bool:
        """Could this deal be billed (so its products are worth fetching)?"""
        if deal.is_deleted or deal.status in ("lost", "deleted"):
            return False
        rule = self.by_pipeline.get(deal.pipeline_id)
        if rule is None:
            return deal.status == "won"
        return deal.status == "won" or deal.stage_id in (rule.ready_stage_ids or [])

    def ready(self, deal: PdDeal) -> bool:
        if deal.is_deleted or deal.status in ("lost", "deleted"):
            return False
        rule = self.by_pipeline.get(deal.pipeline_id)
        if rule is None:
            return False
        in_stage = deal.stage_id in (rule.ready_stage_ids or [])
        won = deal.status == "won"
        return {
            "stage": in_stage,
            "won": won,
            "stage_and_won": in_stage and won,
            "stage_or_won": in_stage or won,
        }.get(rule.match, False)


def recompute_ready() -> int:
    """After a rule change: re-derive readiness of every deal. Returns how many changed."""
    rules = Rules()
    changed = 0
    for deal in db.session.execute(select(PdDeal)).scalars():
        ready = rules.ready(deal)
        if ready != deal.ready:
            deal.ready = ready
            changed += 1
    db.session.flush()
    if changed >= BULK_CHANGE_ROWS:
        refresh_planner_statistics(PdDeal)
    return changed


def set_rule(
    pipeline_id: int, stage_ids: list[int], match: str, paid_stage_id: int | None = None
) -> BillingRule:
    """Create or change a pipeline's billing rule, with its audit entry (flushes)."""
    if match not in ("stage", "won", "stage_and_won", "stage_or_won"):
        raise ValueError("match must be stage, won, stage_and_won or stage_or_won")
    rule = db.session.execute(
        select(BillingRule).where(BillingRule.pipeline_id == pipeline_id)
    ).scalar_one_or_none()
    before = None
    if rule is None:
        rule = BillingRule(pipeline_id=pipeline_id)
        db.session.add(rule)
    else:
        before = {
            "stages": rule.ready_stage_ids,
            "match": rule.match,
            "paid_stage_id": rule.paid_stage_id,
        }
    rule.ready_stage_ids = sorted(set(int(s) for s in stage_ids))
    rule.match = match
    rule.paid_stage_id = paid_stage_id
    db.session.flush()
    record(
        "billing_rule.set",
        "pipeline",
        pipeline_id,
        before,
        {"stages": rule.ready_stage_ids, "match": match, "paid_stage_id": paid_stage_id},
    )
    return rule
