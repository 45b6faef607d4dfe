"""Property: on random schemas and data, discovery selects exactly each customer's rows.

Schemas are random reference graphs (several parents per table, nullable references,
self-references, composite keys, many-to-many link tables); data is spread over three
customers plus orphan rows.  The expectation is computed independently in Python by a
fixpoint over the generated rows, then compared with what the SQL predicates select.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learnexit.config import load_settings
from learnexit.offboarding.notice import record_notice
from learnexit.source import Source

CUSTOMERS = ("a", "b", "c")


@dataclass
class FK:
    cols: tuple[str, ...]
    parent: str
    nullable: bool


@dataclass
class TableDef:
    name: str
    pk: tuple[str, ...]
    fks: list[FK] = field(default_factory=list)
    self_ref: bool = False
    link: bool = False


@dataclass
class World:
    tables: list[TableDef]
    rows: dict[str, list[dict]]  # table -> rows
    owner: dict[str, list[str | None]] = field(default_factory=dict)  # generation intent (unused in checks)


def generate(seed: int, n_tables: int) -> World:
    rnd = random.Random(seed)
    tables = [TableDef("t0", ("id",))]
    for i in range(1, n_tables + 1):
        name = f"t{i}"
        earlier = tables[:]
        if i >= 3 and rnd.random() < 0.25:
            # a many-to-many link table: its key is its two references
            p1, p2 = rnd.sample(earlier, 2)
            c1 = tuple(f"{p1.name}_{c}" for c in p1.pk)
            c2 = tuple(f"{p2.name}_{c}" for c in p2.pk)
            t = TableDef(name, c1 + c2, [FK(c1, p1.name, False), FK(c2, p2.name, False)], link=True)
        else:
            pk = ("id",) if rnd.random() < 0.75 else ("k1", "k2")
            t = TableDef(name, pk)
            for parent in rnd.sample(earlier, min(len(earlier), rnd.randint(1, 2))):
                cols = tuple(f"{parent.name}_{c}" for c in parent.pk)
                t.fks.append(FK(cols, parent.name, rnd.random() < 0.5))
            t.self_ref = pk == ("id",) and rnd.random() < 0.35
        tables.append(t)

    rows: dict[str, list[dict]] = {"t0": [{"id": i + 1, "slug": c} for i, c in enumerate(CUSTOMERS)]}
    next_id = 1000
    by_cust: dict[tuple[str, str], list[dict]] = {("t0", c): [rows["t0"][i]] for i, c in enumerate(CUSTOMERS)}
    for t in tables[1:]:
        rows[t.name] = []
        for cust in CUSTOMERS + (None,):  # None: orphan rows owned by nobody
            for _ in range(rnd.randint(0, 4)):
                row: dict = {}
                ok = True
                for fk in t.fks:
                    candidates = by_cust.get((fk.parent, cust), []) if cust else []
                    if candidates and not (fk.nullable and rnd.random() < 0.2):
                        target = rnd.choice(candidates)
                        parent = next(p for p in tables if p.name == fk.parent)
                        for col, pcol in zip(fk.cols, parent.pk, strict=True):
                            row[col] = target[pcol]
                    elif fk.nullable:
                        for col in fk.cols:
                            row[col] = None
                    else:
                        ok = False
                if not ok:
                    continue
                next_id += 1
                if t.link:
                    key = tuple(row[c] for c in t.pk)
                    if any(tuple(r[c] for c in t.pk) == key for r in rows[t.name]):
                        continue
                elif t.pk == ("id",):
                    row["id"] = next_id
                else:
                    row["k1"], row["k2"] = next_id, rnd.randint(0, 3)
                if t.self_ref:
                    same = by_cust.get((t.name, cust), []) if cust else []
                    row["parent_id"] = rnd.choice(same)["id"] if same and rnd.random() < 0.6 else None
                rows[t.name].append(row)
                if cust:
                    by_cust.setdefault((t.name, cust), []).append(row)
    return World(tables, rows)


def create(world: World, url: str) -> None:
    md = sa.MetaData()
    for t in world.tables:
        cols: list = []
        if t.name == "t0":
            cols = [sa.Column("id", sa.Integer, primary_key=True), sa.Column("slug", sa.String(10), unique=True)]
        else:
            fk_cols = {c for fk in t.fks for c in fk.cols}
            for c in t.pk:
                if c not in fk_cols:
                    cols.append(sa.Column(c, sa.Integer, primary_key=True, autoincrement=False))
            for fk in t.fks:
                for c in fk.cols:
                    cols.append(sa.Column(c, sa.Integer, nullable=fk.nullable, primary_key=c in t.pk))
            if t.self_ref:
                cols.append(sa.Column("parent_id", sa.Integer, sa.ForeignKey(f"{t.name}.id"), nullable=True))
            parents = {p.name: p for p in world.tables}
            for fk in t.fks:
                cols.append(sa.ForeignKeyConstraint(list(fk.cols), [f"{fk.parent}.{c}" for c in parents[fk.parent].pk]))
        sa.Table(t.name, md, *cols)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        md.create_all(conn)
        for t in world.tables:
            if world.rows.get(t.name):
                conn.execute(md.tables[t.name].insert(), world.rows[t.name])
    engine.dispose()


def expected_owned(world: World, customer: str) -> dict[str, set[tuple]]:
    """Independent fixpoint: a row is owned when any reference reaches an owned row."""
    owned: dict[str, set[tuple]] = {t.name: set() for t in world.tables}
    pks = {t.name: t.pk for t in world.tables}
    owned["t0"] = {(r["id"],) for r in world.rows["t0"] if r["slug"] == customer}
    changed = True
    while changed:
        changed = False
        for t in world.tables[1:]:
            for r in world.rows[t.name]:
                key = tuple(r[c] for c in t.pk)
                if key in owned[t.name]:
                    continue
                hit = any(None not in (ref := tuple(r[c] for c in fk.cols)) and ref in owned[fk.parent] for fk in t.fks)
                if not hit and t.self_ref and r.get("parent_id") is not None:
                    hit = (r["parent_id"],) in owned[t.name]
                if hit:
                    owned[t.name].add(key)
                    changed = True
    return {n: {k for k in keys} for n, keys in owned.items() if pks[n]}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n_tables=st.integers(1, 7))
def test_predicates_select_exactly_each_customers_rows(tmp_path_factory, seed: int, n_tables: int) -> None:
    world = generate(seed, n_tables)
    folder: Path = tmp_path_factory.mktemp("iso")
    url = f"sqlite:///{folder / 'src.db'}"
    create(world, url)
    cfg = folder / "learnexit.toml"
    cfg.write_text(f'[source]\nurl = "{url}"\n[customer]\ntable = "t0"\nkey = "slug"\n', encoding="utf-8")
    s = load_settings(cfg, env={})
    for customer in CUSTOMERS:
        expected = expected_owned(world, customer)
        with Source(s, customer) as src:
            assert not src.datamap.unclassified()
            for t in world.tables:
                table = src.table(t.name)
                with src.snapshot() as conn:
                    got = {
                        tuple(r)
                        for r in conn.execute(sa.select(*[table.c[c] for c in t.pk]).where(src.predicate(t.name)))
                    }
                assert got == expected[t.name], (t.name, customer)
        # customers' row sets are disjoint by construction of the data
        for t in world.tables:
            others = set().union(*(expected_owned(world, c)[t.name] for c in CUSTOMERS if c != customer))
            assert not (expected[t.name] & others)


# --------------------------------------------------------------------------- export and purge

EXPORT_EXAMPLES = 30


def world_settings(world: World, folder: Path):
    url = f"sqlite:///{folder / 'src.db'}"
    create(world, url)
    cfg = folder / "learnexit.toml"
    cfg.write_text(
        f'[source]\nurl = "{url}"\n[state]\nurl = "sqlite:///{folder / "state.db"}"\n'
        '[customer]\ntable = "t0"\nkey = "slug"\n',
        encoding="utf-8",
    )
    return url, load_settings(cfg, env={})


def all_rows(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, as the CSV text of each value (NULL → "")."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    with engine.connect() as conn:
        out = {
            name: sorted(
                tuple("" if v is None else str(v) for v in row)
                for row in conn.execute(sa.select(table).order_by(*table.primary_key.columns))
            )
            for name, table in md.tables.items()
        }
    engine.dispose()
    return out


def pk_of(world: World, table: str, row: tuple, columns: list[str]) -> tuple:
    """The primary key of a row given as CSV text (every key column is an integer)."""
    t = next(t for t in world.tables if t.name == table)
    values = dict(zip(columns, row, strict=True))
    return tuple(int(values[c]) for c in t.pk)


@settings(max_examples=EXPORT_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n_tables=st.integers(1, 6))
def test_export_holds_exactly_each_customers_rows(tmp_path_factory, seed: int, n_tables: int) -> None:
    """Every row of the customer appears in the CSVs, value for value, and no other row."""
    import csv
    import io

    from learnexit.export.run import run_export
    from learnexit.exporters.csv_format import csv_paths

    world = generate(seed, n_tables)
    folder: Path = tmp_path_factory.mktemp("iso-export")
    url, s = world_settings(world, folder)
    rows = all_rows(url)
    engine = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    engine.dispose()
    columns = {name: [c.name for c in table.columns] for name, table in md.tables.items()}
    paths = csv_paths([t.name for t in world.tables])
    for customer in CUSTOMERS:
        expected = expected_owned(world, customer)
        result = run_export(s, customer, formats=["csv"], out=folder / f"out-{customer}")
        for t in world.tables:
            text = (result.path / "data" / paths[t.name]).read_bytes().decode("utf-8")
            records = list(csv.reader(io.StringIO(text, newline="")))
            assert records[0] == columns[t.name]
            got = sorted(tuple(r) for r in records[1:])
            keep = [r for r in rows[t.name] if pk_of(world, t.name, r, columns[t.name]) in expected[t.name]]
            assert got == sorted(keep), (customer, t.name)
            assert result.tables.get(t.name, 0) == len(expected[t.name])


PURGE_EXAMPLES = 40


def raw_rows(url: str) -> dict[str, dict[tuple, tuple]]:
    """Every row of every table, keyed by primary key, values as the database returns them."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    with engine.connect() as conn:
        out = {}
        for name, table in md.tables.items():
            pk = [c.name for c in table.primary_key.columns]
            out[name] = {tuple(r._mapping[c] for c in pk): tuple(r) for r in conn.execute(sa.select(table))}
    engine.dispose()
    return out


