"""Pipedrive sandbox: a strict local stand-in for the Pipedrive API (v2, plus v1 notes,
webhooks and users), served over real HTTP by ``app.sandbox.server.SandboxServer``."""

from .api import create_app
from .core import Sandbox
from .settings import PipedriveSandboxSettings, SandboxClock

__all__ = ["PipedriveSandboxSettings", "Sandbox", "SandboxClock", "create_app"]
