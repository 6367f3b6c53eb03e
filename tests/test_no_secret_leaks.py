"""No secret ever appears in a response or in the logs.

Secrets are saved through the page, used by every connection check (against
local stubs, so OAuth tokens get minted and refreshed too), then every page of
the app is visited as an admin; each body, header and log record is searched.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import select

from app.audit.models import AuditEntry
from app.connections import store
from app.extensions import db
from tests import test_access
from tests.conftest import csrf_token
from tests.connection_stubs import PipedriveStub, StripeStub
from tests.test_access import EXAMPLES


def _visit_everything(app, client) -> list[str]:
    """Every GET page of the app (with the matrix's example arguments)."""
    seen = []
    make_objects = getattr(test_access, "make_objects", None)
    objects = make_objects(app) if make_objects else {}
    with app.test_request_context():
        from flask import url_for

        urls = []
        for rule in app.url_map.iter_rules():
            if rule.endpoint == "static" or "GET" not in rule.methods:
                continue
            example = EXAMPLES.get(rule.endpoint, {})
            if rule.arguments and "args" not in example:
                continue
            args = example.get("args", {})
            urls.append(url_for(rule.endpoint, **(args(objects) if callable(args) else args)))
    for url in urls:
        resp = client.get(url, follow_redirects=True)
        seen.append(url + "\n" + str(resp.headers) + "\n" + resp.get_data(as_text=True))
    return seen


def test_no_secret_in_any_response_or_log(app, client, make_user, login, caplog):
    caplog.set_level(logging.DEBUG)
    admin = make_user("admin")
    login(admin)
    pipedrive, stripe_stub = PipedriveStub(), StripeStub()
    app.config["PIPEDRIVE_OAUTH_BASE_URL"] = pipedrive.url
    bodies: list[str] = []
    with pipedrive.server, stripe_stub.server:
        token = csrf_token(client, "/admin/connections/")
        bodies.append(client.post("/admin/connections/pipedrive", data={
            "pd-mode": "token", "pd-base_url": pipedrive.url,
            "pd-api_token": pipedrive.api_token, "pd-client_id": pipedrive.client_id,
            "pd-client_secret": pipedrive.client_secret, "csrf_token": token,
        }, follow_redirects=True).get_data(as_text=True))
        webhook_secret = "whsec_" + "S3cr3tSigningValue" * 2
        bodies.append(client.post("/admin/connections/stripe", data={
            "st-secret_key": stripe_stub.secret_key, "st-api_base": stripe_stub.url,
            "st-webhook_secret": webhook_secret, "csrf_token": token,
        }, follow_redirects=True).get_data(as_text=True))
        # A rejected form must not echo the secret either.
        bodies.append(client.post("/admin/connections/stripe", data={
            "st-secret_key": stripe_stub.restricted_key + "!", "st-api_base": "nope",
            "st-webhook_secret": webhook_secret, "csrf_token": token,
        }).get_data(as_text=True))
        for kind in ("pipedrive", "stripe"):
            for headers in ({"HX-Request": "true"}, {}):
                bodies.append(client.post(f"/admin/connections/{kind}/test",
                                          data={"csrf_token": token}, headers=headers)
                              .get_data(as_text=True))
        # OAuth: connect, then force a refresh.
        start = client.post("/admin/connections/pipedrive/oauth/start",
                            data={"csrf_token": token})
        state = start.headers["Location"].split("state=")[1]
        bodies.append(client.get("/admin/connections/pipedrive/oauth/callback",
                                 query_string={"code": pipedrive.code, "state": state},
                                 follow_redirects=True).get_data(as_text=True))
        pipedrive.expire_access_tokens()
        bodies.append(client.post("/admin/connections/pipedrive/test",
                                  data={"csrf_token": token}).get_data(as_text=True))
        # A restricted key without permission, and a wrong one: Stripe's messages
        # quote part of the key; they must not reach the page.
        for key in (stripe_stub.restricted_key, "sk_test_" + "W" * 30):
            with app.app_context():
                store.save("STRIPE_SECRET_KEY", key)
                db.session.commit()
            bodies.append(client.post("/admin/connections/stripe/test",
                                      data={"csrf_token": token}).get_data(as_text=True))
        bodies.extend(_visit_everything(app, client))

    with app.app_context():
        secrets = [
            pipedrive.api_token, pipedrive.client_secret, pipedrive.refresh_token,
            stripe_stub.secret_key, stripe_stub.restricted_key, webhook_secret,
            store.effective("PIPEDRIVE_OAUTH_ACCESS_TOKEN"), *pipedrive.access_tokens,
        ]
        audit = json.dumps([[e.before, e.after] for e in
                            db.session.execute(select(AuditEntry)).scalars()])
    assert len(secrets) >= 8 and all(secrets)
    assert "Connected to Acme Robotics GmbH" in "".join(bodies)  # the checks really ran
    logs = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        for i, body in enumerate(bodies):
            assert secret not in body, f"secret in response {i}: {body[:200]}"
        assert secret not in logs
        assert secret not in audit
