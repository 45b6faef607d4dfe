"""The CLI foundation: init, inspect on the example (all engines), errors and secrets."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import copy_example, invoke

from learnexit import __version__
from learnexit.demo import ExampleInfo, build_shared_schema, populate_shared
from learnexit.exporters import speedups

NATIVE_BUILT = importlib.util.find_spec("learnexit._speedups") is not None


@pytest.fixture(scope="module")
def example(tmp_path_factory, example_template: Path, example_info: ExampleInfo) -> tuple[Path, object]:
    dest = copy_example(example_template, tmp_path_factory.mktemp("ex") / "demo")
    return dest, example_info


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [f"learnexit {__version__}", f"C speedups: {speedups.status()}"]


@pytest.mark.parametrize(
    "env,says",
    [
        ({"LEARNEXIT_NO_SPEEDUPS": "1"}, "C speedups: off (LEARNEXIT_NO_SPEEDUPS is set)"),
        ({"LEARNEXIT_NO_SPEEDUPS": "0"}, "C speedups: on" if NATIVE_BUILT else "C speedups: not built"),
    ],
)
def test_python_dash_m_works_and_says_whether_the_speedups_are_on(env: dict[str, str], says: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "learnexit", "--version"], capture_output=True, text=True, env={**os.environ, **env}
    )
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first == f"learnexit {__version__}" and second.startswith(says)


def test_init_example_refuses_to_overwrite(tmp_path: Path) -> None:
    result = invoke("init", "--example", str(tmp_path / "demo"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["customers"] == ["acme", "globex", "initech"]
    assert Path(data["config"]).is_file() and Path(data["legacy_config"]).is_file()
    again = invoke("init", "--example", str(tmp_path / "demo"))
    assert again.exit_code == 2
    assert "already holds an example" in again.stderr


def test_inspect_json_matches_known_counts(example) -> None:
    dest, info = example
    result = invoke("inspect", "acme", "--json", "--config", str(dest / "learnexit.toml"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["customer"] == "acme" and data["name"] == "Acme Lärande AB"
    status = {t["table"]: t["status"] for t in data["tables"]}
    rows = {t["table"]: t["rows"] for t in data["tables"] if t["status"] == "owned"}
    assert status["catalogue_items"] == "shared" and status["developer_keys"] == "shared"
    assert data["unclassified"] == []
    assert rows == info.counts["acme"]
    via = {t["table"]: t["via"] for t in data["tables"]}
    assert via["quiz_attempts"] == "quiz_attempts.quiz_id → quizzes.course_id → courses.organisation_id → organisations"
    assert via["users"] == "referenced by the customer's logins.user_id, memberships.user_id"


def test_inspect_legacy_uses_relations(example) -> None:
    dest, _ = example
    result = invoke("inspect", "acme", "--json", "--config", str(dest / "legacy" / "learnexit.toml"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    by = {t["table"]: t for t in data["tables"]}
    assert data["tenancy"] == "database"
    assert by["mdl_config"]["status"] == "shared"
    assert by["mdl_user_enrolments"]["status"] == "owned"
    assert "userid → mdl_user.id ([[relations]])" in by["mdl_user_enrolments"]["references"]


@pytest.mark.parametrize("engine_kind", ["sqlite", "postgresql", "mariadb"])
def test_inspect_counts_on_every_engine(dbs, example, tmp_path: Path) -> None:
    dest, _ = example
    url = dbs.new("lms")
    engine = sa.create_engine(url)
    build_shared_schema(engine)
    info = populate_shared(engine, media_root=None)
    engine.dispose()
    cfg = tmp_path / "learnexit.toml"
    text = (dest / "learnexit.toml").read_text(encoding="utf-8")
    cfg.write_text(text.replace('url = "sqlite:///lms.db"', f'url = "{url}"'), encoding="utf-8")
    for customer in info.customers:
        result = invoke("inspect", customer, "--json", "--config", str(cfg))
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        rows = {t["table"]: t["rows"] for t in data["tables"] if t["status"] == "owned"}
        assert rows == info.counts[customer], customer


def test_unknown_customer_is_exit_2_one_line(example) -> None:
    dest, _ = example
    result = invoke("inspect", "nobody", "--config", str(dest / "learnexit.toml"))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("learnexit: error: unknown customer 'nobody'")


def test_bad_config_key_is_exit_2_naming_key(tmp_path: Path) -> None:
    cfg = tmp_path / "learnexit.toml"
    cfg.write_text('[source]\nurl = "sqlite:///x.db"\n[customer]\ntable = "o"\ntenancy = "shred"\n', encoding="utf-8")
    result = invoke("inspect", "acme", "--config", str(cfg))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"learnexit: error: {cfg}: [customer] tenancy: must be one of shared, database, not 'shred'"
    )


def test_unreachable_source_hides_password(tmp_path: Path) -> None:
    cfg = tmp_path / "learnexit.toml"
    cfg.write_text(
        '[source]\nurl = "postgresql://lms:Sup3rSecretPw@127.0.0.1:1/lms"\n[customer]\ntable = "o"\n', encoding="utf-8"
    )
    for extra in ([], ["--traceback"], ["--json"]):
        result = invoke("inspect", "acme", "--config", str(cfg), *extra)
        assert result.exit_code == 1
        assert "Sup3rSecretPw" not in result.output + result.stderr
        assert "cannot read source postgresql+psycopg://lms:***@127.0.0.1:1/lms" in result.stderr
    assert "Traceback" in invoke("inspect", "acme", "--config", str(cfg), "--traceback").stderr
    assert "Traceback" not in invoke("inspect", "acme", "--config", str(cfg)).stderr
