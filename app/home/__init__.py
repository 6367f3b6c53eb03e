from flask import Blueprint, render_template
from flask_login import current_user

from app.auth.permissions import ROLES, requires

bp = Blueprint("home", __name__)


@bp.route("/")
@requires("home.view")
def index():
    roles = [(r, ROLES[r]) for r in sorted(current_user.roles)]
    return render_template("home/index.html", roles=roles)
