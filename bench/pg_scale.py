"""A 10M-row customer on PostgreSQL: time and memory against 1M (issue 21, item 3).

    python bench/pg_scale.py                            # acme with 1M and 10M activity rows
    python bench/pg_scale.py --scales 100000,1000000    # a quick look
    python bench/pg_scale.py --only csv,sql --json out.json

For each scale it builds the example LMS (``learnexit.demo``) in a fresh PostgreSQL
database ``learnexit_bench_<scale>`` (``LEARNEXIT_BENCH_PG``: the server, default the
``postgres`` database on 127.0.0.1:5432) in which the customer ``acme`` owns SCALE rows
of ``activity_log`` (about: 12 of every 20 ids; globex and initech own 5 and 3, the
example's 60/25/15 split, so the table holds SCALE / 0.6 rows).  Every other table is
the example's own (``populate_shared`` with no activity); ``activity_log`` is filled by
the server itself: ``INSERT … SELECT … FROM generate_series``, values drawn from the
example's pools and each customer's own people and courses by a hash of the id
(deterministic), its foreign keys added after the load, then ``VACUUM ANALYZE`` and a
checkpoint.  Then, each a whole command run as a child process (start-up included):

- ``psql \\copy (SELECT …) TO … CSV`` of every owned table (learnexit's own ownership
  predicates with literal values, one ``psql`` session) + SHA-256 of the files: the
  reference for the exports;
- ``learnexit export acme --format csv``, ``--format sql`` and the full package (every
  format of the example's config), from the PostgreSQL database;
- ``psql`` DELETE statements (``bench/run.py``'s ``purge_script`` for PostgreSQL) and
  ``learnexit purge acme --yes --force --reason bench``, each on its own copy of the
  database (``CREATE DATABASE … TEMPLATE``, not timed), a notice recorded first.

For every command it samples each process of the command's tree (the export's worker
processes and the render pool's too) every 20 ms and reports **each process's own peak
resident memory** (``VmHWM`` in ``/proc/<pid>/status``, the kernel's high-water mark),
not their sum; the largest of them is checked against the kernel's ``ru_maxrss`` of the
command.  It prints the times, the ratio time(largest) / time(smallest) per step against
the ratio of rows, and the per-process peaks, and writes everything as JSON to
``bench/results/pg_scale.json``.  The databases it creates are dropped when it ends (or
fails).  A script, not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402  (bench/run.py: the example, its SQL and the environment)
    CUSTOMER,
    PG_ADMIN,
    bench_env,
    learnexit_cmd,
    owned_selects,
    purge_script,
    say,
    sha256_files,
    spawn,
)

RESULTS = HERE / "results" / "pg_scale.json"
STEPS = ("reference", "csv", "sql", "full", "purge_reference", "purge")
PEAK_LIMIT_MB = 250  # issue 21: peak RSS per process at 10M
RATIO_LIMIT = 11.0  # issue 21: time(10M) / time(1M)
# Of every 20 activity ids: 12 acme, 5 globex, 3 initech (the example's 60/25/15 split).
SPLIT = (12, 5, 3)
SAMPLE_SECONDS = 0.02

_TICK = 1 / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- measuring


class Processes:
    """A command's process tree, sampled: each process's own peak resident memory (the
    kernel's high-water mark, ``VmHWM``), its CPU seconds, its parent and when it was
    first seen.  A process's parent is read once, when it is first seen; a sample reads
    /proc's list and the tree's own status files only."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.parent: dict[int, int] = {}  # every process seen, of the tree or not
        self.seen: dict[int, dict[str, Any]] = {}  # the tree's: pid → figures

    @staticmethod
    def _status(pid: int) -> dict[str, Any] | None:
        try:
            with open(f"/proc/{pid}/status", "rb") as fh:
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return None
        out: dict[str, Any] = {}
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in ("PPid", "VmHWM"):
                out[key] = int(value.split()[0])
            elif key == "Name":
                out[key] = value.strip()
        return out

    @staticmethod
    def _cpu(pid: int) -> float | None:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
            fields = stat[stat.rindex(b")") + 2 :].split()
            return (int(fields[11]) + int(fields[12])) * _TICK
        except (OSError, ValueError, IndexError):
            return None

    def _member(self, pid: int) -> bool:
        while pid > 1 and pid != self.root:
            pid = self.parent.get(pid, 0)
        return pid == self.root

    def sample(self, at: float) -> None:
        pids = {int(entry) for entry in os.listdir("/proc") if entry.isdigit()}
        for gone in set(self.parent) - pids:
            del self.parent[gone]
        for pid in pids - set(self.parent):
            status = self._status(pid)
            if status is not None:
                self.parent[pid] = status.get("PPid", 0)
        for pid in self.parent:
            if not self._member(pid):
                continue
            status = self._status(pid)
            cpu = self._cpu(pid)
            if status is None or "VmHWM" not in status:  # gone, or a zombie
                continue
            fig = self.seen.setdefault(pid, {"ppid": self.parent[pid], "first": at, "peak_kb": 0, "cpu": 0.0})
            fig["peak_kb"] = max(fig["peak_kb"], status["VmHWM"])
            fig["program"] = status.get("Name", "?")  # the latest: a forked child may exec another
            fig["cpu"] = max(fig["cpu"], cpu or 0.0)
            fig["last"] = at

    def labelled(self) -> list[dict[str, Any]]:
        """Every process seen, named by its place in the tree: ``main`` (the command),
        ``worker 1`` … (its children, in the order they started), ``worker 1.2`` … (theirs)."""
        names = {self.root: "main"}
        out = []
        for pid, fig in sorted(self.seen.items(), key=lambda item: (item[1]["first"], item[0])):
            if pid != self.root:
                parent = names.get(fig["ppid"], "?")
                siblings = sum(1 for n in names.values() if n.startswith("worker ") and n.count(".") == 0)
                if parent == "main":
                    names[pid] = f"worker {siblings + 1}"
                else:
                    children = sum(1 for p, f in self.seen.items() if f["ppid"] == fig["ppid"] and p in names)
                    names[pid] = f"{parent}.{children + 1}"
            out.append(
                {
                    "pid": pid,
                    "name": names[pid],
                    "program": fig.get("program", "?"),
                    "peak_mb": fig["peak_kb"] / 1024,
                    "cpu_s": fig["cpu"],
                }
            )
        return out


def measure(
    cmd: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None, stdin: Path | None = None
) -> dict[str, Any]:
    """Run ``cmd`` as a child process on a settled disk: wall time (start-up included),
    every process's own peak memory, CPU seconds of the tree, exit code and output."""
    os.sync()
    time.sleep(0.5)
    trees: dict[int, Processes] = {}

    def sample(pid: int, at: float) -> None:
        trees.setdefault(pid, Processes(pid)).sample(at)

    seconds, rc, stdout, stderr, usage = spawn(cmd, cwd=cwd, env=env, stdin=stdin, sample=sample, every=SAMPLE_SECONDS)
    (tree,) = trees.values()
    if rc != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} … failed (exit {rc}):\n{stderr[-3000:]}")
    processes = tree.labelled()
    return {
        "seconds": seconds,
        "stdout": stdout,
        "processes": processes,
        "peak_mb": max((p["peak_mb"] for p in processes), default=0.0),
        "kernel_maxrss_mb": usage.ru_maxrss / 1024,  # the largest process of the tree, reaped
        "cpu_s": max(sum(p["cpu_s"] for p in processes), usage.ru_utime + usage.ru_stime),
    }


