"""A many-table schema: learnexit's cost must follow the rows, not the tables (issue 21, 2).

    python bench/many_tables.py                       # csv, json, sql export and the purge, best of 3
    python bench/many_tables.py --repeat 5 --json out.json
    python bench/many_tables.py --only csv --profile  # and where the export's time goes

Builds two Moodle-like sites (``tests/lms_schemas.py``: Moodle's 133 tables plus PLUGINS
made-up five-table plugins, 483 tables at the default 70, a real site's size) as SQLite
files, one database per site (tenancy "database", like ``tests/test_lms_recipes.py``),
configured by ``examples/recipes/moodle.toml`` with the plugins' references added as a
person would add them.  As on a real site most plugins are installed but unused: the
first USED plugins hold rows, the others' tables are empty; LOG_ROWS rows of
``mdl_logstore_standard_log`` bring the site to about 9,000 rows.

Then, for ``site_a``, side by side in one run (each the fastest of REPEAT runs, by the
clock and by CPU, a whole command as a child process, start-up included):

- ``learnexit export site_a --format F`` for F in csv, json, sql, against the reference:
  the ``sqlite3`` shell writing every table of the site to a CSV file with a header
  (``.mode csv``, one ``.output`` per table);
- ``learnexit purge site_a --yes --force --reason bench`` on a fresh copy of both sites
  (a notice recorded first, not timed), against plain ``DELETE FROM`` of every table in
  one transaction in the ``sqlite3`` shell, on another fresh copy;
- ``learnexit --version`` (the CLI's start-up alone).

With ``--profile`` it also runs the first format's export under ``cProfile`` in a child
process and prints the functions that take the most time (cumulative, learnexit's and
SQLAlchemy's own), and the modules whose import takes longest (``-X importtime``).
A script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from lms_schemas import (  # noqa: E402
    DEFAULT_ROWS,
    LOG_TABLE,
    MOODLE_PREFIX,
    MOODLE_ROWS,
    create_schema,
    fill,
    moodle_tables,
)
from run import compile_bytecode  # noqa: E402

RECIPE = ROOT / "examples" / "recipes" / "moodle.toml"
SITES = ("site_a", "site_b")
CUSTOMER = "site_a"


# --------------------------------------------------------------------------- the sites


def build_site(db: Path, site: int, plugins: int, used: int, log_rows: int) -> int:
    """One site's database; returns its rows."""
    import sqlalchemy as sa

    tables = moodle_tables(plugins)
    rows = dict(MOODLE_ROWS)
    for k in range(used + 1, plugins + 1):  # installed, never used
        for suffix in ("", "_items", "_attempts", "_grades", "_log"):
            rows[f"plug{k}{suffix}"] = 0
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        md = create_schema(engine, tables, MOODLE_PREFIX, declare_keys=False)
        counts = fill(engine, md, tables, MOODLE_PREFIX, site=site, rows=rows, log_table=LOG_TABLE, log_rows=log_rows)
    finally:
        engine.dispose()
    return sum(counts.values())


def plugin_relations(plugins: int) -> str:
    """The plugins' references as ``[[relations]]`` (what a site's operator adds to the recipe)."""
    out = []
    for t in moodle_tables(plugins):
        if not t.name.startswith("plug"):
            continue
        for c in t.refs():
            out.append("[[relations]]")
            out.append(f'from = "{MOODLE_PREFIX}{t.name}.{c.name}"')
            out.append(f'to = "{MOODLE_PREFIX}{c.target}.{c.target_col}"')
            if c.sentinel is not None:
                out.append(f"sentinels = [{c.sentinel}]")
            out.append("")
    return "\n".join(out)