@settings(max_examples=PURGE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n_tables=st.integers(1, 6), victim=st.sampled_from(CUSTOMERS))
def test_purge_removes_exactly_the_customers_rows(tmp_path_factory, seed: int, n_tables: int, victim: str) -> None:
    """The purge deletes exactly the customer's rows; every other row stays byte-identical."""
    from datetime import UTC, date, datetime
    from unittest import mock

    from learnexit.ledger.store import Ledger
    from learnexit.purge.run import execute_purge

    world = generate(seed, n_tables)
    folder: Path = tmp_path_factory.mktemp("iso-purge")
    url, s = world_settings(world, folder)
    before = raw_rows(url)
    expected = expected_owned(world, victim)
    certificate = (folder / "certificate.pdf", "0" * 64)  # the PDF is tested elsewhere; here it costs seconds
    with Ledger(s.state_url) as ledger:
        record_notice(
            s,
            ledger,
            victim,
            date(2026, 1, 10),
            period_end=date(2026, 3, 31),
            now=datetime(2026, 1, 10, 12, tzinfo=UTC),
        )
        with mock.patch("learnexit.purge.run.write_certificate", return_value=certificate):
            result = execute_purge(s, ledger, victim, datetime(2026, 7, 1, 12, tzinfo=UTC))
        assert ledger.verify_audit().valid
    assert result.status == "done" and result.verified, result.as_dict()
    after = raw_rows(url)
    for t in world.tables:
        keep = {key: row for key, row in before[t.name].items() if key not in expected[t.name]}
        assert after[t.name] == keep, (victim, t.name)
        assert result.deleted.get(t.name, 0) == len(expected[t.name]), (victim, t.name)
