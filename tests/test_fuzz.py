"""Hostile input on every route, generated from the app's own URL map.

Every route (app.url_map), every path argument, query parameter and form field
it reads, is called with values people and scripts really send: unicode digits
that pass str.isdigit() but not int(), integers past 2**63, NaN, Infinity,
1e9999, far dates, 100k-character strings, NUL and control characters,
repeated fields (lists), JSON of the wrong type, and ids of other objects.

The fields come from two places, so a new field is fuzzed without editing this
file: the reads in the view's own module (request.args / request.form /
form.get(...) / getlist(...)) and the forms, inputs and links of every page as
rendered for a user holding every role.

Asserted: no 5xx ever; a refused request (4xx) stores nothing (the row counts of
the main tables are unchanged); and the permission table is the one of the
access matrix (tests/test_access.py): a role without the permission gets 403
naming it, whatever the input, and anonymous users are sent to sign in.
Deterministic and bounded (a few thousand requests, about a minute per database).
"""

from __future__ import annotations

import inspect
import re
from html.parser import HTMLParser
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.routing.converters import NumberConverter

from app.auth.permissions import PERMISSIONS, ROLES
from app.extensions import db
from tests.test_access import EXAMPLES, make_objects

# Every value is tried in every field of every route.
HOSTILE: list[str] = [
    "²", "٣", "１２", "¹²³",  # unicode digits: isdigit() is True for all, int() fails on some
    str(2**31), str(2**63), str(2**63 - 1), str(10**30), "-1", "-0", "0",
    "NaN", "-Infinity", "Infinity", "1e9999", "1e-9999", "0x10", "1_000", " 7 ",
    "9999-12-31", "0001-01-01", "10000-01-01", "2026-02-30", "2026-13-01T25:61",
    "x" * 100_000, "\x00", "1\x00", "\x01\x1b[31m\x7f\u202e", "",
    "[]", "{}", "null", "true", "<script>alert(1)</script>", "../../etc/passwd",
]
# The values tried alone, one field at a time (the others keep their good example values).
SHARP: list[str] = ["²", str(2**31), str(2**63), "NaN", "9999-12-31", "\x00"]
# Path ids: beyond the converter's range, unicode digits, zero, and ids of other objects.
PATH_INTS: list[str] = ["²", "٣", "１", str(2**31), str(2**63 - 1), str(2**63), str(10**30), "0",
                        "00000000000000000001"]
PATH_STRINGS: list[str] = ["²", "x" * 5000, "\x00", "..", "%00", "-1", "nope"]

# The tables whose row counts a refused request must leave unchanged.
COUNTED = [
    "app.invoices.models:Invoice", "app.invoices.models:InvoiceLine",
    "app.invoices.models:InvoiceDiscount", "app.push.models:PushJob",
    "app.push.models:PushBatch", "app.writeback.models:WritebackItem",
    "app.auth.models:User", "app.approvals.models:ApprovalThreshold",
    "app.rules.models:TaxMapping", "app.rules.models:ProductMapping",
    "app.intake.models:SyncRun", "app.audit.models:AuditEntry",
]

_READ_RE = re.compile(
    r"""(?:args|form|values|request\.form|request\.args|typed|data)\s*\.\s*(?:get|getlist)\(\s*["']([A-Za-z_][\w.\-]*)["']"""
)


def _models():
    import importlib

    out = []
    for dotted in COUNTED:
        module, name = dotted.split(":")
        model = getattr(importlib.import_module(module), name, None)
        if model is not None:
            out.append(model)
    return out


def _counts() -> dict[str, int]:
    """Row counts of the main tables, in one round trip."""
    models = _models()
    row = db.session.execute(
        select(*[select(func.count()).select_from(m).scalar_subquery() for m in models])
    ).one()
    return {m.__name__: n for m, n in zip(models, row, strict=True)}


class _Forms(HTMLParser):
    """The forms (action, method, field names) and the query links of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, str, set[str]]] = []
        self.links: list[str] = []
        self._current: tuple[str, str, set[str]] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._current = (a.get("action") or "", (a.get("method") or "get").lower(), set())
            self.forms.append(self._current)
        elif tag in ("input", "select", "textarea", "button") and a.get("name"):
            target = self._current
            if a.get("form") is None and target is not None:
                target[2].add(a["name"])
        elif tag == "a" and a.get("href") and "?" in a["href"]:
            self.links.append(a["href"])
        for key in ("hx-get", "hx-post"):
            if a.get(key):
                self.links.append(a[key])

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def _source_fields(view) -> set[str]:
    """Names the view's module reads from the query string or the form."""
    names: set[str] = set()
    module = inspect.getmodule(inspect.unwrap(view))
    try:
        text = inspect.getsource(module)
    except (OSError, TypeError):
        return names
    names.update(_READ_RE.findall(text))
    return names - {"csrf_token"}


