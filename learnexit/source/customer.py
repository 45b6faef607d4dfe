"""Finding the customer: what a key may look like, and the one row whose key is exactly
the key typed (rule 1 of ownership), or the row an offboarding case pinned."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from ..errors import BadInput, UnknownCustomer

# What a customer key may look like when it is spliced into a URL (tenancy
# "database"): no path separators, no dots at the start, nothing a shell or a URL
# would interpret.
_URL_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
MAX_KEY_LENGTH = 200


def check_customer_key(customer: str) -> str:
    """Reject keys no customer can have, before anything touches a database."""
    if not customer or not customer.strip():
        raise BadInput("customer key is empty")
    if len(customer) > MAX_KEY_LENGTH:
        raise BadInput(f"customer key is {len(customer)} characters long (at most {MAX_KEY_LENGTH})")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in customer):
        raise BadInput(f"customer key {customer[:40]!r} contains control characters")
    return customer


def check_database_key(customer: str) -> None:
    """Tenancy "database": the key becomes part of the source URL, so it must be safe there."""
    if not _URL_SAFE_KEY.fullmatch(customer):
        raise BadInput(f"customer key {customer[:40]!r} cannot name a database: use letters, digits, '_', '-', '.'")


def key_text(value: Any) -> str:
    """The text a stored key value is typed as (what a customer key must equal exactly)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def pk_text(pk: tuple[Any, ...] | list[Any]) -> str:
    """A primary key as canonical text (how the ledger stores and compares it)."""
    return json.dumps([key_text(v) for v in pk], ensure_ascii=False, separators=(",", ":"))


def pk_label(table: sa.Table, pk: tuple[Any, ...]) -> str:
    """``id 7`` (``a 1, b 2`` for a composite key): a row of ``table`` named in a message."""
    names = [c.name for c in table.primary_key.columns] or ["key"]
    return ", ".join(f"{n} {key_text(v)}" for n, v in zip(names, pk, strict=False))


@dataclass(frozen=True)
class CustomerRow:
    """One row of the customer table: its stored key and its primary key."""

    key: Any
    pk: tuple[Any, ...]

    @property
    def pk_text(self) -> str:
        return pk_text(self.pk)


@dataclass(frozen=True)
class PinnedRow:
    """The customer row an offboarding case was opened for, as the ledger recorded it
    (``pk_text``), and whether the case's purge has deleted it (``deleted``)."""

    pk_text: str
    deleted: bool = False

    @property
    def pk(self) -> tuple[Any, ...]:
        return tuple(json.loads(self.pk_text))


def _loose_integer(typed: str) -> int | None:
    """What a database's numeric comparison would make of ``typed`` (' 01', '+1', '1.0')."""
    try:
        number = Decimal(typed.strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(number)


def _key_probe(key_col: sa.Column[Any], typed: str) -> ColumnElement[bool] | None:
    """A condition that finds the typed key and its near misses, in the column's own type."""
    kind = key_col.type
    if isinstance(kind, sa.Integer):
        values = {v for v in (_loose_integer(typed),) if v is not None and abs(v) < 2**63}
        return key_col.in_(sorted(values)) if values else None
    if isinstance(kind, sa.String):
        folded = typed.strip().lower()
        return sa.or_(key_col == typed, sa.func.lower(sa.func.trim(key_col)) == folded)
    return sa.cast(key_col, sa.String) == typed


def find_customer_row(engine: Engine, table: sa.Table, key_col: sa.Column[Any], typed: str) -> CustomerRow:
    """The one row whose key, as text, is exactly ``typed``.

    No collation folding, no numeric coercion: a key that would match only under the
    database's own comparison ('ACME', 'acme ', '01') is refused with the key it
    resembles, so two spellings can never reach one customer."""
    pk_cols = list(table.primary_key.columns) or [key_col]
    probe = _key_probe(key_col, typed)
    rows: list[Any] = []
    if probe is not None:
        with engine.connect() as conn:
            rows = list(conn.execute(sa.select(key_col, *pk_cols).where(probe).limit(20)))
    exact = [r for r in rows if key_text(r[0]) == typed]
    if len(exact) > 1:
        raise BadInput(f"customer key {typed[:60]!r} matches several {table.name} rows")
    if exact:
        return CustomerRow(exact[0][0], tuple(exact[0][1:]))
    hint = ""
    if rows:
        hint = f"; did you mean {key_text(rows[0][0])!r}?"
    raise UnknownCustomer(
        f"unknown customer {typed[:60]!r}: no {table.name} row with {key_col.name} exactly that value{hint}"
    )
