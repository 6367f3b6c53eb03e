from tests.push.test_push import *
def test_dbg(stripe_desk, approver, ctx):
    push(approved_invoice(approver.id))
    second = approved_invoice(approver.id, name="Acme Holding GmbH", email="billing@acme.example", deal_id=9002)
    stripe_desk.reset_ledger()
    print(push(second))
    print(posts(stripe_desk.ledger()))
    j = job_for(second); print(j.error, [(s.name, s.status, s.result) for s in j.steps])
    print(stripe_customers_for_org(stripe_desk, 501))
