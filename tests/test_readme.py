"""The README's quick start, run as written: the reader ends in the folder they started in
(the repository root, where the next ``python -m pytest`` finds the tests) with an export
package to open, which the quick start's purge (a dry run) leaves alone.

The example's notice date is fixed in the README, so the commands run on a fixed "today"
(``LEARNEXIT_NOW``) inside its export window: the test does not expire with the calendar.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```console\n(.*?)```", section, re.S)
    assert block is not None, "the quick start has no console block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_quick_start_has_set_up_main_job_and_tests() -> None:
    lines = quick_start()
    assert len(lines) == 3
    assert lines[0].startswith("python3 -m venv .venv") and "pip install -e '.[all,test]'" in lines[0]
    assert lines[1].startswith("learnexit init --example demo")
    assert lines[2] == "python -m pytest"


def test_the_main_job_leaves_the_reader_where_they_started_with_a_package(tmp_path: Path) -> None:
    main_job = quick_start()[1]
    learnexit = shutil.which("learnexit") or str(Path(sys.executable).parent / "learnexit")
    env = {
        **os.environ,
        "PATH": f"{Path(learnexit).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "LEARNEXIT_NOW": "2026-12-04T12:00:00",
        "LEARNEXIT_ACTOR": "newcomer@example",
    }
    run = subprocess.run(
        ["bash", "-c", f'{main_job}\necho "exit=$?"\npwd'],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    *output, status, where = run.stdout.rstrip("\n").splitlines()
    # the dry run ends the chain: the purge is not due yet (exit 3), and it shows the plan
    assert status == "exit=3", run.stdout[-2000:] + run.stderr[-2000:]
    text = "\n".join(output)
    assert "REFUSED: the purge of acme is not due until" in text
    assert "Would delete" in text and "Retained:" in text
    assert Path(where) == tmp_path, "the quick start must leave the reader in the folder they started in"
    demo = tmp_path / "demo"
    packages = [p for p in (demo / "exports").iterdir() if not p.name.endswith(".partial")]
    assert len(packages) == 1 and (packages[0] / "data" / "index.html").is_file()
    assert any((demo / "letters").iterdir())
    assert not (demo / "certificates").exists() or not any((demo / "certificates").iterdir())
