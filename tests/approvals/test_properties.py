"""Random sequences of actions by several people never leave the issue's state list,
and nothing is pushed that was not approved, as it is now, by someone allowed to."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from app.approvals import policy as policy_ops
from app.approvals.workflow import TransitionRefused, content_edited, transition
from app.extensions import db
from app.invoices.models import STATUSES
from tests.approvals.conftest import new_invoice, user

ACTIONS = [
    "submit",
    "approve",
    "reject",
    "hold",
    "release",
    "cancel",
    "push_start",
    "push_done",
    "push_fail",
    "push_retry",
]
PEOPLE = [
    ("finance",),
    ("finance",),
    ("approver",),
    ("approver",),
    ("admin",),
    ("finance", "approver"),
    ("sales",),
]
THRESHOLD = Decimal("50000")
# status -> (the usual next step, the other one)
NEXT = {
    "draft": ("submit", "hold"),
    "submitted": ("approve", "reject"),
    "approved": ("push_start", "hold"),
    "pushing": ("push_done", "push_fail"),
    "push_failed": ("push_retry", "push_retry"),
    "pushed": ("push_done", "hold"),
    "cancelled": ("submit", "release"),
}
ISSUE_STATES = {"draft", "submitted", "approved", "pushing", "pushed", "push_failed", "cancelled"}


def test_random_action_sequences_keep_the_invariants(app, make_user):
    made = [make_user(*roles) for roles in PEOPLE]
    reached: set[tuple[str, bool]] = set()

    with app.app_context():
        people = [user(u) for u in made]
        admin = next(p for p in people if p.roles == {"admin"})
        policy_ops.set_threshold("EUR", str(THRESHOLD), admin)
        db.session.commit()

        class Desk(RuleBasedStateMachine):
            @initialize(
                total=st.sampled_from(["100.00", "50000.00", "60000.00"]),
                creator=st.integers(0, len(people) - 1),
            )
            def start(self, total, creator):
                self.four_eyes = True
                self.invoice = new_invoice(total=Decimal(total), updated_by_id=people[creator].id)
                # (version, approver id) pairs that the rules, checked here
                # independently of the code, allowed.
                self.valid_approvals: set[tuple[int, int]] = set()

            @rule(
                action=st.sampled_from(ACTIONS),
                who=st.integers(-1, len(people) - 1),
                note=st.sampled_from(["", "  ", "customer asked to wait"]),
            )
            def act(self, action, who, note):
                self._try(action, who, note)

            # Purely random actions are mostly refused; these push the invoice along
            # its usual path (by a random person) so every state is reached often.
            @rule(who=st.integers(-1, len(people) - 1), fail=st.booleans())
            def advance(self, who, fail):
                self._try(NEXT[self.invoice.status][fail], who, "next step")

            @rule(who=st.integers(-1, len(people) - 1), fail=st.booleans())
            def advance_more(self, who, fail):
                self.advance(who, fail)

            @rule(who=st.integers(-1, len(people) - 1))
            def advance_without_failing(self, who):
                # The happy path all the way (a push that succeeds), so "pushed" is reached.
                self._try(NEXT[self.invoice.status][0], who, "next step")

            @rule(who=st.integers(-1, len(people) - 1))
            def advance_to_a_failed_push(self, who):
                # The same path, but the push fails: so "push failed" and retries are reached.
                status = self.invoice.status
                self._try("push_fail" if status == "pushing" else NEXT[status][0], who, "next step")

            def _try(self, action, who, note):
                inv = self.invoice
                actor = people[who] if who >= 0 else None  # -1: the system
                before = (inv.status, inv.on_hold, inv.version, inv.approved_version)
                editor, submitter = inv.updated_by_id, inv.submitted_by_id
                try:
                    transition(inv, action, actor, reason=note, comment=note)
                except TransitionRefused as exc:
                    assert exc.message
                    assert (inv.status, inv.on_hold, inv.version, inv.approved_version) == before
                    return
                if action == "approve":
                    roles = actor.roles
                    assert roles & {"approver", "admin"}
                    if self.four_eyes:
                        assert actor.id not in (editor, submitter)
                    if inv.total > THRESHOLD:
                        assert "admin" in roles
                    self.valid_approvals.add((inv.version, actor.id))
                if action in ("hold", "reject"):
                    assert note.strip()

            @rule(who=st.integers(0, len(people) - 1))
            def edit(self, who):
                try:
                    content_edited(self.invoice, people[who])
                except TransitionRefused:
                    assert self.invoice.status not in (
                        "draft",
                        "submitted",
                        "approved",
                        "push_failed",
                    )

            @rule(on=st.booleans())
            def switch_four_eyes(self, on):
                policy_ops.set_four_eyes(on, admin)
                self.four_eyes = on

            @invariant()
            def status_is_in_the_list(self):
                reached.add((self.invoice.status, self.invoice.on_hold))
                assert self.invoice.status in ISSUE_STATES
                assert self.invoice.status in STATUSES

            @invariant()
            def pushed_only_with_a_valid_approval_of_this_version(self):
                inv = self.invoice
                if inv.status in ("pushing", "pushed", "push_failed"):
                    assert inv.approved_version == inv.version
                    assert (inv.approved_version, inv.approved_by_id) in self.valid_approvals

            @invariant()
            def never_pushed_while_on_hold(self):
                inv = self.invoice
                if inv.on_hold:
                    assert inv.status in ("draft", "submitted", "approved")
                    assert inv.hold_reason and inv.hold_reason.strip()

            def teardown(self):
                db.session.rollback()

        run_state_machine_as_test(
            Desk,
            # Derandomized: the same sequences on every run, so a failure reproduces.
            settings=settings(
                max_examples=200,
                stateful_step_count=40,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    # The sequences did explore the whole machine (else the invariants prove little).
    assert {status for status, _ in reached} == ISSUE_STATES
    assert {("draft", True), ("submitted", True), ("approved", True)} <= reached
