"""What every page's layout needs: navigation by role, time zones, formatting."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, current_app, request, url_for
from flask_login import current_user

from app.auth.permissions import PERMISSIONS


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
    NavItem("Mismatches", "mismatches.index", "mismatches.view", ("mismatches",)),
    NavItem("Sales", "sales.index", "sales.view", ("sales",)),
    NavItem("Admin", "admin.index", "admin.view", ("admin", "audit", "users", "connections")),
]


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


def has_endpoint(name: str) -> bool:
    return name in current_app.view_functions


def init_app(app: Flask) -> None:
    from app.money import format_money

    app.jinja_env.globals["nav_items"] = nav_items
    app.jinja_env.globals["has_endpoint"] = has_endpoint
    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
