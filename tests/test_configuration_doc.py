"""docs/configuration.md, `learnexit init`'s skeleton and the config loader name the same keys.

The loader's own table (``config.SECTION_KEYS`` + ``ROLE_COLUMNS``, via ``allowed_keys``)
is the truth: every key it accepts is documented (section, type, default, example, what
it changes) and written into the skeleton, and the reference documents no other key
except those marked *(planned)*, which the loader must not accept yet.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from learnexit.cli import app
from learnexit.config import ROLE_COLUMNS, SECTIONS, allowed_keys, load_settings
from learnexit.errors import ConfigError
from learnexit.skeleton import CONFIG_SKELETON

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "configuration.md"
_HEADING = re.compile(r"^#{2,3} (\[\[?[\w.]+\]\]?)\s*$")
_ROW = re.compile(r"^\| `(\w+)`( \*\(planned\)\*)? \|(.*)\|\s*$")


def schema_name(heading: str) -> str:
    """``[tables.NAME]`` → tables.*, ``[[relations]]`` → relations, ``[roles.people]`` → roles.people."""
    name = heading.strip("[]")
    return "tables.*" if name == "tables.NAME" else name


def documented() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(section → documented keys, section → keys marked planned), from the reference's tables."""
    keys: dict[str, set[str]] = {}
    planned: dict[str, set[str]] = {}
    section = None
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        heading = _HEADING.match(line)
        if heading:
            section = schema_name(heading.group(1))
            continue
        if line.startswith("## "):
            section = None
        row = _ROW.match(line)
        if row and section is not None:
            cells = [c.strip() for c in row.group(3).split("|")]
            assert len(cells) == 4 and all(cells), f"{section} {row.group(1)}: type, default, example, what it changes"
            (planned if row.group(2) else keys).setdefault(section, set()).add(row.group(1))
    return keys, planned


def test_the_reference_documents_every_key_the_loader_accepts_and_no_other() -> None:
    keys, planned = documented()
    expected = {section: set(names) for section, names in allowed_keys().items()}
    assert keys == expected
    for section, names in planned.items():
        assert not names & expected.get(section, set()), f"[{section}] {names}: accepted now, drop '(planned)'"


def test_every_top_level_section_has_a_heading() -> None:
    headings = {
        schema_name(m.group(1)).split(".")[0] for m in map(_HEADING.match, REFERENCE.read_text().splitlines()) if m
    }
    assert headings == set(SECTIONS) and set(ROLE_COLUMNS) <= {k[6:] for k in documented()[0] if k.startswith("roles.")}


def test_the_reference_example_loads_and_a_misspelt_key_is_refused(tmp_path: Path) -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    example = text.split("## A complete example", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    config = tmp_path / "learnexit.toml"
    config.write_text(example, encoding="utf-8")
    settings = load_settings(config, env={})
    assert settings.vendor_name == "Lärplattformen AB" and settings.tables["invoices"].retain == "P7Y"
    config.write_text(example.replace("owned_via", "owend_via"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"learnexit.toml: \[tables.users\] owend_via: unknown key"):
        load_settings(config, env={})


def skeleton_keys() -> dict[str, set[str]]:
    """Section → keys the skeleton names, commented out or not (``# [roles.people]``, ``# id = ...``)."""
    keys: dict[str, set[str]] = {}
    section = None
    for line in CONFIG_SKELETON.splitlines():
        bare = line.removeprefix("# ").strip()
        heading = re.fullmatch(r"(\[\[?[\w.]+\]\]?)(\s+#.*)?", bare)
        if heading:
            name = heading.group(1).strip("[]")
            section = "tables.*" if name.startswith("tables.") else name
            continue
        key = re.match(r"(\w+) = ", bare)
        if key and section is not None:
            keys.setdefault(section, set()).add(key.group(1))
    return keys


def test_the_skeleton_names_every_key_and_loads_as_written() -> None:
    assert skeleton_keys() == {section: set(names) for section, names in allowed_keys().items()}
    data = tomllib.loads(CONFIG_SKELETON)
    assert set(data) == {"source", "state", "vendor", "contract", "customer", "export", "purge"}


def test_init_writes_the_skeleton_privately_and_never_over_a_file(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "learnexit.toml"
    old = os.umask(0o022)
    try:
        done = runner.invoke(app, ["init", "--config", str(target)])
    finally:
        os.umask(old)
    assert done.exit_code == 0, done.output
    assert target.read_text(encoding="utf-8") == CONFIG_SKELETON
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    settings = load_settings(target, env={})
    assert settings.customer.table == "organisations" and settings.purge.backup_note is None
    again = runner.invoke(app, ["init", "--config", str(target)])
    assert again.exit_code == 2 and "exists already" in again.stderr
