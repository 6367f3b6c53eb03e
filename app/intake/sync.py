"""Incremental intake of Pipedrive deals into local snapshots.

One run: list deals changed since the stored cursor (with an overlap window
for clock skew), page by page in update_time order; for each page fetch the
products of the deals that can be billed, in batches of 100 deals, and the
persons and organizations they reference that the desk does not know yet;
upsert everything and move the cursor forward, committing page by page. A run
cut off anywhere resumes from the last committed page: upserts are keyed on
Pipedrive's ids, so nothing is lost and nothing is duplicated. A record that
cannot be stored is set aside with its reason (app.intake.problems) and retried
by every later run; the run goes on and ends "finished with problems".

Token costs (Pipedrive charges per call, not per record) drive the shape: v2
lists at 500 per page, products for 100 deals per call, persons/organizations
by id 100 per call; installments likewise for 100 deals per call, only for deals
whose products can carry them (one-time products only), so the queue's
"Installments" flag is known before a draft is made. Discounts are per deal in
Pipedrive, so they are fetched just in time, when a draft is made from the deal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from decimal import Decimal

from sqlalchemy import select

from app.audit.operations import record
from app.extensions import BULK_CHANGE_ROWS, db, refresh_planner_statistics
from app.intake.mapping import FieldResolver
from app.intake.models import (
    EPOCH,
    BillingRule,
    DealChange,
    PdDeal,
    PdDealDiscount,
    PdDealProduct,
    PdField,
    PdInstallment,
    PdOrganization,
    PdPerson,
    PdPipeline,
    PdProduct,
    PdStage,
    PdUser,
    SyncProblem,
    SyncRun,
    SyncState,
)
from app.intake.problems import STATUS_PROBLEMS, Problems, plain_error
from app.money import plain_decimal
from app.pipedrive.client import BudgetExhausted, PipedriveClient, PipedriveError
from app.types import utcnow

log = logging.getLogger("billing_desk.intake")

DEALS_STATE = "pipedrive.deals"
OVERLAP = dt.timedelta(minutes=2)
META_MAX_AGE = dt.timedelta(hours=24)
BATCH = 100  # Pipedrive's maximum deal_ids / ids per call
PAGE = 500  # Pipedrive's maximum page size


# -- parsing ------------------------------------------------------------------------


def parse_time(value) -> dt.datetime | None:
    """Pipedrive v2 timestamps (RFC3339, 'Z'); v1 'YYYY-MM-DD HH:MM:SS' is UTC too."""
    if not value:
        return None
    text = str(value).replace(" ", "T")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def parse_date(value) -> dt.date | None:
    return dt.date.fromisoformat(str(value)[:10]) if value else None


def dec(value, default: str = "0") -> Decimal:
    """Exact decimal from a JSON number (parsed as Decimal) or string; never via float."""
    if value is None or value == "":
        return Decimal(default)
    if isinstance(value, float):  # defensive: the client parses floats as Decimal
        return Decimal(repr(value))
    return Decimal(str(value))


def _id(value) -> int | None:
    if isinstance(value, dict):  # some payloads nest {"id": ..., "name": ...}
        value = value.get("id") or value.get("value")
    return int(value) if value not in (None, "") else None


# -- reference data -------------------------------------------------------------------


def refresh_metadata(client: PipedriveClient) -> dict[str, int]:
    """Pipelines, stages, users and custom field definitions (names, not hashes)."""
    counts = {}
    seen = set()
    for p in client.iter_v2("/api/v2/pipelines"):
        row = db.session.get(PdPipeline, p["id"]) or PdPipeline(id=p["id"])
        row.name, row.order_nr = p.get("name") or "", p.get("order_nr") or 0
        row.active = not p.get("is_deleted", False)
        db.session.add(row)
        seen.add(p["id"])
    counts["pipelines"] = len(seen)
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
    counts["stages"] = n
    body = client.request("GET", "/v1/users")
    n = 0
    for u in body.get("data") or []:
        row = db.session.get(PdUser, u["id"]) or PdUser(id=u["id"])
        row.name, row.email = u.get("name") or "", u.get("email")
        db.session.add(row)
        n += 1
    counts["users"] = n
    n = 0
    for entity, path in (
        ("deal", "dealFields"),
        ("person", "personFields"),
        ("organization", "organizationFields"),
    ):
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
    counts["fields"] = n
    n = 0
    for prod in client.iter_v2("/api/v2/products"):
        row = db.session.get(PdProduct, prod["id"]) or PdProduct(id=prod["id"])
        row.name, row.code = prod.get("name") or "", prod.get("code") or None
        db.session.add(row)
        n += 1
    counts["products_catalogue"] = n
    db.session.flush()
    return counts


# -- upserts --------------------------------------------------------------------------


def upsert_person(data: dict) -> PdPerson:
    row = db.session.get(PdPerson, data["id"]) or PdPerson(id=data["id"])
    row.name = data.get("name") or ""
    row.emails = [
        {"value": e.get("value"), "primary": bool(e.get("primary")), "label": e.get("label")}
        for e in (data.get("emails") or [])
        if e.get("value")
    ]
    row.org_id = _id(data.get("org_id"))
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


def _product_state(p: PdDealProduct, number: Callable[[Decimal], str]) -> dict:
    return {
        "name": p.name,
        "item_price": number(p.item_price),
        "quantity": number(p.quantity),
        "discount": number(p.discount),
        "discount_type": p.discount_type,
        "tax": number(p.tax),
        "tax_method": p.tax_method,
        "enabled": p.is_enabled,
        "billing_frequency": p.billing_frequency,
    }


def deal_state(deal: PdDeal, number: Callable[[Decimal], str] = plain_decimal) -> dict:
    """What a draft invoice is built from; compared to detect drift and changes.

    Canonical: every number as plain_decimal text, so a deal just parsed ("10234.00")
    and the same deal reloaded from a Numeric(20, 6) column ("10234.000000") give the
    same state and the same content_hash. `number` is only ever str in migration
    0019, which recomputes the hashes stored before (see there).
    """
    return {
        "title": deal.title,
        "value": number(deal.value),
        "currency": deal.currency,
        "status": deal.status,
        "stage_id": deal.stage_id,
        "pipeline_id": deal.pipeline_id,
        "person_id": deal.person_id,
        "org_id": deal.org_id,
        "billing_email": deal.billing_email,
        "products": {str(p.id): _product_state(p, number) for p in deal.products},
    }


def content_hash(state: dict) -> str:
    """The digest of a deal_state() (PdDeal.content_hash, Invoice.deal_hash)."""
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def apply_deal(deal: PdDeal, data: dict) -> None:
    deal.title = data.get("title") or ""
    deal.value = dec(data.get("value"))
    deal.currency = (data.get("currency") or "").upper()[:3]
    deal.is_deleted = bool(data.get("is_deleted")) or data.get("status") == "deleted"
    deal.status = "deleted" if deal.is_deleted else (data.get("status") or "open")
    deal.pipeline_id = _id(data.get("pipeline_id"))
    deal.stage_id = _id(data.get("stage_id"))
    deal.owner_id = _id(data.get("owner_id") or data.get("user_id"))
    deal.person_id = _id(data.get("person_id"))
    deal.org_id = _id(data.get("org_id"))
    deal.won_time = parse_time(data.get("won_time"))
    deal.add_time = parse_time(data.get("add_time"))
    deal.update_time = parse_time(data.get("update_time"))
    deal.custom_fields = data.get("custom_fields") or {}


def apply_products(deal: PdDeal, items: list[dict]) -> None:
    existing = {p.id: p for p in deal.products}
    keep = []
    for pos, item in enumerate(items):
        p = existing.get(item["id"]) or PdDealProduct(id=item["id"])
        p.position = pos
        p.product_id = _id(item.get("product_id"))
        catalogue = db.session.get(PdProduct, p.product_id) if p.product_id else None
        p.product_code = catalogue.code if catalogue else None
        p.name = item.get("name") or ""
        p.item_price = dec(item.get("item_price"))
        p.quantity = dec(item.get("quantity"), "1")
        p.discount = dec(item.get("discount"))
        p.discount_type = item.get("discount_type") or "percentage"
        p.tax = dec(item.get("tax"))
        p.tax_method = item.get("tax_method") or "none"
        p.sum = dec(item.get("sum")) if item.get("sum") is not None else None
        p.currency = (item.get("currency") or "").upper()[:3] or None
        p.is_enabled = item.get("is_enabled", True) is not False
        p.billing_frequency = item.get("billing_frequency") or "one-time"
        p.billing_frequency_cycles = item.get("billing_frequency_cycles")
        p.billing_start_date = parse_date(item.get("billing_start_date"))
        p.comments = item.get("comments")
        keep.append(p)
    deal.products = keep


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


def finish_deal(deal: PdDeal, rules: Rules, resolver: FieldResolver) -> None:
    """Derived columns: billing email, flags, readiness, search text, content hash."""
    person = db.session.get(PdPerson, deal.person_id) if deal.person_id else None
    org = db.session.get(PdOrganization, deal.org_id) if deal.org_id else None
    email = resolver.value("billing_email", {"deal": deal, "organization": org, "person": person})
    deal.billing_email = (str(email).strip() if email else None) or (
        person.primary_email if person else None
    )
    enabled = [p for p in deal.products if p.is_enabled]
    deal.product_count = len(enabled)
    deal.has_recurring = any(p.recurring for p in enabled)
    deal.has_installments = bool(deal.installments)
    deal.ready = rules.ready(deal)
    deal.won_sort = deal.won_time or EPOCH
    deal.update_sort = deal.update_time or deal.add_time or EPOCH
    deal.search_text = " ".join(
        x
        for x in (
            deal.title,
            org.name if org else "",
            person.name if person else "",
            deal.billing_email or "",
            str(deal.id),
        )
        if x
    ).lower()
    deal.content_hash = content_hash(deal_state(deal))


# -- the run ---------------------------------------------------------------------------


class SyncCancelled(Exception):
    pass


def _state() -> SyncState:
    state = db.session.get(SyncState, DEALS_STATE)
    if state is None:
        state = SyncState(name=DEALS_STATE)
        db.session.add(state)
        db.session.flush()
    return state


def start_run(job: str, trigger: str) -> SyncRun:
    from app.jobs.queue import owner_name, run_lease

    run = SyncRun(job=job, trigger=trigger, status="running", counts={},
                  owner=owner_name(), lease_until=utcnow() + run_lease())
    db.session.add(run)
    db.session.flush()
    return run


def sync_deals(
    client: PipedriveClient,
    run: SyncRun,
    *,
    full: bool = False,
    now: Callable[[], dt.datetime] = utcnow,
    page_size: int = PAGE,
) -> SyncRun:
    """One incremental (or full) intake run. Commits page by page."""
    state = _state()
    started = now()
    if state.paused_until and state.paused_until > started and not full:
        run.status = "paused"
        run.error = state.message
        run.finished_at = started
        db.session.commit()
        return run

    counts = _new_counts()
    problems = Problems(run)
    try:
        meta_stale = (
            full
            or not db.session.execute(select(PdStage.id).limit(1)).first()
            or (state.last_success_at is None or started - state.last_success_at > META_MAX_AGE)
        )
        if meta_stale:
            counts.update({f"meta_{k}": v for k, v in refresh_metadata(client).items()})
            db.session.commit()
        rules, resolver = Rules(), FieldResolver()
        first_import = full or state.cursor_time is None
        if first_import:
            _import_contacts(client, counts, problems)
            db.session.commit()
        params = {
            "sort_by": "update_time",
            "sort_direction": "asc",
            # Whole seconds on the wire: round up so this second's changes are included;
            # the overlap window makes the next run re-read the edge anyway.
            "updated_until": _rfc3339(started + dt.timedelta(seconds=1)),
            "status": "open,won,lost,deleted",
        }
        if not full and state.cursor_time is not None:
            params["updated_since"] = _rfc3339(state.cursor_time - OVERLAP)
        state.run_started_at = started
        db.session.flush()
        seen: set[int] = set()
        for items, _next in client.pages_v2("/api/v2/deals", params, limit=page_size):
            _sync_page(
                client,
                run,
                items,
                rules,
                resolver,
                counts,
                known_contacts=first_import,
                problems=problems,
            )
            seen.update(int(d["id"]) for d in items)
            if items:
                newest = max(parse_time(d.get("update_time")) or started for d in items)
                # Everything up to this page is safely stored: a cut-off run resumes here.
                state.cursor_time = min(newest, started)
            run.counts = dict(counts)
            run.progress_done = counts["deals"]
            _account(run, client)
            db.session.commit()
        # Deals set aside by earlier runs did not necessarily change since: retry them.
        retry = _open_problem_ids("deal") - seen
        if retry:
            _merge_counts(counts, refresh_deals(client, run, sorted(retry), "pull", problems))
            problems.resolve_stored()
            db.session.commit()
        state.cursor_time = started
        if counts["created"] + counts["updated"] >= BULK_CHANGE_ROWS:
            refresh_planner_statistics(PdDeal, PdDealProduct, PdPerson, PdOrganization)
        state.last_success_at = now()
        state.paused_until = None
        state.message = None
        run.status = "ok"
        if problems.summary():
            run.status, run.error = STATUS_PROBLEMS, problems.summary()
            counts["problems"] = len(problems.failed)
    except BudgetExhausted as exc:
        db.session.rollback()
        state = _state()
        state.paused_until = exc.resets_at
        state.message = (
            f"Pipedrive's daily API budget is spent; intake resumes after "
            f"{exc.resets_at:%d %b %Y %H:%M} UTC. Nothing was lost: the next run continues "
            f"from the last deal stored."
        )
        run = db.session.merge(run)
        run.status = "paused"
        run.error = state.message
    except PipedriveError as exc:
        db.session.rollback()
        run = db.session.merge(run)
        run.status = "failed"
        run.error = str(exc)
        _state().message = f"The last sync failed: {exc}. It will be retried."
    except Exception as exc:  # noqa: BLE001 - recorded in plain words; details in the log
        log.exception("deal sync run %s failed", run.id)
        db.session.rollback()
        run = db.session.merge(run)
        run.status = "failed"
        run.error = plain_error(exc)
        _state().message = f"The last sync failed. {run.error} It will be retried."
    run.counts = dict(counts)
    run.finished_at = now()
    _account(run, client)
    db.session.commit()
    log.info(
        "deal sync %s: %s (%s requests, %s tokens)", run.status, counts, run.requests, run.tokens
    )
    return run


def _account(run: SyncRun, client: PipedriveClient) -> None:
    run.requests = client.usage.requests
    run.tokens = client.usage.tokens


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_counts() -> dict:
    return dict.fromkeys(
        ("deals", "created", "updated", "unchanged", "products", "persons", "organizations"), 0
    )


def _merge_counts(counts: dict, more: dict) -> None:
    for key, value in more.items():
        if isinstance(value, int):
            counts[key] = counts.get(key, 0) + value


def _open_problem_ids(entity: str) -> set[int]:
    return set(
        db.session.execute(
            select(SyncProblem.entity_id).where(
                SyncProblem.entity == entity, SyncProblem.resolved_at.is_(None)
            )
        ).scalars()
    )


def _store(problems: Problems | None, entity: str, data: dict, upsert) -> bool:
    """Upsert one record; with `problems`, a record that fails is set aside alone."""
    if problems is None:
        upsert(data)
        return True
    return problems.attempt(entity, data["id"], lambda: upsert(data)) is not None


def _import_contacts(client: PipedriveClient, counts: dict, problems: Problems) -> None:
    """First import: every person and organization, 500 per call."""
    for p in client.iter_v2("/api/v2/persons", limit=PAGE):
        counts["persons"] += _store(problems, "person", p, upsert_person)
    for o in client.iter_v2("/api/v2/organizations", limit=PAGE):
        counts["organizations"] += _store(problems, "organization", o, upsert_organization)
    db.session.flush()


def _chunks(ids: Iterable[int], size: int = BATCH):
    ids = list(ids)
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def _fetch_by_deal(client: PipedriveClient, path: str, deal_ids) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {i: [] for i in deal_ids}
    for chunk in _chunks(deal_ids):
        for item in client.iter_v2(path, {"deal_ids": chunk}, limit=PAGE):
            out.setdefault(int(item["deal_id"]), []).append(item)
    return out


def fetch_products(client: PipedriveClient, deal_ids: list[int]) -> dict[int, list[dict]]:
    return _fetch_by_deal(client, "/api/v2/deals/products", deal_ids)


def fetch_installments(client: PipedriveClient, deal_ids: list[int]) -> dict[int, list[dict]]:
    return _fetch_by_deal(client, "/api/v2/deals/installments", deal_ids)


def apply_installments(deal: PdDeal, items: list[dict]) -> None:
    existing = {i.id: i for i in deal.installments}
    keep = []
    for item in items:
        inst = existing.get(int(item["id"])) or PdInstallment(id=int(item["id"]))
        inst.amount = dec(item.get("amount"))
        inst.billing_date = parse_date(item.get("billing_date"))
        inst.description = item.get("description") or ""
        keep.append(inst)
    deal.installments = keep
    deal.has_installments = bool(keep)


def fetch_contacts(
    client: PipedriveClient,
    person_ids: set[int],
    org_ids: set[int],
    problems: Problems | None = None,
) -> int:
    n = 0
    for chunk in _chunks(sorted(person_ids)):
        for p in client.iter_v2("/api/v2/persons", {"ids": chunk}, limit=PAGE):
            n += _store(problems, "person", p, upsert_person)
    for chunk in _chunks(sorted(org_ids)):
        for o in client.iter_v2("/api/v2/organizations", {"ids": chunk}, limit=PAGE):
            n += _store(problems, "organization", o, upsert_organization)
    db.session.flush()
    return n


def _sync_page(
    client,
    run,
    items,
    rules,
    resolver,
    counts,
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
    read: list[tuple[dict, PdDeal]] = []
    for data in items:

        def parse(data=data) -> PdDeal:
            probe = PdDeal(id=data["id"])
            apply_deal(probe, data)
            return probe

        probe = problems.check("deal", data["id"], parse)
        if probe is not None:
            read.append((data, probe))
    counts["deals"] += len(items)

    wanted = [p.id for _d, p in read if rules.candidate(p)]
    products = fetch_products(client, wanted) if wanted else {}
    # Installments exist only on deals with one-time products and no recurring ones.
    splittable = [
        deal_id for deal_id, items in products.items()
        if items and all((i.get("billing_frequency") or "one-time") == "one-time" for i in items)
    ]
    installments = fetch_installments(client, splittable) if splittable else {}

    if not known_contacts:
        persons = {p.person_id for _d, p in read if p.person_id}
        orgs = {p.org_id for _d, p in read if p.org_id}
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
        counts["persons"] += fetch_contacts(client, persons - have_p, orgs - have_o, problems)

    # Then store each deal whole, or not at all.
    works = []
    for data, _probe in read:

        def store(data=data) -> str:
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
                    changes={} if created else _diff(before, after),
                )
            )
            return "created" if created else "updated"

        works.append((data["id"], store))
    for (deal_id, _work), outcome in zip(
        works, problems.attempt_each("deal", works), strict=True
    ):
        if outcome is not None:
            counts[outcome] += 1
            counts["products"] += len(products.get(deal_id, []))
    problems.resolve_stored()
    db.session.flush()


def _diff(before: dict, after: dict) -> dict:
    out = {}
    for key in sorted(set(before) | set(after)):
        if key == "products":
            b, a = before.get(key) or {}, after.get(key) or {}
            added = sorted(set(a) - set(b))
            removed = sorted(set(b) - set(a))
            changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
            if added or removed or changed:
                out["products"] = {
                    "added": [a[k]["name"] for k in added],
                    "removed": [b[k]["name"] for k in removed],
                    "changed": {
                        b[k]["name"]: {f: [b[k][f], a[k][f]] for f in a[k] if a[k][f] != b[k][f]}
                        for k in changed
                    },
                }
        elif before.get(key) != after.get(key):
            out[key] = [before.get(key), after.get(key)]
    return out


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
    counts = _new_counts()
    rules, resolver = Rules(), FieldResolver()
    for chunk in _chunks(deal_ids):
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
        _sync_page(
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
    from sqlalchemy import or_

    for deal in db.session.execute(q.where(or_(*conds))).scalars():
        finish_deal(deal, rules, resolver)
    db.session.flush()


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
