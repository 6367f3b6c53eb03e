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
    PdStage,
    PdUser,
    PipedriveWebhookEvent,
    SyncRun,
    SyncState,
)
from app.invoices.models import Invoice, InvoiceDiscount, InvoiceLine
from app.users.models import UserInvite

__all__ = [
    "ApprovalPolicy", "ApprovalThreshold",
    "Invoice", "InvoiceDiscount", "InvoiceLine",
    "Setting", "UserInvite",
    "AuditEntry", "BillingRule", "DealChange", "FieldMapping", "LoginFailure", "PdDeal",
    "PdDealDiscount", "PdDealProduct", "PdField", "PdInstallment", "PdOrganization", "PdPerson",
    "PdPipeline", "PdStage", "PdUser", "PipedriveWebhookEvent", "SyncRun", "SyncState", "User",
    "UserRole",
]
