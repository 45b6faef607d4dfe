"""Ownership discovery on a small schema with every awkward shape, on all three engines.

The expected row sets are written out by hand (independently of the discovery code).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from learnexit.config import load_settings
from learnexit.errors import ConfigError, UnknownCustomer
from learnexit.source import Source
from learnexit.source.inspection import inspect_customer

md = sa.MetaData()
orgs = sa.Table(
    "orgs", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("slug", sa.String(50), unique=True)
)
teams = sa.Table(
    "teams",
    md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id"), nullable=False),
)
people = sa.Table("people", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(100)))
memberships = sa.Table(
    "memberships",
    md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), nullable=False),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("people.id"), nullable=False),
)
docs = sa.Table(
    "docs",
    md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), nullable=True),
    sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id"), nullable=True),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("docs.id"), nullable=True),
)
tags = sa.Table(
    "tags",
    md,
    sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id"), primary_key=True),
    sa.Column("code", sa.String(20), primary_key=True),
)
doc_tags = sa.Table(
    "doc_tags",
    md,
    sa.Column("doc_id", sa.Integer, sa.ForeignKey("docs.id"), primary_key=True),
    sa.Column("tag_org_id", sa.Integer, primary_key=True),
    sa.Column("tag_code", sa.String(20), primary_key=True),
    sa.ForeignKeyConstraint(["tag_org_id", "tag_code"], ["tags.org_id", "tags.code"]),
)
notes = sa.Table(
    "notes",
    md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("people.id")),
)
apikeys = sa.Table(
    "apikeys",
    md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id")),
)
audit_trail = sa.Table(
    "audit_trail", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("text", sa.String(50))
)

DATA = [
    (orgs, [{"id": 1, "slug": "a"}, {"id": 2, "slug": "b"}]),
    (teams, [{"id": 10, "org_id": 1}, {"id": 11, "org_id": 1}, {"id": 20, "org_id": 2}]),
    (people, [{"id": i, "name": f"p{i}"} for i in range(1, 6)]),
    (
        memberships,
        [
            {"id": 1, "team_id": 10, "person_id": 1},
            {"id": 2, "team_id": 11, "person_id": 2},
            {"id": 3, "team_id": 10, "person_id": 3},
            {"id": 4, "team_id": 20, "person_id": 3},
            {"id": 5, "team_id": 20, "person_id": 4},
        ],
    ),
    (
        docs,
        [
            {"id": 100, "team_id": 10, "org_id": None, "parent_id": None},
            {"id": 101, "team_id": None, "org_id": 1, "parent_id": None},
            {"id": 102, "team_id": None, "org_id": None, "parent_id": 100},
            {"id": 103, "team_id": None, "org_id": None, "parent_id": 102},
            {"id": 200, "team_id": 20, "org_id": None, "parent_id": None},
            {"id": 201, "team_id": None, "org_id": None, "parent_id": 200},
            {"id": 202, "team_id": None, "org_id": None, "parent_id": None},
        ],
    ),
    (tags, [{"org_id": 1, "code": "x"}, {"org_id": 2, "code": "x"}]),
    (
        doc_tags,
        [
            {"doc_id": 100, "tag_org_id": 1, "tag_code": "x"},
            {"doc_id": 102, "tag_org_id": 1, "tag_code": "x"},
            {"doc_id": 200, "tag_org_id": 2, "tag_code": "x"},
        ],
    ),
    (notes, [{"id": 1, "person_id": 1}]),
    (apikeys, [{"id": 1, "org_id": 1}, {"id": 2, "org_id": 2}]),
    (audit_trail, [{"id": 1, "text": "t"}]),
]

EXPECTED = {
    "a": {
        "orgs": {(1,)},
        "teams": {(10,), (11,)},
        "people": {(1,), (2,), (3,)},
        "memberships": {(1,), (2,), (3,)},
        "docs": {(100,), (101,), (102,), (103,)},
        "tags": {(1, "x")},
        "doc_tags": {(100, 1, "x"), (102, 1, "x")},
    },
    "b": {
        "orgs": {(2,)},
        "teams": {(20,)},
        "people": {(3,), (4,)},
        "memberships": {(4,), (5,)},
        "docs": {(200,), (201,)},
        "tags": {(2, "x")},
        "doc_tags": {(200, 2, "x")},
    },
}

CONFIG = """
[source]
url = "{url}"
[state]
url = "sqlite:///state.db"
[customer]
table = "orgs"
key = "slug"
[tables.people]
owned_via = ["memberships.person_id"]
[tables.apikeys]
shared = true
"""


def make_source_db(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        md.create_all(conn)
        for table, rows in DATA:
            conn.execute(table.insert(), rows)
    engine.dispose()


@pytest.fixture
def mini(dbs, tmp_path: Path):
    url = dbs.new("mini")
    make_source_db(url)
    cfg = tmp_path / "learnexit.toml"
    cfg.write_text(CONFIG.format(url=url), encoding="utf-8")
    return load_settings(cfg)


def owned_keys(src: Source, table: str) -> set[tuple]:
    t = src.table(table)
    pk = list(t.primary_key.columns)
    with src.snapshot() as conn:
        return {tuple(r) for r in conn.execute(sa.select(*pk).where(src.predicate(table)))}


@pytest.mark.parametrize("customer", ["a", "b"])
def test_ownership_is_exact(mini, customer: str) -> None:
    with Source(mini, customer) as src:
        assert set(src.owned_tables()) == set(EXPECTED[customer])
        for table, keys in EXPECTED[customer].items():
            assert owned_keys(src, table) == keys, table


def test_classification_and_counts(mini) -> None:
    report = inspect_customer(mini, "a")
    by = {t.table: t for t in report.tables}
    assert by["apikeys"].status == "shared"
    assert by["apikeys"].rows is None
    assert by["notes"].status == "unclassified"
    assert "owned_via" in (by["notes"].note or "")
    assert by["audit_trail"].status == "unclassified"
    assert report.unclassified == ["audit_trail", "notes"] or sorted(report.unclassified) == ["audit_trail", "notes"]
    assert {t: by[t].rows for t in EXPECTED["a"]} == {t: len(k) for t, k in EXPECTED["a"].items()}
    assert by["people"].via == "referenced by the customer's memberships.person_id"
    assert by["memberships"].via == "memberships.team_id → teams.org_id → orgs"
    # parents come before children in the order used for dumps and purges
    order = [t.table for t in report.tables]
    assert order.index("orgs") < order.index("teams") < order.index("memberships")
    assert order.index("docs") < order.index("doc_tags") and order.index("tags") < order.index("doc_tags")


def test_stream_returns_rows_in_key_order(mini) -> None:
    with Source(mini, "a") as src, src.snapshot() as conn:
        batches = list(src.stream(conn, "docs", batch_size=3))
    assert [len(b) for b in batches] == [3, 1]
    assert [r.id for b in batches for r in b] == [100, 101, 102, 103]


def test_unknown_customer(mini) -> None:
    with pytest.raises(UnknownCustomer):
        Source(mini, "nobody")
    with pytest.raises(UnknownCustomer):
        Source(mini, "' OR 1=1 --")


def test_config_naming_missing_table_is_an_error(dbs, tmp_path: Path) -> None:
    url = dbs.new("mini")
    make_source_db(url)
    cfg = tmp_path / "bad.toml"
    cfg.write_text(CONFIG.format(url=url) + "\n[tables.nonexistent]\nshared = true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[tables.nonexistent\].*does not exist"):
        Source(load_settings(cfg), "a")
    cfg.write_text(CONFIG.format(url=url) + '\n[[relations]]\nfrom = "docs.nope"\nto = "orgs.id"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"docs.nope does not exist"):
        Source(load_settings(cfg), "a")


def test_references_listed_in_the_same_order_every_run(mini, tmp_path: Path) -> None:
    """SQLAlchemy keeps a table's foreign keys in a set, whose order follows string hashing
    (a new seed every process): the SQL dump's CREATE TABLE and datapackage.json listed a
    table's references in a different order from run to run.  Now sorted."""
    import subprocess
    import sys

    script = (
        "import sys; from pathlib import Path\n"
        "from learnexit.config import load_settings; from learnexit.source import Source\n"
        "with Source(load_settings(Path(sys.argv[1])), 'a') as src:\n"
        "    print([(e.child, e.child_cols, e.parent) for e in src.datamap.edges])\n"
    )
    config = tmp_path / "learnexit.toml"
    runs = {
        subprocess.run(
            [sys.executable, "-c", script, str(config)],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(6)
    }
    assert len(runs) == 1
    with Source(mini, "a") as src:
        doc_tags = [e.child_cols for e in src.datamap.edges if e.child == "doc_tags" and e.declared]
    assert len(doc_tags) >= 2 and doc_tags == sorted(doc_tags)


def test_a_failed_rollback_does_not_hide_why_the_read_failed(mini, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection the server ended may report it again at the snapshot's closing ROLLBACK
    (seen: PostgreSQL terminating the export's backend).  The read's own error is the one
    reported, as one line; a rollback failing after a good read is reported as one too."""
    from learnexit.errors import OperationalError

    def refuse(self: object) -> None:
        raise sa.exc.OperationalError("ROLLBACK", {}, Exception("server closed the connection"))

    with Source(mini, "a") as src:
        with pytest.raises(OperationalError, match="^source read failed: .*no_such_table"):
            with monkeypatch.context() as patch, src.snapshot() as conn:
                patch.setattr(sa.engine.RootTransaction, "rollback", refuse)  # (only the closing one)
                conn.exec_driver_sql("SELECT * FROM no_such_table")
        with pytest.raises(OperationalError, match="^source read failed: .*server closed the connection"):
            with monkeypatch.context() as patch, src.snapshot() as conn:
                patch.setattr(sa.engine.RootTransaction, "rollback", refuse)
                conn.exec_driver_sql("SELECT 1")
        with pytest.raises(KeyError):  # (not a database error: passed on as it is)
            with monkeypatch.context() as patch, src.snapshot():
                patch.setattr(sa.engine.RootTransaction, "rollback", refuse)
                raise KeyError("x")
