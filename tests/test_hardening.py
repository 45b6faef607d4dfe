"""Hostile packages and hostile names (issue 17, items 5-7).

* ``verify`` on a zip bomb: one problem, exit 1, memory far below what the zip would
  inflate to (the declared sizes honest, lying, or spread over many members).
* Table and column names with control characters: every format exports, ``verify``
  passes, the log keeps one line per event (text and JSON), bag-info.txt, index.html and
  the notes show the names escaped; a MySQL/MariaDB dump of names MySQL cannot hold is
  refused before anything is written, and one of odd but legal names loads.
* Formula-looking text stays exact in CSV, index.html says how to open CSVs safely, and
  Excel keeps it as text.

Sources are real SQLite files made here with ``sqlite3`` (SQLAlchemy would quote the
names the same way); the command runs as a separate process, as an operator runs it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa

from learnexit.package import limits as package_limits

EVIL = "evil\ntable"  # a line break inside a table name
SEPARATOR = "line\u2028sep"  # U+2028: a line break for str.splitlines and many log readers
LONG = "t" * 60  # legal in MySQL, but its own foreign key name (<table>_ibfk_1) would not be
CONTROL_COLUMN = "col\x01x"
FORMULAS = ["=1+1", "+SUM(A1:A9)", "-2+3", "@cmd", '=HYPERLINK("http://x.example","y")']
MiB = 1 << 20


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def write_config(folder: Path, db: Path) -> Path:
    cfg = folder / "learnexit.toml"
    cfg.write_text(
        f'[source]\nurl = "sqlite:///{db}"\n[state]\nurl = "sqlite:///{folder / "state.db"}"\n'
        '[customer]\ntable = "orgs"\nkey = "slug"\nname_column = "name"\n',
        encoding="utf-8",
    )
    return cfg


def make_source(folder: Path, tables: dict[str, list[str]], rows: dict[str, list[tuple[Any, ...]]]) -> Path:
    """``orgs`` (a and b) and ``tables``: name → extra text columns, each with ``org_id``."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "source.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orgs (id INTEGER PRIMARY KEY, slug TEXT NOT NULL, name TEXT)")
        conn.executemany("INSERT INTO orgs VALUES (?, ?, ?)", [(1, "a", "Org A"), (2, "b", "Org B")])
        for table, columns in tables.items():
            extra = "".join(f", {q(c)} TEXT" for c in columns)
            conn.execute(
                f"CREATE TABLE {q(table)} (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id){extra})"
            )
            marks = ", ".join("?" for _ in range(2 + len(columns)))
            conn.executemany(f"INSERT INTO {q(table)} VALUES ({marks})", rows[table])
    write_config(folder, db)
    return folder / "learnexit.toml"


def learnexit(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEARNEXIT_")}
    env["LEARNEXIT_ACTOR"] = "tester@example"
    return subprocess.run(
        [sys.executable, "-m", "learnexit", *argv], capture_output=True, text=True, timeout=600, env=env, cwd=cwd
    )


@dataclass
class Evil:
    root: Path
    config: Path


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory) -> Evil:
    root = tmp_path_factory.mktemp("evil")
    formulas = [(10 + i, 1, text) for i, text in enumerate(FORMULAS)]
    config = make_source(
        root,
        {EVIL: [CONTROL_COLUMN], SEPARATOR: ["note"], LONG: ["note"]},
        {
            EVIL: [(1, 1, "v1"), *formulas, (2, 2, "b-secret")],
            SEPARATOR: [(1, 1, "n1"), (2, 2, "b-secret")],
            LONG: [(1, 1, "l1"), (2, 2, "b-secret")],
        },
    )
    return Evil(root, config)


# --------------------------------------------------------------------------- item 6: names


