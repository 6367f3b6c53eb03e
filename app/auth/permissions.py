"""The single permission table: which role may do what.

Every route names one permission (with `requires`) or is explicitly public
(with `public`); a request to any other route is denied. Nothing else in the
code base decides who may reach a page.
"""

from __future__ import annotations

from collections.abc import Callable

ROLES: dict[str, str] = {
    "admin": "Administers connections, mappings, rules, users and the audit log.",
    "finance": "Prepares, edits and pushes invoices; works the queue and mismatches.",
    "approver": "Approves or rejects submitted invoices.",
    "sales": "Sees deals' paid status and the sales summaries.",
}

# permission -> (roles granted, what it allows, in plain words)
PERMISSIONS: dict[str, tuple[frozenset[str], str]] = {
    "home.view": (frozenset(ROLES), "See the start page"),
    "queue.view": (
        frozenset({"finance", "approver", "admin"}), "See the deals that are ready to bill"
    ),
    "queue.sync": (frozenset({"finance", "admin"}), "Start a Pipedrive sync now"),
    "mismatches.view": (
        frozenset({"finance", "admin"}), "See where Pipedrive, the desk and Stripe disagree"
    ),
    "mismatches.acknowledge": (
        frozenset({"finance", "admin"}), "Acknowledge a mismatch or ask for a re-sync"
    ),
    "health.view": (frozenset({"finance", "admin"}), "See sync health and the scheduler's jobs"),
    "health.run": (frozenset({"finance", "admin"}), "Run a background job now"),
    "invoices.view": (
        frozenset({"finance", "approver", "admin"}), "See invoices, their lines and previews"
    ),
    "invoices.edit": (
        frozenset({"finance", "admin"}), "Create drafts and edit lines, prices, taxes and terms"
    ),
    "deals.view": (
        frozenset({"finance", "approver", "admin"}), "See a deal's snapshot and its history"
    ),
    # Approval and holds (app/approvals).
    "invoices.submit": (frozenset({"finance", "admin"}), "Submit a draft invoice for approval"),
    "invoices.approve": (
        frozenset({"approver", "admin"}), "Approve or reject submitted invoices"
    ),
    "invoices.approve_large": (
        frozenset({"admin"}), "Approve invoices above the approval threshold of their currency"
    ),
    "invoices.hold": (
        frozenset({"finance", "approver", "admin"}), "Put invoices on hold and release them"
    ),
    "invoices.cancel": (frozenset({"finance", "admin"}), "Cancel a draft invoice"),
    "holds.view": (
        frozenset({"finance", "approver", "admin"}), "See the invoices on hold: who, when, why"
    ),
    "approvals.policy": (
        frozenset({"admin"}), "Switch four-eyes approval and set approval thresholds"
    ),
    # Sales view (app/sales): amounts and dates only, never payment methods.
    "sales.view": (
        frozenset({"sales", "finance", "admin"}), "See deals' paid status and the sales summaries"
    ),
    "sales.export": (
        frozenset({"sales", "finance", "admin"}), "Download the sales tables as CSV"
    ),
    # Push to Stripe and write back to Pipedrive (app/push, app/writeback).
    "invoices.push": (
        frozenset({"finance", "admin"}), "Push approved invoices to Stripe, and retry failed pushes"
    ),
    "writeback.view": (
        frozenset({"finance", "admin"}),
        "See pending and failed write-backs to Pipedrive, and retry them",
    ),
    "account.view": (frozenset(ROLES), "See and change one's own account"),
    "audit.view": (frozenset({"admin"}), "Browse the audit log"),
    "admin.view": (frozenset({"admin"}), "Open the admin area"),
    "roles.view": (frozenset({"admin"}), "See what each role may do"),
    "users.manage": (
        frozenset({"admin"}), "Create users, assign roles, deactivate, reset passwords"
    ),
    "connections.manage": (
        frozenset({"admin"}), "Set the Pipedrive and Stripe connections and their secrets"
    ),
    "mappings.manage": (
        frozenset({"admin"}), "Choose which Pipedrive fields the desk reads and writes"
    ),
    "rules.manage": (
        frozenset({"admin"}), "Set billing rules, invoice defaults, tax and product mappings"
    ),
}


def roles_for(permission: str) -> frozenset[str]:
    return PERMISSIONS[permission][0]


def describe(permission: str) -> str:
    return PERMISSIONS[permission][1]


def has_permission(roles: set[str] | frozenset[str], permission: str) -> bool:
    granted = PERMISSIONS.get(permission)
    return granted is not None and bool(granted[0] & set(roles))


def requires(permission: str) -> Callable:
    """Mark a view as needing `permission`; checked before the view runs."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}: add it to PERMISSIONS")

    def mark(view):
        view.desk_permission = permission
        return view

    return mark


def public(view):
    """Mark a view as reachable without signing in (sign-in page, webhooks)."""
    view.desk_public = True
    return view
