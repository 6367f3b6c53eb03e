"""Local snapshots of what Pipedrive holds, and the state of the sync itself.

Ids are Pipedrive's own (no local surrogate keys), so an upsert is one lookup
and a webhook or a pull can never create a second copy of the same record.
Money is Numeric (exact); Pipedrive sends major units.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.types import JSONType, UTCDateTime, utcnow

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
Money = Numeric(20, 6)  # Pipedrive amounts in major units; KWD has 3 decimals, prices may have more
Qty = Numeric(20, 6)


class PdPipeline(db.Model):
    __tablename__ = "pd_pipeline"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255))
    order_nr: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class PdStage(db.Model):
    __tablename__ = "pd_stage"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    pipeline_id: Mapped[int] = mapped_column(BigInteger, index=True)
    name: Mapped[str] = mapped_column(String(255))
    order_nr: Mapped[int] = mapped_column(Integer, default=0)


class PdUser(db.Model):
    """Pipedrive users (deal owners)."""

    __tablename__ = "pd_user"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(254))


class PdProduct(db.Model):
    """Pipedrive's product catalogue: the code maps a product to a Stripe product."""

    __tablename__ = "pd_product"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255))
    code: Mapped[str | None] = mapped_column(String(100), index=True)


class PdField(db.Model):
    """Custom field definitions, so mappings are chosen and shown by name."""

    __tablename__ = "pd_field"
    __table_args__ = (UniqueConstraint("entity", "field_code", name="uq_pd_field_entity_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(20), comment="deal, person, organization, product")
    field_code: Mapped[str] = mapped_column(String(64), comment="Pipedrive's key (40-char hash)")
    name: Mapped[str] = mapped_column(String(255))
    field_type: Mapped[str] = mapped_column(String(40))
    is_custom: Mapped[bool] = mapped_column(Boolean, default=True)
    options: Mapped[list | None] = mapped_column(JSONType, comment="enum/set options")


class PdOrganization(db.Model):
    __tablename__ = "pd_organization"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255))
    address: Mapped[dict | None] = mapped_column(JSONType)
    custom_fields: Mapped[dict] = mapped_column(JSONType, default=dict)
    update_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    synced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PdPerson(db.Model):
    __tablename__ = "pd_person"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255))
    emails: Mapped[list] = mapped_column(
        JSONType, default=list, comment="[{value, primary, label}]"
    )
    org_id: Mapped[int | None] = mapped_column(BigInteger)
    custom_fields: Mapped[dict] = mapped_column(JSONType, default=dict)
    update_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    synced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def primary_email(self) -> str | None:
        emails = [e for e in (self.emails or []) if e.get("value")]
        for e in emails:
            if e.get("primary"):
                return e["value"]
        return emails[0]["value"] if emails else None


