"""A role's person (course) column must reference [roles.people] ([roles.courses]).

Seen in the field: ``person = "enrolment_id"`` was accepted and the documents showed
"people shown by id".  Now the export refuses with a config error (exit 2) naming the
file, the key and the problem, before anything is recorded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import copy_example
from typer.testing import CliRunner

from learnexit.cli import app
from learnexit.config import load_settings
from learnexit.errors import ConfigError
from learnexit.roles import check_roles


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, example_template: Path) -> Path:
    return copy_example(example_template, tmp_path_factory.mktemp("roles") / "demo")


def reflected(url: str) -> dict[str, sa.Table]:
    engine = sa.create_engine(url)
    try:
        md = sa.MetaData()
        md.reflect(engine)
        return {t.name: t for t in md.tables.values()}
    finally:
        engine.dispose()


def with_config(demo: Path, name: str, old: str, new: str) -> Path:
    text = (demo / "learnexit.toml").read_text(encoding="utf-8")
    assert old in text
    target = demo / name
    target.write_text(text.replace(old, new), encoding="utf-8")
    return target


def test_the_examples_roles_pass(demo: Path) -> None:
    settings = load_settings(demo / "learnexit.toml", env={})
    check_roles(settings, reflected(settings.source_url))
    legacy = load_settings(demo / "legacy" / "learnexit.toml", env={})  # no foreign keys: [[relations]] only
    check_roles(legacy, reflected(legacy.source_url_for("acme")))


@pytest.mark.parametrize(
    "old,new,message",
    [
        (  # a column that references another table
            'person = "user_id"\ncourse = "course_id"\ncompleted_at',
            'person = "course_id"\ncourse = "course_id"\ncompleted_at',
            r"\[roles.completions\] person: completions.course_id must reference \[roles.people\] users.id, "
            r"but it references courses.id",
        ),
        (  # a column that references nothing
            'person = "user_id"\nat = "created_at"',
            'person = "id"\nat = "created_at"',
            r"\[roles.activity\] person: activity_log.id must reference \[roles.people\] users.id, "
            r"but no foreign key or \[\[relations\]\] says so",
        ),
        (
            'course = "course_id"\nissued_at',
            'course = "user_id"\nissued_at',
            r"\[roles.certificates\] course: certificates.user_id must reference \[roles.courses\] courses.id",
        ),
    ],
)
def test_export_refuses_a_role_column_that_is_not_a_reference(demo: Path, old: str, new: str, message: str) -> None:
    config = with_config(demo, "bad-role.toml", old, new)
    settings = load_settings(config, env={})
    with pytest.raises(ConfigError, match=rf"^{config}: {message}"):
        check_roles(settings, reflected(settings.source_url))
    done = CliRunner().invoke(app, ["export", "acme", "--config", str(config)], env={"LEARNEXIT_NOW": "2026-11-25"})
    assert done.exit_code == 2, done.output
    assert str(config) in done.stderr and "must reference [roles." in done.stderr
    assert not (demo / "exports").exists()  # nothing written, nothing recorded
    ledger = sa.create_engine(f"sqlite:///{demo / 'learnexit-state.db'}")
    with ledger.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM exports").scalar() == 0
    ledger.dispose()


def test_a_relation_makes_a_column_a_reference(demo: Path) -> None:
    config = with_config(
        demo,
        "related.toml",
        'person = "user_id"\nat = "created_at"',
        'person = "user_id"\nat = "created_at"\n[[relations]]\nfrom = "quiz_attempts.quiz_id"\nto = "quizzes.id"',
    )
    settings = load_settings(config, env={})
    check_roles(settings, reflected(settings.source_url))
