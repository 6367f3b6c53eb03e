"""The Pipedrive deal and organization panel: a tiny page shown in an app extension
iframe inside Pipedrive, authenticated by Pipedrive's signed token (not the desk
session). GET only, so no CSRF token; framing allowed for *.pipedrive.com only."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template, request

from app.auth.permissions import public
from app.extensions import db
from app.intake.models import PdDeal
from app.payments.states import label as payment_label
from app.sales import queries
from app.sales.panel_token import PanelTokenError, verify
from app.types import utcnow
from app.web.params import parse_pd_id
from app.web.security import embeddable

# The panel is framed by Pipedrive and authenticated by Pipedrive's signed token,
# not by the desk session: a blueprint of its own, outside /sales.
panel_bp = Blueprint("panel", __name__, url_prefix="/panel")

PIPEDRIVE_FRAMES = "https://*.pipedrive.com"


def _refuse(message: str) -> Response:
    return Response(message + "\n", 403, mimetype="text/plain")


def _authenticate(resource: str, ident: int | None):
    """(claims, id) or a 403 response. The id comes from the path, or from Pipedrive's
    `selectedIds` when the extension's URL is the bare /panel/deal."""
    secret = current_app.config.get("PIPEDRIVE_PANEL_SECRET")
    if not secret:
        return _refuse("The Pipedrive panel is not set up on this desk.")
    try:
        claims = verify(
            request.args.get("token"),
            secret,
            company_id=current_app.config.get("PIPEDRIVE_PANEL_COMPANY_ID"),
        )
    except PanelTokenError:
        return _refuse("This panel needs a valid, current link from Pipedrive.")
    company = request.args.get("companyId")
    if company is not None and str(claims.get("companyId")) != company:
        return _refuse("This panel needs a valid, current link from Pipedrive.")
    if ident is None:
        selected = (request.args.get("selectedIds") or "").split(",")[0].strip()
        ident = parse_pd_id(selected)
        if ident is None:
            return _refuse("Open this panel from a deal or an organization in Pipedrive.")
    # A link the desk signed itself names one record: it opens that record only.
    if "resource" in claims and (
        claims["resource"] != resource or str(claims.get("selectedIds")) != str(ident)
    ):
        return _refuse("This panel needs a valid, current link from Pipedrive.")
    return claims, ident


@panel_bp.route("/deal", defaults={"deal_id": None})
@panel_bp.route("/deal/<pd_id:deal_id>")
@public
@embeddable(PIPEDRIVE_FRAMES)
def deal(deal_id: int | None):
    auth = _authenticate("deal", deal_id)
    if isinstance(auth, Response):
        return auth
    _claims, deal_id = auth
    now = utcnow()
    deal = db.session.get(PdDeal, deal_id)
    return render_template(
        "sales/panel.html",
        kind="deal",
        name=deal.title if deal else None,
        status=queries.deal_status(now, deal_id) if deal else None,
        statuses=queries.DEAL_STATUSES,
        positions=queries.positions(now, deal_id=deal_id),
        latest=queries.latest_invoice(deal_id=deal_id),
        payment_label=payment_label,
    )


@panel_bp.route("/organization", defaults={"org_id": None})
@panel_bp.route("/organization/<pd_id:org_id>")
@public
@embeddable(PIPEDRIVE_FRAMES)
def organization(org_id: int | None):
    auth = _authenticate("organization", org_id)
    if isinstance(auth, Response):
        return auth
    _claims, org_id = auth
    now = utcnow()
    org = queries.organization(org_id)
    return render_template(
        "sales/panel.html",
        kind="organization",
        name=org.name if org else None,
        status=None,
        statuses=queries.DEAL_STATUSES,
        positions=queries.positions(now, org_id=org_id),
        latest=queries.latest_invoice(org_id=org_id),
        payment_label=payment_label,
    )