class PdDeal(db.Model):
    __tablename__ = "pd_deal"
    __table_args__ = (
        # The queue reads ready deals in one of four orders, LIMIT 51: an index per order.
        Index("ix_pd_deal_queue_won", "ready", "won_sort", "id"),
        Index("ix_pd_deal_queue_value", "ready", "currency", "value", "id"),  # per currency
        Index("ix_pd_deal_queue_title", "ready", "title", "id"),
        Index("ix_pd_deal_queue_updated", "ready", "update_sort", "id"),
        Index("ix_pd_deal_queue_currency", "ready", "currency"),
        Index("ix_pd_deal_pipeline_stage", "pipeline_id", "stage_id"),
        Index("ix_pd_deal_owner", "owner_id"),
        Index("ix_pd_deal_update_time", "update_time"),
        Index("ix_pd_deal_won_time", "won_time"),  # the sales page's partial days
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(255))
    value: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10), comment="open, won, lost, deleted")
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    pipeline_id: Mapped[int | None] = mapped_column(BigInteger)
    stage_id: Mapped[int | None] = mapped_column(BigInteger)
    owner_id: Mapped[int | None] = mapped_column(BigInteger)
    person_id: Mapped[int | None] = mapped_column(BigInteger)
    org_id: Mapped[int | None] = mapped_column(BigInteger)
    won_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    add_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    update_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, comment="Pipedrive's")
    custom_fields: Mapped[dict] = mapped_column(JSONType, default=dict)
    # Derived at upsert, so the queue filters and sorts on plain indexed columns.
    # Sort keys are never NULL (databases disagree on where NULLs sort).
    won_sort: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=lambda: EPOCH)
    update_sort: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=lambda: EPOCH)
    billing_email: Mapped[str | None] = mapped_column(String(254))
    product_count: Mapped[int] = mapped_column(Integer, default=0)
    has_recurring: Mapped[bool] = mapped_column(Boolean, default=False)
    has_installments: Mapped[bool] = mapped_column(Boolean, default=False)
    ready: Mapped[bool] = mapped_column(Boolean, default=False, comment="matches a billing rule")
    # A digest of everything a draft invoice is built from (value, currency,
    # products, discounts, contact): a draft made from another digest has drifted.
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    synced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    search_text: Mapped[str] = mapped_column(Text, default="", comment="lower-cased, for search")

    products: Mapped[list[PdDealProduct]] = relationship(
        back_populates="deal", cascade="all, delete-orphan", order_by="PdDealProduct.position"
    )
    discounts: Mapped[list[PdDealDiscount]] = relationship(
        cascade="all, delete-orphan", order_by="PdDealDiscount.id"
    )
    installments: Mapped[list[PdInstallment]] = relationship(
        cascade="all, delete-orphan", order_by="PdInstallment.billing_date"
    )


class PdDealProduct(db.Model):
    __tablename__ = "pd_deal_product"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    deal_id: Mapped[int] = mapped_column(ForeignKey("pd_deal.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    product_id: Mapped[int | None] = mapped_column(BigInteger)
    product_code: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(255))
    item_price: Mapped[Decimal] = mapped_column(Money)
    quantity: Mapped[Decimal] = mapped_column(Qty)
    discount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    discount_type: Mapped[str] = mapped_column(String(12), default="percentage")
    tax: Mapped[Decimal] = mapped_column(Numeric(9, 4), default=Decimal(0), comment="percent")
    tax_method: Mapped[str] = mapped_column(String(10), default="none")
    sum: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    billing_frequency: Mapped[str] = mapped_column(String(20), default="one-time")
    billing_frequency_cycles: Mapped[int | None] = mapped_column(Integer)
    billing_start_date: Mapped[dt.date | None] = mapped_column(db.Date)
    comments: Mapped[str | None] = mapped_column(Text)

    deal: Mapped[PdDeal] = relationship(back_populates="products")

    @property
    def recurring(self) -> bool:
        return self.billing_frequency not in (None, "", "one-time")


class PdDealDiscount(db.Model):
    __tablename__ = "pd_deal_discount"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("pd_deal.id", ondelete="CASCADE"), index=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    amount: Mapped[Decimal] = mapped_column(Money)
    type: Mapped[str] = mapped_column(String(12), comment="percentage or amount")


class PdInstallment(db.Model):
    __tablename__ = "pd_installment"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    deal_id: Mapped[int] = mapped_column(ForeignKey("pd_deal.id", ondelete="CASCADE"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    billing_date: Mapped[dt.date | None] = mapped_column(db.Date)
    description: Mapped[str] = mapped_column(String(255), default="")


class BillingRule(db.Model):
    """Per pipeline: when is a deal ready to bill."""

    __tablename__ = "billing_rule"
    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    ready_stage_ids: Mapped[list] = mapped_column(JSONType, default=list)
    # How stage and won combine: "stage", "won", "stage_and_won" or "stage_or_won".
    match: Mapped[str] = mapped_column(String(20), default="stage_or_won")
    paid_stage_id: Mapped[int | None] = mapped_column(BigInteger, comment="move paid deals here")


class FieldMapping(db.Model):
    """Which Pipedrive field (by entity and name) holds a value the desk needs."""

    __tablename__ = "field_mapping"
    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(40), unique=True, comment="e.g. billing_email")
    entity: Mapped[str] = mapped_column(String(20))
    field_name: Mapped[str] = mapped_column(String(255))  # empty: the purpose is off
    options_map: Mapped[dict | None] = mapped_column(
        JSONType, comment="enum fields: desk value -> Pipedrive option id"
    )


class SyncState(db.Model):
    """The resumable position of one incremental sync (e.g. Pipedrive deals)."""

    __tablename__ = "sync_state"
    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    cursor_time: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, comment="updated_since for the next run"
    )
    page_cursor: Mapped[str | None] = mapped_column(String(255), comment="mid-run page cursor")
    run_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    paused_until: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, comment="daily budget spent: resume after"
    )
    message: Mapped[str | None] = mapped_column(Text)


