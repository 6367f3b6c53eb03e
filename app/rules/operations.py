"""Admin changes to the billing rules; each one validated first, then audited.

Helpers flush, the view commits. A refusal raises `RuleInputError` with one
message per form field, before anything is changed.
"""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select

from app.audit.operations import record
from app.extensions import db
from app.intake.metadata import refresh_metadata
from app.intake.models import BillingRule, PdPipeline, PdProduct, PdStage
from app.intake.readiness import recompute_ready, set_rule
from app.money import STRIPE_CURRENCIES, parse_decimal
from app.pipedrive.client import PipedriveError
from app.rules.models import (
    COLLECTION_METHODS,
    TAX_METHODS,
    BillingDefaults,
    ProductMapping,
    TaxMapping,
)
from app.rules.settings import billing_defaults, normalise_percent
from app.types import utcnow
from app.web.params import parse_int, parse_pd_id

MATCHES = {
    "stage": "When the deal is in a ready stage",
    "won": "When the deal is won",
    "stage_and_won": "When the deal is won and in a ready stage",
    "stage_or_won": "When the deal is in a ready stage or won",
}
MAX_DAYS_UNTIL_DUE = 365
_TXR_RE = re.compile(r"^txr_[A-Za-z0-9]{4,250}$")
_PROD_RE = re.compile(r"^prod_[A-Za-z0-9]{4,250}$")


