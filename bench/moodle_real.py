"""`learnexit init --from-database` on Moodle's REAL schema (issue 18's figures).

    python bench/moodle_real.py --moodle-xml /work/moodle-xml
    python bench/moodle_real.py --moodle-xml DIR --log-rows 1000000 --keep site.db
    python bench/moodle_real.py --moodle-xml DIR --url postgresql+psycopg://postgres@127.0.0.1:5432/le_bench_real

DIR holds Moodle's ``db/install.xml`` files (any folder layout: every ``install.xml``
below DIR is read); they are read at run time and never part of learnexit.  Extract them
from a Moodle checkout with e.g.::

    git -C moodle ls-tree -r --name-only HEAD | grep 'db/install.xml$' | while read p; do
        mkdir -p "DIR/$(dirname $p)"; git -C moodle show "HEAD:$p" > "DIR/$p"; done

The script parses the XMLDB definitions (``<TABLE>``, ``<FIELD>``, ``<KEY>``, ``<INDEX>``),
creates every table with the prefix ``mdl_`` and Moodle's unique keys and indexes but
WITHOUT foreign keys (as Moodle does), fills one synthetic site (see ``fill``), times the
whole command ``learnexit init --from-database URL --out FILE --json`` as a child process,
and reports against the schema's declared foreign keys (``<KEY TYPE="foreign">`` and
``"foreign-unique"``, the truth):

- the share of declared foreign keys the draft proposes exactly (same columns, same
  referenced table and columns; composite keys count as one and only when proposed whole);
- the false relations (proposed, not declared), each with whether it changes what is
  exported (the per-person nesting of the JSON/XML export) or deleted (a retained or
  shared table keeps the rows it references);
- the declared foreign keys missed;
- the lines of ``examples/recipes/moodle.toml``'s hand edits still needed (see
  ``hand_lines``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from moodle_xmldb import Schema, fill, read_schema  # noqa: E402

PREFIX = "mdl_"

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "recipes" / "moodle.toml"


def create(engine: sa.Engine, schema: Schema) -> sa.MetaData:
    """Every table, ``id`` as the primary key, unique keys and indexes; no foreign keys."""
    metadata = sa.MetaData()
    types = {"number": sa.Numeric, "float": sa.Float, "binary": sa.LargeBinary}
    for t in schema.tables.values():
        cols = []
        for f in t.fields:
            if f.type == "char":
                typ: sa.types.TypeEngine[object] = sa.String(f.length or 255)
            elif f.type == "text":
                typ = sa.Text()
            elif f.type == "int":  # Moodle's own mapping of LENGTH to the integer types
                n = f.length or 10
                typ = sa.SmallInteger() if n <= 4 else sa.Integer() if n <= 9 else sa.BigInteger()
            else:
                typ = types.get(f.type, sa.Text)()
            cols.append(sa.Column(f.name, typ, primary_key=f.name == "id", nullable=not f.notnull or f.name == "id"))
        table = sa.Table(PREFIX + t.name, metadata, *cols)
        for i, unique in enumerate(t.uniques):
            sa.Index(f"{PREFIX}{t.name}_uq{i}", *[table.c[c] for c in unique], unique=True)
    metadata.create_all(engine)
    return metadata


def run_init(url: str, out: Path, exact: bool) -> tuple[dict[str, object], float]:
    command = [sys.executable, "-m", "learnexit", "init", "--from-database", url, "--out", str(out), "--json"]
    if exact:
        command.append("--exact")
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"init --from-database failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout), seconds


Rel = tuple[str, tuple[str, ...], str, tuple[str, ...]]


def _cols(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(","))


def proposed_relations(draft: dict[str, object]) -> set[Rel]:
    out: set[Rel] = set()
    for rel in draft.get("relations", []):  # type: ignore[union-attr]
        froms = rel["from"] if isinstance(rel["from"], list) else [rel["from"]]
        tos = rel["to"] if isinstance(rel["to"], list) else [rel["to"]]
        ft = froms[0].split(".", 1)[0]
        tt = tos[0].split(".", 1)[0]
        out.add((ft, tuple(f.split(".", 1)[1] for f in froms), tt, tuple(t.split(".", 1)[1] for t in tos)))
    return out


def nesting(relations: set[Rel], people: str, tables: list[str], person_cols: dict[str, str]) -> dict[str, Rel]:
    """Where each table goes in the per-person JSON/XML export: the export's rule
    (breadth first from the people table, through references to a table's ``id``; the
    role's person column first, then the parent's name, then the columns)."""
    placed = {people}
    level = [people]
    out: dict[str, Rel] = {}
    while level:
        found: dict[str, Rel] = {}
        for name in tables:
            if name in placed:
                continue
            options = [r for r in relations if r[0] == name and r[2] in level and r[2] != name and r[3] == ("id",)]
            if options:
                found[name] = min(options, key=lambda r: (r[1] != (person_cols.get(name),), r[2], r[1]))
        out.update(found)
        placed |= set(found)
        level = sorted(found)
    return out


def impact(false: set[Rel], proposed: set[Rel], config: dict[str, object], tables: list[str]) -> dict[Rel, list[str]]:
    """For each false relation: does it change the per-person export or the purge?"""
    roles = config.get("roles", {})
    people = roles.get("people", {}).get("table")  # type: ignore[union-attr]
    person_cols = {r["table"]: r.get("person") for r in roles.values() if "person" in r}  # type: ignore[union-attr]
    rules = config.get("tables", {})
    keeping = {n for n, r in rules.items() if r.get("retain") or r.get("shared")}  # type: ignore[union-attr]
    base = nesting(proposed, people, tables, person_cols) if people else {}
    out: dict[Rel, list[str]] = {}
    for rel in sorted(false):
        effects = []
        if people:
            without = nesting(proposed - {rel}, people, tables, person_cols)
            moved = sorted(t for t in set(base) | set(without) if base.get(t) != without.get(t))
            if moved:
                effects.append(f"export: moves {', '.join(moved[:5])}{' …' if len(moved) > 5 else ''} in the nesting")
        if rel[0] in keeping:
            effects.append(f"purge: {rel[0]} is retained/shared, so the rows of {rel[2]} it names are kept")
        out[rel] = effects
    return out


def confirmation(rel: Rel, schema: Schema) -> str | None:
    """Why a relation the schema does not declare is a reference all the same, when
    Moodle's own definition says so: the same column name is declared a reference to the
    same table elsewhere (``modifierid`` → ``user``), the column's COMMENT names the
    target (``The user who reviewed``), or the column is named after it (``userid``,
    ``owneruserid`` → ``user``)."""
    table = schema.tables.get(rel[0][len(PREFIX) :])
    target = rel[2][len(PREFIX) :]
    if table is None or len(rel[1]) != 1:
        return None
    column = rel[1][0]
    if any(fk.fields == (column,) and fk.reftable == target for fk in schema.foreign_keys):
        return f"{column} is declared a reference to {target} in another table"
    noun = " ".join(singular(w) for w in target.split("_"))
    field = next((f for f in table.fields if f.name == column), None)
    comment = " ".join((field.comment if field else "").lower().split())
    names = "|".join(re.escape(n) for n in {noun, noun.replace(" ", ""), noun.replace(" ", "_"), target})
    if re.search(rf"(?<!\w)({names})(?!\w)", comment):  # "user", not "event_queues" for event
        return f"its comment names {noun}: {comment[:80]!r}"
    flat = noun.replace(" ", "")
    exact = (flat + "id", noun.replace(" ", "_") + "_id")
    if column in exact or (target == "user" and column.endswith(exact)):  # owneruserid, recipientuserid
        return f"named {column} after {target}"
    return None


def singular(word: str) -> str:
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def hand_lines(draft: dict[str, Any], recipe: dict[str, Any]) -> list[str]:
    """The lines a person writes or edits in the draft for a correct Moodle offboarding:
    where the draft's [customer], [roles.*], [media] and legal bases differ from
    ``examples/recipes/moodle.toml`` (the recipe's relations and table rules are those of
    the tests' Moodle-like model; inspect checks the real draft's tables instead)."""
    out = []
    for key, value in recipe.get("customer", {}).items():
        if draft.get("customer", {}).get(key) != value:
            out.append(f"[customer] {key}")
    for table, rule in recipe.get("tables", {}).items():
        if "legal_basis" in rule and draft.get("tables", {}).get(table, {}).get("legal_basis") != rule["legal_basis"]:
            out.append(f"[tables.{table}] legal_basis")
    sections = [("media", recipe.get("media", {}), draft.get("media"))]
    sections += [(f"roles.{r}", cols, draft.get("roles", {}).get(r)) for r, cols in recipe.get("roles", {}).items()]
    for section, wanted, got in sections:
        if got is None:
            out.append(f"[{section}]")
        out += [f"[{section}] {k}" for k, v in wanted.items() if (got or {}).get(k) != v]
    out += [f"[roles.{r}] (to delete)" for r in draft.get("roles", {}) if r not in recipe.get("roles", {})]
    return out


def inspect_draft(text: str, url: str, tmp: Path) -> dict[str, object]:
    """``learnexit inspect`` with the draft, its FILL IN lines filled: what an operator
    sees before exporting (tables, unclassified, notes)."""
    config = tmp / "filled.toml"
    config.write_text(text.replace('"FILL IN"', '"Bookkeeping law, section (bench)"'), encoding="utf-8")
    customer = Path(url.split("///", 1)[1]).stem if url.startswith("sqlite") else url.rsplit("/", 1)[-1]
    command = [sys.executable, "-m", "learnexit", "inspect", customer, "--config", str(config), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=tmp)
    if done.returncode != 0:
        return {"exit_code": done.returncode, "error": done.stderr.strip()[-500:]}
    data = json.loads(done.stdout)
    return {k: data[k] if not isinstance(data[k], (list, dict)) else len(data[k]) for k in data if k != "source"}


def measure(args: argparse.Namespace, schema: Schema, tmp: Path) -> dict[str, object]:
    db = Path(args.db) if args.db else tmp / "site_a.db"
    url = args.url or f"sqlite:///{db}"
    engine = sa.create_engine(url)
    started = time.monotonic()
    if args.db and db.exists():  # built by an earlier run with the same options
        metadata = sa.MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            rows = {
                t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0)
                for t in metadata.sorted_tables
            }
    else:
        metadata = create(engine, schema)
        rows = fill(engine, metadata, schema, PREFIX, log_rows=args.log_rows, seed=args.seed)
    engine.dispose()
    built = time.monotonic() - started
    out = tmp / "drafted.toml"
    summary, seconds = run_init(url, out, args.exact)
    text = out.read_text(encoding="utf-8")
    if args.keep_draft:
        Path(args.keep_draft).write_text(text, encoding="utf-8")
    config = tomllib.loads(text)
    truth = {
        (PREFIX + fk.table, fk.fields, PREFIX + fk.reftable, fk.reffields)
        for fk in schema.foreign_keys
        if fk.reftable in schema.tables
    }
    inspected = inspect_draft(text, url, tmp)
    proposed = proposed_relations(summary)
    false = proposed - truth
    effects = impact(false, proposed, config, sorted(metadata.tables))
    hand = hand_lines(config, tomllib.loads(RECIPE.read_text(encoding="utf-8")))

    def show(r: Rel) -> str:
        return f"{r[0]}.({', '.join(r[1])}) → {r[2]}.({', '.join(r[3])})"

    composite = {r for r in truth if len(r[1]) > 1}
    confirmed = {r: why for r in false if (why := confirmation(r, schema))}
    partial = {r for r in false if any(t[0] == r[0] and set(r[1]) < set(t[1]) and t[2] == r[2] for t in truth)}
    unconfirmed = false - set(confirmed) - partial

    def effect(r: Rel) -> object:
        return effects[r] or "no change to what is exported or deleted"

    return {
        "tables": summary["tables"],
        "rows": sum(rows.values()),
        "log_rows": args.log_rows,
        "build_seconds": round(built, 1),
        "init_seconds": round(seconds, 2),
        "declared_foreign_keys": len(truth),
        "declared_to_id": sum(1 for r in truth if r[3] == ("id",)),
        "declared_composite": len(composite),
        "found": len(truth & proposed),
        "found_share": round(len(truth & proposed) / len(truth), 4),
        "found_composite": len(composite & proposed),
        "proposed": len(proposed),
        "false_relations": len(false),
        "false_changing_export_or_purge": sum(1 for e in effects.values() if e),
        "false_confirmed_by_moodle": len(confirmed),
        "false_part_of_a_declared_composite": len(partial),
        "false_unconfirmed": len(unconfirmed),
        "false_unconfirmed_changing_export_or_purge": sum(1 for r in unconfirmed if effects[r]),
        "false_unconfirmed_list": {show(r): effect(r) for r in sorted(unconfirmed)},
        "false_partial_list": {show(r): effect(r) for r in sorted(partial)},
        "false_confirmed_list": {show(r): [confirmed[r], effect(r)] for r in sorted(confirmed)},
        "missed": sorted(show(r) for r in truth - proposed),
        "rejected_name_matches": len(summary["rejected"]),  # type: ignore[arg-type]
        "inspect": inspected,
        "hand_written_lines": len(hand),
        "hand_written": hand,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--moodle-xml", required=True, type=Path, help="folder with Moodle's install.xml files")
    parser.add_argument("--log-rows", type=int, default=300_000)
    parser.add_argument("--url", help="an empty database to build the site in (default: a SQLite file)")
    parser.add_argument("--exact", action="store_true", help="draft with --exact (no sampling)")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--keep-draft", help="also write the drafted config here")
    parser.add_argument("--db", help="build the SQLite site in this file (kept), or reuse it when it exists")
    args = parser.parse_args()
    schema = read_schema(args.moodle_xml)
    if not schema.tables:
        sys.exit(f"no install.xml with tables under {args.moodle_xml}")
    with tempfile.TemporaryDirectory(prefix="le-moodle-real-") as tmp:
        report = measure(args, schema, Path(tmp))
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
