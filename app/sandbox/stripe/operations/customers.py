"""Customers: create, update, delete, search."""

from __future__ import annotations

from ..common import CARD_TOKENS, DECLINE_TOKENS, address_fields, metadata_update
from ..errors import invalid, missing


class CustomersMixin:
    """Mixed into ``StripeSandbox``: customers: create, update, delete, search."""

    # ------------------------------------------------------------------ customers
    def create_customer(self, p: dict) -> dict:
        st = self.store
        cid = st.new_id("cus", 14)
        cust = {
            "id": cid,
            "object": "customer",
            "address": address_fields(p.get("address")),
            "balance": p.get("balance", 0),
            "created": self.now(),
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": p.get("description"),
            "discount": None,
            "email": p.get("email"),
            "invoice_prefix": p.get("invoice_prefix")
            or "".join(st.rng.choice("0123456789ABCDEF") for _ in range(8)),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": metadata_update({}, p.get("metadata")),
            "name": p.get("name"),
            "next_invoice_sequence": p.get("next_invoice_sequence", 1),
            "phone": p.get("phone"),
            "preferred_locales": p.get("preferred_locales", []),
            "shipping": p.get("shipping") or None,
            "tax_exempt": p.get("tax_exempt", "none"),
            "test_clock": None,
        }
        self._apply_invoice_settings(cust, p.get("invoice_settings"))
        self._check_payment_method(cust["invoice_settings"]["default_payment_method"],
                                   "invoice_settings[default_payment_method]")
        st.add("customer", cust)
        self._index(cust)
        self.emit("customer.created", cust)
        return cust

    def _index(self, cust: dict) -> None:
        """Record what Search will see of this customer once the index catches up."""
        cust.setdefault("_search", []).append({
            "at": self.now(),
            "doc": {k: cust.get(k) for k in ("email", "name", "phone", "created", "metadata")},
        })
        del cust["_search"][:-20]

    def _check_payment_method(self, pm, param: str) -> None:
        if pm and pm not in CARD_TOKENS and pm not in DECLINE_TOKENS:
            raise missing("PaymentMethod", pm, param)

    def _apply_invoice_settings(self, cust: dict, value) -> None:
        if not value:
            return
        s = cust["invoice_settings"]
        for key in ("default_payment_method", "footer"):
            if key in value:
                s[key] = value[key] or None
        if "custom_fields" in value:
            s["custom_fields"] = value["custom_fields"] or None

    def update_customer(self, cust: dict, p: dict) -> dict:
        self._check_payment_method((p.get("invoice_settings") or {}).get(
            "default_payment_method"), "invoice_settings[default_payment_method]")
        before = self.render(cust)
        for key in ("description", "email", "name", "phone", "tax_exempt", "balance",
                    "preferred_locales", "invoice_prefix", "next_invoice_sequence"):
            if key in p:
                cust[key] = p[key] if p[key] != "" else None
        if "address" in p:
            cust["address"] = address_fields(p["address"])
        if "shipping" in p:
            cust["shipping"] = p["shipping"] or None
        if "metadata" in p:
            cust["metadata"] = metadata_update(cust["metadata"], p["metadata"])
        self._apply_invoice_settings(cust, p.get("invoice_settings"))
        self._index(cust)
        self.emit_update("customer.updated", cust, before)
        return cust

    def delete_customer(self, cust: dict) -> dict:
        self.store.delete("customer", cust["id"])
        self.emit("customer.deleted", cust)
        return {"id": cust["id"], "object": "customer", "deleted": True}

    def search_customers(self, query: str) -> list[dict]:
        clauses, joiner = _parse_search(query)
        horizon = self.now() - self.settings.search_lag_seconds
        out = []
        for cust in self.store.all("customer"):
            visible = [v["doc"] for v in cust.get("_search", []) if v["at"] <= horizon]
            if not visible:
                continue  # not indexed yet
            hits = [_search_match(visible[-1], c) for c in clauses]
            if (all(hits) if joiner == "AND" else any(hits)):
                out.append(cust)
        return out


def _parse_search(query: str) -> tuple[list[tuple[str, str, str]], str]:
    """Parse Stripe's search query language (a subset): field:'v', field~'v',
    metadata['k']:'v', joined by AND or OR (not mixed)."""
    import re

    if not query or not query.strip():
        raise invalid("The `query` parameter is required.", param="query",
                      code="parameter_missing")
    has_and = re.search(r"\sAND\s", query) is not None
    has_or = re.search(r"\sOR\s", query) is not None
    if has_and and has_or:
        raise invalid("Queries cannot mix AND and OR.", param="query")
    joiner = "OR" if has_or else "AND"
    parts = re.split(r"\s(?:AND|OR)\s", query.strip())
    clause_re = re.compile(
        r"""^\s*(metadata\[(['"])(.+?)\2\]|[a-z_]+)\s*([:~])\s*(['"])(.*?)\5\s*$""")
    clauses = []
    for part in parts:
        m = clause_re.match(part)
        if not m:
            raise invalid(f"The query `{query}` is invalid: could not parse `{part.strip()}`.",
                          param="query")
        field = f"metadata.{m.group(3)}" if m.group(3) else m.group(1)
        if not field.startswith("metadata.") and field not in (
                "email", "name", "phone", "created"):
            raise invalid(f"Field `{field}` is an unsupported search field for customers.",
                          param="query")
        clauses.append((field, m.group(4), m.group(6)))
    return clauses, joiner


def _search_match(cust: dict, clause: tuple[str, str, str]) -> bool:
    field, op, value = clause
    if field.startswith("metadata."):
        actual = cust["metadata"].get(field[len("metadata."):])
    else:
        actual = cust.get(field)
    if actual is None:
        return False
    actual = str(actual)
    if op == "~":
        return value.lower() in actual.lower()
    return actual.lower() == value.lower() if field == "email" else actual == value