# --------------------------------------------------------------------------- the database


def admin_engine() -> Any:
    import sqlalchemy as sa

    return sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def db_url(name: str) -> str:
    import sqlalchemy as sa

    return str(sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False))


def drop_database(name: str) -> None:
    with admin_engine().connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def copy_database(template: str, name: str) -> float:
    """A throwaway copy of ``template`` (the server copies the files); its seconds."""
    drop_database(name)
    start = time.perf_counter()
    with admin_engine().connect() as conn:
        # No session may be connected to a template while it is copied: only ours would be.
        conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (template,),
        )
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    return time.perf_counter() - start


def checkpoint() -> None:
    """Dirty pages of the previous step written now, not during the next one."""
    with admin_engine().connect() as conn:
        conn.exec_driver_sql("CHECKPOINT")


def load(scale: int, url: str, jobs: int) -> dict[str, Any]:
    """The child process that fills a fresh database: the example without activity, then
    about ``scale`` activity rows for acme (and the other customers' share) by SQL."""
    import sqlalchemy as sa

    from learnexit.demo import DEFAULT_SEED, build_shared_schema, populate_shared
    from learnexit.demo.data import generate_shared
    from learnexit.demo.pools import ACTIONS_COURSE, ACTIONS_SYSTEM, ACTIONS_USER, DATA_END, DETAILS

    times: dict[str, float] = {}
    clock = time.perf_counter()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    build_shared_schema(engine)
    populate_shared(engine, media_root=None, activity_rows=0)
    data = generate_shared(DEFAULT_SEED, 0, None)  # the same rows: each customer's people and courses
    times["example_s"] = time.perf_counter() - clock

    blocks = math.ceil(scale / SPLIT[0])
    total = blocks * sum(SPLIT)
    params: dict[str, Any] = {"total": total, "sys": list(ACTIONS_SYSTEM), "usr": list(ACTIONS_USER)}
    params |= {"crs": list(ACTIONS_COURSE), "det": list(DETAILS), "end": DATA_END}
    orgs = []
    for k, org in enumerate(data.orgs):
        params[f"org{k}"] = org.id
        params[f"users{k}"] = [p.user["id"] for p in org.people]
        params[f"courses{k}"] = [c["id"] for c in org.courses]
        params[f"from{k}"] = org.active_from
        orgs.append(
            f"({k}, CAST(:org{k} AS integer), CAST(:users{k} AS integer[]), CAST(:courses{k} AS integer[]), "
            f"CAST(:from{k} AS timestamp))"
        )
    # r(k): a number in [0, 1) from a hash of the id: the same rows on every run.
    r = {k: f"((hashint8extended(i, {k}) & 2147483647)::float8 / 2147483648.0)" for k in range(1, 6)}
    owner = f"CASE WHEN i % 20 < {SPLIT[0]} THEN 0 WHEN i % 20 < {SPLIT[0] + SPLIT[1]} THEN 1 ELSE 2 END"

    def pick(array: str, rk: str) -> str:
        return f"({array})[1 + floor({rk} * cardinality({array}))::int]"

    insert = sa.text(
        f"""
        WITH orgs (k, org_id, users, courses, since) AS (VALUES {", ".join(orgs)})
        INSERT INTO activity_log (id, organisation_id, user_id, course_id, action, detail, created_at)
        SELECT i, o.org_id,
               CASE WHEN {r[1]} < 0.03 THEN NULL ELSE {pick("o.users", r[2])} END,
               CASE WHEN {r[1]} < 0.25 THEN NULL ELSE {pick("o.courses", r[3])} END,
               CASE WHEN {r[1]} < 0.03 THEN {pick("CAST(:sys AS text[])", r[4])}
                    WHEN {r[1]} < 0.25 THEN {pick("CAST(:usr AS text[])", r[4])}
                    ELSE {pick("CAST(:crs AS text[])", r[4])} END,
               (CAST(:det AS text[]))[1 + floor({r[5]} * 2 * cardinality(CAST(:det AS text[])))::int],
               o.since + floor(CAST(extract(epoch FROM CAST(:end AS timestamp) - o.since) AS float8) * i / :total)
                        * interval '1 second'
        FROM generate_series(CAST(:low AS bigint), CAST(:high AS bigint)) AS i
        JOIN orgs o ON o.k = {owner}
        """
    )
    clock = time.perf_counter()
    with engine.begin() as conn:  # the load runs without the foreign keys; they are checked once after it
        fks = conn.exec_driver_sql(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'activity_log'::regclass AND contype = 'f'"
        ).all()
        for name, _definition in fks:
            conn.exec_driver_sql(f'ALTER TABLE activity_log DROP CONSTRAINT "{name}"')
    errors: list[BaseException] = []

    def part(low: int, high: int) -> None:
        try:
            with engine.begin() as conn:
                conn.execute(insert, dict(params, low=low, high=high))
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    bounds = [1 + total * j // jobs for j in range(jobs + 1)]
    threads = [threading.Thread(target=part, args=(bounds[j], bounds[j + 1] - 1)) for j in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    times["insert_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    with engine.begin() as conn:
        for name, definition in fks:
            conn.exec_driver_sql(f'ALTER TABLE activity_log ADD CONSTRAINT "{name}" {definition}')
        conn.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('activity_log', 'id'), (SELECT max(id) FROM activity_log) + 1, false)"
        )
    times["foreign_keys_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE)")
        conn.exec_driver_sql("CHECKPOINT")
        rows = conn.exec_driver_sql("SELECT count(*) FROM activity_log").scalar_one()
        size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one()
    times["vacuum_s"] = time.perf_counter() - clock
    engine.dispose()
    return {"activity_rows_total": rows, "database_bytes": size, **times}


# --------------------------------------------------------------------------- the steps


def psql_cmd(url: str) -> list[str]:
    import sqlalchemy as sa

    u = sa.engine.make_url(url)
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", u.host or "127.0.0.1", "-p", str(u.port or 5432)]
    return cmd + ["-U", u.username or "postgres", "-d", u.database or ""]


def reference_csv(url: str, selects: dict[str, str], work: Path) -> dict[str, Any]:
    """``psql \\copy`` of every owned table's rows to CSV, then SHA-256 of the files."""
    out = work / "ref-csv"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    script = work / "ref-csv.sql"
    lines = []
    for table, sql in selects.items():
        target = str(out / f"{table}.csv").replace("'", "''")
        lines.append(f"\\copy ({sql}) TO '{target}' WITH (FORMAT csv, HEADER)")
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    m = measure([*psql_cmd(url), "-f", str(script)], cwd=work)
    start = time.perf_counter()
    files = sorted(out.iterdir())
    sha256_files(files)
    m["psql_s"] = m["seconds"]
    m["seconds"] += time.perf_counter() - start
    m["bytes"] = sum(f.stat().st_size for f in files)
    shutil.rmtree(out, ignore_errors=True)
    return m


def export(example: Path, url: str, formats: Sequence[str] | None, out: Path) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    cmd = learnexit_cmd() + ["export", CUSTOMER, "--out", str(out), "--json"]
    if formats:
        cmd += ["--format", ",".join(formats)]
    m = measure(cmd, cwd=example, env=bench_env({"LEARNEXIT_SOURCE_URL": url}))
    result = json.loads(m.pop("stdout"))
    m |= {"rows": result["rows"], "bytes": result["bytes"], "files": result["files"]}
    shutil.rmtree(out, ignore_errors=True)  # disk space: a 10M package is several GB
    return m


def reference_purge(db: str, config: Path, copy: str, work: Path) -> dict[str, Any]:
    """``psql``: the DELETE statements of ``bench/run.py``'s ``purge_script``, on a copy."""
    script_text, _counts = purge_script(config, source_url=db_url(db))
    script = work / "ref-purge.sql"
    script.write_text(script_text, encoding="utf-8")
    copy_seconds = copy_database(db, copy)
    try:
        checkpoint()
        m = measure([*psql_cmd(db_url(copy)), "-f", str(script)], cwd=work)
        m["rows_left"] = table_counts(db_url(copy))
    finally:
        drop_database(copy)
    m.pop("stdout")
    return m | {"copy_s": copy_seconds}


def purge(example: Path, db: str, copy: str, work: Path) -> dict[str, Any]:
    """``learnexit purge`` on a copy of the database and of the example's folder (its
    ledger fresh: the exports measured before are not the purge's to remove)."""
    folder = work / "purge"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    shutil.copy2(example / "learnexit.toml", folder / "learnexit.toml")
    shutil.copytree(example / "media", folder / "media")
    copy_seconds = copy_database(db, copy)
    env = bench_env({"LEARNEXIT_SOURCE_URL": db_url(copy)})
    try:
        notice = learnexit_cmd() + ["notice", CUSTOMER, "--received", "2024-01-10", "--json"]
        subprocess.run(notice, cwd=folder, env=env, check=True, capture_output=True)
        checkpoint()
        m = measure(learnexit_cmd() + ["purge", CUSTOMER, "--yes", "--force", "--reason", "bench", "--json"],
                    cwd=folder, env=env)  # fmt: skip
        result = json.loads(m.pop("stdout"))["customers"][0]
        m["deleted"] = sum(result.get("deleted", {}).values())
        m["rows_left"] = table_counts(db_url(copy))
    finally:
        drop_database(copy)
        shutil.rmtree(folder, ignore_errors=True)
    return m | {"copy_s": copy_seconds}


def table_counts(url: str) -> dict[str, int]:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        names = conn.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        ).scalars()
        counts = {n: conn.exec_driver_sql(f'SELECT count(*) FROM "{n}"').scalar_one() for n in list(names)}
    engine.dispose()
    return counts


