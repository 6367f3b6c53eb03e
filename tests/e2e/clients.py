"""HTTP only: a desk user (sign-in form, htmx posts with the layout's CSRF header),
the Stripe sandbox (its API and its /_sandbox control API) and the Pipedrive sandbox
(its API and its /_sandbox control API). Every wait polls a visible state with a
deadline; nothing sleeps a fixed time to let something happen."""

from __future__ import annotations

import html as htmllib
import re
import time
from decimal import Decimal

import requests

TIMEOUT = 30  # seconds: one HTTP request
WAIT = 45  # seconds: the longest a visible state may take to appear

DEMO_PASSWORDS = {
    "finance": ("finance@demo.billingdesk.test", "demo-finance-2026"),
    "approver": ("approver@demo.billingdesk.test", "demo-approver-2026"),
    "admin": ("admin@demo.billingdesk.test", "demo-admin-2026"),
}


def wait_for(what: str, probe, timeout: float = WAIT, interval: float = 0.3):
    """Poll `probe()` until it returns something truthy; raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(interval)  # polling a visible state, bounded by the deadline


def text_of(fragment: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed."""
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def element(page: str, element_id: str) -> str:
    """The outer HTML of the element with this id (first match; nesting of the same tag
    is followed)."""
    m = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"', page)
    if not m:
        return ""
    tag = m.group(1)
    depth, pos = 0, m.start()
    for t in re.finditer(rf"<(/?){tag}\b[^>]*>", page[m.start():]):
        depth += -1 if t.group(1) else 1
        if depth == 0:
            return page[pos:m.start() + t.end()]
    return page[pos:]


def money(text: str) -> tuple[str, Decimal]:
    """'EUR 1,050.00' -> ('EUR', Decimal('1050.00'))."""
    m = re.search(r"([A-Z]{3})\s*(-?[\d,]+(?:\.\d+)?)", text)
    assert m, f"no amount in {text!r}"
    return m.group(1), Decimal(m.group(2).replace(",", ""))


def polite(session: requests.Session, method: str, url: str, **kw) -> requests.Response:
    """One API request; a 429 is retried with backoff, as the vendors' clients do. The
    sandboxes keep the real rate limits, and the desk's own workers share them."""
    for attempt in range(7):
        r = session.request(method, url, timeout=TIMEOUT, **kw)
        if r.status_code != 429:
            return r
        time.sleep(0.25 * 2**attempt)  # backoff on a rate limit, bounded (about 30 s)
    return r


def payment_state(status: str) -> str:
    """The state in an invoice's status line: its second part after 'In Stripe'."""
    parts = [p.strip() for p in status.split("·")]
    return parts[1] if len(parts) > 1 and parts[0].lower() == "in stripe" else status


class DeskUser:
    """One person signed in to the desk through the sign-in form."""

    def __init__(self, base: str, role: str) -> None:
        self.base = base
        self.role = role
        self.s = requests.Session()
        email, password = DEMO_PASSWORDS[role]
        page = self.get("/login").text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        r = self.s.post(base + "/login", data={"email": email, "password": password,
                                              "csrf_token": token}, timeout=TIMEOUT)
        assert "/login" not in r.url, f"{role} could not sign in"
        home = self.get("/queue/" if role == "finance" else "/").text
        # The layout's htmx header: every htmx request carries the CSRF token this way.
        self.s.headers["X-CSRFToken"] = re.search(r'"X-CSRFToken": "([^"]+)"', home).group(1)

    def get(self, path: str, **params) -> requests.Response:
        r = self.s.get(self.base + path, params=params or None, timeout=TIMEOUT)
        assert r.status_code < 500, f"GET {path}: {r.status_code}\n{r.text[:2000]}"
        return r

    def htmx(self, path: str, data: dict | None = None) -> requests.Response:
        """A post as htmx sends it (fragment answer, CSRF in the header)."""
        r = self.s.post(self.base + path, data=data or {}, timeout=TIMEOUT,
                        headers={"HX-Request": "true"})
        assert r.status_code < 500, f"POST {path}: {r.status_code}\n{r.text[:2000]}"
        assert "Traceback" not in r.text
        return r

    def set_number_format(self, fmt: str) -> None:
        """Your account -> Number format, as the person would set it."""
        page = self.get("/account").text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        r = self.post("/account", {"csrf_token": token, "profile-name": self.role,
                                   "profile-timezone": "UTC", "profile-number_format": fmt,
                                   "profile-submit": "Save"})
        assert r.status_code == 200 and "Your account was saved" in r.text, r.text[:500]

    def post(self, path: str, data: dict | None = None) -> requests.Response:
        """A plain form post (no htmx), following the redirect like a browser."""
        r = self.s.post(self.base + path, data=data or {}, timeout=TIMEOUT)
        assert r.status_code < 500, f"POST {path}: {r.status_code}\n{r.text[:2000]}"
        return r


