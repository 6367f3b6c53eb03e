"""The Pipedrive sandbox WSGI app: v2 (and a few v1) endpoints, auth, limits, control API."""

from __future__ import annotations

from flask import Flask

from . import pipeline
from .control import register_control
from .core import Sandbox
from .resources import (
    activities,
    contacts,
    deal_products,
    deals,
    fields,
    notes,
    pipelines,
    products,
    webhooks,
)
from .settings import PipedriveSandboxSettings

RESOURCES = (deals, deal_products, contacts, products, pipelines, fields, activities, notes,
             webhooks)


def create_app(settings: PipedriveSandboxSettings | None = None) -> Flask:
    """Build the sandbox app: the request pipeline, every resource's routes, the control API."""
    settings = settings or PipedriveSandboxSettings()
    app = Flask("pipedrive_sandbox")
    sb = Sandbox(settings)
    app.extensions["pipedrive_sandbox"] = sb
    meta: dict[str, tuple[int, str]] = {}
    pipeline.install(app, meta)
    for resource in RESOURCES:
        resource.route.register(app, meta)
    register_control(app)
    return app