def _path_for(rule, args: dict) -> str:
    from flask import url_for

    return url_for(rule.endpoint, **args)


def _example_args(rule, objects) -> dict:
    args = EXAMPLES.get(rule.endpoint, {}).get("args", {})
    return args(objects) if callable(args) else dict(args)


def _method(rule) -> str:
    example = EXAMPLES.get(rule.endpoint, {})
    return example.get("method") or ("GET" if "GET" in rule.methods else "POST")


def _routes(app):
    return [r for r in app.url_map.iter_rules() if r.endpoint != "static"]


def _harvest(app, client, objects) -> dict[str, set[str]]:
    """endpoint -> field names, from the module sources and every rendered page."""
    fields: dict[str, set[str]] = {r.endpoint: _source_fields(app.view_functions[r.endpoint])
                                   for r in _routes(app)}
    adapter = app.url_map.bind("localhost")
    for rule in _routes(app):
        if "GET" not in rule.methods or rule.endpoint.startswith(("auth.logout", "panel.")):
            continue
        with app.test_request_context():
            url = _path_for(rule, _example_args(rule, objects))
        resp = client.get(url)
        if not resp.mimetype == "text/html":
            resp.close()
            continue
        parser = _Forms()
        parser.feed(resp.get_data(as_text=True))
        for action, method, names in parser.forms:
            target = urlsplit(action).path or urlsplit(url).path
            try:
                endpoint, _ = adapter.match(target, method="POST" if method == "post" else "GET")
            except HTTPException:  # a form pointing outside the app
                continue
            fields.setdefault(endpoint, set()).update(names - {"csrf_token"})
        for link in parser.links:
            parts = urlsplit(link)
            try:
                endpoint, _ = adapter.match(parts.path or urlsplit(url).path, method="GET")
            except HTTPException:
                continue
            fields.setdefault(endpoint, set()).update(k for k, _ in parse_qsl(parts.query))
    return fields


def _hostile_paths(rule, args: dict, objects: dict) -> list[str]:
    """The route's URL with each path argument replaced by hostile values."""
    good = {k: str(v) for k, v in args.items()}
    urls = []
    for name in rule.arguments:
        converter = rule._converters.get(name)  # noqa: SLF001 - which converter the rule uses
        if converter is None:
            continue  # given by the rule's defaults, not the path
        numeric = isinstance(converter, NumberConverter)
        values = list(PATH_INTS if numeric else PATH_STRINGS)
        if numeric:  # ids of other objects in this argument
            values += [str(v) for k, v in objects.items() if isinstance(v, int) and k != name]
        for value in values:
            text = rule.rule
            for arg in rule._converters:  # noqa: SLF001
                raw = value if arg == name else good.get(arg, "1")
                text = re.sub(r"<(?:[^:<>]+:)?" + re.escape(arg) + r"(?:\([^)]*\))?>",
                              quote(raw, safe=""), text)
            urls.append(text)
    return urls


def _send(client, method, url, data, token):
    if method == "GET":
        return client.get(url, query_string=MultiDict(data))
    return client.post(url, data=MultiDict([*data, ("csrf_token", token)]))


class Fuzzer:
    def __init__(self, app, client, objects, token, relogin):
        self.app, self.client, self.objects = app, client, objects
        self.token, self.relogin = token, relogin
        self.failures: list[str] = []
        self.sent = 0

    def check(self, rule, method, url, data):
        with self.app.app_context():
            before = _counts() if method == "POST" else None
        resp = _send(self.client, method, url, data, self.token)
        self.sent += 1
        status = resp.status_code
        if resp.headers.get("Location", "").startswith("/login"):
            self.token = self.relogin()
        resp.close()
        shown = [(k, v[:40]) for k, v in data]
        if status >= 500:
            self.failures.append(f"{status} {method} {url[:120]} {shown}")
        elif before is not None and 400 <= status < 500:
            with self.app.app_context():
                after = _counts()
            if after != before:
                changed = {k: (before[k], after[k]) for k in after if after[k] != before[k]}
                self.failures.append(f"refused {status} but stored {changed}: "
                                     f"{method} {url[:120]} {shown}")
        return status


