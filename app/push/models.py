"""The push to Stripe as persisted state: jobs, their steps, batches, and two caches.

A job is one invoice at one approved version; its steps are the Stripe calls in
order, each with the idempotency key it is sent with and the Stripe id it
produced. A step whose result is recorded is never sent again; a step without
one is re-sent with the same key, so Stripe replays instead of acting twice.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.types import JSONType, UTCDateTime, utcnow

JOB_STATUSES = ("queued", "running", "done", "failed")
STEP_STATUSES = ("pending", "sent", "done", "failed")
# How long a worker's claim on a running job lasts without news: each step renews it,
# and a job whose lease ran out is taken over by the next worker (app.push.worker).
LEASE = dt.timedelta(seconds=120)

STEP_LABELS = {
    "customer": "Finding or creating the Stripe customer",
    "tax_rates": "Matching tax rates",
    "invoice": "Creating the draft invoice",
    "lines": "Adding the lines",
    "check": "Comparing Stripe's totals with the approved ones",
    "finalize": "Finalizing",
    "send": "Sending it to the customer",
}


class PushBatch(db.Model):
    """Invoices pushed together from one selection: what the progress bar counts."""

    __tablename__ = "push_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), comment="who pushed"
    )
    total: Mapped[int] = mapped_column(Integer, default=0, comment="jobs in the batch")
    refused: Mapped[list] = mapped_column(
        JSONType, default=list, comment="[{invoice_id, number, reason}] not queued, and why"
    )


class PushJob(db.Model):
    __tablename__ = "push_job"
    __table_args__ = (
        UniqueConstraint("invoice_id", "version", name="uq_push_job_invoice_version"),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in JOB_STATUSES) + ")", name="known_status"
        ),
        Index("ix_push_job_queue", "status", "next_attempt_at", "id"),
        Index("ix_push_job_batch_id", "batch_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(
        ForeignKey("invoice.id", ondelete="CASCADE"), comment="desk invoice"
    )
    version: Mapped[int] = mapped_column(Integer, comment="the approved version pushed")
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("push_batch.id", ondelete="SET NULL"), comment="latest batch it was part of"
    )
    status: Mapped[str] = mapped_column(String(10), default="queued")
    step: Mapped[str | None] = mapped_column(String(20), comment="step in progress or failed")
    attempts: Mapped[int] = mapped_column(Integer, default=0, comment="runs so far")
    next_attempt_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, comment="not claimed before this"
    )
    lease_until: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, comment="a running job whose lease passed is taken over (worker died)"
    )
    worker: Mapped[str | None] = mapped_column(String(80), comment="who runs it: host:pid")
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text, comment="last failure, plain words")
    hint: Mapped[str | None] = mapped_column(Text, comment="what to do about it")
    retryable: Mapped[bool | None] = mapped_column(comment="whether retrying can help")
    requests: Mapped[int] = mapped_column(Integer, default=0, comment="Stripe requests sent")
    # What became of its Stripe invoice, read back from Stripe (app/push/recovery): a
    # finalize whose answer was lost leaves it unknown until someone checks.
    stripe_status: Mapped[str | None] = mapped_column(
        String(20), comment="its Stripe invoice as last read back: draft, open, paid, void, "
                            "uncollectible or deleted; null: never read back"
    )
    stripe_checked_at: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, comment="when it was read back"
    )
    resolution: Mapped[dict | None] = mapped_column(
        JSONType, comment="void or adopt its Stripe invoice: {action, requested_by_id, "
                          "requested_at, confirmed_by_id, confirmed_at}; four-eyes"
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    steps: Mapped[list[PushStep]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="PushStep.position"
    )

    def step_named(self, name: str) -> PushStep | None:
        for s in self.steps:
            if s.name == name:
                return s
        return None


class PushStep(db.Model):
    __tablename__ = "push_step"
    __table_args__ = (
        UniqueConstraint("job_id", "name", name="uq_push_step_job_name"),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in STEP_STATUSES) + ")", name="known_status"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("push_job.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(20), comment="customer, invoice, lines:0, ...")
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(
        String(10), default="pending", comment="sent: tried, result not recorded yet"
    )
    stripe_id: Mapped[str | None] = mapped_column(String(255), comment="what the step produced")
    result: Mapped[dict | None] = mapped_column(JSONType, comment="what later steps need")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    job: Mapped[PushJob] = relationship(back_populates="steps")

    @property
    def label(self) -> str:
        base, _, chunk = self.name.partition(":")
        label = STEP_LABELS.get(base, base)
        return f"{label} (part {int(chunk) + 1})" if chunk else label


class StripeCustomerLink(db.Model):
    """The Stripe customer of a billing contact: found or made once.

    `party` names the contact: the Pipedrive organization (or person) and the billing
    email, ``org:501:email:ap@acme.example`` (see app.push.customers). Checked before
    anything else, because Stripe's search lags behind. The row is inserted (claimed)
    before a customer is looked up or created, so two pushes for one contact never
    both create one.
    """

    __tablename__ = "stripe_customer_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    party: Mapped[str] = mapped_column(
        String(300), unique=True, comment="org:<id>, person:<id> or email:<address>"
    )
    org_id: Mapped[int | None] = mapped_column(BigInteger)
    person_id: Mapped[int | None] = mapped_column(BigInteger)
    stripe_customer_id: Mapped[str | None] = mapped_column(
        String(255), comment="null while a push is finding or creating it"
    )
    fields_hash: Mapped[str | None] = mapped_column(
        String(64), comment="digest of name, email, address, tax id last sent"
    )
    source: Mapped[str | None] = mapped_column(
        String(20), comment="created, pipedrive, metadata or email"
    )
    claimed_by_job_id: Mapped[int | None] = mapped_column(
        Integer, comment="the push finding or creating the customer"
    )
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class StripeTaxRate(db.Model):
    """Stripe tax rates by percentage and inclusive/exclusive: each made once, then reused."""

    __tablename__ = "stripe_tax_rate"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(
        String(40), unique=True, comment="tax_rate_key(): 19:exclusive"
    )
    stripe_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
