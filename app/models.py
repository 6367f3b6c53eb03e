"""Import every model so the metadata (and Alembic) sees the whole schema."""

from app.approvals.models import ApprovalPolicy, ApprovalThreshold
from app.audit.models import AuditEntry
from app.auth.models import LoginFailure, User, UserRole
from app.connections.models import Setting
from app.intake.models import (
    BillingRule,
    DealChange,
    FieldMapping,
    PdDeal,
    PdDealDiscount,
    PdDealProduct,
    PdField,
    PdInstallment,
    PdOrganization,
    PdPerson,
    PdPipeline,
    PdProduct,
    PdStage,
    PdUser,
    PipedriveWebhookEvent,
    SyncRun,
    SyncState,
)
from app.invoices.models import Invoice, InvoiceDiscount, InvoiceLine
from app.mismatches.models import Mismatch
from app.payments.models import (
    ForeignStripeInvoice,
    InvoiceStripeState,
    JobSchedule,
    StripeCustomerSeen,
    StripeEvent,
    StripePayment,
)
from app.push.models import PushBatch, PushJob, PushStep, StripeCustomerLink, StripeTaxRate
from app.rules.models import BillingDefaults, ProductMapping, TaxMapping
from app.sales.models import SalesDaily, SalesOpenDaily, SalesRollupState
from app.users.models import UserInvite
from app.writeback.models import WritebackItem

__all__ = [
    "ForeignStripeInvoice",
    "InvoiceStripeState",
    "JobSchedule",
    "Mismatch",
    "StripeCustomerSeen",
    "StripeEvent",
    "StripePayment",
    "ApprovalPolicy",
    "ApprovalThreshold",
    "BillingDefaults",
    "ProductMapping",
    "TaxMapping",
    "Invoice",
    "InvoiceDiscount",
    "InvoiceLine",
    "PushBatch",
    "PushJob",
    "PushStep",
    "StripeCustomerLink",
    "StripeTaxRate",
    "WritebackItem",
    "SalesDaily",
    "SalesOpenDaily",
    "SalesRollupState",
    "Setting",
    "UserInvite",
    "AuditEntry",
    "BillingRule",
    "DealChange",
    "FieldMapping",
    "LoginFailure",
    "PdDeal",
    "PdDealDiscount",
    "PdDealProduct",
    "PdField",
    "PdInstallment",
    "PdOrganization",
    "PdPerson",
    "PdPipeline",
    "PdProduct",
    "PdStage",
    "PdUser",
    "PipedriveWebhookEvent",
    "SyncRun",
    "SyncState",
    "User",
    "UserRole",
]
