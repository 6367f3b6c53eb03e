"""The sandbox's state: objects, events, idempotency records, ledger and fault switches.

All mutations happen under ``Store.lock`` (one re-entrant lock). Objects are kept as
Stripe-shaped dicts; keys starting with ``_`` are private bookkeeping and are never
rendered.
"""

from __future__ import annotations

import copy
import json
import marshal
import os
import random
import string
import threading
from typing import Any

from .settings import StripeSandboxSettings

COLLECTIONS = (
    "customer",
    "product",
    "price",
    "tax_rate",
    "coupon",
    "discount",
    "invoice",
    "invoiceitem",
    "credit_note",
    "payment_intent",
    "charge",
    "refund",
    "invoice_payment",
    "webhook_endpoint",
    "event",
)

PREFIX_TO_KIND = {
    "cus": "customer",
    "prod": "product",
    "price": "price",
    "txr": "tax_rate",
    "di": "discount",
    "in": "invoice",
    "ii": "invoiceitem",
    "cn": "credit_note",
    "pi": "payment_intent",
    "ch": "charge",
    "re": "refund",
    "inpay": "invoice_payment",
    "we": "webhook_endpoint",
    "evt": "event",
}

_ALPHABET = string.ascii_letters + string.digits


class Store:
    def __init__(self, settings: StripeSandboxSettings) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        self.rng = random.Random(settings.seed)  # noqa: S311 - ids, not secrets
        self.reset()
        if settings.state_file and os.path.exists(settings.state_file):
            self.load()

    # -- state -----------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.objects: dict[str, dict[str, dict]] = {k: {} for k in COLLECTIONS}
            self.seq = 0  # creation order, for lists and cursors
            self.idempotency: dict[str, dict] = {}
            self.ledger: list[dict] = []
            self.faults: list[dict] = []
            self.rng.seed(self.settings.seed)
            self._journal: dict | None = None
            self._journal_seq = 0
            self._depth = 0

    def snapshot_state(self) -> dict:
        return {
            "objects": self.objects,
            "seq": self.seq,
            "idempotency": self.idempotency,
            "clock_offset": self.settings.clock.offset,
        }

    def save(self) -> None:
        path = self.settings.state_file
        if not path:
            return
        with self.lock:
            data = json.dumps(self.snapshot_state(), sort_keys=True)
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(data)
        os.replace(tmp, path)

    def load(self) -> None:
        with open(self.settings.state_file, encoding="utf-8") as fh:  # type: ignore[arg-type]
            data = json.load(fh)
        with self.lock:
            self.objects = {k: {} for k in COLLECTIONS}
            self.objects.update(data.get("objects", {}))
            self.seq = int(data.get("seq", 0))
            self.idempotency = data.get("idempotency", {})
            # a seeded generator must not replay the ids it produced before the restart
            self.rng.seed(f"{self.settings.seed}:{self.seq}")
            offset = int(data.get("clock_offset", 0))
            if offset > self.settings.clock.offset:
                self.settings.clock.set_offset(offset)

    # -- transactions ------------------------------------------------------------------
    # A failed request leaves no trace, as at Stripe. Rather than copying the whole state,
    # the store journals the prior version of every object a request touches (get, all,
    # add, delete) and restores those on rollback.
    def begin(self) -> None:
        with self.lock:
            self._depth += 1
            if self._depth == 1:
                self._journal = {}
                self._journal_seq = self.seq

    def _remember(self, kind: str, obj_id: str) -> None:
        journal = self._journal
        if journal is not None and (kind, obj_id) not in journal:
            obj = self.objects[kind].get(obj_id)
            journal[(kind, obj_id)] = None if obj is None else marshal.dumps(obj)

    def commit(self) -> None:
        with self.lock:
            self._depth -= 1
            if self._depth == 0:
                self._journal = None

    def rollback(self) -> None:
        with self.lock:
            self._depth -= 1
            if self._depth > 0:
                return  # the outermost transaction decides
            journal, self._journal = self._journal or {}, None
            for (kind, obj_id), blob in journal.items():
                if blob is None:
                    self.objects[kind].pop(obj_id, None)
                else:
                    # our own bytes, made by marshal.dumps above in this process
                    self.objects[kind][obj_id] = marshal.loads(blob)  # noqa: S302
            self.seq = self._journal_seq

    # -- ids and time ----------------------------------------------------------------
    def new_id(self, prefix: str, length: int = 24) -> str:
        kind = PREFIX_TO_KIND.get(prefix)
        with self.lock:
            while True:
                new = prefix + "_" + "".join(self.rng.choice(_ALPHABET) for _ in range(length))
                if kind is None or new not in self.objects[kind]:
                    return new

    def now(self) -> int:
        return self.settings.clock.now()

    def next_seq(self) -> int:
        with self.lock:
            self.seq += 1
            return self.seq

    # -- objects ---------------------------------------------------------------------
    def add(self, kind: str, obj: dict) -> dict:
        with self.lock:
            self._remember(kind, obj["id"])
            obj["_seq"] = self.next_seq()
            self.objects[kind][obj["id"]] = obj
            return obj

    def get(self, kind: str, obj_id: Any) -> dict | None:
        if not isinstance(obj_id, str):
            return None
        if self._journal is not None:
            self._remember(kind, obj_id)
        return self.objects[kind].get(obj_id)

    def all(self, kind: str) -> list[dict]:
        if self._journal is not None:
            for obj_id in list(self.objects[kind]):
                self._remember(kind, obj_id)
        return sorted(self.objects[kind].values(), key=lambda o: o["_seq"], reverse=True)

    def delete(self, kind: str, obj_id: str) -> None:
        self._remember(kind, obj_id)
        self.objects[kind].pop(obj_id, None)

    def kind_of(self, obj_id: str) -> str | None:
        if not isinstance(obj_id, str) or "_" not in obj_id:
            return None
        return PREFIX_TO_KIND.get(obj_id.rsplit("_", 1)[0])


def public(obj: Any) -> Any:
    """Deep copy without private ``_`` keys."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [public(v) for v in obj]
    return copy.copy(obj)
