"""Key sets held in temporary tables (``learnexit.source.keysets``) against the same
conditions written inline (``LEARNEXIT_INLINE_KEY_SETS=1``): the same exported bytes and
the same rows left by the purge, on every engine; sets filled again for each snapshot (a
row written between two exports counts), after a rollback, and, inside a MariaDB read
snapshot, without locking the LMS's rows or seeing rows committed after it began."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_ownership_oracle import (
    EXPORT_NOW,
    build_world,
    cli,
    create_world,
    read_all,
    world_schema,
    write_config,
)

from learnexit.config import load_settings
from learnexit.source import Source, make_engine
from learnexit.source.keysets import INLINE_ENV, KeySets

WORLDS = ((151183, 4, "int"), (1674216077, 5, "text"), (7, 5, "id"), (42, 3, "int"))
# Purged both ways; inline, MariaDB exhausts its memory on the purge of the first three.
PURGE_WORLDS = {"sqlite": WORLDS[2:], "mariadb": WORLDS[3:]}
HELD = ("sqlite", "mariadb")  # PostgreSQL keeps its conditions inline: nothing to compare


def package_files(package: Path) -> dict[str, bytes]:
    return {str(p.relative_to(package)): p.read_bytes() for p in sorted((package / "data").rglob("*")) if p.is_file()}


def export(config: Path, customer: str, out: Path, monkeypatch: pytest.MonkeyPatch, inline: bool) -> dict[str, bytes]:
    monkeypatch.setenv(INLINE_ENV, "1" if inline else "0")
    result = cli(config, EXPORT_NOW, "export", customer, "--format", "csv,json,sql", "--out", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    return package_files(Path(json.loads(result.stdout)["path"]))


@pytest.mark.parametrize("kind", HELD)
@pytest.mark.parametrize("world_args", WORLDS, ids=lambda w: f"seed{w[0]}")
def test_held_and_inline_key_sets_export_the_same_bytes(
    db_factory: Any, kind: str, tmp_path: Path, world_args: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = build_world(*world_args)
    url = str(db_factory(kind).new("keys"))
    create_world(world, url)
    config = write_config(world, tmp_path, url)
    for customer in world.customers:
        held = export(config, customer, tmp_path / "held", monkeypatch, inline=False)
        inline = export(config, customer, tmp_path / "inline", monkeypatch, inline=True)
        assert held.keys() == inline.keys()
        for name in held:
            assert held[name] == inline[name], (customer, name)


@pytest.mark.parametrize(
    ("kind", "world_args"), [(k, w) for k, worlds in PURGE_WORLDS.items() for w in worlds], ids=str
)
def test_held_and_inline_key_sets_leave_the_same_rows_after_a_purge(
    db_factory: Any, kind: str, tmp_path: Path, world_args: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = build_world(*world_args)
    schema = world_schema(world)
    factory = db_factory(kind)
    left = {}
    for inline in (False, True):
        monkeypatch.setenv(INLINE_ENV, "1" if inline else "0")
        url = str(factory.new("purge"))
        create_world(world, url)
        folder = tmp_path / ("inline" if inline else "held")
        folder.mkdir()
        config = write_config(world, folder, url)
        customer = world.customers[1]
        notice = cli(config, EXPORT_NOW, "notice", customer, "--received", "2026-01-10", "--period-end", "2026-03-31")
        assert notice.exit_code == 0, notice.stderr
        done = cli(config, "2026-07-01", "purge", customer, "--yes")
        assert done.exit_code == 0, done.stderr
        left[inline] = read_all(url, schema)
    assert left[False] == left[True]


# --------------------------------------------------------------------------- freshness

SCHEMA = [
    "CREATE TABLE orgs (id INTEGER PRIMARY KEY, slug VARCHAR(20) NOT NULL UNIQUE)",
    "CREATE TABLE users (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id))",
    "CREATE TABLE acts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id))",
    "INSERT INTO orgs VALUES (1, 'acme'), (2, 'globex')",
    "INSERT INTO users VALUES (10, 1), (11, 1), (20, 2)",
    "INSERT INTO acts VALUES (100, 10), (101, 11), (102, 20), (103, 20)",
]


def small_site(url: str, folder: Path) -> Any:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in SCHEMA:
            if engine.dialect.name != "sqlite" and statement.startswith("CREATE"):
                statement += " ENGINE=InnoDB"
            conn.exec_driver_sql(statement)
    engine.dispose()
    config = folder / "learnexit.toml"
    config.write_text(
        f'[source]\nurl = "{url}"\n[state]\nurl = "sqlite:///{folder / "state.db"}"\n'
        '[customer]\ntable = "orgs"\nkey = "slug"\n',
        encoding="utf-8",
    )
    return load_settings(config, env={})


def acts_of(src: Source, conn: Any) -> list[int]:
    acts = src.table("acts")
    return list(conn.execute(sa.select(acts.c.id).where(src.predicate("acts")).order_by(acts.c.id)).scalars())


@pytest.mark.parametrize("kind", HELD)
def test_each_snapshot_fills_the_key_sets_again(db_factory: Any, kind: str, tmp_path: Path) -> None:
    url = str(db_factory(kind).new("fresh"))
    settings = small_site(url, tmp_path)
    with Source(settings, "acme") as src:
        with src.snapshot() as conn:
            assert acts_of(src, conn) == [100, 101]
        writer = sa.create_engine(url)
        with writer.begin() as conn:  # a new acme user with activity, and a user moved to acme
            conn.exec_driver_sql("INSERT INTO users VALUES (12, 1)")
            conn.exec_driver_sql("INSERT INTO acts VALUES (104, 12)")
            conn.exec_driver_sql("UPDATE users SET org_id = 1 WHERE id = 20")
        writer.dispose()
        with src.snapshot() as conn:
            assert acts_of(src, conn) == [100, 101, 102, 103, 104]


@pytest.mark.parametrize("kind", HELD)
def test_each_transaction_fills_the_key_sets_again_within_a_pass(db_factory: Any, kind: str, tmp_path: Path) -> None:
    """The purge refreshes the sets once a pass, and its transactions decide on sets read
    at their own start: a committed transaction's sets are not reused by the next one
    (the pool forgets them on check-in), so a row written between two tables'
    transactions of the same pass counts at once."""
    url = str(db_factory(kind).new("pertx"))
    settings = small_site(url, tmp_path)
    with Source(settings, "acme") as src:
        src.refresh_key_sets()  # (a pass begins; no refresh until the end of the test)
        with src.engine.begin() as conn:
            assert acts_of(src, conn) == [100, 101]
        writer = sa.create_engine(url)
        with writer.begin() as conn:  # a user moved to acme between two transactions
            conn.exec_driver_sql("UPDATE users SET org_id = 1 WHERE id = 20")
        writer.dispose()
        with src.engine.begin() as conn:
            assert acts_of(src, conn) == [100, 101, 102, 103]


@pytest.mark.parametrize("kind", HELD)
def test_a_rolled_back_fill_is_filled_again(db_factory: Any, kind: str, tmp_path: Path) -> None:
    url = str(db_factory(kind).new("rollback"))
    settings = small_site(url, tmp_path)
    with Source(settings, "acme") as src:
        with src.engine.connect() as conn:
            assert acts_of(src, conn) == [100, 101]
            conn.rollback()  # SQLite drops the table created in it; MariaDB empties it
            assert acts_of(src, conn) == [100, 101]
        src.refresh_key_sets()
        with src.engine.connect() as conn:  # the pooled connection again, its sets stale
            assert acts_of(src, conn) == [100, 101]


def test_a_mariadb_snapshot_reads_its_keys_without_locks_and_as_of_its_start(db_factory: Any, tmp_path: Path) -> None:
    """``INSERT … SELECT`` in REPEATABLE READ would take shared locks on the users it reads
    (the LMS could not change them until the export ends) and read the newest rows: the
    snapshot's key sets are read with a plain SELECT instead."""
    url = db_factory("mariadb").new("locks")
    settings = small_site(url, tmp_path)
    writer = sa.create_engine(url)
    with Source(settings, "acme") as src, src.snapshot() as conn:
        assert acts_of(src, conn) == [100, 101]  # the key sets are filled: users of acme read
        errors: list[BaseException] = []

        def move_user() -> None:
            try:
                with writer.begin() as wconn:
                    wconn.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 3")
                    wconn.exec_driver_sql("UPDATE users SET org_id = 2 WHERE id = 11")
                    wconn.exec_driver_sql("UPDATE users SET org_id = 1 WHERE id = 20")
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        thread = threading.Thread(target=move_user)
        thread.start()
        thread.join(30)
        assert not errors, errors  # no lock wait timeout: the snapshot locked no user
        src.refresh_key_sets()  # filled again inside the same snapshot: still as of its start
        assert acts_of(src, conn) == [100, 101]
    writer.dispose()
    with Source(settings, "acme") as src, src.snapshot() as conn:
        assert acts_of(src, conn) == [100, 102, 103]