class RuleInputError(ValueError):
    """Bad input; `errors` maps form field -> the message shown next to it."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


# -- ready to bill, per pipeline ---------------------------------------------------------


def reload_from_pipedrive(client) -> dict[str, int]:
    """Pipelines, stages, users, field definitions and products, read again now."""
    counts = refresh_metadata(client)
    record("pipedrive_metadata.reload", "pipedrive_metadata", "all", None, counts)
    return counts


def pipelines_known() -> list[PdPipeline]:
    return list(db.session.execute(
        select(PdPipeline).order_by(PdPipeline.order_nr, PdPipeline.id)
    ).scalars())


def load_if_none_known(client_factory) -> dict[str, int] | None:
    """First visit: read pipelines and stages from Pipedrive when none are stored yet.

    Returns the counts read, or None when some were known already. Raises
    PipedriveError (the caller rolls back and says so).
    """
    if db.session.execute(select(PdPipeline.id).limit(1)).first() is not None:
        return None
    return reload_from_pipedrive(client_factory())


class NameNotKnown(LookupError):
    """A pipeline or stage name that neither the desk nor Pipedrive knows (or Pipedrive
    could not be asked); the message says which names exist."""


def _names(rows) -> str:
    return ", ".join(f"“{r.name}”" for r in rows) or "none"


def _match(rows, key: str):
    """The row whose id or name (exactly, else in any case) is `key`."""
    key = key.strip()
    if key.isdigit():
        found = [r for r in rows if r.id == int(key)]
        if found:
            return found[0]
    exact = [r for r in rows if r.name == key]
    if exact:
        return exact[0]
    folded = [r for r in rows if r.name.strip().casefold() == key.casefold()]
    return folded[0] if len(folded) == 1 else None


class NameLookup:
    """Pipelines and stages by the name (or id) someone typed.

    A name not known here yet (before the first import, or added in Pipedrive since)
    makes the desk read pipelines and stages from Pipedrive once, through the client
    `client_factory` builds, and look again.
    """

    def __init__(self, client_factory):
        self._client_factory = client_factory
        self.loaded: dict[str, int] | None = None
        self._tried = False

    def _load(self, what: str) -> None:
        if self._tried:
            return
        self._tried = True
        try:
            self.loaded = reload_from_pipedrive(self._client_factory())
        except PipedriveError as exc:
            raise NameNotKnown(
                f"{what} is not known to the desk yet, and the pipelines could not be read "
                f"from Pipedrive: {str(exc).rstrip('.')}. Check the connection: "
                "`flask desk config`, or Admin → Connections → Test connection."
            ) from None

    def pipeline(self, key: str) -> PdPipeline:
        found = _match(pipelines_known(), key)
        if found is None:
            self._load(f"A pipeline named {key[:100]!r}")
            found = _match(pipelines_known(), key)
        if found is None:
            raise NameNotKnown(
                f"Pipedrive has no pipeline named {key[:100]!r}. Its pipelines: "
                f"{_names(pipelines_known())}."
            )
        return found

    def stage(self, pipeline: PdPipeline, key: str) -> PdStage:
        found = _match(stages_of(pipeline.id), key)
        if found is None:
            self._load(f"A stage named {key[:100]!r} in the {pipeline.name} pipeline")
            found = _match(stages_of(pipeline.id), key)
        if found is None:
            raise NameNotKnown(
                f"The {pipeline.name} pipeline has no stage named {key[:100]!r}. Its stages: "
                f"{_names(stages_of(pipeline.id))}."
            )
        return found


def stages_of(pipeline_id: int) -> list[PdStage]:
    return list(
        db.session.execute(
            select(PdStage)
            .where(PdStage.pipeline_id == pipeline_id)
            .order_by(PdStage.order_nr, PdStage.id)
        ).scalars()
    )


def _stage_id(raw) -> int | None:
    return parse_pd_id(raw)


def save_pipeline_rule(
    pipeline: PdPipeline, stage_ids: list[str], match: str | None, paid_stage: str | None
) -> tuple[BillingRule, int]:
    """Set when deals of `pipeline` are ready to bill; returns the rule and how many
    deals changed readiness. Raises RuleInputError."""
    stages = {s.id: s for s in stages_of(pipeline.id)}
    errors: dict[str, str] = {}
    chosen: list[int] = []
    for raw in stage_ids:
        sid = _stage_id(raw)
        if sid is None or sid not in stages:
            errors["stages"] = (
                f"Stage {str(raw)[:20]!r} is not a stage of the {pipeline.name} pipeline "
                f"(its stages: {_names(stages.values())}). Reload pipelines from Pipedrive "
                "if it was added there."
            )
            break
        chosen.append(sid)
    if match not in MATCHES:
        errors["match"] = "Choose when a deal of this pipeline is ready to bill."
    elif match != "won" and not chosen and "stages" not in errors:
        errors["stages"] = (
            "Choose at least one ready-to-bill stage, or choose “When the deal is won”."
        )
    paid_id = None
    if (paid_stage or "").strip():
        paid_id = _stage_id(paid_stage)
        if paid_id is None or paid_id not in stages:
            errors["paid_stage"] = f"That stage is not in the {pipeline.name} pipeline."
        elif paid_id in chosen:
            errors["paid_stage"] = (
                "The paid stage cannot also be a ready-to-bill stage: paid deals would "
                "show up as ready to bill again."
            )
    if errors:
        raise RuleInputError(errors)
    if match == "won":
        chosen = []  # stages play no part: do not keep a choice that does nothing
    rule = set_rule(pipeline.id, chosen, match, paid_id)
    changed = recompute_ready()
    return rule, changed


# -- defaults --------------------------------------------------------------------------


def save_defaults(currency: str | None, days: str | None, method: str | None, user):
    """Default currency, payment terms and collection method. Raises RuleInputError."""
    errors: dict[str, str] = {}
    code = (currency or "").strip().upper()
    if code and code not in STRIPE_CURRENCIES:
        errors["currency"] = (
            f"{code[:10]} is not a currency Stripe bills in: use a code such as EUR, "
            "or leave it empty."
        )
    days_number = parse_int(days, minimum=0)
    if days_number is None:
        errors["days_until_due"] = "Enter the payment terms as a whole number of days, e.g. 30."
    elif days_number > MAX_DAYS_UNTIL_DUE:
        errors["days_until_due"] = f"At most {MAX_DAYS_UNTIL_DUE} days."
    if method not in COLLECTION_METHODS:
        errors["collection_method"] = "Choose how invoices are collected."
    if errors:
        raise RuleInputError(errors)
    before = billing_defaults()
    row = db.session.get(BillingDefaults, 1)
    if row is None:
        row = BillingDefaults(id=1)
        db.session.add(row)
    row.currency = code or None
    row.days_until_due = days_number
    row.collection_method = method
    row.updated_at, row.updated_by_id = utcnow(), getattr(user, "id", None)
    db.session.flush()
    after = {"currency": row.currency, "days_until_due": row.days_until_due,
             "collection_method": row.collection_method}
    record("billing_defaults.set", "billing_defaults", 1,
           {"currency": before.currency, "days_until_due": before.days_until_due,
            "collection_method": before.collection_method} if before.saved else None,
           after)
    return row


# -- taxes -----------------------------------------------------------------------------


def parse_percent(raw: str | None) -> Decimal:
    text = (raw or "").strip().rstrip("%").strip()
    if not text:
        raise ValueError("Enter Pipedrive's tax percentage, e.g. 19.")
    # The desk's one rule for numbers: 7.7 or 7,7; an ambiguous 1,500 is refused.
    value = parse_decimal(text, example="Enter the percentage as a number, e.g. 19 or 7.7.")
    if value < 0 or value > 100:
        raise ValueError("A tax percentage is between 0 and 100.")
    if value != value.quantize(Decimal("0.0001")):
        raise ValueError("At most four decimals.")
    return normalise_percent(value)


def set_tax_mapping(percent: str | None, pd_method: str | None, behavior: str | None,
                    tax_rate_id: str | None) -> TaxMapping:
    """Add or replace the mapping of one Pipedrive tax. Raises RuleInputError."""
    errors: dict[str, str] = {}
    value = None
    try:
        value = parse_percent(percent)
    except ValueError as exc:
        errors["percent"] = str(exc)
    if pd_method not in TAX_METHODS:
        errors["pd_method"] = "Choose Pipedrive's tax method: exclusive or inclusive."
    if behavior not in TAX_METHODS:
        errors["behavior"] = "Choose whether Stripe's tax rate is inclusive or exclusive."
    rate = (tax_rate_id or "").strip()
    if rate and not _TXR_RE.match(rate):
        errors["tax_rate_id"] = (
            "A Stripe tax rate id starts with txr_ (Stripe → Products → Tax rates); "
            "leave it empty to let the push create the rate."
        )
    if errors:
        raise RuleInputError(errors)
    row = db.session.execute(
        select(TaxMapping).where(TaxMapping.pd_percent == value, TaxMapping.pd_method == pd_method)
    ).scalar_one_or_none()
    before = _tax_state(row) if row is not None else None
    if row is None:
        row = TaxMapping(pd_percent=value, pd_method=pd_method)
        db.session.add(row)
    row.stripe_behavior, row.stripe_tax_rate_id = behavior, rate or None
    row.updated_at = utcnow()
    db.session.flush()
    record("tax_mapping.set", "tax_mapping", f"{value:f} {pd_method}", before, _tax_state(row))
    return row


def _tax_state(row: TaxMapping) -> dict:
    return {"percent": normalise_percent(row.pd_percent), "pd_method": row.pd_method,
            "behavior": row.stripe_behavior, "tax_rate_id": row.stripe_tax_rate_id}


def remove_tax_mapping(mapping_id: int) -> bool:
    row = db.session.get(TaxMapping, mapping_id)
    if row is None:
        return False
    before = _tax_state(row)
    db.session.delete(row)
    db.session.flush()
    record("tax_mapping.remove", "tax_mapping", f"{before['percent']:f} {row.pd_method}",
           before, None)
    return True


# -- products --------------------------------------------------------------------------


def product_codes() -> dict[str, list[str]]:
    """Pipedrive product code -> the names of the products that carry it."""
    out: dict[str, list[str]] = {}
    for p in db.session.execute(select(PdProduct).order_by(PdProduct.name)).scalars():
        if p.code:
            out.setdefault(p.code, []).append(p.name)
    return out


def set_product_mapping(code: str | None, stripe_product_id: str | None) -> ProductMapping:
    """Bill the Pipedrive product with `code` as a Stripe product. Raises RuleInputError."""
    errors: dict[str, str] = {}
    code = (code or "").strip()
    product = (stripe_product_id or "").strip()
    if not code:
        errors["code"] = "Choose the Pipedrive product (by its product code)."
    elif code not in product_codes():
        errors["code"] = (
            f"No Pipedrive product has the code {code[:100]!r}: reload products from "
            "Pipedrive if it was added there."
        )
    if not _PROD_RE.match(product):
        errors["stripe_product_id"] = (
            "A Stripe product id starts with prod_ (Stripe → Product catalogue → the "
            "product's page)."
        )
    if errors:
        raise RuleInputError(errors)
    row = db.session.execute(
        select(ProductMapping).where(ProductMapping.pd_product_code == code)
    ).scalar_one_or_none()
    before = None if row is None else {"code": code, "stripe_product_id": row.stripe_product_id}
    if row is None:
        row = ProductMapping(pd_product_code=code)
        db.session.add(row)
    row.stripe_product_id, row.updated_at = product, utcnow()
    db.session.flush()
    record("product_mapping.set", "product_mapping", code, before,
           {"code": code, "stripe_product_id": product})
    return row


def remove_product_mapping(mapping_id: int) -> bool:
    row = db.session.get(ProductMapping, mapping_id)
    if row is None:
        return False
    before = {"code": row.pd_product_code, "stripe_product_id": row.stripe_product_id}
    db.session.delete(row)
    db.session.flush()
    record("product_mapping.remove", "product_mapping", before["code"], before, None)
    return True
