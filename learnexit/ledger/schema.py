"""The ledger's tables (SQLAlchemy Core) and their migration.

Only :mod:`learnexit.ledger` reads and writes these tables by name: the rest of
learnexit goes through :mod:`learnexit.ledger.records`, :mod:`learnexit.ledger.purge_records`,
:mod:`learnexit.ledger.export_records` and :class:`~learnexit.ledger.store.Ledger`.
"""

from __future__ import annotations

import time
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import OperationalError

SCHEMA_VERSION = 2


metadata = sa.MetaData()

meta_table = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

# One row per offboarding case: the customer row a key named when the first record was
# made (its primary key, pinned), and when a full purge finished it.  Every record of
# the case carries its id, so a new row that later gets the same key is a new customer.
identities = sa.Table(
    "identities",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("customer", sa.String(200), nullable=False, index=True),
    sa.Column("row_pk", sa.Text),  # the customer row's primary key as JSON text; NULL: not pinned yet
    sa.Column("opened_at", sa.DateTime, nullable=False),
    sa.Column("opened_by", sa.String(200), nullable=False),
    sa.Column("finished_at", sa.DateTime),
)

notices = sa.Table(
    "notices",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("identity_id", sa.Integer, index=True),  # identities.id: whose case
    sa.Column("customer", sa.String(200), nullable=False, index=True),
    sa.Column("received", sa.Date, nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("reference", sa.String(500)),
    sa.Column("recorded_by", sa.String(200), nullable=False),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
    sa.Column("period_end", sa.Date, nullable=False),
    sa.Column("timely", sa.Boolean, nullable=False),
    sa.Column("termination_date", sa.Date, nullable=False),
    sa.Column("export_deadline", sa.Date, nullable=False),
    sa.Column("purge_due_at", sa.DateTime, nullable=False),
    sa.Column("terms", sa.Text, nullable=False),  # JSON: how the period was found
    sa.Column("withdrawn_at", sa.DateTime),
    sa.Column("withdrawn_by", sa.String(200)),
)

exports = sa.Table(
    "exports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("identity_id", sa.Integer, index=True),  # identities.id: whose case
    sa.Column("customer", sa.String(200), nullable=False, index=True),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("status", sa.String(20), nullable=False),  # running | complete | failed | removed
    sa.Column("path", sa.Text),
    sa.Column("formats", sa.String(200)),
    sa.Column("files", sa.Integer),
    sa.Column("bytes", sa.BigInteger),
    sa.Column("rows", sa.Text),  # JSON {table: rows}
    sa.Column("manifest_sha256", sa.String(64)),
    sa.Column("late_reason", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("recorded_by", sa.String(200), nullable=False),
)

confirmations = sa.Table(
    "confirmations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("identity_id", sa.Integer, index=True),  # identities.id: whose case
    sa.Column("customer", sa.String(200), nullable=False, index=True),
    sa.Column("confirmed_at", sa.DateTime, nullable=False),
    sa.Column("confirmed_by", sa.String(200), nullable=False),
    sa.Column("reference", sa.String(500)),
    sa.Column("waived", sa.Boolean, nullable=False),
    sa.Column("without_export_reason", sa.Text),
    sa.Column("recorded_by", sa.String(200), nullable=False),
)

# Which export package the customer confirmed it received (``confirm --package``; by
# default the latest complete export).  The deletion certificate lists these as
# delivered and every other package as a vendor copy.  (A table of its own: the
# confirmations table is not altered.)
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("customer", sa.String(200), nullable=False, index=True),
    sa.Column("confirmation_id", sa.Integer, nullable=False),
    sa.Column("export_id", sa.Integer, nullable=False),
    sa.Column("manifest_sha256", sa.String(64)),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
    sa.Column("recorded_by", sa.String(200), nullable=False),
)

closures = sa.Table(
    "closures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("identity_id", sa.Integer, index=True),  # identities.id: whose case
    sa.Column("customer", sa.String(200), nullable=False, index=True),
    sa.Column("performed_at", sa.DateTime, nullable=False),
    sa.Column("rows", sa.Text, nullable=False),  # JSON {table.column: rows changed}
    sa.Column("recorded_by", sa.String(200), nullable=False),
)

holds = sa.Table(
    "holds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("identity_id", sa.Integer, index=True),  # identities.id: whose case
    sa.Column("customer", sa.String(200), nullable=False, index=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("placed_by", sa.String(200), nullable=False),
    sa.Column("placed_at", sa.DateTime, nullable=False),
    sa.Column("released_by", sa.String(200)),
    sa.Column("released_at", sa.DateTime),
)

purges = sa.Table(
    "purges",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("identity_id", sa.Integer, index=True),  # identities.id: whose case
    sa.Column("customer", sa.String(200), nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),  # full | retention
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("status", sa.String(20), nullable=False),  # running | done | failed
    sa.Column("plan", sa.Text),  # JSON: counts per table, retained, forced reason
    sa.Column("deleted", sa.Text),  # JSON {table: rows}
    sa.Column("retained", sa.Text),
    sa.Column("kept_shared", sa.Text),
    sa.Column("verified", sa.Boolean),
    sa.Column("verification", sa.Text),  # JSON {table: {before, after}}
    sa.Column("certificate", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("forced_reason", sa.Text),
    sa.Column("recorded_by", sa.String(200), nullable=False),
)

purge_progress = sa.Table(
    "purge_progress",
    metadata,
    sa.Column("purge_id", sa.Integer, sa.ForeignKey("purges.id"), primary_key=True),
    sa.Column("step", sa.String(200), primary_key=True),  # table name, or media:<...>
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("batches", sa.Integer, nullable=False),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

# Keys of owned_via rows (e.g. users) found before their references are deleted, so
# a resumed purge still knows which of them to consider.  Keys only, no data.
purge_keys = sa.Table(
    "purge_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("purge_id", sa.Integer, sa.ForeignKey("purges.id"), nullable=False, index=True),
    sa.Column("table_name", sa.String(200), nullable=False),
    sa.Column("key", sa.Text, nullable=False),  # JSON list of key values
)

locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(300), nullable=False),
    sa.Column("acquired_at", sa.DateTime, nullable=False),
    sa.Column("heartbeat_at", sa.DateTime, nullable=False),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("command", sa.String(50), nullable=False),
    sa.Column("customer", sa.String(200)),
    sa.Column("event", sa.String(100), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)


CASE_TABLES = (notices, exports, confirmations, closures, holds, purges)


def migrate(engine: Engine, now: datetime) -> None:
    """Create the tables (and migrate older ledgers) on first use; ``now``: when a
    migration opens the cases of records made before cases existed."""
    # Two commands may meet a brand-new ledger at the same moment: the loser of the
    # CREATE race retries and then finds the tables there.
    for attempt in range(4):
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7213701)")
                metadata.create_all(conn, checkfirst=True)
                rows = dict(conn.execute(sa.select(meta_table.c.key, meta_table.c.value)).all())
                if "schema_version" not in rows:
                    conn.execute(meta_table.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
                elif int(rows["schema_version"]) > SCHEMA_VERSION:
                    raise OperationalError(
                        f"the ledger was written by a newer learnexit (schema {rows['schema_version']} > "
                        f"{SCHEMA_VERSION}); upgrade learnexit"
                    )
                if "audit_count" not in rows:
                    conn.execute(meta_table.insert().values(key="audit_count", value="0"))
                if int(rows.get("schema_version", SCHEMA_VERSION)) < 2:
                    _migrate_to_identities(conn, now)
                    conn.execute(meta_table.update().where(meta_table.c.key == "schema_version").values(value="2"))
            return
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError):
            if attempt == 3:
                raise
            time.sleep(0.2 * (attempt + 1))


def _migrate_to_identities(conn: Connection, now: datetime) -> None:
    """Schema 1 → 2: every record gets the case it belongs to (one per customer key so
    far; the row's primary key is pinned by the next command that reads the source)."""
    inspector = sa.inspect(conn)
    for table in CASE_TABLES:
        if "identity_id" not in {c["name"] for c in inspector.get_columns(table.name)}:
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN identity_id INTEGER")
    customers: set[str] = set()
    for table in CASE_TABLES:
        customers |= {r[0] for r in conn.execute(sa.select(table.c.customer).distinct())}
    for customer in sorted(customers):
        key = conn.execute(
            identities.insert().values(customer=customer, opened_at=now, opened_by="migration to schema 2")
        ).inserted_primary_key
        assert key is not None
        for table in CASE_TABLES:
            conn.execute(
                table.update()
                .where(table.c.customer == customer, table.c.identity_id.is_(None))
                .values(identity_id=int(key[0]))
            )
