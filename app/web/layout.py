"""What every page's layout needs: navigation by role, time zones, formatting."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, current_app, request, url_for
from flask_login import current_user

from app.auth.permissions import PERMISSIONS
from app.money import plain_decimal


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    permission: str
    sections: tuple[str, ...]  # the blueprints whose pages light this item up


# The main navigation, in order. An item shows only when its page exists and the
# signed-in user's roles grant its permission; the permission table stays the
# single source of truth.
NAVIGATION: list[NavItem] = [
    NavItem("Queue", "queue.index", "queue.view", ("queue",)),
    NavItem("Invoices", "invoices.index", "invoices.view", ("invoices",)),
    NavItem("Approvals", "approvals.inbox", "invoices.approve", ("approvals",)),
    NavItem("Push", "push.index", "invoices.push", ("push",)),
    NavItem("Mismatches", "mismatches.index", "mismatches.view", ("mismatches",)),
    NavItem("Sync health", "health.index", "health.view", ("health",)),
    NavItem("Sales", "sales.index", "sales.view", ("sales",)),
    NavItem(
        "Admin", "admin.index", "admin.view",
        ("admin", "audit", "users", "connections", "approval_policy", "mappings", "rules"),
    ),
]

# endpoint -> function giving the number shown next to its navigation item
# (e.g. invoices waiting for my approval); registered by the feature's package.
NAV_COUNTS: dict[str, Callable[[], int]] = {}


def register_nav_count(endpoint: str, count: Callable[[], int]) -> None:
    NAV_COUNTS[endpoint] = count


def nav_count(endpoint: str) -> int | None:
    """The item's count, or None when it has none (no badge at all)."""
    count = NAV_COUNTS.get(endpoint)
    return None if count is None else count()


def nav_items() -> list[tuple[NavItem, str, bool]]:
    if not current_user.is_authenticated:
        return []
    endpoints = current_app.view_functions
    current = request.blueprint or ""
    items = []
    for item in NAVIGATION:
        if item.endpoint not in endpoints:
            continue
        if item.permission not in PERMISSIONS or not current_user.can(item.permission):
            continue
        items.append((item, url_for(item.endpoint), current in item.sections))
    return items


def user_zone() -> ZoneInfo:
    name = getattr(current_user, "timezone", None) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def localtime(value: dt.datetime | None, fmt: str = "%d %b %Y %H:%M") -> str:
    """Show an aware UTC timestamp in the signed-in user's time zone."""
    if value is None:
        return "—"
    if value.tzinfo is None:  # defensive: stored values are always aware
        value = value.replace(tzinfo=dt.UTC)
    local = value.astimezone(user_zone())
    return f"{local.strftime(fmt)} {local.tzname()}"


# The `num` filter: a Decimal as people write it (1200, 1.5, 0.125; never 1.2E+3, never
# the column's trailing zeros). The one formatter lives in app.money.
plain_number = plain_decimal


def init_app(app: Flask) -> None:
    from app.audit.display import show_value
    from app.money import format_money

    app.jinja_env.globals["nav_items"] = nav_items
    app.jinja_env.globals["nav_count"] = nav_count
    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["num"] = plain_number
    # A stored value (audit, snapshots) in words: Decimals plain, lists "a, b", None "—".
    app.jinja_env.filters["shown"] = show_value
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True


def is_htmx() -> bool:
    """Any request htmx made (a fragment, a boosted link or form, a history restore):
    an error or a sign-in redirect must answer it in a form htmx can show."""
    from flask import request

    return request.headers.get("HX-Request") == "true"


def wants_fragment() -> bool:
    """An htmx request for part of a page (not a boosted navigation, not a history restore,
    both of which need the whole page)."""
    from flask import request

    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request
