"""Sandbox-only API under /_sandbox (no Stripe key): demo actions, clock, faults, ledger,
webhook draining, reset, and a small HTML page for the demo."""

from __future__ import annotations

import html
from urllib.parse import quote

from flask import Blueprint, current_app, jsonify, redirect, request

from .errors import StripeError
from .money import format_major

control = Blueprint("stripe_sandbox_control", __name__)

FAULT_MODES = ("500", "503", "429", "lose")
SETTINGS_SWITCHES = {
    "rate_limit_per_second": int,
    "webhooks_enabled": bool,
    "webhook_duplicate": bool,
    "webhook_shuffle": bool,
    "webhook_delay_seconds": float,
    "webhook_hold": bool,
    "webhook_time_scale": float,
    "webhook_max_attempts": int,
    "search_lag_seconds": int,
    "search_rate_limit_per_second": int,
}


def _sb():
    return current_app.extensions["stripe_sandbox"]


def _is_form() -> bool:
    return not request.is_json and bool(request.form)


def _args() -> dict:
    if request.is_json:
        return request.get_json(silent=True) or {}
    return {k: v for k, v in request.form.items() if v != ""}


def _int(args: dict, key: str, default=None):
    value = args.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or (isinstance(value, str) and not value.lstrip("-").isdigit()):
        raise StripeError(f"`{key}` must be an integer", param=key)
    return int(value)


def _reply(data, status: int = 200):
    if _is_form():
        return redirect("/_sandbox/")
    return jsonify(data), status


@control.errorhandler(StripeError)
def _stripe_error(exc: StripeError):
    if _is_form():
        return redirect("/_sandbox/?error=" + quote(exc.message))
    return jsonify(exc.body()), exc.status


def _mutate(fn):
    sb = _sb()
    with sb.store.lock:
        with sb.transaction():
            result = fn(sb)
        sb.store.save()
    return result


# ------------------------------------------------------------------ state
@control.post("/reset")
def reset():
    _sb().reset()
    return _reply({"reset": True})


@control.get("/ledger")
def ledger():
    sb = _sb()
    with sb.store.lock:
        return jsonify({"requests": list(sb.store.ledger)})


@control.delete("/ledger")
@control.post("/ledger/reset")
def ledger_reset():
    sb = _sb()
    with sb.store.lock:
        sb.store.ledger.clear()
    return _reply({"reset": True})


@control.post("/faults")
def faults_add():
    args = _args()
    mode = str(args.get("mode", ""))
    if mode not in FAULT_MODES:
        raise StripeError(f"mode must be one of {', '.join(FAULT_MODES)}", param="mode")
    fault = {"mode": mode, "count": _int(args, "count", 1), "path": args.get("path"),
             "method": args.get("method")}
    sb = _sb()
    with sb.store.lock:
        sb.store.faults.append(fault)
    return _reply({"fault": fault})


@control.get("/faults")
def faults_list():
    sb = _sb()
    with sb.store.lock:
        return jsonify({"faults": [f for f in sb.store.faults if f["count"] > 0]})


@control.delete("/faults")
def faults_clear():
    sb = _sb()
    with sb.store.lock:
        sb.store.faults.clear()
    return _reply({"faults": []})


@control.post("/settings")
def settings_update():
    args = _args()
    sb = _sb()
    changed = {}
    for key, value in args.items():
        if key not in SETTINGS_SWITCHES:
            raise StripeError(f"Unknown sandbox setting: {key}", param=key)
        cast = SETTINGS_SWITCHES[key]
        if cast is bool and isinstance(value, str):
            value = value.lower() in ("1", "true", "on", "yes")
        setattr(sb.settings, key, cast(value))
        changed[key] = getattr(sb.settings, key)
    sb.webhooks.wake()
    return _reply({"settings": changed})


# ------------------------------------------------------------------ clock
@control.get("/clock")
def clock():
    sb = _sb()
    return jsonify({"now": sb.now(), "offset": sb.settings.clock.offset})


@control.post("/clock/advance")
def clock_advance():
    args = _args()
    seconds = (_int(args, "days", 0) or 0) * 86400 + (_int(args, "seconds", 0) or 0)
    if seconds < 0:
        raise StripeError("The sandbox clock only moves forward.", param="seconds")
    now = _sb().advance_clock(seconds)
    return _reply({"now": now})


# ------------------------------------------------------------------ webhooks
@control.post("/webhooks/drain")
def webhooks_drain():
    args = _args()
    timeout = float(args.get("timeout", 10))
    sb = _sb()
    if sb.settings.webhook_hold:
        raise StripeError("Webhook delivery is on hold; release it with "
                          "webhook_hold=false before draining.", param="webhook_hold")
    drained = sb.webhooks.drain(timeout)
    return jsonify({"drained": drained, "pending": sb.webhooks.pending()})


@control.get("/webhooks/attempts")
def webhooks_attempts():
    return jsonify({"attempts": list(_sb().webhooks.attempts)})


# ------------------------------------------------------------------ demo actions
def _invoice(sb, invoice_id):
    return sb.get("invoice", invoice_id)


@control.post("/invoices/<invoice_id>/pay")
def invoice_pay(invoice_id):
    """The customer pays (all that remains, or `amount`): PaymentIntent, Charge,
    InvoicePayment and the events Stripe sends."""
    args = _args()

    def act(sb):
        inv = _invoice(sb, invoice_id)
        amount = _int(args, "amount", inv["amount_remaining"])
        ok = sb.charge_invoice(inv, amount, args.get("payment_method", "pm_card_visa"))
        return {"succeeded": ok, "invoice": sb.render(inv, ["payments"])}

    return _reply(_mutate(act))


