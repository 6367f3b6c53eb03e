"""In-memory (optionally JSON-persisted) state of the Pipedrive sandbox.

Records are stored in their v2 response shape (money as ``Decimal``, timestamps as
RFC3339 strings, which sort correctly as strings). One re-entrant lock guards all
of it; the HTTP layer takes it around every request that reads or writes.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import defaultdict
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from . import jsonutil

TABLES = (
    "users",
    "pipelines",
    "stages",
    "deals",
    "deal_products",
    "discounts",
    "installments",
    "persons",
    "organizations",
    "products",
    "notes",
    "activities",
    "webhooks",
)
FIELD_ENTITIES = ("deal", "person", "organization", "product")

# What a new Pipedrive company starts with: its creator (an admin) and the default
# pipeline with Pipedrive's default stages, so a deal can be created straight away.
DEFAULT_USER = {"name": "Sandbox Admin", "email": "admin@sandbox-company.example"}
DEFAULT_PIPELINE = "Pipeline"
DEFAULT_STAGES = ("Lead In", "Contact Made", "Demo Scheduled", "Proposal Made",
                  "Negotiations Started")

CURRENCY_DECIMALS = {"JPY": 0, "KRW": 0, "HUF": 2, "KWD": 3, "BHD": 3, "OMR": 3, "JOD": 3}


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def v1_time(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def v1_from_iso(text: str | None) -> str | None:
    if not text:
        return text
    return text.replace("T", " ").rstrip("Z")


def quantize(amount: Decimal | int, currency: str) -> Decimal:
    places = CURRENCY_DECIMALS.get(currency.upper(), 2)
    return Decimal(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def field_hash(entity: str, name: str, salt: str = "") -> str:
    """A 40-character hex key like Pipedrive's custom field keys (deterministic)."""
    return hashlib.sha1(f"{entity}:{name}:{salt}".encode()).hexdigest()  # noqa: S324


def deal_product_sum(dp: dict, currency: str) -> Decimal:
    gross = Decimal(dp["item_price"]) * Decimal(dp["quantity"])
    discount = Decimal(dp.get("discount") or 0)
    if dp.get("discount_type") == "amount":
        net = gross - discount
    else:
        net = gross - gross * discount / 100
    if dp.get("tax_method") == "exclusive":
        net = net + net * Decimal(dp.get("tax") or 0) / 100
    return quantize(net, currency)


