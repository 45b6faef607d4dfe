"""`learnexit init --from-database`: a config drafted from a Moodle-like database.

The database is built by ``lms_schemas`` from Moodle's own table and column names, two
sites (database per customer), without foreign keys (as Moodle creates them).  The
references its definition declares are the truth: the draft must find nearly all of
them in the data, propose none that is false, mark sentinels, shared system tables,
retained payments (with a legal basis to FILL IN), secret columns; and with the
draft, edited only where it says FILL IN, the whole offboarding must work: inspect
shows nothing unclassified, the export nests each person's records, the purge deletes
exactly the site (the other site byte-identical).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import tomllib
from pathlib import Path
from typing import Any

import pytest
from lms_schemas import MOODLE_PREFIX, build_moodle, declared_references, moodle_tables
from typer.testing import CliRunner

from learnexit.cli import app
from learnexit.config import load_settings
from learnexit.draft import customer_url, draft_config
from learnexit.errors import ConfigError
from learnexit.source.inspection import inspect_customer

runner = CliRunner()
BASIS = "Bokföringslagen (1999:1078) 7 kap. 2 §"
TRUTH = declared_references(moodle_tables(), MOODLE_PREFIX)
# Declared by Moodle, but the name gives no hint (uniqueid is a question_usages id).
HOPELESS = {("mdl_quiz_attempts", "uniqueid", "mdl_question_usages", "id")}


def found(draft: Any) -> set[tuple[str, str, str, str]]:
    return {(r.from_table, r.from_column, r.to_table, r.to_column) for r in draft.proposal.relations}


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("moodle")
    build_moodle(f"sqlite:///{root / 'site_a.db'}", site=1, log_rows=3000)
    build_moodle(f"sqlite:///{root / 'site_b.db'}", site=2, log_rows=3000, seed=2)
    return root


@pytest.fixture(scope="module")
def drafted(sites: Path) -> Any:
    return draft_config(f"sqlite:///{sites / 'site_a.db'}")


def test_finds_the_declared_references_and_no_false_one(drafted: Any) -> None:
    got = found(drafted)
    assert got - TRUTH == set()  # no false relation
    assert TRUTH - got == HOPELESS
    assert len(got & TRUTH) / len(TRUTH) >= 0.95


def test_evidence_sentinels_and_the_polymorphic_ids_left_alone(drafted: Any) -> None:
    by_column = {(r.from_table, r.from_column): r for r in drafted.proposal.relations}
    log_course = by_column[("mdl_logstore_standard_log", "courseid")]
    assert log_course.sentinels == (0,)
    assert re.fullmatch(r"100\.0 % of [\d,]+ values found in mdl_course\.id; [\d,]+ rows hold 0.*", log_course.comment)
    assert by_column[("mdl_forum_discussions", "groupid")].sentinels == (-1,)
    assert by_column[("mdl_quiz_attempts", "userid")].sentinels == ()
    for column in (
        ("mdl_files", "itemid"),
        ("mdl_course_modules", "instance"),
        ("mdl_logstore_standard_log", "objectid"),
        ("mdl_logstore_standard_log", "contextinstanceid"),
        ("mdl_context", "instanceid"),
        ("mdl_assign", "grade"),
    ):
        assert column not in by_column
    assert by_column[("mdl_role_capabilities", "capability")].to_column == "name"  # a text key


def test_tables_secrets_retention_roles(drafted: Any) -> None:
    data = tomllib.loads(drafted.text.replace('"FILL IN"', '"x"'))
    tables = data["tables"]
    assert data["customer"] == {
        "tenancy": "database",
        "name_query": "SELECT fullname FROM mdl_course WHERE format = 'site'",
    }
    assert data["source"]["url"].endswith("/{customer}.db")
    for shared in ("mdl_config", "mdl_config_plugins", "mdl_modules", "mdl_cache_flags", "mdl_task_scheduled"):
        assert tables[shared] == {"shared": True}
    assert tables["mdl_upgrade_log"] == {"export": False}  # it names people: shared would keep them
    assert tables["mdl_sessions"] == {"export": False}
    assert tables["mdl_user"]["omit_columns"] == ["password", "secret"]
    assert tables["mdl_external_tokens"]["omit_columns"] == ["token", "privatetoken", "sid"]
    assert tables["mdl_payment_gateways"]["omit_columns"] == ["config"]
    assert tables["mdl_payments"]["retain"] == "P7Y"
    assert 'legal_basis = "FILL IN"' in drafted.text
    assert "mdl_files" not in tables  # contenthash is the media path, not a secret
    roles = data["roles"]
    # nobody: the relations to mdl_user hold 0 for "no user"
    assert roles["people"] == {"table": "mdl_user", "id": "id", "name": "username", "email": "email", "nobody": [0]}
    assert roles["courses"] == {"table": "mdl_course", "id": "id", "title": "fullname"}
    assert roles["completions"]["table"] == "mdl_course_completions"
    assert roles["quiz_results"] == {
        "table": "mdl_quiz_attempts",
        "person": "userid",
        "quiz": "quiz",
        "score": "sumgrades",
        "max_score": "mdl_quiz.sumgrades",  # the quiz's own sumgrades is the maximum
    }
    assert roles["activity"] == {"table": "mdl_logstore_standard_log", "person": "userid", "at": "timecreated"}


def write_draft(sites: Path, name: str = "learnexit.toml") -> Path:
    config = sites / name
    result = runner.invoke(
        app, ["init", "--from-database", f"sqlite:///{sites / 'site_a.db'}", "--out", str(config), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["tenancy"] == "database" and summary["tables"] == 133
    return config


def test_the_draft_refuses_to_load_until_the_legal_basis_is_filled_in(sites: Path) -> None:
    config = write_draft(sites, "unfilled.toml")
    with pytest.raises(ConfigError, match=r"\[tables.mdl_payments\] legal_basis: still says FILL IN"):
        load_settings(config)
    again = runner.invoke(app, ["init", "--from-database", f"sqlite:///{sites / 'site_a.db'}", "--out", str(config)])
    assert again.exit_code == 2 and "exists already" in again.stderr


def test_offboarding_with_the_draft_edited_only_at_fill_in(sites: Path, tmp_path: Path) -> None:
    for name in ("site_a.db", "site_b.db"):
        (tmp_path / name).write_bytes((sites / name).read_bytes())
    draft = write_draft(sites, "edited.toml")
    config = tmp_path / "learnexit.toml"
    text = draft.read_text(encoding="utf-8")
    text = text.replace(str(sites), str(tmp_path)).replace('"FILL IN"', json.dumps(BASIS))
    config.write_text(text, encoding="utf-8")
    settings = load_settings(config)
    report = inspect_customer(settings, "site_a")
    assert report.unclassified == []
    # the export nests each person's records under the person
    result = runner.invoke(
        app, ["export", "site_a", "--format", "json", "--out", str(tmp_path / "out"), "--json", "--config", str(config)]
    )
    assert result.exit_code == 0, result.stderr
    package = Path(json.loads(result.stdout)["path"])
    doc = json.loads((package / "data" / "json" / "site_a.json").read_text(encoding="utf-8"))
    assert doc["people_table"] == "mdl_user" and len(doc["people"]) == 40
    nested = {key for person in doc["people"] for key in person if key.startswith("mdl_")}
    for table in (
        "mdl_user_enrolments",
        "mdl_grade_grades",
        "mdl_quiz_attempts",
        "mdl_forum_posts",
        "mdl_course_completions",
    ):
        assert table in nested
    assert not any("password" in person or "secret" in person for person in doc["people"])
    # the purge deletes exactly site_a: shared system tables and retained payments stay
    b_before = hashlib.sha256((tmp_path / "site_b.db").read_bytes()).hexdigest()
    shared_before = _counts(tmp_path / "site_a.db", ("mdl_config", "mdl_modules", "mdl_capabilities"))
    notice = ["notice", "site_a", "--received", "2026-11-20", "--period-end", "2027-01-30", "--config", str(config)]
    assert runner.invoke(app, notice).exit_code == 0
    purge = runner.invoke(
        app, ["purge", "site_a", "--yes", "--json", "--config", str(config)], env={"LEARNEXIT_NOW": "2027-06-01"}
    )
    assert purge.exit_code == 0, purge.stderr
    outcome = json.loads(purge.stdout)["customers"][0]
    assert outcome["verified"] is True and outcome["kept_shared"] == {}
    assert set(outcome["retained"]) == {"mdl_payments", "mdl_payment_accounts", "mdl_context", "mdl_user"}
    left = _counts(tmp_path / "site_a.db", None)
    shared = {n for n, t in settings.tables.items() if t.shared}
    assert {n for n, c in left.items() if c and n not in shared} == set(outcome["retained"])
    assert left["mdl_payments"] == 24
    assert _counts(tmp_path / "site_a.db", tuple(shared_before)) == shared_before
    assert hashlib.sha256((tmp_path / "site_b.db").read_bytes()).hexdigest() == b_before


def _counts(db: Path, tables: tuple[str, ...] | None) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        names = tables or tuple(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        return {n: int(con.execute(f"SELECT count(*) FROM {n}").fetchone()[0]) for n in names}
    finally:
        con.close()


def test_declared_keys_need_no_relations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keyed.db'}"
    build_moodle(url, site=1, declare_keys=True, log_rows=200)
    draft = draft_config(url)
    assert draft.proposal.relations == []  # every reference is declared already
    assert draft.proposal.roles["people"]["table"] == "mdl_user"


def test_big_tables_are_sampled_unless_exact(sites: Path) -> None:
    url = f"sqlite:///{sites / 'site_a.db'}"
    sampled = draft_config(url, sample=1000)
    exact = draft_config(url, exact=True, sample=1000)

    def log_user(d: Any) -> Any:
        return next(
            r.evidence
            for r in d.proposal.relations
            if (r.from_table, r.from_column) == ("mdl_logstore_standard_log", "relateduserid")
        )

    assert log_user(sampled).sampled and log_user(sampled).values == 1000  # non-NULL values, 4 key ranges
    assert not log_user(exact).sampled
    nonnull = _counts_where(sites / "site_a.db", "relateduserid IS NOT NULL")
    assert log_user(exact).values == nonnull
    assert found(sampled) == found(exact)


def _counts_where(db: Path, where: str) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute(f"SELECT count(*) FROM mdl_logstore_standard_log WHERE {where}").fetchone()[0])
    finally:
        con.close()


def test_cli_prints_to_stdout_and_refuses_unknown_customer_table(sites: Path) -> None:
    url = f"sqlite:///{sites / 'site_a.db'}"
    printed = runner.invoke(app, ["init", "--from-database", url, "--out", "-"])
    assert printed.exit_code == 0
    assert printed.stdout.startswith("# learnexit configuration drafted by")
    assert tomllib.loads(printed.stdout)["customer"]["tenancy"] == "database"
    bad = runner.invoke(app, ["init", "--from-database", url, "--customer-table", "nope", "--out", "-"])
    assert bad.exit_code == 2 and "--customer-table 'nope'" in bad.stderr
    alone = runner.invoke(app, ["init", "--exact"])
    assert alone.exit_code == 2


def test_the_database_name_becomes_the_customer_placeholder() -> None:
    assert customer_url("postgresql+psycopg://lms@db:5432/site_a") == (
        "postgresql+psycopg://lms@db:5432/{customer}",
        "site_a",
    )
    assert customer_url("sqlite:////srv/lms/site_a.db") == ("sqlite:////srv/lms/{customer}.db", "site_a")


@pytest.mark.parametrize("engine_kind", ["postgresql", "mariadb"])
def test_drafts_on_server_databases(engine_kind: str, dbs: Any) -> None:
    url = dbs.new("draft")
    build_moodle(url, site=1, log_rows=500)
    if engine_kind == "postgresql":  # (trust authentication: any password is accepted)
        url = url.replace("postgres@", "postgres:s3cret-pw@")
    draft = draft_config(url, sample=200)
    got = found(draft)
    assert got - TRUTH == set()
    assert TRUTH - got == HOPELESS
    assert draft.proposal.source_url.endswith("/{customer}")
    assert "s3cret-pw" not in draft.text


def test_shared_tenancy_draft_of_the_example_matches_the_hand_written_config(
    tmp_path: Path, example_site: Path
) -> None:
    config = tmp_path / "ex" / "drafted.toml"
    result = runner.invoke(
        app, ["init", "--from-database", f"sqlite:///{tmp_path / 'ex' / 'lms.db'}", "--out", str(config)]
    )
    assert result.exit_code == 0, result.stderr
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    assert data["customer"] == {"tenancy": "shared", "table": "organisations", "key": "slug", "name_column": "name"}
    tables = data["tables"]
    assert tables["users"]["owned_via"] == ["enrolments.user_id", "logins.user_id", "memberships.user_id"]
    assert tables["catalogue_items"] == {"shared": True}
    assert tables["logins"] == {"omit_columns": ["password_hash"]}
    assert tables["developer_keys"] == {"omit_columns": ["key_hash"]}
    assert tables["invoices"]["legal_basis"] == "FILL IN"
    config.write_text(config.read_text(encoding="utf-8").replace('"FILL IN"', json.dumps(BASIS)), encoding="utf-8")
    drafted = inspect_customer(load_settings(config), "acme")
    hand = inspect_customer(load_settings(tmp_path / "ex" / "learnexit.toml"), "acme")
    assert drafted.unclassified == []
    rows = {t.table: t.rows for t in drafted.tables if t.status == "owned"}
    expected = {t.table: t.rows for t in hand.tables if t.status == "owned"}
    assert rows == expected | {"developer_keys": rows["developer_keys"]}  # the hand config shares developer_keys


def test_canvas_like_references_and_tenancy(tmp_path: Path) -> None:
    from lms_schemas import CANVAS, build_canvas, parse

    url = f"sqlite:///{tmp_path / 'canvas.db'}"
    build_canvas(url, declare_keys=False)
    draft = draft_config(url)
    truth = declared_references(parse(CANVAS), "")
    assert found(draft) == truth  # every one, nothing else (context_id is polymorphic: left alone)
    p = draft.proposal
    assert (p.tenancy, p.customer_table, p.customer_key) == ("shared", "accounts", "uuid")
    data = tomllib.loads(draft.text)
    assert data["tables"]["users"]["owned_via"] == [
        "account_users.user_id",
        "enrollments.user_id",
        "pseudonyms.user_id",
        "user_account_associations.user_id",
    ]
    assert data["tables"]["communication_channels"]["owned_via"] == ["pseudonyms.communication_channel_id"]
    assert data["tables"]["pseudonyms"]["omit_columns"] == [
        "crypted_password",
        "password_salt",
        "persistence_token",
        "single_access_token",
        "perishable_token",
    ]
    assert data["roles"]["quiz_results"] == {
        "table": "quiz_submissions",
        "person": "user_id",
        "quiz": "quiz_id",
        "score": "score",
        "max_score": "quiz_points_possible",
    }


# --------------------------------------------------------------------------- small schemas


def _sqlite(path: Path, script: str, rows: dict[str, list[tuple[Any, ...]]]) -> str:
    con = sqlite3.connect(path)
    con.executescript(script)
    for table, values in rows.items():
        marks = ", ".join("?" * len(values[0]))
        con.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def relations_of(draft: Any) -> set[tuple[str, tuple[str, ...], str, tuple[str, ...]]]:
    out = set()
    for r in draft.proposal.relations:
        froms = r.from_columns or (r.from_column,)
        tos = r.to_columns or (r.to_column,)
        out.add((r.from_table, tuple(froms), r.to_table, tuple(tos)))
    return out


def test_composite_reference_from_a_unique_key_the_data_bears_out(tmp_path: Path) -> None:
    # regrades (usageid, slot) names one attempts row: attempts' unique key.  notes has
    # the same plausible names, but its slots are none of the attempts' slots.
    script = """
    CREATE TABLE usages (id INTEGER PRIMARY KEY, component TEXT);
    CREATE TABLE attempts (id INTEGER PRIMARY KEY, usageid INTEGER NOT NULL, slot INTEGER NOT NULL,
                           answer TEXT, UNIQUE (usageid, slot));
    CREATE TABLE regrades (id INTEGER PRIMARY KEY, usageid INTEGER NOT NULL, slot INTEGER NOT NULL,
                           newfraction REAL);
    CREATE TABLE notes (id INTEGER PRIMARY KEY, usageid INTEGER NOT NULL, slot INTEGER NOT NULL, body TEXT);
    """
    attempts = [(u * 10 + s, u, s, f"a{u}.{s}") for u in range(1, 11) for s in range(1, 4)]
    url = _sqlite(
        tmp_path / "quiz.db",
        script,
        {
            "usages": [(u, "mod_quiz") for u in range(1, 11)],
            "attempts": attempts,
            "regrades": [(i, 1 + i % 10, 1 + i % 3, 0.5) for i in range(1, 16)],
            "notes": [(i, 1 + i % 10, 7 + i % 3, "n") for i in range(1, 16)],
        },
    )
    draft = draft_config(url)
    assert relations_of(draft) == {
        ("attempts", ("usageid",), "usages", ("id",)),
        ("regrades", ("usageid",), "usages", ("id",)),
        ("notes", ("usageid",), "usages", ("id",)),
        ("regrades", ("usageid", "slot"), "attempts", ("usageid", "slot")),
    }
    composite = next(r for r in draft.proposal.relations if r.from_columns)
    assert composite.comment == (
        "100.0 % of 15 (usageid, slot) tuples found in attempts (usageid, slot), a unique key there"
    )
    data = tomllib.loads(draft.text)
    rel = next(r for r in data["relations"] if isinstance(r["from"], list))
    assert rel == {"from": ["regrades.usageid", "regrades.slot"], "to": ["attempts.usageid", "attempts.slot"]}
    assert f"[[relations]]  # {composite.comment}" in draft.text
    # the near miss is not even listed (0 % of the notes' pairs): nothing to look at
    assert not any("notes.(usageid, slot)" in r for r in draft.proposal.rejected)
    result = runner.invoke(app, ["init", "--from-database", url, "--out", "-", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {
        "from": ["regrades.usageid", "regrades.slot"],
        "to": ["attempts.usageid", "attempts.slot"],
        "evidence": composite.comment,
    } in out["relations"]


def test_flags_history_initials_and_coverage(tmp_path: Path) -> None:
    script = """
    CREATE TABLE course (id INTEGER PRIMARY KEY, fullname TEXT);
    CREATE TABLE course_modules (id INTEGER PRIMARY KEY, course INTEGER);
    CREATE TABLE module_views (id INTEGER PRIMARY KEY, cmid INTEGER, viewed INTEGER);
    CREATE TABLE course_categories (id INTEGER PRIMARY KEY, name TEXT);
    CREATE TABLE grade_categories (id INTEGER PRIMARY KEY, fullname TEXT);
    CREATE TABLE calendar (id INTEGER PRIMARY KEY, categoryid INTEGER, name TEXT);
    CREATE TABLE outcome (id INTEGER PRIMARY KEY, name TEXT, parent INTEGER);
    CREATE TABLE outcome_history (id INTEGER PRIMARY KEY, oldid INTEGER, parent INTEGER, name TEXT);
    CREATE TABLE quiz (id INTEGER PRIMARY KEY, course INTEGER, allowofflineattempts INTEGER);
    CREATE TABLE quiz_attempts (id INTEGER PRIMARY KEY, quiz INTEGER, attempt INTEGER);
    """
    url = _sqlite(
        tmp_path / "site.db",
        script,
        {
            "course": [(i, f"Course {i}") for i in range(1, 6)],
            "course_modules": [(i, 1 + i % 5) for i in range(1, 41)],
            "module_views": [(i, 1 + (i * 7) % 40, 1) for i in range(1, 61)],
            "course_categories": [(i, f"cat {i}") for i in range(1, 6)],
            "grade_categories": [(i, f"grades {i}") for i in range(1, 61)],
            # drawn from the 5 course categories: found among the 60 grade categories too
            "calendar": [(i, 1 + i % 5, "e") for i in range(1, 31)],
            "outcome": [(i, f"o{i}", 0 if i < 3 else 1 + i % 2) for i in range(1, 9)],
            # 30 history rows: their own ids reach 30, the kept outcomes' 8
            "outcome_history": [(i, 1 + i % 8, 0 if i % 4 == 0 else 1 + i % 2, "o") for i in range(1, 31)],
            # a flag (0 or 1): 1 is a quiz_attempts id, yet no reference
            "quiz": [(i, 1 + i % 5, i % 2) for i in range(1, 11)],
            "quiz_attempts": [(i, 1 + i % 10, 1 + i % 3) for i in range(1, 51)],
        },
    )
    draft = draft_config(url)
    assert relations_of(draft) == {
        ("course_modules", ("course",), "course", ("id",)),
        ("module_views", ("cmid",), "course_modules", ("id",)),  # initials
        ("calendar", ("categoryid",), "course_categories", ("id",)),  # the categories its values cover
        ("outcome", ("parent",), "outcome", ("id",)),
        ("outcome_history", ("oldid",), "outcome", ("id",)),  # a history row points at the kept table
        ("outcome_history", ("parent",), "outcome", ("id",)),
        ("quiz", ("course",), "course", ("id",)),
        ("quiz_attempts", ("quiz",), "quiz", ("id",)),
    }
    flag = [r for r in draft.proposal.rejected if r.startswith("quiz.allowofflineattempts")]
    assert flag == [
        "quiz.allowofflineattempts → quiz_attempts: 100.0 % of 5 values found in quiz_attempts.id; "
        "5 rows hold 0, taken to mean none; only 1 distinct value(s): a flag or a count, not a reference"
    ]


def test_last_words_every_word_person_by_and_own_name(tmp_path: Path) -> None:
    script = """
    CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT);
    CREATE TABLE oauth2_issuer (id INTEGER PRIMARY KEY, name TEXT);
    CREATE TABLE linked_login (id INTEGER PRIMARY KEY, issuerid INTEGER, userid INTEGER);
    CREATE TABLE event (id INTEGER PRIMARY KEY, name TEXT);
    CREATE TABLE events_queue (id INTEGER PRIMARY KEY, eventdata TEXT);
    CREATE TABLE events_queue_handlers (id INTEGER PRIMARY KEY, queuedeventid INTEGER);
    CREATE TABLE status (id INTEGER PRIMARY KEY, type_id INTEGER, created_by INTEGER);
    CREATE TABLE status_type (id INTEGER PRIMARY KEY, name TEXT);
    CREATE TABLE badge (id INTEGER PRIMARY KEY, name TEXT);
    CREATE TABLE badge_external_backpack (id INTEGER PRIMARY KEY, url TEXT);
    CREATE TABLE badge_backpack (id INTEGER PRIMARY KEY, externalbackpackid INTEGER, userid INTEGER);
    """
    url = _sqlite(
        tmp_path / "names.db",
        script,
        {
            "users": [(i, f"u{i}") for i in range(1, 41)],
            "oauth2_issuer": [(i, f"issuer {i}") for i in range(1, 5)],
            "linked_login": [(i, 1 + i % 4, 1 + i % 40) for i in range(1, 21)],
            "event": [(i, "e") for i in range(1, 51)],
            "events_queue": [(i, "d") for i in range(1, 11)],
            # drawn from the 10 queued events: found among the 50 events too
            "events_queue_handlers": [(i, 1 + i % 10) for i in range(1, 21)],
            "status": [(i, 1 + i % 3, 1 + (i * 3) % 40) for i in range(1, 21)],
            "status_type": [(i, f"t{i}") for i in range(1, 4)],
            "badge": [(i, "b") for i in range(1, 6)],
            "badge_external_backpack": [(i, "https://b") for i in range(1, 4)],
            "badge_backpack": [(i, 1 + i % 3, 1 + i % 40) for i in range(1, 13)],
        },
    )
    draft = draft_config(url)
    assert relations_of(draft) == {
        ("linked_login", ("issuerid",), "oauth2_issuer", ("id",)),  # a table's last word, not a person
        ("linked_login", ("userid",), "users", ("id",)),
        ("events_queue_handlers", ("queuedeventid",), "events_queue", ("id",)),  # every word of it
        ("status", ("type_id",), "status_type", ("id",)),  # the table's own name as its module
        ("status", ("created_by",), "users", ("id",)),  # …by: a person
        ("badge_backpack", ("externalbackpackid",), "badge_external_backpack", ("id",)),  # words run together
        ("badge_backpack", ("userid",), "users", ("id",)),
    }
