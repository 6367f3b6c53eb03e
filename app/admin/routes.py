from __future__ import annotations

from flask import Blueprint, render_template

from app.auth.permissions import PERMISSIONS, ROLES, requires

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/")
@requires("admin.view")
def index():
    return render_template("admin/index.html")


@bp.route("/roles")
@requires("roles.view")
def roles():
    """What each role may do, read from the permission table itself."""
    table = [
        (name, description, [role in granted for role in ROLES])
        for name, (granted, description) in sorted(PERMISSIONS.items())
    ]
    return render_template("admin/roles.html", roles=list(ROLES.items()), table=table)
