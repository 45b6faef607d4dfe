"""Warnings where data would be lost quietly: in `inspect` notes and in the export's notes.

A Moodle-like site configured without its references (as a hand-written config without
``[[relations]]`` would be): retained payments that would lose their people, a people
table nothing points at, role tables that cannot be nested.  With the drafted relations
the warnings go away, and the example LMS's complete config raises none.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lms_schemas import build_moodle
from typer.testing import CliRunner

from learnexit.cli import app
from learnexit.config import load_settings
from learnexit.draft import draft_config
from learnexit.source.inspection import inspect_customer

runner = CliRunner()
BASIS = "Bokföringslagen (1999:1078) 7 kap. 2 §"
RELATION = re.compile(r"\[\[relations\]\][^\n]*\nfrom = [^\n]*\nto = [^\n]*\n(sentinels = [^\n]*\n)?")
EXPECTED = {
    "mdl_payments is retained, but mdl_payments.userid looks like a reference to mdl_user that no foreign key "
    "or [[relations]] entry declares: the purge would delete the mdl_user rows it points at (add the "
    "relation, or `init --from-database` to measure it)",
    "no owned table references the people table mdl_user: each person's record in the nested JSON/XML will "
    "be empty (declare the references, e.g. with `init --from-database`)",
    "[roles.quiz_results] mdl_quiz_attempts.userid has no reference to mdl_user: its rows will not be nested "
    "under their person (add a [[relations]] entry)",
    "[roles.activity] mdl_logstore_standard_log.userid has no reference to mdl_user: its rows will not be "
    "nested under their person (add a [[relations]] entry)",
}


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("quiet")
    build_moodle(f"sqlite:///{root / 'site_a.db'}", site=1, log_rows=300)
    text = draft_config(f"sqlite:///{root / 'site_a.db'}").text.replace('"FILL IN"', json.dumps(BASIS))
    (root / "drafted.toml").write_text(text, encoding="utf-8")
    (root / "bare.toml").write_text(RELATION.sub("", text), encoding="utf-8")
    return root / "drafted.toml", root / "bare.toml"


def test_inspect_warns_without_the_references(configs: tuple[Path, Path]) -> None:
    drafted, bare = configs
    notes = set(inspect_customer(load_settings(bare), "site_a").notes)
    assert EXPECTED <= notes
    assert not any("mdl_payment_gateways" in n for n in notes)  # not retained: nothing to warn about
    assert not any(
        "looks like a reference" in n or "no reference to" in n or "people table" in n
        for n in inspect_customer(load_settings(drafted), "site_a").notes
    )


def test_the_export_notes_say_it_too(configs: tuple[Path, Path], tmp_path: Path) -> None:
    _, bare = configs
    # An export refuses roles whose person column leads nowhere (exit 2, the roles check),
    # so it runs here without them: the other warnings still reach its notes.
    without_roles = tmp_path / "no-roles.toml"
    without_roles.write_text(_drop_roles(bare.read_text(encoding="utf-8")), encoding="utf-8")
    refused = runner.invoke(
        app, ["export", "site_a", "--format", "json", "--out", str(tmp_path / "x"), "--config", str(bare)]
    )
    assert refused.exit_code == 2 and "[roles." in refused.stderr
    result = runner.invoke(
        app,
        [
            "export",
            "site_a",
            "--format",
            "json",
            "--out",
            str(tmp_path / "out"),
            "--json",
            "--config",
            str(without_roles),
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert {n for n in EXPECTED if n.startswith("mdl_payments is retained")} <= set(json.loads(result.stdout)["notes"])


def _drop_roles(text: str) -> str:
    """The config without its [roles.*] sections."""
    kept, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            skipping = line.startswith("[roles.")
        if not skipping:
            kept.append(line)
    return "".join(kept)


def test_no_false_alarm_on_the_example(tmp_path: Path, example_site: Path) -> None:
    for config, customer in (
        (tmp_path / "ex" / "learnexit.toml", "acme"),
        (tmp_path / "ex" / "legacy" / "learnexit.toml", "acme"),
    ):
        notes = inspect_customer(load_settings(config), customer).notes
        assert not any("looks like a reference" in n or "no reference to" in n or "people table" in n for n in notes)
