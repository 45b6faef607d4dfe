"""The customer's display name from ``[customer] name`` or ``name_query``.

Under tenancy "database" there is no customer table to read a name from, so letters
would greet the database ("Dear site_a,").  ``name`` gives it literally; ``name_query``
is a SELECT run on the customer's own database (Moodle: the site's full name in
``mdl_course`` id 1, or ``mdl_config``), ``:customer`` bound to the customer's key.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..config import Settings
from ..errors import ConfigError, OperationalError


def configured_name(settings: Settings, engine: Engine, customer: str) -> str:
    """The configured display name; the key when the query finds nothing."""
    cust = settings.customer
    if cust.name:
        return cust.name
    query = cust.name_query or ""
    stmt = sa.text(query)
    params = {"customer": customer} if ":customer" in query else {}
    try:
        with engine.connect() as conn:
            row = conn.execute(stmt, params).first()
    except sa.exc.SQLAlchemyError as exc:
        lines = str(getattr(exc, "orig", exc)).strip().splitlines()
        first = lines[0] if lines else "error"
        wrong = ("no such", "does not exist", "doesn't exist", "syntax", "unknown column")
        if isinstance(exc, sa.exc.ProgrammingError) or any(w in first.lower() for w in wrong):
            raise ConfigError(f"{settings.label}: [customer] name_query failed: {first}") from None
        raise OperationalError(f"[customer] name_query failed: {first}") from None
    if row is None or row[0] is None or not str(row[0]).strip():
        return customer
    return " ".join(str(row[0]).split())[:200]