# --------------------------------------------------------------------------- reusable sets


class Counted:
    """A SQLite source with one reusable set (the users of acts) naming another (the
    users of org 1), the statements that fill them counted."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'reuse.db'}"
        small_site(self.url, tmp_path)
        self.engine = make_engine(self.url)
        self.keys = KeySets(self.engine)
        md = sa.MetaData()
        users = sa.Table("users", md, autoload_with=self.engine)
        acts = sa.Table("acts", md, autoload_with=self.engine)
        of_org = self.keys.register([users.c.id], sa.select(users.c.id).where(users.c.org_id == 1))
        self.acting = self.keys.register(
            [acts.c.user_id], sa.select(acts.c.user_id).where(acts.c.user_id.in_(of_org)).distinct(), reuse=True
        )
        self.users = users
        self.fills: list[str] = []
        sa.event.listen(self.engine, "before_cursor_execute", self._count)

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO le_keys_2 "):
            self.fills.append(statement)

    def read(self, conn: Any) -> list[int]:
        stmt = sa.select(self.users.c.id).where(self.users.c.id.in_(self.acting)).order_by(self.users.c.id)
        return list(conn.execute(stmt).scalars())

    def write(self, sql: str) -> None:
        other = sa.create_engine(self.url)
        with other.begin() as conn:
            conn.exec_driver_sql(sql)
        other.dispose()


def test_a_reusable_set_is_read_again_while_the_database_is_unchanged(tmp_path: Path) -> None:
    site = Counted(tmp_path)
    with site.engine.begin() as conn:
        assert site.read(conn) == [10, 11]
    for _ in range(3):  # new transactions, a pass's refresh between them: nothing changed
        site.keys.refresh()
        with site.engine.begin() as conn:
            assert site.read(conn) == [10, 11]
    assert len(site.fills) == 1 and site.keys.reused == 3
    site.engine.dispose()


def test_a_commit_by_another_connection_fills_it_again(tmp_path: Path) -> None:
    site = Counted(tmp_path)
    with site.engine.begin() as conn:
        assert site.read(conn) == [10, 11]
    site.write("UPDATE users SET org_id = 1 WHERE id = 20")  # user 20 (with acts) moves to org 1
    with site.engine.begin() as conn:
        assert site.read(conn) == [10, 11, 20]
    assert len(site.fills) == 2 and site.keys.reused == 0
    site.engine.dispose()


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_a_change_by_this_connection_fills_it_again(tmp_path: Path, end: str) -> None:
    """Its own writes do not move ``data_version``: ``total_changes`` does (a rolled-back
    change counts too: refilling costs time, never a wrong answer)."""
    site = Counted(tmp_path)
    with site.engine.connect() as conn:
        assert site.read(conn) == [10, 11]
        conn.commit()
        conn.exec_driver_sql("UPDATE users SET org_id = 1 WHERE id = 20")
        getattr(conn, end)()
        site.keys.refresh()
        assert site.read(conn) == ([10, 11, 20] if end == "commit" else [10, 11])
    assert len(site.fills) == 2 and site.keys.reused == 0
    site.engine.dispose()


def test_a_fill_taken_back_by_a_rollback_is_not_reused(tmp_path: Path) -> None:
    """The connection's record says "filled after the other connection's change", the
    rollback took the table back to the fill before it: the generation beside the set,
    rolled back with it, tells."""
    site = Counted(tmp_path)
    with site.engine.begin() as conn:
        assert site.read(conn) == [10, 11]
    site.write("UPDATE users SET org_id = 1 WHERE id = 20")
    with site.engine.connect() as conn:
        assert site.read(conn) == [10, 11, 20]  # filled again, in this transaction
        conn.rollback()
        site.keys.refresh()
        assert site.read(conn) == [10, 11, 20]  # not the rolled-back table's [10, 11]
    assert len(site.fills) == 3 and site.keys.reused == 0
    site.engine.dispose()


def test_another_pooled_connection_fills_its_own(tmp_path: Path) -> None:
    site = Counted(tmp_path)
    with site.engine.connect() as first, site.engine.connect() as second:
        assert site.read(first) == [10, 11]
        first.commit()
        assert site.read(second) == [10, 11]  # no set on this connection yet
    assert len(site.fills) == 2
    site.engine.dispose()


def test_the_source_pool_hands_back_the_connection_used_last(tmp_path: Path) -> None:
    """(it holds the sets); an in-memory database, which has no such pool, still opens."""
    engine = make_engine(f"sqlite:///{tmp_path / 'pool.db'}")
    with engine.connect() as first, engine.connect() as second:
        used = [first.connection.dbapi_connection, second.connection.dbapi_connection]
    with engine.connect() as again:
        assert again.connection.dbapi_connection is used[0]  # (closed last: the outer one)
    engine.dispose()
    memory = make_engine("sqlite://")
    with memory.connect() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    memory.dispose()
