"""SQLAlchemy models, the engine and session factory, and Alembic migrations."""

from models.db import create_engine, create_session_factory, upgrade_database
from models.entities import (
    Agency,
    Base,
    Case,
    CaseEvent,
    CaseSequence,
    CaseStatus,
    ConversationState,
    District,
    Domain,
    Draft,
    Neighbourhood,
    User,
)

__all__ = [
    "Agency",
    "Base",
    "Case",
    "CaseEvent",
    "CaseSequence",
    "CaseStatus",
    "ConversationState",
    "District",
    "Domain",
    "Draft",
    "Neighbourhood",
    "User",
    "create_engine",
    "create_session_factory",
    "upgrade_database",
]