def one_line_events(stderr: str, log_format: str) -> list[dict[str, Any]]:
    """Every stderr line is one whole event (str.splitlines splits on U+2028 too)."""
    events = []
    for line in stderr.splitlines():
        if log_format == "json":
            events.append(json.loads(line))  # a forged or broken line does not parse
        else:
            assert line.startswith("learnexit: "), f"not an event line: {line!r}"
            name, *fields = line.removeprefix("learnexit: ").removeprefix("debug: ").split(" ")
            events.append({"event": name, **dict(f.split("=", 1) for f in fields if "=" in f)})
    return events


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_identifiers_with_control_characters_keep_logs_one_line_and_the_package_valid(
    evil: Evil, log_format: str
) -> None:
    out = evil.root / f"out-{log_format}"
    done = learnexit(  # (per-table events are debug level)
        "--log-format", log_format, "--log-level", "debug", "export", "a", "--config", str(evil.config), "--out", str(out)
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = one_line_events(done.stderr, log_format)
    tables = [e["table"] for e in events if e["event"] == "export_table"]
    if log_format == "json":
        assert sorted(tables) == sorted(["orgs", EVIL, SEPARATOR, LONG])  # exact names, escaped as JSON
        assert "\u2028" not in done.stderr and "\\u2028" in done.stderr
    else:
        assert sorted(tables) == sorted(["orgs", "evil\\x0atable", "line\\u2028sep", LONG])
    assert [e["event"] for e in events].count("export_completed") == 1

    (package,) = out.iterdir()
    check = learnexit("verify", str(package))
    assert check.returncode == 0, check.stdout + check.stderr
    info = (package / "bag-info.txt").read_text(encoding="utf-8")
    for line in info.splitlines():  # (U+2028 included)
        assert line.split(": ", 1)[0].replace("-", "").isalnum(), f"not a tag line: {line!r}"
    assert f"Learnexit-Rows: evil\\x0atable={1 + len(FORMULAS)}\n" in info
    assert "Learnexit-Rows: line\\u2028sep=1\n" in info
    page = (package / "data" / "index.html").read_text(encoding="utf-8")
    assert "<td>evil\\x0atable</td>" in page and "<td>line\\u2028sep</td>" in page
    assert EVIL not in page and SEPARATOR not in page and "\x01" not in page
    descriptor = json.loads((package / "data" / "datapackage.json").read_text(encoding="utf-8"))
    titles = {r["title"]: r for r in descriptor["resources"] if r["type"] == "table"}
    assert set(titles) == {"orgs", EVIL, SEPARATOR, LONG}  # the exact names, as JSON carries them
    with open(package / "data" / titles[EVIL]["path"], encoding="utf-8", newline="") as f:
        assert next(csv.reader(f)) == ["id", "org_id", CONTROL_COLUMN]  # the data keep the exact names
    result = learnexit("export", "a", "--config", str(evil.config), "--out", str(out) + "-notes", "--json")
    notes = json.loads(result.stdout)["notes"]
    assert any("evil\\x0atable" in n for n in notes) and not any(EVIL in n or "\x01" in n for n in notes)


def test_mysql_dump_refuses_names_mysql_cannot_hold_before_writing(tmp_path: Path) -> None:
    emoji, long_column = "mood🎓", "c" * 65
    config = make_source(
        tmp_path,
        {"bad table\n": [emoji, long_column], "fine": ["trailing "]},
        {"bad table\n": [(1, 1, "x", "y")], "fine": [(1, 1, "z")]},
    )
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "out"
    done = learnexit(
        "export", "a", "--config", str(config), "--out", str(out), "--format", "csv,sql", "--sql-dialect", "mysql"
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("learnexit: error: --sql-dialect mysql: MySQL and MariaDB cannot hold 4 name(s)")
    assert "table 'bad table\\x0a' ends with a space or a line break" in line
    assert "column 'bad table\\x0a'.'mood🎓' has a character outside the Basic Multilingual Plane" in line
    assert f"'{long_column}' is longer than 64 characters (65)" in line
    assert "and 1 more" in line  # fine."trailing "
    assert not out.exists()  # nothing written, no package, no .partial
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "state.db") == before
    # the same source exports to the other dialects
    other = learnexit(
        "export", "a", "--config", str(config), "--out", str(out), "--format", "sql", "--sql-dialect", "sqlite"
    )
    assert other.returncode == 0, other.stderr


def test_mysql_dump_of_odd_but_legal_names_loads_into_mariadb(evil: Evil, db_factory) -> None:
    from test_formats import load_dump

    out = evil.root / "out-mysql"
    done = learnexit(
        "export", "a", "--config", str(evil.config), "--out", str(out), "--format", "sql", "--sql-dialect", "mysql"
    )
    assert done.returncode == 0, done.stderr
    (package,) = out.iterdir()
    url = db_factory("mariadb").new("odd")
    load_dump("mariadb", url, package / "data" / "sql" / "a.sql")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) == {"orgs", EVIL, SEPARATOR, LONG}
            rows = conn.execute(sa.text(f"SELECT `{CONTROL_COLUMN}` FROM `{EVIL}` ORDER BY id")).scalars().all()
            assert rows == ["v1", *FORMULAS]
            assert [fk["referred_table"] for fk in sa.inspect(conn).get_foreign_keys(LONG)] == ["orgs"]
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- item 7: formulas


