"""Import every model so the metadata (and Alembic) sees the whole schema."""

from app.audit.models import AuditEntry
from app.auth.models import LoginFailure, User, UserRole

__all__ = ["AuditEntry", "LoginFailure", "User", "UserRole"]
