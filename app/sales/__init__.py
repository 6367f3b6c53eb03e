"""The sales view: has this deal been paid? Summaries, aging, exports, and the
Pipedrive deal panel. Read-only: nothing here changes an invoice."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("sales", __name__, url_prefix="/sales")
# The panel is framed by Pipedrive and authenticated by Pipedrive's signed token,
# not by the desk session: a blueprint of its own, outside /sales.
panel_bp = Blueprint("panel", __name__, url_prefix="/panel")

from app.sales import panel, routes  # noqa: E402,F401  (registers the views)