def test_formula_text_stays_exact_in_csv_and_index_says_how_to_open_it(evil: Evil) -> None:
    out = evil.root / "out-formulas"
    done = learnexit("export", "a", "--config", str(evil.config), "--out", str(out), "--format", "csv,xlsx")
    assert done.returncode == 0, done.stderr
    (package,) = out.iterdir()
    descriptor = json.loads((package / "data" / "datapackage.json").read_text(encoding="utf-8"))
    path = next(r["path"] for r in descriptor["resources"] if r.get("title") == EVIL)
    with open(package / "data" / path, encoding="utf-8", newline="") as f:
        cells = [row[CONTROL_COLUMN] for row in csv.DictReader(f)]
    assert cells == ["v1", *FORMULAS]  # exact: no quote, no apostrophe added
    page = (package / "data" / "index.html").read_text(encoding="utf-8")
    assert "<h2 id=csv-safety>Opening the CSV files safely</h2>" in page
    assert "Import the files instead" in page and "never a formula" in page
    workbook = openpyxl.load_workbook(package / "data" / "excel" / "a.xlsx")
    texts = {
        cell.value: cell.data_type for ws in workbook.worksheets for row in ws.iter_rows() for cell in row if cell.value
    }
    assert all(texts[f] == "s" for f in FORMULAS)  # strings, never formulas
    assert all(c.data_type != "f" for ws in workbook.worksheets for row in ws.iter_rows() for c in row)


# --------------------------------------------------------------------------- item 5: zip bombs


@pytest.fixture(scope="module")
def zipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sound zipped package of a plain source (what the bombs are made from)."""
    root = tmp_path_factory.mktemp("zipped")
    config = make_source(root, {"items": ["title"]}, {"items": [(1, 1, "one"), (2, 1, "two"), (3, 2, "b")]})
    out = root / "out"
    done = learnexit("export", "a", "--config", str(config), "--out", str(out), "--format", "csv", "--zip")
    assert done.returncode == 0, done.stderr
    (package,) = out.iterdir()
    assert learnexit("verify", str(package)).returncode == 0
    return package


def _zeros(dst: Any, size: int) -> None:
    block = bytes(MiB)
    for _ in range(size // MiB):
        dst.write(block)


def rebuild(source: Path, dest: Path, *, replace: str, size: int, extra: int = 0) -> None:
    """``source`` copied with ``replace`` (a tag file) swapped for ``size`` zero bytes,
    plus ``extra`` members of 4 MiB of zeros each."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
        top = zin.namelist()[0].split("/")[0]
        for info in zin.infolist():
            if info.filename == f"{top}/{replace}":
                member = zipfile.ZipInfo(info.filename, info.date_time)
                member.compress_type = zipfile.ZIP_DEFLATED
                with zout.open(member, "w") as dst:
                    _zeros(dst, size)
            else:
                zout.writestr(info, zin.read(info))
        for n in range(extra):
            with zout.open(f"{top}/data/pad-{n}.bin", "w") as dst:
                _zeros(dst, 4 * MiB)


