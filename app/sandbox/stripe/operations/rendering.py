"""Rendering objects as the API shows them: expansion and list pages."""

from __future__ import annotations

from typing import Any

from ..common import created_match
from ..errors import StripeError, invalid, missing
from ..store import public


class RenderingMixin:
    """Mixed into ``StripeSandbox``: rendering objects as the API shows them:
    expansion and list pages."""

    # ------------------------------------------------------------------ rendering
    def render(self, obj: dict, expand: list[str] | None = None) -> dict:
        out = public(obj)
        if obj.get("object") == "invoice":
            out["lines"] = self._invoice_lines_list(obj)
            if expand and any(e == "payments" or e.startswith("payments.") for e in expand):
                out["payments"] = self._list_body(
                    [self.render(self.store.get("invoice_payment", p)) for p in obj["_payments"]],
                    f"/v1/invoices/{obj['id']}/payments",
                )
        if obj.get("object") == "charge":
            refunds = [self.render(self.store.get("refund", r)) for r in obj["_refunds"]]
            out["refunds"] = self._list_body(refunds[::-1], f"/v1/charges/{obj['id']}/refunds")
        for path in expand or []:
            if path in ("payments", "lines") and obj.get("object") == "invoice":
                continue
            self._expand(out, path.split("."), path)
        return out

    def _expand(self, node: Any, parts: list[str], full: str) -> None:
        if not parts or not isinstance(node, dict):
            return
        head, rest = parts[0], parts[1:]
        if head == "data" and isinstance(node.get("data"), list):
            for item in node["data"]:
                self._expand(item, rest, full)
            return
        if head not in node:
            raise invalid(f"This property cannot be expanded ({full}).", param="expand")
        value = node[head]
        if rest:
            if isinstance(value, list):
                for item in value:
                    self._expand(item, rest, full)
            else:
                self._expand(value, rest, full)
            return
        node[head] = self._expand_value(value, full)

    def _expand_value(self, value: Any, full: str) -> Any:
        if isinstance(value, list):
            return [self._expand_value(v, full) for v in value]
        if isinstance(value, dict) or value is None:
            return value
        kind = self.store.kind_of(value)
        obj = self.store.get(kind, value) if kind else None
        if obj is None:
            raise invalid(f"This property cannot be expanded ({full}).", param="expand")
        return self.render(obj)

    @staticmethod
    def _list_body(data: list, url: str, has_more: bool = False) -> dict:
        return {"object": "list", "data": data, "has_more": has_more, "url": url}

    # ------------------------------------------------------------------ lists
    def list_page(
        self,
        items: list[dict],
        params: dict,
        url: str,
        expand: list[str] | None = None,
        render=None,
    ) -> dict:
        """Newest first; ``starting_after``/``ending_before`` cursors; ``limit`` 1..100."""
        limit = params.get("limit", 10)
        if not 1 <= limit <= 100:
            raise StripeError(
                f"Invalid integer: {limit}. This value must be between 1 and 100.",
                param="limit", code="parameter_invalid_integer", saved=False,
            )
        if "starting_after" in params and "ending_before" in params:
            raise invalid(
                "You may only specify one of these parameters: ending_before, starting_after."
            )
        created = params.get("created")
        if created is not None:
            items = [o for o in items if created_match(o["created"], created)]
        ids = [o["id"] for o in items]
        if "starting_after" in params:
            cursor = params["starting_after"]
            if cursor not in ids:
                raise missing("object", cursor, "starting_after")
            start = ids.index(cursor) + 1
            page = items[start:start + limit]
            has_more = start + limit < len(items)
        elif "ending_before" in params:
            cursor = params["ending_before"]
            if cursor not in ids:
                raise missing("object", cursor, "ending_before")
            end = ids.index(cursor)
            begin = max(0, end - limit)
            page = items[begin:end]
            has_more = begin > 0
        else:
            page = items[:limit]
            has_more = len(items) > limit
        sub = [p[len("data."):] for p in (expand or []) if p.startswith("data.")]
        render = render or self.render
        return self._list_body([render(o, sub) for o in page], url, has_more)
