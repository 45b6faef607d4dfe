"""`learnexit init --from-database` on a Moodle-like site (issue 18's figures).

    python bench/draft_moodle.py                       # SQLite, 300,000 log rows
    python bench/draft_moodle.py --log-rows 1000000
    python bench/draft_moodle.py --url postgresql+psycopg://postgres@127.0.0.1:5432/le_bench_draft

Builds one site of the Moodle-like schema of ``tests/lms_schemas.py`` (133 tables with
Moodle's table and column names, plus PLUGINS made-up five-table plugins to reach a real
site's size; no foreign keys) with LOG_ROWS rows in ``mdl_logstore_standard_log``, then
times the whole command ``learnexit init --from-database URL --out FILE --json`` as a
child process (start-up included), and reports:

- the share of the references the schema's definition declares that the draft proposes,
  the relations it proposes that the definition does not declare (false relations), and
  the declared ones it misses;
- how many lines of the drafted file differ from ``examples/recipes/moodle.toml`` (the
  lines a person writes or edits for a correct Moodle offboarding), by ``difflib``.

A script, not a test: the database (``--url``) must be empty; a SQLite file is made in a
temporary folder.
"""

from __future__ import annotations

import argparse
import difflib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lms_schemas import MOODLE_PREFIX, build_moodle, declared_references, moodle_tables  # noqa: E402

RECIPE = ROOT / "examples" / "recipes" / "moodle.toml"


def _content_lines(text: str) -> list[str]:
    """The lines that configure something (comments and blank lines left out)."""
    out = []
    for line in text.splitlines():
        code = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if code:
            out.append(code)
    return out


def hand_lines(draft: str, recipe: str) -> list[str]:
    """Lines of the recipe that are not in the draft as they stand (added or changed),
    ignoring [source] url (every site has its own)."""
    diff = difflib.ndiff(_content_lines(draft), _content_lines(recipe))
    return [d[2:] for d in diff if d.startswith("+ ") and not d[2:].startswith("url = ")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--log-rows", type=int, default=300_000)
    parser.add_argument("--url", help="an empty database to build the site in (default: a SQLite file)")
    parser.add_argument("--exact", action="store_true", help="draft with --exact (no sampling)")
    parser.add_argument(
        "--plugins", type=int, default=70, help="made-up 5-table plugins added (70: 483 tables, a real site's size)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="le-draft-bench-") as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'site_a.db'}"
        started = time.monotonic()
        rows = build_moodle(url, site=1, log_rows=args.log_rows, plugins=args.plugins)
        built = time.monotonic() - started
        out = Path(tmp) / "drafted.toml"
        command = [sys.executable, "-m", "learnexit", "init", "--from-database", url, "--out", str(out), "--json"]
        if args.exact:
            command.append("--exact")
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - started
        if done.returncode != 0:
            sys.exit(f"init --from-database failed ({done.returncode}): {done.stderr.strip()}")
        summary = json.loads(done.stdout)
        truth = declared_references(moodle_tables(args.plugins), MOODLE_PREFIX)
        real = declared_references(moodle_tables(), MOODLE_PREFIX)  # Moodle's own names only
        proposed = set()
        for rel in summary["relations"]:
            (ft, fc), (tt, tc) = rel["from"].split("."), rel["to"].split(".")
            proposed.add((ft, fc, tt, tc))
        draft = out.read_text(encoding="utf-8")
        extra = hand_lines(draft, RECIPE.read_text(encoding="utf-8")) if RECIPE.exists() else []
        report = {
            "tables": summary["tables"],
            "rows": sum(rows.values()),
            "log_rows": args.log_rows,
            "build_seconds": round(built, 1),
            "init_seconds": round(seconds, 2),
            "declared_references": len(truth),
            "found": len(truth & proposed),
            "found_share": round(len(truth & proposed) / len(truth), 4),
            "declared_references_real_names": len(real),
            "found_real_names": len(real & proposed),
            "false_relations": sorted(".".join(r) for r in proposed - truth),
            "missed": sorted(".".join(r) for r in truth - proposed),
            "rejected_name_matches": len(summary["rejected"]),
            "hand_written_lines": len(extra),
            "hand_written": extra,
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