class Editor:
    """The invoice page of one invoice, read fresh for every action."""

    def __init__(self, user: DeskUser, invoice_id: int) -> None:
        self.user = user
        self.id = invoice_id

    def page(self) -> str:
        return self.user.get(f"/invoices/{self.id}").text

    def version(self, page: str | None = None) -> str:
        page = page or self.page()
        return re.search(r'id="invoice-version" name="current_version" value="(\d+)"',
                         page).group(1)

    def lines(self, page: str | None = None) -> dict[int, dict]:
        page = page or self.page()
        out = {}
        for m in re.finditer(r'<tr id="line-(\d+)"', page):
            line_id = int(m.group(1))
            row = element(page, f"line-{line_id}")
            values = dict(re.findall(
                r'<input name="(\w+)" form="line-form-\d+"[^>]*?value="([^"]*)"', row))
            for name in ("discount_type", "tax_behavior"):
                sel = re.search(rf'<select name="{name}".*?</select>', row, re.S)
                chosen = sel and re.search(r'<option value="([^"]*)"\s*selected', sel.group(0))
                values[name] = chosen.group(1) if chosen else ""
            values["amount"] = text_of(re.search(r'class="num line-amount">(.*?)</td>', row,
                                                 re.S).group(1))
            out[line_id] = {k: htmllib.unescape(v) for k, v in values.items()}
        return out

    def total(self, page: str | None = None) -> tuple[str, Decimal]:
        return money(text_of(element(page or self.page(), "total-total")))

    def status(self) -> str:
        return text_of(self.user.get(f"/invoices/{self.id}/status").text)

    def state(self, status: str | None = None) -> str:
        """The payment state the status line names: 'In Stripe · paid · paid EUR 5.00'
        -> 'paid'."""
        return payment_state(status or self.status())

    def edit_line(self, line_id: int, **changes) -> requests.Response:
        page = self.page()
        values = {k: v for k, v in self.lines(page)[line_id].items() if k != "amount"}
        values.update({k: str(v) for k, v in changes.items()})
        values["version"] = values["current_version"] = self.version(page)
        return self.user.htmx(f"/invoices/{self.id}/lines/{line_id}", values)

    def remove_line(self, line_id: int) -> requests.Response:
        return self.user.htmx(f"/invoices/{self.id}/lines/{line_id}/delete",
                              {"version": self.version(), "current_version": self.version()})

    def add_discount(self, description: str, kind: str, value: str) -> requests.Response:
        v = self.version()
        return self.user.htmx(f"/invoices/{self.id}/discounts", {
            "description": description, "type": kind, "value": value, "version": v,
            "current_version": v})

    def settings(self, **changes) -> requests.Response:
        page = self.page()
        form = element(page, "invoice-settings")
        values = dict(re.findall(r'<input name="(\w+)"[^>]*?value="([^"]*)"', form))
        values["currency"] = re.search(r"<option selected>([A-Z]{3})</option>", form).group(1)
        values["collection_method"] = "send_invoice"
        values["terms"] = "days"
        for name in ("memo", "footer"):
            m = re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', form, re.S)
            values[name] = htmllib.unescape(m.group(1)) if m else ""
        values.update({k: str(v) for k, v in changes.items()})
        values["version"] = values["current_version"] = self.version(page)
        return self.user.htmx(f"/invoices/{self.id}/settings", values)

    def act(self, action: str, **extra) -> requests.Response:
        """submit / approve / push, as the buttons post them."""
        data = {"version": self.version(), **extra}
        return self.user.htmx(f"/invoices/{self.id}/{action}", data)

    def push_state(self) -> str:
        page = self.user.get(f"/invoices/{self.id}/push/status").text
        return re.search(r'data-status="(\w+)"', page).group(1)

    def stripe_number(self) -> str:
        page = self.user.get(f"/invoices/{self.id}/push/status").text
        m = re.search(r'id="stripe-number">([^<]+)<', page)
        return m.group(1) if m else ""


class StripeSandbox:
    def __init__(self, base: str, key: str = "sk_test_sandbox") -> None:
        self.base = base
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {key}"

    def api(self, path: str, **params) -> dict:
        r = polite(self.s, "GET", self.base + path, params=params)
        r.raise_for_status()
        return r.json()

    def all(self, path: str) -> list[dict]:
        out, after = [], None
        while True:
            page = self.api(path, limit=100, **({"starting_after": after} if after else {}))
            out += page["data"]
            if not page.get("has_more"):
                return out
            after = page["data"][-1]["id"]

    def control(self, path: str, **body) -> dict:
        r = self.s.post(self.base + "/_sandbox" + path, json=body, timeout=TIMEOUT)
        assert r.status_code == 200, f"/_sandbox{path}: {r.status_code} {r.text[:1000]}"
        return r.json()

    def drain(self) -> None:
        self.control("/webhooks/drain", timeout=20)


class PipedriveSandbox:
    def __init__(self, base: str, token: str = "pd_sandbox_token") -> None:  # noqa: S107
        self.base = base
        self.s = requests.Session()
        self.s.headers["x-api-token"] = token

    def get(self, path: str, **params) -> dict:
        r = polite(self.s, "GET", self.base + path, params=params)
        r.raise_for_status()
        return r.json()

    def send(self, method: str, path: str, **body) -> dict:
        r = polite(self.s, method, self.base + path, json=body)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text[:1000]}"
        return r.json()

    def deal_fields(self, deal_id: int) -> dict[str, object]:
        """The deal's custom fields by their names."""
        names = {f["field_code"]: f["field_name"]
                 for f in self.get("/api/v2/dealFields", limit=500)["data"]}
        deal = self.get(f"/api/v2/deals/{deal_id}")["data"]
        return {names.get(k, k): v for k, v in (deal.get("custom_fields") or {}).items()}

    def drain(self) -> None:
        self.send("POST", "/_sandbox/webhooks/drain", timeout=20)
