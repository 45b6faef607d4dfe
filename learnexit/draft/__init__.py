"""Draft a ``learnexit.toml`` from a source database: its schema *and* its data.

``draft_config(url)`` reflects the database, lists the references names suggest
(``schema``), measures each in the database (``evidence``: one aggregate query per
candidate, sampled on big tables), proposes relations, shared/retained/secret tables,
tenancy and roles (``propose``), and renders the commented file (``render``).  Nothing
is written to the source; nothing is applied: the result is a file to read and edit.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ..config import mask_url, normalise_driver
from ..errors import BadInput, OperationalError
from ..source import describe_db_error, make_engine, sqlite_pragmas
from . import composite
from .evidence import Measurer
from .propose import (
    Proposal,
    add_composites,
    choose_relations,
    drop_from_shared,
    propose_customer,
    propose_media,
    propose_roles,
    propose_site_name,
    propose_tables,
)
from .render import render
from .schema import PEOPLE_NAMES, Candidate, collect_facts, find_named
from .schema import candidates as name_candidates
from .tenancy import classify_shared

__all__ = ["Draft", "draft_config", "customer_url"]


@dataclass
class Draft:
    text: str
    proposal: Proposal
    tables: int
    candidates: int


def customer_url(url: str) -> tuple[str, str]:
    """The URL with the database's name replaced by ``{customer}``, and that name."""
    parsed = make_url(url)
    db = parsed.database or ""
    if parsed.drivername.startswith("sqlite"):
        stem = re.sub(r"\.(db|sqlite3?)$", "", db.rsplit("/", 1)[-1])
        if not stem:
            return url, ""
        head, _, tail = url.rpartition(stem)
        return f"{head}{{customer}}{tail}", stem
    if not db:
        return url, ""
    head, sep, tail = url.partition("?")
    return head[: -len(db)] + "{customer}" + sep + tail if head.endswith(db) else url, db


def draft_config(
    url: str,
    *,
    customer_table: str | None = None,
    exact: bool = False,
    schema: str | None = None,
    sample: int | None = None,
) -> Draft:
    """Read ``url`` and draft its config (see the module's doc)."""
    started = time.monotonic()
    url = normalise_driver(url)
    engine = make_engine(url)
    try:
        metadata = sa.MetaData()
        try:
            with engine.connect() as conn, sqlite_pragmas.prefetched(conn, schema):
                metadata.reflect(conn, schema=schema)
        except sa.exc.SQLAlchemyError as exc:
            raise OperationalError(f"cannot read {mask_url(url)}: {describe_db_error(exc)}") from None
        if not metadata.tables:
            raise BadInput(f"{mask_url(url)} has no tables to draft a config from")
        facts = collect_facts(metadata)
        if customer_table is not None and customer_table not in facts.tables:
            raise BadInput(f"--customer-table {customer_table!r}: no such table in the database")
        written = url
        parsed = make_url(url)
        if parsed.password:  # never written into a file: the operator adds it
            written = sa.engine.URL.create(
                parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database, parsed.query
            ).render_as_string(hide_password=False)
        proposal = Proposal(source_url=written, tenancy="database")
        if written != url:
            proposal.notes.append(
                "the database password is not written here: add it to [source] url or set it in LEARNEXIT_SOURCE_URL"
            )
        propose_customer(facts, proposal, customer_table)
        if proposal.tenancy == "database":
            proposal.source_url = customer_url(written)[0]
        people = find_named(facts, PEOPLE_NAMES)
        found = name_candidates(facts, people[0] if people else None)
        try:
            with engine.connect() as conn:
                measurer = Measurer(conn, facts.tables, exact=exact, **({"sample": sample} if sample else {}))
                by_column: dict[tuple[str, str], list[Candidate]] = {}
                for c in found:
                    by_column.setdefault((c.table, c.column), []).append(c)
                measured = [e for cands in by_column.values() for e in measurer.measure_column(cands)]
                choose_relations(facts, measured, proposal)
                single = {(r.from_table, r.from_column) for r in proposal.relations}
                tuples = [composite.measure(measurer, c) for c in composite.candidates(facts, single)]
                add_composites(proposal, *composite.accepted(tuples))
                propose_site_name(facts, proposal, conn)
                conn.rollback()
        except sa.exc.SQLAlchemyError as exc:
            raise OperationalError(f"cannot read {mask_url(url)}: {describe_db_error(exc)}") from None
        propose_tables(facts, proposal)
        drop_from_shared(proposal)
        propose_roles(facts, proposal)
        propose_media(facts, proposal)
        classify_shared(facts, proposal, metadata, people[0] if people else None)
        proposal.seconds = time.monotonic() - started
        text = render(proposal, len(facts.tables), mask_url(url))
        return Draft(text, proposal, len(facts.tables), len(found))
    finally:
        engine.dispose()
