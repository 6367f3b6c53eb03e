"""The Flask app: Stripe's request pipeline (faults, auth, rate limit, idempotency,
validation, ledger) in front of the /v1 handlers, plus the sandbox-only API."""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import socket
import time

from flask import Flask, Response, request

from . import api
from .control import control
from .errors import StripeError, api_error, rate_limited, unrecognized_url
from .sandbox import RequestCtx, StripeSandbox
from .settings import StripeSandboxSettings
from .validation import StripeParamError, UnknownEndpoint, decode_form, validate, validate_params

API_VERSION = "2026-10-28.endive"
log = logging.getLogger(__name__)


def create_app(settings: StripeSandboxSettings | None = None) -> Flask:
    sandbox = StripeSandbox(settings)
    app = Flask(__name__)
    app.extensions["stripe_sandbox"] = sandbox
    app.config["JSON_SORT_KEYS"] = False

    for method, rule, handler in api.ROUTES:
        app.add_url_rule(
            rule,
            endpoint=f"{method}:{rule}",
            view_func=_make_view(sandbox, handler),
            methods=[method],
        )

    app.register_blueprint(control, url_prefix="/_sandbox")

    @app.errorhandler(404)
    @app.errorhandler(405)
    def _not_found(_exc):
        if request.path.startswith("/v1"):
            return _pipeline(sandbox, None, {})
        return Response("Not found\n", status=404, mimetype="text/plain")

    return app


def _make_view(sandbox: StripeSandbox, handler):
    def view(**kwargs):
        return _pipeline(sandbox, handler, kwargs)

    view.__name__ = handler.__name__
    return view


def _redact(key: str) -> str:
    m = re.match(r"^((?:sk|rk|pk)_(?:test|live)_)(.*)$", key)
    if not m:
        return key[:4] + "*" * max(0, len(key) - 8) + key[-4:] if len(key) > 8 else key
    rest = m.group(2)
    return m.group(1) + "*" * max(0, len(rest) - 4) + rest[-4:]


def _authenticate(sandbox: StripeSandbox) -> str:
    header = request.headers.get("Authorization", "")
    key = ""
    if header.startswith("Bearer "):
        key = header[len("Bearer "):].strip()
    elif header.startswith("Basic "):
        try:
            key = base64.b64decode(header[6:]).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            key = ""
    if not key:
        raise StripeError(
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or "
            "we can help at https://support.stripe.com/.",
            status=401, saved=False,
        )
    live_refused = key.startswith("sk_live_") and not sandbox.settings.allow_live_keys
    if key not in sandbox.settings.api_keys or live_refused:
        raise StripeError(f"Invalid API Key provided: {_redact(key)}", status=401, saved=False)
    return key


def _fingerprint(method: str, path: str, params: dict) -> str:
    return json.dumps([method, path, params], sort_keys=True, default=str)


def _apply_fault(fault_mode: str) -> bool:
    """Raise the injected 500/503/429; True when the response is to be lost."""
    if fault_mode in ("500", "503"):
        raise api_error(int(fault_mode))
    if fault_mode == "429":
        raise rate_limited()
    return fault_mode == "lose"


def _admit(sandbox: StripeSandbox, path: str) -> None:
    """Authenticate, apply the rate limits (search has its own) and refuse other versions."""
    key = _authenticate(sandbox)
    if sandbox.over_rate_limit(key):
        raise rate_limited()
    if path.endswith("/search") and sandbox.over_rate_limit(
            "search:" + key, sandbox.settings.search_rate_limit_per_second):
        raise rate_limited()
    version = request.headers.get("Stripe-Version")
    if version and version != API_VERSION:
        raise StripeError(
            f"The Stripe sandbox only speaks API version {API_VERSION}; this request "
            f"asked for {version}. Real Stripe would answer in that version's shapes, "
            "which the sandbox cannot reproduce.", saved=False)


def _replay_record(sandbox: StripeSandbox, idem_key: str | None, method: str, path: str,
                   params: dict) -> dict | None:
    """The saved response for this idempotency key, or None; a key reused for another
    endpoint or other parameters is refused."""
    record = None
    if idem_key:
        if len(idem_key) > 255:
            raise StripeError(
                "Invalid idempotency key: keys must be at most 255 characters.",
                type="idempotency_error", saved=False)
        _prune_idempotency(sandbox)
        record = sandbox.store.idempotency.get(idem_key)
    if record is not None:
        if record["endpoint"] != f"{method} {path}":
            raise StripeError(
                "Keys for idempotent requests can only be used for the same endpoint "
                f"they were first used for ('{record['endpoint']}' vs "
                f"'{method} {path}'). Try using a key other than '{idem_key}' if you "
                "meant to execute a different request.",
                type="idempotency_error", saved=False)
        if record["fingerprint"] != _fingerprint(method, path, params):
            raise StripeError(
                "Keys for idempotent requests can only be used with the same "
                "parameters they were first used with. Try using a key other than "
                f"'{idem_key}' if you meant to execute a different request.",
                type="idempotency_error", saved=False)
    return record


