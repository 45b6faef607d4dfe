"""Which export package the customer received: recorded on ``confirm``, read by the certificate.

``confirm --package PATH|EXPORT_ID`` names the package the customer confirmed (by
default the latest complete export); ``record_delivery`` stores it in the ledger's
``deliveries`` table in the confirmation's transaction.  The deletion certificate lists
those packages as delivered to the customer and every other package learnexit made as
a vendor copy that was destroyed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from ..errors import BadInput, Refused
from ..ledger.export_records import add_delivery, customer_exports

__all__ = ["record_delivery", "resolve_package"]

_SUFFIXES = (".zip.age", ".zip", ".age")


def _stem(path: str | Path) -> str:
    name = Path(path).name
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def resolve_package(conn: Connection, customer: str, package: str | None) -> dict[str, Any] | None:
    """The complete export ``package`` names (an export id, or the package's path or
    name), or the latest complete export when ``package`` is None (None if there is none)."""
    rows = customer_exports(conn, customer)
    complete = [r for r in rows if r["status"] == "complete"]
    if package is None:
        return complete[-1] if complete else None
    text = package.strip()
    if text.isdigit():
        found = [r for r in rows if r["id"] == int(text)]
    else:
        wanted = Path(text).expanduser()
        found = [
            r
            for r in rows
            if r.get("path")
            and (Path(str(r["path"])).absolute() == wanted.absolute() or _stem(r["path"]) == _stem(wanted))
        ]
    if not found:
        raise BadInput(f"--package {package}: no export of {customer} has that id, path or name")
    row = found[-1]
    if row["status"] != "complete":
        raise Refused(f"--package {package}: export #{row['id']} is {row['status']}, not complete")
    return row


def record_delivery(
    conn: Connection, customer: str, confirmation_id: int, export: dict[str, Any], at: datetime, actor: str
) -> int:
    """Record that the customer received ``export``; the new row's id."""
    return add_delivery(
        conn,
        customer=customer,
        confirmation_id=confirmation_id,
        export_id=export["id"],
        manifest_sha256=export.get("manifest_sha256"),
        recorded_at=at,
        recorded_by=actor,
    )
