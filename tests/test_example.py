"""The example LMS: real files, real databases, exact expectations.

The row counts are checked against hand-written ownership queries, one per table, so a
wrong ``ExampleInfo`` (the truth other tests rely on) cannot go unnoticed.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from learnexit.demo import (
    CUSTOMERS,
    SHARED_METADATA,
    SHARED_USER_NAME,
    ExampleInfo,
    build_example,
    build_legacy_example,
    build_shared_schema,
    populate_shared,
)

PG_ADMIN = os.environ.get("LEARNEXIT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MY_ADMIN = os.environ.get("LEARNEXIT_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")

ALL_TABLES = {
    "organisations", "contracts", "users", "memberships", "logins", "catalogue_items", "developer_keys",
    "courses", "course_sections", "course_materials", "enrolments", "completions", "quizzes",
    "quiz_attempts", "surveys", "survey_questions", "survey_answers", "feedback", "certificates",
    "reports", "activity_log", "attachments", "invoices", "page_views",
}  # fmt: skip
SHARED = {"catalogue_items", "developer_keys"}

_ORG = "JOIN organisations o ON o.id = {}.organisation_id WHERE o.slug = :org"
_VIA_COURSE = "JOIN courses c ON c.id = t.course_id " + _ORG.format("c")
OWNED_SQL = {
    "organisations": "SELECT COUNT(*) FROM organisations o WHERE o.slug = :org",
    "users": (
        "SELECT COUNT(*) FROM users u WHERE u.id IN ("
        " SELECT m.user_id FROM memberships m JOIN organisations o ON o.id = m.organisation_id WHERE o.slug = :org"
        " UNION"
        " SELECT l.user_id FROM logins l JOIN organisations o ON o.id = l.organisation_id WHERE o.slug = :org)"
    ),
    **{
        table: f"SELECT COUNT(*) FROM {table} t " + _ORG.format("t")
        for table in (
            "contracts",
            "memberships",
            "logins",
            "courses",
            "reports",
            "activity_log",
            "invoices",
            "page_views",
        )
    },
    **{
        table: f"SELECT COUNT(*) FROM {table} t " + _VIA_COURSE
        for table in (
            "course_sections",
            "course_materials",
            "enrolments",
            "completions",
            "quizzes",
            "surveys",
            "feedback",
            "certificates",
            "attachments",
        )
    },
    "quiz_attempts": "SELECT COUNT(*) FROM quiz_attempts a JOIN quizzes t ON t.id = a.quiz_id " + _VIA_COURSE,
    "survey_questions": "SELECT COUNT(*) FROM survey_questions q JOIN surveys t ON t.id = q.survey_id " + _VIA_COURSE,
    "survey_answers": "SELECT COUNT(*) FROM survey_answers a JOIN surveys t ON t.id = a.survey_id " + _VIA_COURSE,
}

# Every user an organisation's row points at is one of that organisation's own people.
_OWNS_USER = (
    "EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = {u} AND m.organisation_id = {o}) "
    "OR EXISTS (SELECT 1 FROM logins l WHERE l.user_id = {u} AND l.organisation_id = {o})"
)
FOREIGN_USER_SQL = {
    "enrolments": "FROM enrolments t JOIN courses c ON c.id = t.course_id WHERE NOT ({})",
    "completions": "FROM completions t JOIN courses c ON c.id = t.course_id WHERE NOT ({})",
    "feedback": "FROM feedback t JOIN courses c ON c.id = t.course_id WHERE NOT ({})",
    "certificates": "FROM certificates t JOIN courses c ON c.id = t.course_id WHERE NOT ({})",
    "quiz_attempts": "FROM quiz_attempts t JOIN quizzes q ON q.id = t.quiz_id JOIN courses c ON c.id = q.course_id "
    "WHERE NOT ({})",
    "survey_answers": "FROM survey_answers t JOIN surveys s ON s.id = t.survey_id "
    "JOIN courses c ON c.id = s.course_id WHERE NOT ({})",
}


def check_counts(conn: sa.Connection, info: ExampleInfo) -> None:
    assert info.customers == ["acme", "globex", "initech"]
    for customer in CUSTOMERS:
        assert set(info.counts[customer]) == ALL_TABLES - SHARED
        actual = {t: conn.execute(sa.text(sql), {"org": customer}).scalar_one() for t, sql in OWNED_SQL.items()}
        assert actual == info.counts[customer], customer
    for table in ALL_TABLES - SHARED - {"users"}:
        # Every row has exactly one owner: the per-customer counts add up to the table.
        total = conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
        assert total == sum(info.counts[c][table] for c in CUSTOMERS), table


@pytest.fixture(scope="module")
def db(example_build: tuple[Path, ExampleInfo]) -> Iterator[sa.Connection]:
    engine = sa.create_engine(f"sqlite:///{example_build[0] / 'lms.db'}")
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def scalars(conn: sa.Connection, sql: str, **params: object) -> list[Any]:
    return list(conn.execute(sa.text(sql), params).scalars())


def test_files_exist(example_build: tuple[Path, ExampleInfo]) -> None:
    dest, _ = example_build
    for relative in (
        "lms.db",
        "learnexit.toml",
        "media",
        "legacy/acme.db",
        "legacy/globex.db",
        "legacy/learnexit.toml",
        "legacy/filedir",
    ):
        assert (dest / relative).exists(), relative
    assert not list(dest.rglob("*.partial"))


def test_schema_has_every_table_with_foreign_keys(db: sa.Connection) -> None:
    inspector = sa.inspect(db)
    assert set(inspector.get_table_names()) == ALL_TABLES
    assert set(inspector.get_table_names()) == set(SHARED_METADATA.tables)
    assert {fk["referred_table"] for fk in inspector.get_foreign_keys("users")} == set()
    assert {(fk["constrained_columns"][0], fk["referred_table"]) for fk in inspector.get_foreign_keys("logins")} == {
        ("organisation_id", "organisations"),
        ("user_id", "users"),
    }
    assert ("parent_id", "course_sections") in {
        (fk["constrained_columns"][0], fk["referred_table"]) for fk in inspector.get_foreign_keys("course_sections")
    }
    assert scalars(db, "SELECT COUNT(*) FROM pragma_foreign_key_check") == [0]


def test_counts_match_info(db: sa.Connection, example_build: tuple[Path, ExampleInfo]) -> None:
    info = example_build[1]
    check_counts(db, info)
    assert info.counts["acme"]["users"] == 60
    assert info.counts["globex"]["users"] == 40
    assert info.counts["initech"]["users"] == 25
    assert [info.counts[c]["courses"] for c in CUSTOMERS] == [8, 5, 4]
    assert [info.counts[c]["activity_log"] for c in CUSTOMERS] == [2400, 1000, 600]
    # The shared person is counted for both; two users belong to no customer at all.
    assert scalars(db, "SELECT COUNT(*) FROM users") == [60 + 40 + 25 - 1 + 2]
    assert scalars(
        db,
        "SELECT COUNT(*) FROM users WHERE id NOT IN (SELECT user_id FROM memberships) "
        "AND id NOT IN (SELECT user_id FROM logins)",
    ) == [2]
    assert scalars(db, "SELECT slug FROM organisations ORDER BY id") == ["acme", "globex", "initech"]
    assert scalars(db, "SELECT name FROM organisations ORDER BY id") == [
        "Acme Lärande AB",
        "Globex Ütbildning, Inc.",
        'Initech "Learning" Ltd',
    ]
    assert db.execute(
        sa.text(
            "SELECT o.slug, c.starts_on, c.term_months FROM contracts c "
            "JOIN organisations o ON o.id = c.organisation_id ORDER BY o.id"
        )
    ).all() == [("acme", "2024-01-31", 12), ("globex", "2025-03-01", 12), ("initech", "2023-06-15", 6)]


def test_rows_of_a_customer_point_only_at_its_own_things(db: sa.Connection) -> None:
    for table, template in FOREIGN_USER_SQL.items():
        sql = "SELECT COUNT(*) " + template.format(_OWNS_USER.format(u="t.user_id", o="c.organisation_id"))
        assert scalars(db, sql) == [0], table
    for table, column in (("activity_log", "user_id"), ("page_views", "user_id"), ("invoices", "billing_contact_id")):
        sql = f"SELECT COUNT(*) FROM {table} t WHERE t.{column} IS NOT NULL AND NOT ({{}})".format(
            _OWNS_USER.format(u=f"t.{column}", o="t.organisation_id")
        )
        assert scalars(db, sql) == [0], table
    assert scalars(
        db,
        "SELECT COUNT(*) FROM activity_log a JOIN courses c ON c.id = a.course_id "
        "WHERE c.organisation_id <> a.organisation_id",
    ) == [0]
    assert scalars(
        db,
        "SELECT COUNT(*) FROM survey_answers a JOIN survey_questions q ON q.id = a.question_id "
        "WHERE q.survey_id <> a.survey_id",
    ) == [0]
    assert scalars(
        db,
        "SELECT COUNT(*) FROM course_sections s JOIN course_sections p ON p.id = s.parent_id "
        "WHERE p.course_id <> s.course_id",
    ) == [0]
    assert scalars(
        db,
        "SELECT COUNT(*) FROM course_materials m JOIN course_sections s ON s.id = m.section_id "
        "WHERE s.course_id <> m.course_id",
    ) == [0]


def test_sections_nest_three_levels(db: sa.Connection) -> None:
    depth3 = scalars(
        db,
        "SELECT COUNT(*) FROM course_sections s JOIN course_sections p ON p.id = s.parent_id "
        "JOIN course_sections g ON g.id = p.parent_id WHERE g.parent_id IS NULL",
    )
    assert depth3[0] >= 3  # at least one in each customer's first course
    assert scalars(db, "SELECT COUNT(*) FROM course_sections WHERE parent_id >= id") == [0]


def test_the_person_in_two_organisations(db: sa.Connection) -> None:
    ids = scalars(db, "SELECT id FROM users WHERE name = :name", name=SHARED_USER_NAME)
    assert len(ids) == 1
    for table in ("memberships", "logins"):
        orgs = scalars(
            db,
            f"SELECT o.slug FROM {table} t JOIN organisations o ON o.id = t.organisation_id "
            "WHERE t.user_id = :uid ORDER BY o.slug",
            uid=ids[0],
        )
        assert orgs == ["acme", "globex"], table
    completed_in = scalars(
        db,
        "SELECT DISTINCT o.slug FROM completions t JOIN courses c ON c.id = t.course_id "
        "JOIN organisations o ON o.id = c.organisation_id WHERE t.user_id = :uid ORDER BY o.slug",
        uid=ids[0],
    )
    assert completed_in == ["acme", "globex"]


def test_attachments_match_their_files(example_build: tuple[Path, ExampleInfo], db: sa.Connection) -> None:
    media = example_build[0] / "media"
    rows = db.execute(
        sa.text(
            "SELECT a.storage_path, a.filename, a.content_type, a.size, a.md5, o.slug FROM attachments a "
            "JOIN courses c ON c.id = a.course_id JOIN organisations o ON o.id = c.organisation_id"
        )
    ).all()
    assert len(rows) == 13
    assert {r.filename for r in rows} >= {"Välkommen – intro.mp4", "diagram (1).png", "kursplan.pdf", "foto.jpg"}
    assert len({r.md5 for r in rows}) == len(rows)
    for row in rows:
        assert row.storage_path.startswith(f"{row.slug}/")
        data = (media / row.storage_path).read_bytes()
        assert len(data) == row.size
        assert hashlib.md5(data).hexdigest() == row.md5
        if row.content_type == "image/png":
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
            assert data.endswith(b"IEND\xaeB`\x82")
        elif row.content_type == "image/jpeg":
            assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
        elif row.content_type == "application/pdf":
            assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF")
        elif row.content_type == "video/mp4":
            assert data[4:8] == b"ftyp" and b"moov" in data and b"mdat" in data
        else:
            pytest.fail(f"unexpected content type {row.content_type}")
    on_disk = sorted(p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file())
    assert on_disk == sorted(r.storage_path for r in rows)


def test_awkward_values_are_present(db: sa.Connection) -> None:
    assert '=HYPERLINK("http://x")' in scalars(db, "SELECT comment FROM feedback WHERE comment LIKE '=%'")
    assert "=1+2" in scalars(db, "SELECT name FROM users")
    assert scalars(db, "SELECT COUNT(*) FROM users WHERE name = :n", n=SHARED_USER_NAME) == [1]
    assert scalars(db, "SELECT COUNT(*) FROM course_materials WHERE body LIKE '%' || char(10) || '%'")[0] > 0
    assert scalars(db, "SELECT COUNT(*) FROM course_materials WHERE body LIKE '%' || char(9) || '%'")[0] > 0
    assert scalars(db, "SELECT COUNT(*) FROM course_materials WHERE body LIKE '%\\%'")[0] > 0
    assert scalars(db, "SELECT COUNT(*) FROM users WHERE name LIKE '%\"%' AND name LIKE '%,%'")[0] > 0
    assert scalars(db, "SELECT COUNT(*) FROM users WHERE phone IS NULL")[0] > 0
    assert scalars(db, "SELECT COUNT(*) FROM completions WHERE score IS NULL")[0] > 0
    assert scalars(db, "SELECT COUNT(*) FROM survey_answers WHERE answer IS NULL")[0] > 0
    assert scalars(db, "SELECT COUNT(*) FROM logins WHERE unique_id LIKE 'INITECH\\%'")[0] > 0
    longest = db.execute(
        sa.text(
            "SELECT o.slug, MAX(LENGTH(m.body)) FROM course_materials m JOIN courses c ON c.id = m.course_id "
            "JOIN organisations o ON o.id = c.organisation_id GROUP BY o.slug ORDER BY 2 DESC"
        )
    ).first()
    assert longest is not None and longest[0] == "acme" and longest[1] > 40_000
    codes = scalars(db, "SELECT code FROM certificates ORDER BY issued_at")
    assert all(re.fullmatch(r"(ACME|GLOBEX|INITECH)-202[4-6]-\d{4}", str(code)) for code in codes)
    assert len(set(codes)) == len(codes)


def test_tomls_parse(example_build: tuple[Path, ExampleInfo]) -> None:
    dest = example_build[0]
    shared = tomllib.loads((dest / "learnexit.toml").read_text(encoding="utf-8"))
    assert shared["source"]["url"] == "sqlite:///lms.db"
    assert shared["customer"] == {"table": "organisations", "key": "slug", "name_column": "name", "tenancy": "shared"}
    assert shared["tables"]["invoices"]["retain"] == "P7Y"
    assert shared["tables"]["users"]["owned_via"] == ["logins.user_id", "memberships.user_id"]
    assert shared["closure"]["set"] == {"logins.workflow_state": "deleted"}
    assert shared["media"]["root"] == "media"
    for role in shared["roles"].values():
        table = SHARED_METADATA.tables[role["table"]]
        for key, column in role.items():
            if key != "table":
                assert column in table.c, (role, column)
    legacy = tomllib.loads((dest / "legacy" / "learnexit.toml").read_text(encoding="utf-8"))
    assert legacy["customer"]["tenancy"] == "database"
    assert legacy["source"]["url"] == "sqlite:///{customer}.db"
    assert len(legacy["relations"]) == 8
    assert legacy["closure"]["set"] == {"mdl_user.deleted": 1}


def _legacy(dest: Path, customer: str) -> sqlite3.Connection:
    return sqlite3.connect(dest / "legacy" / f"{customer}.db")


def test_legacy_has_no_foreign_keys_and_a_real_file_pool(example_build: tuple[Path, ExampleInfo]) -> None:
    dest = example_build[0]
    legacy_config = tomllib.loads((dest / "legacy" / "learnexit.toml").read_text(encoding="utf-8"))
    for customer in ("acme", "globex"):
        conn = _legacy(dest, customer)
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            assert tables == sorted([
                "mdl_user", "mdl_course", "mdl_enrol", "mdl_user_enrolments", "mdl_grade_items",
                "mdl_grade_grades", "mdl_logstore_standard_log", "mdl_files", "mdl_config",
            ])  # fmt: skip
            for table in tables:
                assert conn.execute(f"PRAGMA foreign_key_list({table})").fetchall() == [], table
            for relation in legacy_config["relations"]:
                # The undeclared references hold all the same: nothing dangles.
                child, child_col = relation["from"].split(".")
                parent, parent_col = relation["to"].split(".")
                dangling = conn.execute(
                    f"SELECT COUNT(*) FROM {child} WHERE {child_col} NOT IN (SELECT {parent_col} FROM {parent})"
                ).fetchone()
                assert dangling == (0,), relation
            for contenthash, filesize in conn.execute("SELECT contenthash, filesize FROM mdl_files"):
                path = dest / "legacy" / "filedir" / contenthash[0:2] / contenthash[2:4] / contenthash
                data = path.read_bytes()
                assert len(data) == filesize
                assert hashlib.sha1(data).hexdigest() == contenthash
            shared = conn.execute(
                "SELECT contenthash, COUNT(*) FROM mdl_files GROUP BY contenthash HAVING COUNT(*) > 1"
            ).fetchall()
            assert len(shared) == (1 if customer == "acme" else 0)
            assert conn.execute("SELECT COUNT(*) FROM mdl_user WHERE deleted = 1").fetchone() == (1,)
            assert conn.execute("SELECT COUNT(*) FROM mdl_config").fetchone()[0] > 0
            names = {r[0] for r in conn.execute("SELECT firstname || ' ' || lastname FROM mdl_user")}
            if customer == "acme":
                assert "=1+2 Formel" in names and "Åsa Öberg 🎓" in names
        finally:
            conn.close()


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    build_example(tmp_path, activity_rows=10, users_per_customer=3)
    before = (tmp_path / "lms.db").read_bytes()
    with pytest.raises(FileExistsError):
        build_example(tmp_path, activity_rows=10, users_per_customer=3)
    with pytest.raises(FileExistsError):
        build_legacy_example(tmp_path / "legacy")
    assert (tmp_path / "lms.db").read_bytes() == before


def _dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in tables}
    finally:
        conn.close()


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = build_example(tmp_path / "a", activity_rows=500, users_per_customer=12, seed=7)
    b = build_example(tmp_path / "b", activity_rows=500, users_per_customer=12, seed=7)
    c = build_example(tmp_path / "c", activity_rows=500, users_per_customer=12, seed=8)
    assert a == b
    for db_file in ("lms.db", "legacy/acme.db", "legacy/globex.db"):
        assert _dump(tmp_path / "a" / db_file) == _dump(tmp_path / "b" / db_file), db_file
    assert _files(tmp_path / "a" / "media") == _files(tmp_path / "b" / "media")
    assert _files(tmp_path / "a" / "legacy" / "filedir") == _files(tmp_path / "b" / "legacy" / "filedir")
    assert _dump(tmp_path / "a" / "lms.db")["users"] != _dump(tmp_path / "c" / "lms.db")["users"]
    assert c.customers == a.customers


def test_size_overrides(tmp_path: Path) -> None:
    info = build_example(tmp_path, activity_rows=1001, users_per_customer=7)
    assert [info.counts[c]["activity_log"] for c in CUSTOMERS] == [601, 250, 150]
    assert [info.counts[c]["users"] for c in CUSTOMERS] == [7, 7, 7]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'lms.db'}")
    try:
        with engine.connect() as conn:
            check_counts(conn, info)
    finally:
        engine.dispose()


def test_tiny_sizes_still_make_a_consistent_example(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'tiny.db'}")
    try:
        build_shared_schema(engine)
        info = populate_shared(engine, media_root=None, activity_rows=0, users_per_customer=1)
        with engine.connect() as conn:
            check_counts(conn, info)
            assert scalars(conn, "SELECT COUNT(*) FROM pragma_foreign_key_check") == [0]
    finally:
        engine.dispose()
    assert [info.counts[c]["users"] for c in CUSTOMERS] == [1, 1, 1]
    assert sum(info.counts[c]["activity_log"] for c in CUSTOMERS) == 0
    with pytest.raises(ValueError):
        populate_shared(sa.create_engine("sqlite://"), media_root=None, users_per_customer=0)


# --------------------------------------------------------------------------- servers


def _server(admin_url: str, kind: str) -> sa.Engine:
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure to reach it means "not here"
        message = f"{kind} not reachable: {str(exc).splitlines()[0]}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: a missing server is a failure)")
        pytest.skip(message)
    return admin


def _check_on_server(engine: sa.Engine) -> None:
    build_shared_schema(engine)
    info = populate_shared(engine, media_root=None)
    with engine.connect() as conn:
        check_counts(conn, info)
        assert scalars(conn, "SELECT name FROM users WHERE name = :n", n=SHARED_USER_NAME) == [SHARED_USER_NAME]
        assert '=HYPERLINK("http://x")' in scalars(conn, "SELECT comment FROM feedback WHERE comment IS NOT NULL")
        assert max(len(b) for b in scalars(conn, "SELECT body FROM course_materials")) > 40_000  # type: ignore[arg-type]
    # The id sequences were moved past the data: a plain insert gets a fresh id.
    with engine.begin() as conn:
        new_id = conn.execute(
            SHARED_METADATA.tables["catalogue_items"].insert().values(code="NEW", title="Ny", provider="Test")
        ).inserted_primary_key
        assert new_id is not None and new_id[0] == 7


@pytest.mark.postgres
def test_populate_postgresql() -> None:
    admin = _server(PG_ADMIN, "PostgreSQL")
    schema = f"le_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in PG_ADMIN else "?"
    engine = sa.create_engine(f"{PG_ADMIN}{separator}options=-csearch_path%3D{schema}")
    try:
        _check_on_server(engine)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.mark.mariadb
def test_populate_mariadb() -> None:
    admin = _server(MY_ADMIN, "MariaDB")
    database = f"le_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    engine = sa.create_engine(f"{MY_ADMIN.rsplit('/', 1)[0]}/{database}?charset=utf8mb4")
    try:
        _check_on_server(engine)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE `{database}`")
        admin.dispose()
