"""A strict local stand-in for the Stripe API (version 2026-10-28.endive).

``create_app(settings)`` returns a Flask app serving Stripe's /v1 paths plus the
sandbox-only API under /_sandbox. Serve it with ``app.sandbox.server.SandboxServer``;
the official SDK talks to it with
``stripe.StripeClient(key, base_addresses={"api": url})``.

Sandbox-only API (no key; JSON in and out, or HTML forms from the demo page):

    GET    /_sandbox/                          demo page (invoices, charges, events)
    POST   /_sandbox/reset                     forget everything (also clock, switches)
    GET    /_sandbox/ledger  DELETE ...        request ledger (method, path, status, key, time)
    POST   /_sandbox/faults                    {"mode": "500"|"503"|"429"|"lose", "count": n,
                                                "path": regex?, "method": "POST"?}
    GET    /_sandbox/faults  DELETE ...        pending faults / clear them
    POST   /_sandbox/settings                  switches: rate_limit_per_second, webhooks_enabled,
                                                webhook_duplicate, webhook_shuffle, webhook_hold,
                                                webhook_delay_seconds, webhook_time_scale,
                                                webhook_max_attempts, search_lag_seconds,
                                                search_rate_limit_per_second
    GET    /_sandbox/clock                     {"now", "offset"}
    POST   /_sandbox/clock/advance             {"days": n, "seconds": n}; emits invoice.overdue
    POST   /_sandbox/webhooks/drain            {"timeout": s} -> {"drained": bool, "pending": n}
    GET    /_sandbox/webhooks/attempts         every delivery attempt (status, ok)
    POST   /_sandbox/invoices/<id>/pay         customer pays {"amount"?} (default: all remaining)
    POST   /_sandbox/invoices/<id>/fail_payment  a declined card (invoice.payment_failed)
    POST   /_sandbox/invoices/<id>/void
    POST   /_sandbox/invoices/<id>/credit_note {"amount", "refund": true|false}
    POST   /_sandbox/charges/<id>/refund       {"amount"?}
"""

from .app import API_VERSION, create_app
from .sandbox import StripeSandbox
from .settings import SandboxClock, StripeSandboxSettings

__all__ = ["API_VERSION", "SandboxClock", "StripeSandbox", "StripeSandboxSettings", "create_app"]