class SyncRun(db.Model):
    """One run of a sync or job: what it did, what it cost, how it ended."""

    __tablename__ = "sync_run"
    __table_args__ = (Index("ix_sync_run_job_id", "job", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(60))
    trigger: Mapped[str] = mapped_column(
        String(20), default="schedule", comment="schedule/manual/webhook"
    )
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(
        String(20), default="running", comment="running/ok/failed/paused"
    )
    counts: Mapped[dict] = mapped_column(JSONType, default=dict)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    # Who runs it, so a run whose scheduler died is found (app.jobs.queue.recover_runs).
    owner: Mapped[str | None] = mapped_column(
        String(120), comment="host:pid of the scheduler running it"
    )
    lease_until: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, comment="renewed by its owner's heartbeat; past it, the run is interrupted"
    )

    @property
    def owner_gone(self) -> bool:
        """Still "running", but the scheduler running it is gone (its lease passed, or
        its process on this host no longer exists): it will never finish."""
        if self.status != "running":
            return False
        from app.jobs.queue import local_process_alive

        if self.owner and local_process_alive(self.owner) is False:
            return True
        return self.lease_until is not None and self.lease_until < utcnow()


class DealChange(db.Model):
    """What a sync changed on a deal's snapshot: the deal page's sync history."""

    __tablename__ = "deal_change"
    __table_args__ = (Index("ix_deal_change_deal_id", "deal_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(BigInteger)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_run.id", ondelete="SET NULL"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(20), comment="pull or webhook")
    kind: Mapped[str] = mapped_column(String(20), comment="created or updated")
    changes: Mapped[dict] = mapped_column(JSONType, default=dict)


class PipedriveWebhookEvent(db.Model):
    """A received Pipedrive webhook, deduped on meta.id."""

    __tablename__ = "pd_webhook_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100), unique=True, comment="meta.id")
    entity: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[str | None] = mapped_column(String(40))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default="received")
    error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict] = mapped_column(JSONType)


class SyncProblem(db.Model):
    """A Pipedrive record a sync could not store, and why, in plain words.

    One row per record: it stays open while the record keeps failing (each later
    run retries it) and is resolved when a run stores it. Sync health and the
    mismatch board list the open ones; the technical details are in the log.
    """

    __tablename__ = "sync_problem"
    __table_args__ = (
        UniqueConstraint("entity", "entity_id", name="uq_sync_problem_entity_entity_id"),
        Index("ix_sync_problem_open", "resolved_at", "entity"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(20), comment="deal, person, organization")
    entity_id: Mapped[int] = mapped_column(BigInteger, comment="Pipedrive's id")
    job: Mapped[str] = mapped_column(String(60), comment="the job that last failed on it")
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("sync_run.id", ondelete="SET NULL"), comment="the run that last failed on it"
    )
    reason: Mapped[str] = mapped_column(Text, comment="plain words, no data")
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
