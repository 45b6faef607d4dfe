"""Config resolution and validation: every error names the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from learnexit.config import load_settings, mask_url, scrub
from learnexit.errors import ConfigError

BASE = """
[source]
url = "sqlite:///lms.db"
[customer]
table = "organisations"
key = "slug"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "learnexit.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, BASE), env={})
    assert s.source_url == f"sqlite:///{tmp_path}/lms.db"
    assert s.state_url == f"sqlite:///{tmp_path}/learnexit-state.db"
    assert s.contract.notice_days == 30 and s.contract.export_window_days == 90
    assert s.contract.timezone == "Europe/Stockholm"
    assert s.export.out == tmp_path / "exports"
    assert s.customer.tenancy == "shared"


def test_environment_overrides_file_and_flags_override_environment(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    env = {"LEARNEXIT_SOURCE_URL": "sqlite:////tmp/env.db", "LEARNEXIT_STATE_URL": "sqlite:////tmp/state-env.db"}
    s = load_settings(path, env=env)
    assert s.source_url == "sqlite:////tmp/env.db"
    assert s.state_url == "sqlite:////tmp/state-env.db"
    s = load_settings(path, env=env, source_url="sqlite:////tmp/flag.db")
    assert s.source_url == "sqlite:////tmp/flag.db"


def test_config_found_through_environment(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    s = load_settings(None, env={"LEARNEXIT_CONFIG": str(path)})
    assert s.path == path


def test_postgres_url_gets_installed_driver_and_password_is_masked(tmp_path: Path) -> None:
    s = load_settings(
        write(tmp_path, BASE.replace("sqlite:///lms.db", "postgresql://lms:s3cr3t-pw@db.example/lms")), env={}
    )
    assert s.source_url.startswith("postgresql+psycopg://")
    assert "s3cr3t-pw" not in mask_url(s.source_url)
    assert scrub("connection failed for s3cr3t-pw") == "connection failed for ***"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[source\nurl=1", r"invalid TOML"),
        (BASE + "\n[tables.users]\nowend_via = ['logins.user_id']\n", r"\[tables.users\] owend_via: unknown key"),
        (BASE + "\n[contract]\nnotice_days = 'thirty'\n", r"\[contract\] notice_days: must be a whole number"),
        (BASE + "\n[contract]\nnotice_days = -1\n", r"\[contract\] notice_days: must be between 0"),
        (BASE + "\n[contract]\ntimezone = 'Mars/Olympus'\n", r"\[contract\] timezone: unknown time zone"),
        (BASE + "\n[contract]\nterm_months = 0\n", r"\[contract\] term_months: must be between 1"),
        (
            BASE + "\n[tables.invoices]\nretain = '7 years'\nlegal_basis = 'x'\n",
            r"retain: must be an ISO-8601 duration",
        ),
        (BASE + "\n[tables.invoices]\nretain = 'P7Y'\n", r"legal_basis: is required with retain"),
        (BASE + "\n[tables.users]\nowned_via = ['logins']\n", r"owned_via: must be written table.column"),
        (BASE + "\n[tables.users]\ncategory = 'people'\n", r"category: must be one of"),
        (BASE + "\n[tables.keys]\nshared = 'yes'\n", r"\[tables.keys\] shared: must be true or false"),
        (BASE + "\n[export]\nformats = ['csv', 'pptx']\n", r"\[export\] formats: unknown format 'pptx'"),
        (BASE + "\n[export]\nsql_dialect = 'oracle'\n", r"sql_dialect: must be one of"),
        (BASE + "\n[wat]\nx = 1\n", r"\[wat\]: unknown section"),
        (BASE + "\n[[relations]]\nfrom = 'a.b'\n", r"\[relations #1\] to: is required"),
        (BASE + "\n[roles.people]\ntable = 'users'\nid = 'id'\n", r"\[roles.people\] name: is required"),
        (BASE + "\n[roles.teachers]\ntable = 'users'\n", r"\[roles.teachers\]: unknown role"),
        (BASE + "\n[media]\nroot = 'media'\ntable = 'attachments'\n", r"\[media\] path_column: give exactly one"),
        ("[source]\nurl = 'sqlite:///{customer}.db'\n[customer]\ntable='o'\n", r"needs tenancy = \"database\""),
        ("[source]\nurl = 'sqlite:///x.db'\n[customer]\ntenancy='database'\n", r"needs \{customer\} in the URL"),
        ("[customer]\ntable='o'\n", r"\[source\] url: is required"),
        ("[source]\nurl = 'not a url'\n[customer]\ntable='o'\n", r"not a database URL"),
    ],
)
def test_bad_config_names_file_key_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_settings(path, env={})
    assert str(path) in str(info.value)
    assert info.value.exit_code == 2
    assert "\n" not in info.value.message


def test_missing_and_absent_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml", env={})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no configuration"):
        load_settings(None, env={})
