"""A customer's case and its source: the row the case pinned, the customer known.

A case's records name the customer row its key named when the case was opened
(``Ledger.open_case``); the source is opened pinned to that row, so a key that now
names another row is refused (3) instead of acted on.  Also the checks of the free
text the commands record.
"""

from __future__ import annotations

from ..config import Settings
from ..errors import BadInput, LearnexitError
from ..ledger.records import CaseRecords, read_case
from ..ledger.store import Ledger
from ..source import PinnedRow, Reads, Source, check_customer_key

__all__ = [
    "MAX_NAME",
    "MAX_REFERENCE",
    "check_text",
    "is_new_customer",
    "open_source",
    "require_customer",
    "require_known",
    "require_same_row",
]

MAX_REFERENCE = 500
MAX_NAME = 200


def open_source(settings: Settings, ledger: Ledger, customer: str, *, reads: Reads = "primary") -> Source:
    """The source for ``customer``, its row checked against the one the open case pinned:
    a key that now names another row is refused (3) instead of acted on.  ``reads``:
    "replica" reads ``[source] read_url`` when one is set (only the export asks for it)."""
    case = ledger.case_of(customer)
    pinned = None
    if case is not None and case["row_pk"] is not None and case["finished_at"] is None:
        pinned = PinnedRow(case["row_pk"])
    return Source(settings, customer, pinned=pinned, reads=reads)


def require_same_row(settings: Settings, ledger: Ledger, customer: str) -> None:
    """Refused (3) when the key now names another source row than the open case pinned."""
    case = ledger.case_of(customer)
    if case is not None and case["row_pk"] is not None and case["finished_at"] is None:
        with open_source(settings, ledger, customer):
            pass


def is_new_customer(settings: Settings, ledger: Ledger, customer: str) -> bool:
    """After a finished case, does the key now name another source row (a new customer)?
    Asked only then, so ``status`` reads the source for nothing else."""
    case = ledger.case_of(customer)
    if case is None or case["finished_at"] is None or case["row_pk"] is None:
        return False
    try:
        with Source(settings, customer) as src:
            return src.customer_row_pk not in (None, case["row_pk"])
    except LearnexitError:
        return False  # the row is gone (or the source is away): the old case is what there is


def require_known(settings: Settings, ledger: Ledger, rec: CaseRecords) -> str | None:
    """The customer must be known to the ledger (a notice) or to the source; the source
    row's primary key when it had to be looked up there."""
    if rec.notices or rec.holds:
        case = ledger.case_of(rec.customer)
        if case is None or case["finished_at"] is None:
            return None
    with open_source(settings, ledger, rec.customer) as src:
        return src.customer_row_pk


def require_customer(settings: Settings, ledger: Ledger, customer: str) -> None:
    """UnknownCustomer (2) unless the ledger or the source knows ``customer``."""
    check_customer_key(customer)
    require_known(settings, ledger, read_case(ledger, customer))


def check_text(value: str | None, what: str, limit: int, *, required: bool = False) -> str | None:
    """One line of free text for the ledger (stripped; None when empty), or BadInput."""
    if value is None:
        if required:
            raise BadInput(f"{what} is required")
        return None
    if any(ord(ch) < 32 and ch not in "\t" for ch in value):
        raise BadInput(f"{what} must be one line of text")
    value = value.strip()
    if not value:
        if required:
            raise BadInput(f"{what} must not be empty")
        return None
    if len(value) > limit:
        raise BadInput(f"{what} is {len(value)} characters long (at most {limit})")
    return value
