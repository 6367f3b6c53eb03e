"""Wiring shared by every page: extensions, blueprints, authorization, headers, errors."""

from __future__ import annotations

from flask import Flask

from app.extensions import csrf, db, htmx, login_manager, migrate


def init_app(app: Flask) -> None:
    from app.web import database, errors, layout, params, security

    params.init_app(app)  # before any blueprint: routes take their converters when added

    if app.config.get("DESK_TRUSTED_PROXIES"):
        from app.web.proxies import TrustedProxies

        # Forwarded headers count only from the configured reverse proxies.
        app.wsgi_app = TrustedProxies(app.wsgi_app, app.config["DESK_TRUSTED_PROXIES"])

    db.init_app(app)
    database.init_app(app)
    migrate.init_app(
        app, db, directory=str(app.config.get("MIGRATIONS_DIR", _migrations_dir())),
        render_as_batch=True, compare_type=True,
    )
    from app import ops

    ops.init_app(app)  # request ids before every other hook (CSRF's, sign-in's); probes
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)

    from app.admin.routes import bp as admin_bp
    from app.audit.routes import bp as audit_bp
    from app.auth.routes import bp as auth_bp
    from app.connections.routes import bp as connections_bp
    from app.home import bp as home_bp
    from app.users.routes import bp as users_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(home_bp)
    app.register_blueprint(audit_bp)
    app.register_blueprint(admin_bp)

    from app.intake.webhooks import bp as pd_webhooks_bp
    from app.queue.routes import bp as queue_bp

    app.register_blueprint(queue_bp)

    from app.invoices.routes import bp as invoices_bp

    app.register_blueprint(invoices_bp)
    app.register_blueprint(pd_webhooks_bp)

    from app.health.routes import bp as health_bp
    from app.mismatches.routes import bp as mismatches_bp
    from app.payments.webhooks import bp as stripe_webhooks_bp

    app.register_blueprint(mismatches_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(stripe_webhooks_bp)
    csrf.exempt(stripe_webhooks_bp)  # authenticated by Stripe's signature, not a session
    csrf.exempt(pd_webhooks_bp)  # authenticated by HTTP basic auth, not a browser session
    app.register_blueprint(users_bp)
    app.register_blueprint(connections_bp)

    from app.approvals.routes import bp as approvals_bp
    from app.approvals.routes import policy_bp as approval_policy_bp

    app.register_blueprint(approvals_bp)
    app.register_blueprint(approval_policy_bp)

    from app.mappings.routes import bp as mappings_bp
    from app.rules.routes import bp as rules_bp

    app.register_blueprint(mappings_bp)
    app.register_blueprint(rules_bp)

    from app.sales.panel import panel_bp as sales_panel_bp
    from app.sales.routes import bp as sales_bp

    app.register_blueprint(sales_bp)
    app.register_blueprint(sales_panel_bp)  # GET only, authenticated by Pipedrive's token

    from app.push.routes import bp as push_bp
    from app.writeback.routes import bp as writeback_bp

    app.register_blueprint(push_bp)
    app.register_blueprint(writeback_bp)

    security.init_app(app)
    layout.init_app(app)
    errors.init_app(app)

    from app.cli import desk
    from app.connections.cli import rotate_encryption_key

    desk.add_command(rotate_encryption_key)
    from app.sales.cli import panel_link

    desk.add_command(panel_link)
    app.cli.add_command(desk)


def _migrations_dir():
    from app.config import RESOURCE_ROOT

    return RESOURCE_ROOT / "migrations"
