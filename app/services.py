"""Deprecated name of app.context (kept until every view has moved over)."""

from app.context import context as services  # noqa: F401
from services.context import Context as Services  # noqa: F401
