"""The request pipeline: the route table (each route's cost and rate-limit bucket), auth,
rate limits, injected faults, the ledger, and the Pipedrive error shapes."""

from __future__ import annotations

import time

from flask import Flask, g, request

from .resources.common import sb, settings, store
from .responses import json_response
from .settings import COSTS
from .validation import ApiError


class RouteTable:
    """A resource module's routes, recorded at import and added to an app by ``register``.

    ``route(rule, methods, kind, v1=False)`` decorates a view: v2 rules are served under
    ``/api/v2``, v1 rules under ``/v1`` and ``/api/v1``; ``kind`` names its token cost."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, tuple[str, ...], str, bool, object]] = []

    def __call__(self, rule: str, methods: tuple[str, ...], kind: str, *, v1: bool = False):
        def deco(fn):
            self.entries.append((rule, methods, kind, v1, fn))
            return fn
        return deco

    def register(self, app: Flask, meta: dict[str, tuple[int, str]]) -> None:
        for rule, methods, kind, v1, fn in self.entries:
            rules = [f"/v1{rule}", f"/api/v1{rule}"] if v1 else [f"/api/v2{rule}"]
            for r in rules:
                app.add_url_rule(r, fn.__name__, fn, methods=list(methods))
            bucket = "search" if kind == "v2_search" else "general"
            meta[fn.__name__] = (COSTS[kind], bucket)


def auth() -> tuple[str, str]:
    token = request.headers.get("x-api-token") or request.args.get("api_token")
    if token:
        if token in settings.api_tokens:
            return token, "api_token"
        raise ApiError(401, "unauthorized access")
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        bearer = header[7:].strip()
        if bearer in settings.oauth_tokens:
            return bearer, "oauth"
    raise ApiError(401, "unauthorized access")


def install(app: Flask, meta: dict[str, tuple[int, str]]) -> None:
    """Add the request hooks and error handlers; ``meta`` maps endpoints to (cost, bucket)."""

    @app.before_request
    def _before():
        g.cost = 0
        g.rl_headers = {}
        path = request.path
        g.is_api = path.startswith(("/api/", "/v1/"))
        if not g.is_api:
            return None
        g.started = time.monotonic()
        token, kind = auth()
        cost, bucket = meta.get(request.endpoint or "", (0, "general"))
        g.rl_headers = sb.limiter.check(token, kind, bucket, cost)
        g.cost = cost
        fault = sb.take_fault(path)
        if fault:
            status = fault["status"]
            msg = "Service Unavailable" if status == 503 else "Internal server error"
            raise ApiError(status, msg, "sandbox_injected_fault")
        return None

    app.after_request(_after)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(404, _not_found)
    app.register_error_handler(405, _method)
    app.register_error_handler(500, _internal)


def _after(resp):
    if getattr(g, "is_api", False):
        for k, v in g.rl_headers.items():
            resp.headers.setdefault(k, str(v))
        entry = {
            "method": request.method,
            "path": request.path,
            "query": {k: v for k, v in request.args.items() if k != "api_token"},
            "status": resp.status_code,
            "cost": g.cost if resp.status_code not in (401, 429) else 0,
            "time": sb.now(),
            "endpoint": request.endpoint,
        }
        with sb.ledger_lock:
            sb.ledger.append(entry)
        if request.method != "GET" and resp.status_code < 400 and settings.state_file:
            store.save()
    return resp


def _api_error(exc: ApiError):
    headers = dict(getattr(g, "rl_headers", {}) or {})
    headers.update(exc.headers)
    if exc.status in (401, 429):
        g.cost = 0
    return json_response(exc.body(), exc.status, headers)


def _not_found(exc):
    if request.path.startswith(("/api/", "/v1/")):
        return json_response(ApiError(404, "Not found", "not_found").body(), 404)
    return json_response({"error": "not found"}, 404)


def _method(exc):
    return json_response(ApiError(405, "Method not allowed").body(), 405)


def _internal(exc):
    return json_response(ApiError(500, "Internal server error").body(), 500)