def build(work: Path, plugins: int, used: int, log_rows: int) -> dict[str, Any]:
    """Both sites and the config in ``work``."""
    rows = {}
    for site, name in enumerate(SITES, start=1):
        rows[name] = build_site(work / f"{name}.db", site, plugins, used, log_rows)
    text = RECIPE.read_text(encoding="utf-8")
    recipe = tomllib.loads(text)
    text = text.replace(recipe["source"]["url"], "sqlite:///{customer}.db")
    text = text.replace(recipe["media"]["root"], "moodledata/{customer}")
    # the relations go before the first [tables.*] section (they are an array of tables)
    head, sep, tail = text.partition("\n# system table")
    text = head + "\n" + plugin_relations(plugins) + sep + tail
    (work / "learnexit.toml").write_text(text, encoding="utf-8")
    for name in SITES:
        (work / "moodledata" / name).mkdir(parents=True)
    import sqlite3

    with sqlite3.connect(work / f"{CUSTOMER}.db") as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        empty = sum(1 for n in names if conn.execute(f'SELECT 1 FROM "{n}" LIMIT 1').fetchone() is None)
    return {"tables": len(names), "empty_tables": empty, "rows": rows[CUSTOMER]}


# --------------------------------------------------------------------------- measuring


def learnexit_cmd() -> list[str]:
    compile_bytecode()  # (as an installed copy has it: see bench/run.py)
    return [sys.executable, "-m", "learnexit"]


def bench_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEARNEXIT_")}
    env["LEARNEXIT_LOG_FORMAT"] = "json"
    env["LEARNEXIT_ACTOR"] = "bench@example"
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


Timing = tuple[float, float]  # (wall-clock seconds, CPU seconds of the command's processes)


def timed(cmd: Sequence[str], cwd: Path, stdin: Path | None = None) -> Timing:
    """Seconds of one command, by the clock and by CPU (its processes' user + system
    time: on a shared machine it varies far less); exits with its error when it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(stdin or os.devnull, "rb") as fin:
        done = subprocess.run(cmd, cwd=cwd, env=bench_env(), stdin=fin, capture_output=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} … failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def fresh(work: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for name in SITES:
        shutil.copy2(work / f"{name}.db", target / f"{name}.db")
        (target / "moodledata" / name).mkdir(parents=True)
    shutil.copy2(work / "learnexit.toml", target / "learnexit.toml")
    return target


def table_names(db: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]


def reference_csv(work: Path) -> Timing:
    out = work / "ref-csv"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    lines = [".headers on", ".mode csv"]
    for name in table_names(work / f"{CUSTOMER}.db"):
        lines += [f".output {out / (name + '.csv')}", f'SELECT * FROM "{name}";']
    script = work / "ref-csv.sql"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return timed(["sqlite3", "-bail", str(work / f"{CUSTOMER}.db")], work, stdin=script)


def export(work: Path, fmt: str) -> Timing:
    out = work / f"out-{fmt}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = learnexit_cmd() + ["export", CUSTOMER, "--format", fmt, "--out", str(out), "--json"]
    seconds = timed(cmd, work)
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def reference_delete(work: Path) -> Timing:
    copy = fresh(work, work / "r-purge")
    lines = ["BEGIN;"] + [f'DELETE FROM "{n}";' for n in table_names(copy / f"{CUSTOMER}.db")] + ["COMMIT;"]
    script = work / "ref-delete.sql"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return timed(["sqlite3", "-bail", str(copy / f"{CUSTOMER}.db")], copy, stdin=script)


def purge(work: Path) -> Timing:
    copy = fresh(work, work / "a-purge")
    timed(
        learnexit_cmd() + ["notice", CUSTOMER, "--received", "2024-01-10", "--period-end", "2024-02-10", "--json"], copy
    )
    return timed(learnexit_cmd() + ["purge", CUSTOMER, "--yes", "--force", "--reason", "bench", "--json"], copy)


def best(repeat: int, once: Any) -> Timing:
    """The fastest of ``repeat`` runs, by the clock and by CPU (each its own minimum)."""
    runs = [once() for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


# --------------------------------------------------------------------------- where the time goes


def profile(work: Path, fmt: str, top: int) -> list[str]:
    """The export under cProfile: the slowest functions, cumulative."""
    stats_file = work / "export.prof"
    out = work / "out-prof"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "cProfile", "-o", str(stats_file), "-m", "learnexit"]
    total, _cpu = timed(cmd + ["export", CUSTOMER, "--format", fmt, "--out", str(out), "--json"], work)
    stats = pstats.Stats(str(stats_file))
    rows = []
    for (file, line, func), (_cc, calls, _tt, cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "learnexit" in file or "sqlalchemy" in file and "/engine/" in file:
            where = file.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
            rows.append((cum, calls, f"{where}:{line} {func}"))
    rows.sort(reverse=True)
    lines = [f"export --format {fmt} under cProfile: {total:.2f} s; cumulative seconds, calls, function"]
    lines += [f"  {cum:7.3f} {calls:8d}  {name}" for cum, calls, name in rows[:top]]
    return lines


def import_times(work: Path, top: int) -> list[str]:
    """``python -X importtime -m learnexit --version``: the slowest top-level imports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "learnexit", "--version"],
        cwd=work,
        env=bench_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    found = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip())) // 2
        if depth <= 1:
            found.append((int(parts[1]) / 1e6, name.strip()))
    found.sort(reverse=True)
    lines = ["start-up imports (python -X importtime -m learnexit --version), cumulative seconds:"]
    lines += [f"  {s:7.3f}  {name}" for s, name in found[:top]]
    return lines