def in_child(*args: str) -> dict[str, Any]:
    """A step of this script in a child process (the data is built there, not here)."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"{args[0]} failed (exit {done.returncode}):\n{done.stderr.decode()[-3000:]}")
    return json.loads(done.stdout or b"{}")


def scale_name(scale: int) -> str:
    return f"{scale // 1_000_000}m" if scale % 1_000_000 == 0 else f"{scale // 1000}k"


def measure_scale(scale: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    want = set(args.only or STEPS)
    db = f"learnexit_bench_{scale_name(scale)}"
    example = root / f"example-{scale}"
    work = root / f"work-{scale}"
    work.mkdir(parents=True)
    res: dict[str, Any] = {"scale": scale, "database": db, "steps": {}}
    say(f"[{scale:,}] building the example folder and the database {db}")
    start = time.perf_counter()
    in_child("--build-example", str(example))
    config = example / "learnexit.toml"
    drop_database(db)
    with admin_engine().connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{db}"')
    try:
        res["load"] = in_child("--load", str(scale), db_url(db), str(args.jobs))
        res["build_s"] = time.perf_counter() - start
        load = res["load"]
        say(
            f"[{scale:,}] built in {res['build_s']:.0f} s ({load['activity_rows_total']:,} activity rows, "
            f"{load['database_bytes'] / 1e9:.2f} GB; insert {load['insert_s']:.0f} s)"
        )
        selects, counts, _dm, _prelude = owned_selects(config, source_url=db_url(db))
        res["customer_rows"] = sum(counts.values())
        res["activity_rows"] = counts.get("activity_log", 0)
        steps = res["steps"]
        for step in STEPS:
            if step not in want:
                continue
            say(f"[{scale:,}] {step}")
            checkpoint()
            if step == "reference":
                steps[step] = reference_csv(db_url(db), selects, work)
            elif step in ("csv", "sql"):
                steps[step] = export(example, db_url(db), [step], work / step)
            elif step == "full":
                steps[step] = export(example, db_url(db), None, work / step)
            elif step == "purge_reference":
                steps[step] = reference_purge(db, config, f"{db}_ref", work)
            else:
                steps[step] = purge(example, db, f"{db}_purge", work)
            say(f"[{scale:,}] {step}: {steps[step]['seconds']:.1f} s, peak {steps[step]['peak_mb']:.0f} MB")
        if "purge" in steps and "purge_reference" in steps:
            res["purge_same_rows_left"] = steps["purge"]["rows_left"] == steps["purge_reference"]["rows_left"]
    finally:
        drop_database(db)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(example, ignore_errors=True)
    return res


# --------------------------------------------------------------------------- report

LABELS = {
    "reference": "psql \\copy + sha256 (reference)",
    "csv": "export --format csv",
    "sql": "export --format sql",
    "full": "export, full package",
    "purge_reference": "psql DELETE (reference)",
    "purge": "purge",
}


def peaks_text(step: dict[str, Any], shown: int = 6) -> str:
    """``main 98 | worker 1 131, worker 3.2 127, … | 12 more ≤ 5`` (MB): the command's own
    process, the largest others (by their place in the tree), how many more and their
    largest (``sh``, ``ldconfig`` and the like, started by libraries to find theirs)."""
    procs = step["processes"]
    main = [p for p in procs if p["name"] == "main"]
    others = sorted((p for p in procs if p["name"] != "main"), key=lambda p: -p["peak_mb"])
    text = f"main {main[0]['peak_mb']:.0f}" if main else "main ?"
    if others:
        text += " | " + ", ".join(f"{p['name']} {p['peak_mb']:.0f}" for p in others[:shown])
    if len(others) > shown:
        text += f" | {len(others) - shown} more ≤ {others[shown]['peak_mb']:.0f}"
    return text


def report(results: dict[str, Any]) -> str:
    scales = results["scales"]
    small, big = scales[0], scales[-1]
    rows_ratio = big["activity_rows"] / small["activity_rows"] if small.get("activity_rows") else None
    header = ["step"] + [f"{s['scale']:,}: time" for s in scales] + ["time ×", "CPU ×", "max peak RSS (MB)"]
    table = [header]
    for step, label in LABELS.items():
        if not all(step in s["steps"] for s in scales):
            continue
        cells = [label] + [f"{s['steps'][step]['seconds']:.1f} s" for s in scales]
        a, b = small["steps"][step], big["steps"][step]
        cells.append(f"{b['seconds'] / a['seconds']:.1f}×" if len(scales) > 1 else "")
        cells.append(f"{b['cpu_s'] / a['cpu_s']:.1f}×" if len(scales) > 1 and a["cpu_s"] else "")
        cells.append(" / ".join(f"{s['steps'][step]['peak_mb']:.0f}" for s in scales))
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    activity = " / ".join(f"{s['activity_rows']:,}" for s in scales)
    customer = " / ".join(f"{s['customer_rows']:,}" for s in scales)
    lines = [f"acme's activity rows: {activity}" + (f" (× {rows_ratio:.2f})" if len(scales) > 1 else "")]
    lines[0] += f"; acme's rows in all: {customer}"
    for n, r in enumerate(table):
        lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("peak RSS of each process (MB), the kernel's ru_maxrss of the command in brackets:")
    for step, label in LABELS.items():
        for s in scales:
            if step in s["steps"] and step not in ("reference", "purge_reference"):
                m = s["steps"][step]
                lines.append(f"  {label}, {s['scale']:,}: {peaks_text(m)}  [{m['kernel_maxrss_mb']:.0f}]")
    if len(scales) > 1:
        lines.append("")
        worst = max(
            (p["peak_mb"], f"{LABELS[k]} ({p['name']})")
            for k, m in big["steps"].items()
            if k not in ("reference", "purge_reference")
            for p in m["processes"]
        )
        ratios = {
            k: big["steps"][k]["seconds"] / small["steps"][k]["seconds"]
            for k in big["steps"]
            if k in small["steps"] and k not in ("reference", "purge_reference")
        }
        slow = max(ratios, key=lambda k: ratios[k])
        lines.append(
            f"largest process at {big['scale']:,}: {worst[0]:.0f} MB in {worst[1]} "
            f"(≤ {PEAK_LIMIT_MB} MB: {'pass' if worst[0] <= PEAK_LIMIT_MB else 'MISS'}); "
            f"largest time ratio: {ratios[slow]:.1f}× ({LABELS[slow]}; ≤ {RATIO_LIMIT:g}×: "
            f"{'pass' if ratios[slow] <= RATIO_LIMIT else 'MISS'})"
        )
    for s in scales:
        if "purge_same_rows_left" in s:
            lines.append(f"same rows left after purge and reference, {s['scale']:,}: {s['purge_same_rows_left']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1000000,10000000", help="acme's activity rows per scale (1M,10M)")
    parser.add_argument("--only", help=f"comma-separated steps: {', '.join(STEPS)} (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="connections that load activity_log side by side (2)")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"where to write the results ({RESULTS})")
    parser.add_argument("--build-example", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=3, metavar=("ROWS", "URL", "JOBS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_example:
        from learnexit.demo import build_example

        build_example(Path(args.build_example), activity_rows=0)
        return 0
    if args.load:
        print(json.dumps(load(int(args.load[0]), args.load[1], int(args.load[2]))))
        return 0
    scales = sorted({int(s.replace("_", "")) for s in args.scales.split(",") if s.strip()})
    args.only = [p.strip() for p in args.only.split(",")] if args.only else None
    unknown = set(args.only or ()) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}")
    root = Path(tempfile.mkdtemp(prefix="learnexit-pgscale-"))
    started = time.time()
    results: dict[str, Any] = {
        "command": " ".join(["python", "bench/pg_scale.py", *(argv if argv is not None else sys.argv[1:])]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "load_before": os.getloadavg(),
        "scales": [],
    }
    try:
        for scale in scales:
            results["scales"].append(measure_scale(scale, args, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["seconds"] = time.time() - started
    results["load_after"] = os.getloadavg()
    print(report(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(
        f"\nresults: {args.json}  ({results['seconds']:.0f} s in all; load average "
        f"{results['load_before'][0]:.1f} before, {results['load_after'][0]:.1f} after)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
