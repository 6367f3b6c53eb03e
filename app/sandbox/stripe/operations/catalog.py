"""The catalog: products, prices, tax rates, coupons and discounts."""

from __future__ import annotations

from decimal import Decimal

from .. import money
from ..common import metadata_update, pct_json
from ..errors import invalid, missing, param_invalid, param_missing


class CatalogMixin:
    """Mixed into ``StripeSandbox``: the catalog (products, prices, tax rates, coupons,
    discounts)."""

    # ------------------------------------------------------------------ catalog
    def create_product(self, p: dict) -> dict:
        now = self.now()
        prod = {
            "id": p.get("id") or self.store.new_id("prod", 14),
            "object": "product",
            "active": p.get("active", True),
            "created": now,
            "default_price": None,
            "description": p.get("description"),
            "images": p.get("images", []),
            "livemode": False,
            "marketing_features": p.get("marketing_features", []),
            "metadata": metadata_update({}, p.get("metadata")),
            "name": p["name"] if "name" in p else self._raise(param_missing("name")),
            "package_dimensions": p.get("package_dimensions"),
            "shippable": p.get("shippable"),
            "statement_descriptor": p.get("statement_descriptor"),
            "tax_code": p.get("tax_code"),
            "type": p.get("type", "service"),
            "unit_label": p.get("unit_label"),
            "updated": now,
            "url": p.get("url"),
        }
        if self.store.get("product", prod["id"]):
            raise invalid("Product already exists.", param="id", code="resource_already_exists")
        self.store.add("product", prod)
        self.emit("product.created", prod)
        if "default_price_data" in p:
            dp = dict(p["default_price_data"])
            dp["product"] = prod["id"]
            price = self.create_price(dp, "default_price_data")
            prod["default_price"] = price["id"]
        return prod

    @staticmethod
    def _raise(exc: Exception):
        raise exc

    def create_price(self, p: dict, prefix: str = "", active: bool = True) -> dict:
        pre = f"{prefix}[" if prefix else ""
        post = "]" if prefix else ""
        currency = money.check_currency(p.get("currency"), f"{pre}currency{post}")
        unit_dec = self._unit_amount(p, currency, pre, post)
        product_id = p.get("product")
        if product_id is None and "product_data" in p:
            product_id = self.create_product(p["product_data"])["id"]
        if product_id is None:
            raise param_missing(f"{pre}product{post}")
        self.get("product", product_id, param=f"{pre}product{post}")
        recurring = None
        if p.get("recurring"):
            r = p["recurring"]
            recurring = {
                "interval": r["interval"],
                "interval_count": r.get("interval_count", 1),
                "meter": r.get("meter"),
                "trial_period_days": r.get("trial_period_days"),
                "usage_type": r.get("usage_type", "licensed"),
            }
        unit_int = int(unit_dec) if unit_dec == unit_dec.to_integral_value() else None
        price = {
            "id": self.store.new_id("price"),
            "object": "price",
            "active": p.get("active", active),
            "billing_scheme": "per_unit",
            "created": self.now(),
            "currency": currency,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": p.get("lookup_key"),
            "metadata": metadata_update({}, p.get("metadata")),
            "nickname": p.get("nickname"),
            "product": product_id,
            "recurring": recurring,
            "tax_behavior": p.get("tax_behavior", "unspecified"),
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring" if recurring else "one_time",
            "unit_amount": unit_int,
            "unit_amount_decimal": money.decimal_str(unit_dec),
        }
        self.store.add("price", price)
        self.emit("price.created", price)
        return price

    def _unit_amount(self, p: dict, currency: str, pre: str = "", post: str = "") -> Decimal:
        if "unit_amount" in p and "unit_amount_decimal" in p:
            raise invalid(
                "You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
                param=f"{pre}unit_amount{post}",
            )
        if "unit_amount" in p:
            money.check_amount(p["unit_amount"], currency, f"{pre}unit_amount{post}")
            return Decimal(p["unit_amount"])
        if "unit_amount_decimal" in p:
            d = money.to_decimal(p["unit_amount_decimal"], f"{pre}unit_amount_decimal{post}")
            if d < 0:
                raise param_invalid(f"{pre}unit_amount_decimal{post}",
                                    "This value must be greater than or equal to 0.",
                                    "parameter_invalid_decimal")
            if d > money.MAX_AMOUNT:
                raise param_invalid(f"{pre}unit_amount_decimal{post}",
                                    "Amount must be no more than 99,999,999.", "amount_too_large")
            return d
        raise param_missing(f"{pre}unit_amount{post}")

    def create_tax_rate(self, p: dict) -> dict:
        pct = money.to_decimal(p["percentage"], "percentage")
        if not 0 <= pct <= 100:
            raise param_invalid("percentage", "Percentage must be between 0 and 100.",
                                "parameter_invalid_decimal")
        rate = {
            "id": self.store.new_id("txr"),
            "object": "tax_rate",
            "active": p.get("active", True),
            "country": p.get("country"),
            "created": self.now(),
            "description": p.get("description"),
            "display_name": p["display_name"],
            "effective_percentage": pct_json(pct),
            "flat_amount": None,
            "inclusive": p["inclusive"],
            "jurisdiction": p.get("jurisdiction"),
            "jurisdiction_level": None,
            "livemode": False,
            "metadata": metadata_update({}, p.get("metadata")),
            "percentage": pct_json(pct),
            "rate_type": "percentage",
            "state": p.get("state"),
            "tax_type": p.get("tax_type"),
            "_pct": str(pct),
        }
        self.store.add("tax_rate", rate)
        self.emit("tax_rate.created", rate)
        return rate

    def create_coupon(self, p: dict) -> dict:
        has_pct, has_amt = "percent_off" in p, "amount_off" in p
        if has_pct == has_amt:
            raise invalid("Coupons require exactly one of percent_off or amount_off.",
                          param="percent_off")
        currency = None
        if has_amt:
            if "currency" not in p:
                raise param_missing("currency")
            currency = money.check_currency(p["currency"])
            money.check_amount(p["amount_off"], currency, "amount_off")
        pct = money.to_decimal(p["percent_off"], "percent_off") if has_pct else None
        if pct is not None and not 0 < pct <= 100:
            raise param_invalid("percent_off", "percent_off must be between 0 and 100.",
                                "parameter_invalid_decimal")
        duration = p.get("duration", "once")
        coupon = {
            "id": p.get("id") or "".join(self.store.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
                                         for _ in range(8)),
            "object": "coupon",
            "amount_off": p.get("amount_off"),
            "created": self.now(),
            "currency": currency,
            "duration": duration,
            "duration_in_months": p.get("duration_in_months") if duration == "repeating" else None,
            "livemode": False,
            "max_redemptions": p.get("max_redemptions"),
            "metadata": metadata_update({}, p.get("metadata")),
            "name": p.get("name"),
            "percent_off": pct_json(pct) if pct is not None else None,
            "redeem_by": p.get("redeem_by"),
            "times_redeemed": 0,
            "valid": True,
            "_pct": str(pct) if pct is not None else None,
        }
        if self.store.get("coupon", coupon["id"]):
            raise invalid("Coupon already exists.", param="id", code="resource_already_exists")
        self.store.add("coupon", coupon)
        self.emit("coupon.created", coupon)
        return coupon

    def _make_discounts(self, value, param: str, *, customer: str, invoice: str | None,
                        invoice_item: str | None, currency: str) -> list[str]:
        if not value:
            return []
        ids = []
        for i, d in enumerate(value):
            if "discount" in d:
                self.get("discount", d["discount"], param=f"{param}[{i}][discount]")
                ids.append(d["discount"])
                continue
            if "coupon" not in d:
                raise param_missing(f"{param}[{i}][coupon]")
            coupon = self.store.get("coupon", d["coupon"])
            if coupon is None:
                raise missing("coupon", d["coupon"], f"{param}[{i}][coupon]")
            if coupon["currency"] and coupon["currency"] != currency:
                raise invalid(
                    f"The coupon currency ({coupon['currency']}) must match the currency of "
                    f"the invoice ({currency}).", param=f"{param}[{i}][coupon]")
            disc = {
                "id": self.store.new_id("di"),
                "object": "discount",
                "checkout_session": None,
                "customer": customer,
                "customer_account": None,
                "end": None,
                "invoice": invoice,
                "invoice_item": invoice_item,
                "promotion_code": None,
                "source": {"coupon": coupon["id"], "type": "coupon"},
                "start": self.now(),
                "subscription": None,
                "subscription_item": None,
            }
            coupon["times_redeemed"] += 1
            self.store.add("discount", disc)
            ids.append(disc["id"])
        return ids
