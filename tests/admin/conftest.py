"""Admin page tests: a signed-in admin on a desk synced from the Pipedrive sandbox."""

from __future__ import annotations

import pytest

from tests.conftest import csrf_token


class AdminBrowser:
    """A signed-in admin's test client; `post` adds the page's CSRF token."""

    def __init__(self, client, page: str):
        self.client = client
        self.page = page

    def get(self, path: str, **kw):
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict | None = None, htmx: bool = False):
        body = dict(data or {})
        body["csrf_token"] = csrf_token(self.client, self.page)
        headers = {"HX-Request": "true"} if htmx else {}
        return self.client.post(path, data=body, headers=headers)


@pytest.fixture
def admin(client, make_user, login):
    user = make_user("admin")
    login(user)
    return AdminBrowser(client, "/admin/")