def _pipeline(sandbox: StripeSandbox, handler, kwargs: dict) -> Response:
    st = sandbox.store
    method = request.method
    path = request.path
    request_id = "req_" + secrets.token_urlsafe(10).replace("-", "x").replace("_", "y")[:14]
    idem_key = request.headers.get("Idempotency-Key") if method == "POST" else None
    headers: dict[str, str] = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
    if idem_key:
        headers["Idempotency-Key"] = idem_key
    lose = False
    replayed = False
    fault_mode = None
    saved = False
    status, body = 200, {}
    with st.lock:
        fault = sandbox_take_fault(sandbox, method, path)
        try:
            if fault:
                fault_mode = fault["mode"]
                lose = _apply_fault(fault_mode)
            _admit(sandbox, path)
            if handler is None:
                raise unrecognized_url(method, path)
            raw = request.get_data() if method == "POST" else request.query_string
            params = decode_form(raw)
            record = _replay_record(sandbox, idem_key, method, path, params)
            if record is not None:
                status, body = record["status"], record["body"]
                headers["Idempotent-Replayed"] = "true"
                headers["Original-Request"] = record["request_id"]
                replayed = True
            else:
                sandbox.tick()
                sandbox.flush_outbox()
                coerced = _validate(handler, method, path, params)
                sandbox.local.ctx = RequestCtx(request_id, idem_key)
                try:
                    if method == "GET":
                        result = handler(sandbox, coerced, **kwargs)
                    else:
                        with sandbox.transaction():
                            result = handler(sandbox, coerced, **kwargs)
                except StripeError:
                    raise
                except Exception as exc:  # a sandbox bug: answer as Stripe's 500 would
                    log.exception("Stripe sandbox handler crashed")
                    raise api_error(500) from exc
                finally:
                    sandbox.local.ctx = None
                status, body = (result if isinstance(result, tuple) else (200, result))
                saved = True
        except StripeParamError as exc:
            status, body = 400, {"error": exc.to_error()}
        except UnknownEndpoint:
            exc2 = unrecognized_url(method, path)
            status, body = exc2.status, exc2.body()
        except StripeError as exc:
            status, body = exc.status, exc.body()
            headers.update(exc.headers)
            saved = exc.saved
        if status >= 400 and "error" in body and not replayed:
            body["error"].setdefault(
                "request_log_url",
                f"https://dashboard.stripe.com/test/logs/{request_id}?t={st.now()}",
            )
        if idem_key and saved and not replayed:
            st.idempotency[idem_key] = {
                "endpoint": f"{method} {path}",
                "fingerprint": _fingerprint(method, path, params),
                "status": status,
                "body": body,
                "request_id": request_id,
                "created": st.now(),
            }
        st.ledger.append({
            "method": method,
            "path": path,
            "status": status,
            "idempotency_key": idem_key,
            "request_id": request_id,
            "replayed": replayed,
            "fault": fault_mode,
            "time": st.now(),
            "wall_time": time.time(),
        })
        if method != "GET" and saved:
            st.save()
    resp = Response(json.dumps(body, indent=2), status=status, mimetype="application/json")
    for k, v in headers.items():
        resp.headers[k] = v
    if lose:
        _drop_connection()
    return resp


def _validate(handler, method: str, path: str, params: dict) -> dict:
    try:
        return validate(method, path, params)
    except UnknownEndpoint:
        name = getattr(handler, "params_class", None)
        if not name:
            raise
        import stripe.params

        return validate_params(getattr(stripe.params, name), params)


def _drop_connection() -> None:
    """The request was performed; now lose the response: close the socket unanswered."""
    sock = request.environ.get("werkzeug.socket")
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _prune_idempotency(sandbox: StripeSandbox) -> None:
    horizon = sandbox.now() - sandbox.settings.idempotency_ttl_seconds
    stale = [k for k, r in sandbox.store.idempotency.items() if r["created"] < horizon]
    for k in stale:
        del sandbox.store.idempotency[k]


def sandbox_take_fault(sandbox: StripeSandbox, method: str, path: str) -> dict | None:
    for fault in sandbox.store.faults:
        if fault["count"] <= 0:
            continue
        if fault.get("method") and fault["method"].upper() != method:
            continue
        if fault.get("path") and not re.search(fault["path"], path):
            continue
        fault["count"] -= 1
        return dict(fault)
    return None
