"""Every Flask extension, created once here and attached in `create_app`."""

from __future__ import annotations

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import MetaData, text
from sqlalchemy.orm import DeclarativeBase

# Named constraints so Alembic can alter and drop them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = Htmx()

# A bulk change of at least this many rows refreshes the planner's statistics at once.
BULK_CHANGE_ROWS = 500


def refresh_planner_statistics(*models) -> None:
    """After a bulk change (the first import, a rule that re-derives readiness), let
    PostgreSQL's planner see the new data now rather than when autovacuum next gets to
    it: until then it plans on a near-empty table (a free-text search of the queue read
    and sorted every deal instead of walking the sort index). SQLite's planner keeps no
    statistics unless asked, so there is nothing to refresh there. Runs in the caller's
    transaction, which ANALYZE counts as live data."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    preparer = db.session.get_bind().dialect.identifier_preparer
    for model in models:
        db.session.execute(text(f"ANALYZE {preparer.quote(model.__table__.name)}"))
