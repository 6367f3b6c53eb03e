"""Two worker processes push the same invoices at the same moment (PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from app.extensions import db
from tests.push.helpers import stripe_customers_for_org, stripe_invoices_for
from tests.push.trials import check

ROOT = Path(__file__).resolve().parents[2]


def test_two_processes_make_one_stripe_invoice_each(app, stripe_desk, approver, tmp_path):
    from tests.push.helpers import approved_invoice

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("several workers share the queue with PostgreSQL's row locks "
                        "(FOR UPDATE SKIP LOCKED); a SQLite desk runs one scheduler")
        # 30 invoices for 10 organizations: the workers also race for the customers.
        ids = [approved_invoice(approver.id, org_id=800 + n % 10, deal_id=5000 + n,
                                email=f"ap@org{800 + n % 10}.example")
               for n in range(30)]
        url = db.engine.url.render_as_string(hide_password=False)
    cmd = [sys.executable, "-m", "tests.push.worker_process", url, str(tmp_path),
           stripe_desk.url, stripe_desk.api_key]
    workers = [subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for w in workers:
        w.stdin.write("go\n")
        w.stdin.flush()
    reports = []
    for w in workers:
        out, err = w.communicate(timeout=180)
        assert w.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    # Each invoice was queued once, by one of the two, and pushed once.
    assert sum(r["queued"] for r in reports) == 30
    assert sum(r["done"] for r in reports) == 30
    creates = Counter(r["idempotency_key"] for r in stripe_desk.ledger()
                      if r["method"] == "POST" and r["path"] == "/v1/invoices")
    assert len(creates) == 30 and set(creates.values()) == {1}
    with app.app_context():
        for iid in ids:
            assert len(stripe_invoices_for(stripe_desk, iid)) == 1
            check(stripe_desk, iid, 800 + (iid - ids[0]) % 10)
        for org in range(800, 810):
            assert len(stripe_customers_for_org(stripe_desk, org)) == 1