# --------------------------------------------------------------------------- the run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--plugins", type=int, default=70, help="made-up 5-table plugins (70: 483 tables)")
    parser.add_argument("--used", type=int, default=8, help="plugins that hold rows (the others are empty)")
    parser.add_argument("--log-rows", type=int, default=4800, help=f"rows of mdl_{LOG_TABLE}")
    parser.add_argument("--repeat", type=int, default=3, help="fastest of this many runs")
    parser.add_argument("--only", default="csv,json,sql,purge", help="parts: csv, json, sql, purge")
    parser.add_argument("--profile", action="store_true", help="where the first format's export spends its time")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="le-many-tables-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        site = build(work, args.plugins, args.used, args.log_rows)
        print(
            f"{site['tables']} tables ({site['empty_tables']} empty), {site['rows']:,} rows in {CUSTOMER} "
            f"(built in {time.monotonic() - started:.1f} s; default rows per used table {DEFAULT_ROWS})"
        )
        res: dict[str, Any] = {"site": site, "repeat": args.repeat}

        def show(label: str, key: str, timing: Timing, reference: str | None = None) -> None:
            res[f"{key}_s"], res[f"{key}_cpu_s"] = timing
            line = f"{label:<36} {timing[0]:6.2f} s  (CPU {timing[1]:5.2f} s)"
            if reference is not None:
                wall, cpu = timing[0] / res[f"{reference}_s"], timing[1] / res[f"{reference}_cpu_s"]
                res[f"{key}_ratio"], res[f"{key}_cpu_ratio"] = wall, cpu
                line += f"  {wall:5.1f}× the reference (by CPU {cpu:5.1f}×)"
            print(line)

        show("learnexit --version", "startup", best(args.repeat, lambda: timed(learnexit_cmd() + ["--version"], work)))
        formats = [p for p in parts if p != "purge"]
        if formats:
            show("sqlite3 .mode csv, every table", "ref_csv", best(args.repeat, lambda: reference_csv(work)))
        for fmt in formats:
            show(
                f"export --format {fmt}",
                f"export_{fmt}",
                best(args.repeat, lambda fmt=fmt: export(work, fmt)),
                "ref_csv",
            )
        if "purge" in parts:
            show("sqlite3 DELETE, every table", "ref_delete", best(args.repeat, lambda: reference_delete(work)))
            show("purge", "purge", best(args.repeat, lambda: purge(work)), "ref_delete")
        if args.profile and formats:
            print("\n".join(["", *profile(work, formats[0], 30), "", *import_times(work, 15)]))
    res["load_before"], res["load_after"] = load_before, os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {res['load_after'][0]:.2f} (2-core machine, shared)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