@control.post("/invoices/<invoice_id>/fail_payment")
def invoice_fail_payment(invoice_id):
    args = _args()

    def act(sb):
        inv = _invoice(sb, invoice_id)
        amount = _int(args, "amount", inv["amount_remaining"])
        sb.charge_invoice(inv, amount, args.get("payment_method", "pm_card_chargeDeclined"))
        return {"succeeded": False, "invoice": sb.render(inv)}

    return _reply(_mutate(act))


@control.post("/invoices/<invoice_id>/void")
def invoice_void(invoice_id):
    return _reply(_mutate(lambda sb: sb.render(sb.void(_invoice(sb, invoice_id)))))


@control.post("/invoices/<invoice_id>/credit_note")
def invoice_credit_note(invoice_id):
    args = _args()

    def act(sb):
        inv = _invoice(sb, invoice_id)
        params = {"invoice": inv["id"], "amount": _int(args, "amount")}
        if args.get("reason"):
            params["reason"] = args["reason"]
        post = max(0, params["amount"] - inv["amount_remaining"]) if inv["status"] in (
            "open", "uncollectible") else params["amount"]
        if post:
            key = "refund_amount" if args.get("refund", True) not in (False, "false") else (
                "credit_amount")
            params[key] = post
        return sb.render(sb.create_credit_note(params))

    return _reply(_mutate(act))


@control.post("/charges/<charge_id>/refund")
def charge_refund(charge_id):
    args = _args()

    def act(sb):
        params = {"charge": charge_id}
        if "amount" in args:
            params["amount"] = _int(args, "amount")
        return sb.render(sb.create_refund(params))

    return _reply(_mutate(act))


# ------------------------------------------------------------------ demo page
@control.get("/")
def page():
    sb = _sb()
    esc = html.escape
    with sb.store.lock:
        invoices = sb.store.all("invoice")
        charges = sb.store.all("charge")
        events = sb.store.all("event")[:15]
        now = sb.now()
        rows = []
        for inv in invoices:
            cur = inv["currency"]
            actions = ""
            if inv["status"] in ("open", "uncollectible"):
                actions = (
                    _form(f"/_sandbox/invoices/{inv['id']}/pay", "Pay in full")
                    + _form(f"/_sandbox/invoices/{inv['id']}/pay", "Pay part",
                            '<input name="amount" size="7" placeholder="minor units">')
                    + _form(f"/_sandbox/invoices/{inv['id']}/fail_payment", "Payment fails")
                    + _form(f"/_sandbox/invoices/{inv['id']}/void", "Void")
                )
            if inv["status"] in ("open", "paid", "uncollectible"):
                actions += _form(f"/_sandbox/invoices/{inv['id']}/credit_note", "Credit note",
                                 '<input name="amount" size="7" placeholder="minor units">')
            rows.append(
                f"<tr><td>{esc(inv['id'])}</td><td>{esc(inv['number'] or '')}</td>"
                f"<td>{esc(inv['customer_email'] or inv['customer'])}</td>"
                f"<td>{esc(inv['status'])}</td>"
                f"<td>{format_major(inv['total'], cur)} {cur}</td>"
                f"<td>{format_major(inv['amount_paid'], cur)}</td>"
                f"<td>{format_major(inv['amount_remaining'], cur)}</td>"
                f"<td>{actions}</td></tr>"
            )
        charge_rows = [
            f"<tr><td>{esc(c['id'])}</td><td>{esc(c['status'])}</td>"
            f"<td>{format_major(c['amount'], c['currency'])} {c['currency']}</td>"
            f"<td>{format_major(c['amount_refunded'], c['currency'])}</td><td>"
            + (_form(f"/_sandbox/charges/{c['id']}/refund", "Refund",
                     '<input name="amount" size="7" placeholder="all">')
               if c["status"] == "succeeded" and not c["refunded"] else "")
            + "</td></tr>"
            for c in charges
        ]
        event_rows = [f"<li>{esc(e['type'])} <small>{esc(e['id'])}</small></li>"
                      for e in events]
    error = request.args.get("error")
    body = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Stripe sandbox</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}form{{display:inline;margin-right:4px}}
.err{{color:#b00}}</style></head><body>
<h1>Stripe sandbox</h1>
<p>Sandbox clock: {now} &middot; {_form('/_sandbox/clock/advance', 'Advance clock',
    '<input name="days" size="3" value="1"> days')}
{_form('/_sandbox/reset', 'Reset state')}</p>
{f'<p class="err">{esc(error)}</p>' if error else ''}
<h2>Invoices</h2><table><tr><th>id</th><th>number</th><th>customer</th><th>status</th>
<th>total</th><th>paid</th><th>remaining</th><th></th></tr>{''.join(rows)}</table>
<h2>Charges</h2><table><tr><th>id</th><th>status</th><th>amount</th><th>refunded</th><th></th>
</tr>{''.join(charge_rows)}</table>
<h2>Latest events</h2><ul>{''.join(event_rows)}</ul>
</body></html>"""
    return body


def _form(action: str, label: str, extra: str = "") -> str:
    return (f'<form method="post" action="{html.escape(action)}">{extra}'
            f'<input type="hidden" name="_ui" value="1">'
            f'<button type="submit">{html.escape(label)}</button></form>')