@pytest.fixture
def fuzz_setup(app, client, make_user, login):
    from tests.conftest import csrf_token

    make_user("admin", email="victim@example.com")  # id 1: the users admin's examples
    user = make_user(*ROLES)
    app.config["STRIPE_WEBHOOK_SECRET"] = "whsec_fuzz"  # refused by signature, not 503
    objects = make_objects(app)
    login(user)
    fields = _harvest(app, client, objects)

    def relogin():
        client.delete_cookie("session")
        login(user)
        return csrf_token(client, "/")

    return Fuzzer(app, client, objects, relogin(), relogin), fields


def test_no_5xx_and_nothing_stored_from_refused_requests(app, fuzz_setup):
    fuzzer, fields = fuzz_setup
    objects = fuzzer.objects
    # Public routes last: the sign-in throttle must not lock the fuzzing user out mid-run.
    routes = sorted(_routes(app), key=lambda r: getattr(
        app.view_functions[r.endpoint], "desk_public", False))
    covered_fields = 0
    for rule in routes:
        if rule.endpoint == "auth.logout":
            continue  # ends the session; the access matrix covers it
        method = _method(rule)
        args = _example_args(rule, objects)
        with app.test_request_context():
            url = _path_for(rule, args)
        good = [(k, str(v)) for k, v in EXAMPLES.get(rule.endpoint, {}).get("data", {}).items()]
        names = sorted(fields.get(rule.endpoint, set()))
        covered_fields += len(names)
        for value in HOSTILE:  # every field at once
            fuzzer.check(rule, method, url, [(n, value) for n in names])
        for name in names:  # one field at a time, and as a list
            others = [(k, v) for k, v in good if k != name]
            for value in SHARP:
                fuzzer.check(rule, method, url, [*others, (name, value)])
            fuzzer.check(rule, method, url, [*others, (name, "1"), (name, "²"), (name, "")])
        for hostile_url in _hostile_paths(rule, args, objects):
            fuzzer.check(rule, method, hostile_url, good)
        if method == "POST":  # a JSON body of the wrong type where a form is expected
            resp = fuzzer.client.post(url, data="[1, 2]", content_type="application/json",
                                      headers={"X-CSRFToken": fuzzer.token})
            if resp.status_code >= 500:
                fuzzer.failures.append(f"{resp.status_code} POST json {url}")
            resp.close()
    assert fuzzer.failures == [], "\n".join(fuzzer.failures[:60])
    assert covered_fields > 100 and fuzzer.sent > 1000


@pytest.mark.parametrize("role", [*sorted(ROLES), None])
def test_permission_table_holds_under_hostile_input(app, client, make_user, login, role):
    """The access matrix, again, with hostile input: who may reach a route never depends
    on what they send (a refused path id answers 404 to everyone: routing runs first)."""
    from tests.conftest import csrf_token

    make_user("admin", email="victim@example.com")
    objects = make_objects(app)
    user = make_user(role) if role else None
    if user:
        login(user)
    token = csrf_token(client, "/" if user else "/login")
    wrong = []
    for rule in _routes(app):
        view = app.view_functions[rule.endpoint]
        public = getattr(view, "desk_public", False)
        if rule.endpoint == "auth.logout" or public:
            continue
        method = _method(rule)
        args = _example_args(rule, objects)
        with app.test_request_context():
            url = _path_for(rule, args)
        permission = view.desk_permission
        allowed = role is not None and role in PERMISSIONS[permission][0]
        urls = [url, *_hostile_paths(rule, args, objects)[:3]]
        for target in urls:
            for value in ("²", str(10**30)):
                resp = _send(client, method, target, [("page", value), ("id", value)], token)
                status = resp.status_code
                body = resp.get_data(as_text=True) if status == 403 else ""
                resp.close()
                if status >= 500:
                    wrong.append(f"{status} {role} {rule.endpoint} {target[:80]}")
                elif status == 404 and target != url:
                    continue  # routing refused the id, before anyone's permission is asked
                elif role is None:
                    if status != 302:
                        wrong.append(f"anonymous got {status} on {rule.endpoint}")
                elif not allowed and (status != 403 or permission not in body):
                    wrong.append(f"{role} got {status}, not 403, on {rule.endpoint}")
                elif allowed and status == 403:
                    wrong.append(f"{role} got 403 on {rule.endpoint} it may use")
    assert wrong == [], "\n".join(wrong[:40])


# The parsing layer itself (app/web/params.py), and the defects the fuzz found.