class Store:
    def __init__(self, path: str | None = None) -> None:
        self.lock = threading.RLock()
        self.path = path
        self.reset()
        if path and os.path.exists(path):
            self.load()

    # -- lifecycle -------------------------------------------------------
    def reset(self, now: str | None = None) -> None:
        """Empty, but for what every new Pipedrive company starts with."""
        with self.lock:
            self.t: dict[str, dict[int, dict]] = {name: {} for name in TABLES}
            self.seq: dict[str, int] = {name: 0 for name in TABLES}
            self.fields: dict[str, dict[str, dict]] = {e: {} for e in FIELD_ENTITIES}
            self.field_seq = 0
            self.budget_used = 0
            self.budget_day = ""
            self._reindex()
            self._new_company(now or iso(datetime.now(UTC)))

    def _new_company(self, now: str) -> None:
        self.insert("users", {
            "id": 1, **DEFAULT_USER, "active_flag": True, "is_admin": True,
            "default_currency": "EUR", "locale": "en_US", "lang": 1,
            "timezone_name": "UTC", "timezone_offset": "+00:00", "role_id": 1,
            "icon_url": None, "is_you": True, "created": v1_from_iso(now),
            "modified": None, "last_login": None, "has_created_company": True, "access": [],
        })
        pipeline = self.insert("pipelines", {
            "id": 1, "name": DEFAULT_PIPELINE, "order_nr": 1, "is_selected": True,
            "is_deal_probability_enabled": False, "is_deleted": False,
            "add_time": now, "update_time": now})
        for order_nr, name in enumerate(DEFAULT_STAGES, start=1):
            self.insert("stages", {
                "id": None, "order_nr": order_nr, "name": name, "is_deleted": False,
                "deal_probability": 100, "pipeline_id": pipeline["id"],
                "is_deal_rot_enabled": False, "days_to_rotten": None,
                "add_time": now, "update_time": now})

    def is_new_company(self) -> bool:
        """Nothing but what a new company starts with (see _new_company)."""
        return (not self.t["deals"] and len(self.t["pipelines"]) <= 1
                and all(s["name"] in DEFAULT_STAGES for s in self.t["stages"].values()))

    def _reindex(self) -> None:
        self.dp_by_deal: dict[int, list[int]] = defaultdict(list)
        for dp in self.t["deal_products"].values():
            self.dp_by_deal[dp["deal_id"]].append(dp["id"])
        self.disc_by_deal: dict[int, list[int]] = defaultdict(list)
        for d in self.t["discounts"].values():
            self.disc_by_deal[d["deal_id"]].append(d["id"])
        self.inst_by_deal: dict[int, list[int]] = defaultdict(list)
        for i in self.t["installments"].values():
            self.inst_by_deal[i["deal_id"]].append(i["id"])

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "tables": {name: list(rows.values()) for name, rows in self.t.items()},
                "seq": self.seq,
                "fields": {e: list(f.values()) for e, f in self.fields.items()},
                "field_seq": self.field_seq,
                "budget_used": self.budget_used,
                "budget_day": self.budget_day,
            }

    def save(self) -> None:
        if not self.path:
            return
        with self.lock:
            text = jsonutil.dumps(self.snapshot())
            tmp = f"{self.path}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, self.path)

    def load(self) -> None:
        with self.lock, open(self.path or "", encoding="utf-8") as fh:
            data = jsonutil.loads(fh.read())
            self.reset()
            for name, rows in data.get("tables", {}).items():
                self.t[name] = {row["id"]: row for row in rows}
            self.seq.update(data.get("seq", {}))
            for entity, defs in data.get("fields", {}).items():
                self.fields[entity] = {f["field_code"]: f for f in defs}
            self.field_seq = data.get("field_seq", 0)
            self.budget_used = data.get("budget_used", 0)
            self.budget_day = data.get("budget_day", "")
            self._reindex()

    # -- helpers ---------------------------------------------------------
    def next_id(self, table: str) -> int:
        self.seq[table] += 1
        return self.seq[table]

    def insert(self, table: str, row: dict) -> dict:
        if "id" not in row or row["id"] is None:
            row["id"] = self.next_id(table)
        else:
            self.seq[table] = max(self.seq[table], row["id"])
        self.t[table][row["id"]] = row
        if table == "deal_products":
            self.dp_by_deal[row["deal_id"]].append(row["id"])
        elif table == "discounts":
            self.disc_by_deal[row["deal_id"]].append(row["id"])
        elif table == "installments":
            self.inst_by_deal[row["deal_id"]].append(row["id"])
        return row

    def custom_field_codes(self, entity: str) -> list[str]:
        return [c for c, f in self.fields[entity].items() if f["is_custom_field"]]

    def field_by_name(self, entity: str, name: str) -> dict | None:
        for f in self.fields[entity].values():
            if f["field_name"] == name:
                return f
        return None

    def add_field(self, entity: str, definition: dict, when: str) -> dict:
        self.field_seq += 1
        code = definition.get("field_code") or field_hash(
            entity, definition["field_name"], str(self.field_seq)
        )
        options = definition.get("options")
        if options is not None:
            opts = []
            for i, opt in enumerate(options, start=1):
                label = opt["label"] if isinstance(opt, dict) else str(opt)
                opts.append({"id": self.field_seq * 100 + i, "label": label, "color": None,
                             "add_time": when, "update_time": when})
            options = opts
        field = {
            "id": self.field_seq,
            "field_name": definition["field_name"],
            "field_code": code,
            "description": definition.get("description"),
            "field_type": definition["field_type"],
            "options": options,
            "subfields": None,
            "is_custom_field": definition.get("is_custom_field", True),
            "is_optional_response_field": False,
            "add_time": when,
            "update_time": when,
            "ui_visibility": {"add_visible_flag": True, "details_visible_flag": True},
        }
        self.fields[entity][code] = field
        return field

    # -- deal money ------------------------------------------------------
    def deal_products(self, deal_id: int) -> list[dict]:
        return [self.t["deal_products"][i] for i in self.dp_by_deal.get(deal_id, [])]

    def deal_discounts(self, deal_id: int) -> list[dict]:
        return [self.t["discounts"][i] for i in self.disc_by_deal.get(deal_id, [])]

    def deal_installments(self, deal_id: int) -> list[dict]:
        return [self.t["installments"][i] for i in self.inst_by_deal.get(deal_id, [])]

    def recompute_deal_value(self, deal: dict) -> bool:
        """Deal value = enabled product sums minus deal-level discounts. True if changed."""
        products = [p for p in self.deal_products(deal["id"]) if p.get("is_enabled", True)]
        if not products:
            return False
        subtotal = sum((Decimal(p["sum"]) for p in products), Decimal(0))
        total_discount = Decimal(0)
        for d in self.deal_discounts(deal["id"]):
            if d["type"] == "percentage":
                total_discount += subtotal * Decimal(d["amount"]) / 100
            else:
                total_discount += Decimal(d["amount"])
        value = quantize(subtotal - total_discount, deal["currency"])
        if value != deal["value"]:
            deal["value"] = value
            return True
        return False

    def has_recurring(self, deal_id: int) -> bool:
        return any(p["billing_frequency"] != "one-time" for p in self.deal_products(deal_id))