def lie_about_size(path: Path, member_suffix: str, declared: int) -> None:
    """Patch the member's uncompressed size, in its local header and its central directory entry."""
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(member_suffix))
        start = zf.start_dir
    data = bytearray(path.read_bytes())
    assert data[info.header_offset : info.header_offset + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, info.header_offset + 22, declared)
    pos = start
    while data[pos : pos + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        if data[pos + 46 : pos + 46 + name_len].decode() == info.filename:
            struct.pack_into("<I", data, pos + 24, declared)
            break
        pos += 46 + name_len + extra_len + comment_len
    else:
        raise AssertionError("central directory entry not found")
    path.write_bytes(bytes(data))


MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "learnexit", "verify", "--json", sys.argv[1]], capture_output=True, text=True)
print(json.dumps({"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def verify_measured(path: Path) -> dict[str, Any]:
    """``learnexit verify --json`` in a process of its own, with its peak memory (KiB)."""
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


INFLATED = 256 * MiB


@pytest.mark.parametrize("variant", ["honest", "lying", "many"])
def test_verify_refuses_zip_bomb_with_bounded_memory(zipped: Path, tmp_path: Path, variant: str) -> None:
    bomb = tmp_path / f"bomb-{variant}.zip"
    if variant == "many":  # each member small enough to pass on its own; together 80 MiB from kilobytes
        rebuild(zipped, bomb, replace="bag-info.txt", size=MiB, extra=20)
    else:
        rebuild(zipped, bomb, replace="bag-info.txt", size=INFLATED)
    if variant == "lying":  # the header says 1 MiB: no ratio to judge, the inflating must stop
        lie_about_size(bomb, "/bag-info.txt", MiB)
    assert bomb.stat().st_size < 2 * MiB
    got = verify_measured(bomb)
    assert got["maxrss_kib"] * 1024 < INFLATED / 2, f"verify peaked at {got['maxrss_kib'] // 1024} MiB"
    assert got["code"] == 1, got
    problems = json.loads(got["stdout"])["problems"]
    assert len(problems) == 1, problems
    assert "\n" not in problems[0]
    if variant == "lying":
        assert problems[0].startswith("cannot read bag-info.txt") or problems[0].startswith("zip bomb:"), problems
    else:
        assert problems[0].startswith("zip bomb:") and "nothing was read" in problems[0], problems
    assert got["stderr"].count("\n") == 1 and "verification failed: 1 problem(s)" in got["stderr"]


def test_verify_caps_an_oversized_tag_file_in_a_folder(zipped: Path, tmp_path: Path) -> None:
    """The same bomb, unpacked: bag-info.txt of 256 MiB in a bag folder is not read whole."""
    with zipfile.ZipFile(zipped) as zf:
        zf.extractall(tmp_path)
    (bag,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    with open(bag / "bag-info.txt", "wb") as f:
        _zeros(f, INFLATED)
    got = verify_measured(bag)
    assert got["maxrss_kib"] * 1024 < INFLATED / 2, f"verify peaked at {got['maxrss_kib'] // 1024} MiB"
    assert got["code"] == 1, got
    problems = json.loads(got["stdout"])["problems"]
    assert "bag-info.txt is larger than 16.0 MiB; not read" in problems, problems


def test_streamed_readers_match_whole_file_parsing_in_tiny_pieces(evil: Evil, monkeypatch) -> None:
    """The line and JSON readers verify relies on give what reading whole files gives,
    however the pieces fall (here 7 bytes: numbers, strings, CRLF cut in the middle)."""

    out = evil.root / "out-stream"
    done = learnexit("export", "a", "--config", str(evil.config), "--out", str(out), "--format", "csv,json")
    assert done.returncode == 0, done.stderr
    (package,) = out.iterdir()
    monkeypatch.setattr(package_limits, "CHUNK", 7)
    raw = (package / "data" / "datapackage.json").read_bytes()
    whole = json.loads(raw)
    expected = {r["title"]: r["path"] for r in whole["resources"] if r["type"] == "table"}
    assert package_limits.table_paths(io.BytesIO(raw), lambda t: True, "datapackage.json") == expected
    assert package_limits.table_paths(io.BytesIO(raw), lambda t: t == EVIL, "x") == {EVIL: expected[EVIL]}
    text = b"a  x\r\nbb y\rccc z\n\nlast"
    assert list(package_limits.lines(io.BytesIO(text), 100, "m")) == text.splitlines()
    manifest = (package / "manifest-sha256.txt").read_bytes()
    assert list(package_limits.lines(io.BytesIO(manifest), len(manifest), "m")) == manifest.splitlines()
    with pytest.raises(package_limits.TooLarge):
        list(package_limits.lines(io.BytesIO(manifest), len(manifest) - 1, "m"))
    for bad in (b'{"resources": [1, 2', b'{"a": 1} x', b"[]"):
        with pytest.raises(ValueError):
            package_limits.table_paths(io.BytesIO(bad), lambda t: True, "x")