@pytest.mark.parametrize("raw", ["²", "٣", "１２", "¹²³", "1.0", "1e3", "0x10", "1_000", "NaN",
                                 str(2**63), str(10**30), "-1", "", None, "\x00", "1\x00"])
def test_parse_id_refuses_what_is_not_a_database_id(raw):
    from app.web.params import parse_id

    assert parse_id(raw) is None


@pytest.mark.parametrize(("raw", "value"), [("1", 1), (" 42 ", 42), (str(2**31 - 1), 2**31 - 1)])
def test_parse_id_reads_ascii_ids(raw, value):
    from app.web.params import parse_id, parse_pd_id

    assert parse_id(raw) == value == parse_pd_id(raw)


def test_ids_stay_within_their_columns():
    from app.web.params import parse_id, parse_pd_id

    assert parse_id(str(2**31)) is None  # desk records: INTEGER keys
    assert parse_pd_id(str(2**63 - 1)) == 2**63 - 1  # Pipedrive's: BIGINT keys
    assert parse_pd_id(str(2**63)) is None


def test_parse_day_reads_days_the_desk_can_compute_with():
    import datetime as dt

    from app.web.params import parse_day

    assert parse_day("2026-11-21") == dt.date(2026, 11, 21)
    for raw in ("9999-12-31", "0001-01-01", "2026-02-30", "2026-1-1", "٢٠٢٦-11-21", "20261121"):
        assert parse_day(raw) is None, raw


def test_path_ids_beyond_their_column_or_not_ascii_are_404(client, make_user, login):
    login(make_user("finance"))
    for path in (f"/invoices/{2**31}", f"/invoices/{2**63}", f"/invoices/{10**30}",
                 "/invoices/%D9%A3", f"/sales/deals/{2**63}", f"/deals/{2**63 - 1}",
                 f"/push/batches/{2**63}", f"/queue/sync/{2**31}"):
        assert client.get(path).status_code == 404, path


def test_far_audit_end_date_is_refused_next_to_the_field(client, make_user, login):
    login(make_user("admin"))
    resp = client.get("/admin/audit/", query_string={"end": "9999-12-31"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Use a date such as 2026-11-21, between 1900-01-01 and 2999-12-31." in html
    assert 'value="9999-12-31"' in html  # what was typed is kept


def test_huge_page_cursor_is_a_400_with_a_message(client, make_user, login):
    login(make_user("finance"))
    for path in ("/invoices/", "/admin/audit/", "/writebacks/"):
        name = "deal_id" if path == "/writebacks/" else "before"
        resp = client.get(path, query_string={name: str(10**30)})
        assert resp.status_code in (400, 403), path
        if resp.status_code == 400:
            assert "must be the number of a record" in resp.get_data(as_text=True)
    resp = client.get("/invoices/", query_string={"before": "1"},
                      headers={"HX-Request": "true"})
    assert resp.status_code == 200


def test_unicode_digits_in_a_selection_are_refused_not_500(app, client, make_user, login):
    from tests.conftest import csrf_token

    login(make_user("finance", "approver"))
    token = csrf_token(client, "/")
    resp = client.post("/invoices/push", data={"invoice_id": "²", "csrf_token": token})
    assert resp.status_code == 400
    assert "“Invoice” must name records by number, not “²”." in resp.get_data(as_text=True)
    resp = client.post("/invoices/drafts", data={"deal_id": str(2**63), "csrf_token": token},
                       headers={"HX-Request": "true"})
    assert resp.status_code == 400
    assert resp.get_data(as_text=True).startswith('<p class="error" role="alert">')
    resp = client.post("/approvals/approve", data={"invoice": "²", "csrf_token": token})
    assert resp.status_code == 400  # nothing valid chosen: "Choose at least one invoice"


def test_queue_and_sales_filters_with_unicode_digits_say_so(client, make_user, login):
    login(make_user("finance"))
    for path in ("/queue/", "/sales/"):
        resp = client.get(path, query_string={"owner": "²", "pipeline": str(10**30)})
        assert resp.status_code == 200, path
        assert "Choose one from the list." in resp.get_data(as_text=True), path


def test_form_pages_refuse_a_json_body(client, make_user, login):
    from tests.conftest import csrf_token

    login(make_user("admin"))
    token = csrf_token(client, "/")
    resp = client.post("/admin/connections/stripe", data="[1, 2]",
                       content_type="application/json", headers={"X-CSRFToken": token})
    assert resp.status_code == 415
    assert "This page takes a form, not JSON" in resp.get_data(as_text=True)
