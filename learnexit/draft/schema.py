"""What names and types alone suggest: reference candidates, system tables, secrets, roles.

Nothing here reads data: ``evidence`` measures each candidate in the database, and only
measured candidates become ``[[relations]]``.  Names are compared without the schema's
table prefix (Moodle's ``mdl_``), in lower case, singular and plural alike, with the
naming conventions of Rails/Django (``user_id``), Moodle (``userid``, ``course``,
``usermodified``, ``parent``) and Canvas (``root_account_id``, ``context_id``).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

import sqlalchemy as sa

# A table prefix is a leading word shared by most tables (mdl_, wp_, canvas_).
_PREFIX_SHARE = 0.6

# Words that qualify a reference without changing what it points at.
_QUALIFIERS = (
    "parent",
    "related",
    "real",
    "root",
    "original",
    "primary",
    "default",
    "first",
    "last",
    "current",
    "new",
    "old",
    "source",
    "target",
    "prev",
    "previous",
    "next",
    "from",
    "to",
)
_AFTER = ("from", "to", "modified", "created", "deleted", "updated")
# Column names that mean "a person" whatever the people table is called.
_PERSON_WORDS = (
    "author",
    "creator",
    "modifier",
    "grader",
    "teacher",
    "reviewer",
    "owner",
    "sender",
    "recipient",
    "createdby",
    "modifiedby",
    "overrideby",
    "marker",
    "actor",
    "student",
    "instructor",
    "rater",
    "issuer",
    "assessor",
    "importer",
    "contact",
    "requester",
    "approver",
)
# Tables that keep earlier versions of another table's rows (``grade_items_history``):
# their own ids are not what ``oldid`` or ``parent`` point at, the kept table's are.
_HISTORY = ("history", "archive", "versions_log")
_OLD = ("old", "orig", "original")
# Bare nouns that are a row's own attribute, never a reference (assign.grade is a number,
# not an mdl_assign_grades row, however well its values happen to match).
_ATTRIBUTES = frozenset(
    "grade grades score status type state format version position level value values sortorder "
    "name count number mark marks points weight sequence path depth visible hidden timezone lang completion "
    "scale".split()
)
PEOPLE_NAMES = ("user", "users", "person", "people", "persons", "learner", "learners", "member", "members")
COURSE_NAMES = ("course", "courses", "class", "classes")
CUSTOMER_NAMES = (
    "organisation",
    "organisations",
    "organization",
    "organizations",
    "tenant",
    "tenants",
    "customer",
    "customers",
    "account",
    "accounts",
    "company",
    "companies",
    "school",
    "schools",
    "institution",
    "institutions",
)
_SYSTEM = re.compile(
    r"^(config|config_\w+|configuration|settings?|modules|block|blocks|capabilities|"
    r"cache_\w+|caches?|task_\w+|tasks?|upgrade_log|schema_migrations|ar_internal_metadata|"
    r"django_migrations|django_content_type|django_site|migrations?|mnet_\w+|events_handlers|"
    r"message_processors|message_providers|external_functions|external_services|"
    r"filter_active|repository|plugin_versions?|delayed_jobs|failed_jobs|jobs)$"
)
_SESSIONS = re.compile(r"(^|_)(sessions?|session_data)$")
_RETAIN = re.compile(r"(^|_)(payments?|invoices?|invoice_\w+|receipts?|transactions?|orders?|refunds?|ledger)(_|$)")
_SECRET = re.compile(
    r"^(password|passwd|pass_hash|password_hash|passwordhash|crypted_password|password_salt|salt|"
    r"secret|secret_key|secretkey|\w+_secret|otp_secret|token|\w+_token|privatetoken|api_key|apikey|"
    r"private_key|privatekey|sessdata|session_data|sid|hash|key_hash|\w+_key_hash|token_hash|secret_hash)$"
)
_SECRET_TABLE_VALUE = re.compile(r"(private_key|secrets?|credentials?|gateways?)$")


def strip_prefix(name: str, prefix: str) -> str:
    return name[len(prefix) :] if prefix and name.startswith(prefix) else name


def detect_prefix(names: list[str]) -> str:
    """``mdl_`` when most tables start with it, else ''."""
    firsts = Counter(n.split("_", 1)[0] + "_" for n in names if "_" in n)
    if not firsts:
        return ""
    word, count = firsts.most_common(1)[0]
    return word if count >= _PREFIX_SHARE * len(names) and len(names) > 3 else ""


_IRREGULAR = {"criteria": "criterion", "people": "person", "children": "child", "analyses": "analysis"}


def singular(word: str) -> str:
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("zzes"):  # quizzes
        return word[:-3]
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 2:
        return word[:-1]
    return word


@functools.lru_cache(maxsize=8192)
def forms(word: str) -> frozenset[str]:
    """A noun in the forms a table may use: singular, plural, without underscores."""
    one = singular(word)
    out = {word, one, one + "s", one + "es"} | {p for p, o in _IRREGULAR.items() if o == one}
    if one.endswith("y"):
        out.add(one[:-1] + "ies")
    return frozenset(out | {f.replace("_", "") for f in out})


def kind(column: sa.Column[object]) -> str | None:
    """'int', 'text' or None (not a key-like type)."""
    try:
        python = column.type.python_type
    except NotImplementedError:
        return None
    if python is int and not isinstance(column.type, sa.Boolean):
        return "int"
    if python is str:
        length = getattr(column.type, "length", None)
        return "text" if length is None or length <= 255 else None
    return None


@dataclass(frozen=True)
class Key:
    """A column other rows may point at: a single-column primary key or unique column."""

    table: str
    column: str
    kind: str


@dataclass(frozen=True)
class Candidate:
    """``table.column`` may reference ``target``; ``rank``: 0 through the table's own
    module (``forum_posts.discussion`` → ``forum_discussions``), 1 the name alone
    (``userid`` → ``user``), 2 through a qualifier, an abbreviation or a table's last
    words (``issuerid`` → ``oauth2_issuer``), 3 a person word (``importer`` → people)."""

    table: str
    column: str
    target: Key
    rank: int
    reason: str
    local: bool = False  # the target's name lies in the table's module (forum_* for forum_read)


@dataclass
class SchemaFacts:
    prefix: str
    tables: dict[str, sa.Table]
    keys: dict[str, list[Key]] = field(default_factory=dict)
    declared: set[tuple[str, str]] = field(default_factory=set)  # (table, column) with a declared key
    composite_keys: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)  # unique, several columns

    def base(self, table: str) -> str:
        return strip_prefix(table, self.prefix).lower()


def collect_facts(metadata: sa.MetaData) -> SchemaFacts:
    tables = {t.name: t for t in metadata.tables.values()}
    facts = SchemaFacts(detect_prefix(sorted(tables)), tables)
    for name, table in tables.items():
        keys: list[Key] = []
        pk = list(table.primary_key.columns)
        if len(pk) == 1 and (k := kind(pk[0])):
            keys.append(Key(name, pk[0].name, k))
        elif not pk and "id" in table.c and (k := kind(table.c["id"])):
            keys.append(Key(name, "id", k))
        for col in table.columns:
            if col.unique and not col.primary_key and (k := kind(col)):
                keys.append(Key(name, col.name, k))
        for index in table.indexes:
            cols = list(index.columns)
            if index.unique and len(cols) == 1 and (k := kind(cols[0])):
                if not any(x.column == cols[0].name for x in keys):
                    keys.append(Key(name, cols[0].name, k))
        for constraint in table.constraints:
            if isinstance(constraint, sa.UniqueConstraint) and len(constraint.columns) == 1:
                col = list(constraint.columns)[0]
                if (k := kind(col)) and not any(x.column == col.name for x in keys):
                    keys.append(Key(name, col.name, k))
        facts.keys[name] = keys
        facts.composite_keys[name] = _composite_keys(table)
        for fk in table.foreign_key_constraints:
            for col in fk.columns:
                facts.declared.add((name, col.name))
    return facts


def _composite_keys(table: sa.Table) -> list[tuple[str, ...]]:
    """Unique keys of several key-like columns (indexes and constraints alike)."""
    out: list[tuple[str, ...]] = []
    groups = [list(i.columns) for i in table.indexes if i.unique]
    groups += [list(c.columns) for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
    for cols in groups:
        names = tuple(c.name for c in cols)
        if len(cols) > 1 and all(kind(c) for c in cols) and names not in out:
            out.append(names)
    return out


def _stems(column: str) -> list[tuple[str, bool]]:
    """What a column's name may point at; True where a qualifier or a suffix was taken
    off (``relateduserid`` → user, ``usermodified`` → user), which makes it less sure."""
    c = column.lower()
    if c in ("parent", "parent_id", "parentid"):
        return [("@self", False)]
    if c.endswith("_id") and len(c) > 3:
        stem = c[:-3]
    elif c.endswith("id") and len(c) > 3 and not c.endswith("uuid"):
        stem = c[:-2]
    else:
        if c in _ATTRIBUTES:
            return []
        stem = c
    out: list[tuple[str, bool]] = [(stem, False)]
    for q in _QUALIFIERS:
        for sep in ("_", ""):
            if stem.startswith(q + sep) and len(stem) > len(q + sep) + 1:
                out.append((stem[len(q + sep) :], True))
    for a in _AFTER:
        for sep in ("_", ""):
            if stem.endswith(sep + a) and len(stem) > len(sep + a) + 1:
                rest = stem[: -len(sep + a)]  # usermodified → user, useridfrom → user
                rest = rest[:-3] if rest.endswith("_id") else rest[:-2] if rest.endswith("id") else rest
                out.append((rest, True))
    words = stem.split("_")
    if (
        any(w == stem or stem.endswith("_" + w) for w in _PERSON_WORDS)
        or "user" in words
        or (stem.endswith("by") and len(stem) > 4)  # created_by, requestedby
    ):
        out.append(("@person", True))
    return out


def _families(facts: SchemaFacts, base: str, first_words: set[str]) -> list[str]:
    """The module prefixes of a table: ``forum`` for ``forum_read``, ``user_info`` and
    ``user`` for ``user_info_data``, ``grading`` for ``gradingform_rubric_fillings``."""
    words = base.split("_")
    modules = ["_".join(words[:i]) for i in range(len(words), 0, -1)]  # its own name first: T.x → T_x
    modules += [singular(m) for m in modules if singular(m) != m]
    if len(words) == 1:
        modules.append(singular(base))
    head = words[0]
    modules += sorted(w for w in first_words if len(w) >= 4 and head.startswith(w) and w != head)
    return modules


@dataclass
class _Names:
    """Lookups built once per schema: tables by every form of their name, and per module
    prefix the tables below it (``forum`` → forum_posts as "posts")."""

    by_form: dict[str, list[str]]
    families: dict[str, list[tuple[str, str]]]
    first_words: set[str]
    by_tail: dict[str, list[str]]  # the last words of a name, run together: "issuer" → oauth2_issuer
    by_initials: dict[str, list[str]]  # "cm" → course_modules


def _names(facts: SchemaFacts) -> _Names:
    by_form: dict[str, list[str]] = {}
    families: dict[str, list[tuple[str, str]]] = {}
    by_tail: dict[str, list[str]] = {}
    by_initials: dict[str, list[str]] = {}
    for name in sorted(facts.tables):
        base = facts.base(name)
        for f in forms(base):
            by_form.setdefault(f, []).append(name)
        words = base.split("_")
        for i in range(1, len(words)):
            families.setdefault("_".join(words[:i]), []).append((name, "_".join(words[i:])))
            by_tail.setdefault("".join(words[i:]), []).append(name)
        if len(words) > 1 and all(w.isalpha() for w in words):
            by_initials.setdefault("".join(w[0] for w in words), []).append(name)
    first = {facts.base(n).split("_")[0] for n in facts.tables}
    return _Names(by_form, families, first, by_tail, by_initials)


def candidates(facts: SchemaFacts, people: str | None, only: Collection[str] | None = None) -> list[Candidate]:
    """Every (column, key) pair the names suggest, for columns of a key-like type that
    are not a table's own key and have no declared reference (ranks: see ``Candidate``).
    ``only``: the columns of these tables alone (the targets are still every table's)."""
    names = _names(facts)
    out: list[Candidate] = []
    for name, table in sorted(facts.tables.items()):
        if only is not None and name not in only:
            continue
        modules = _families(facts, facts.base(name), names.first_words)
        kept = _kept_table(facts, names, name)
        own = {c.name for c in table.primary_key.columns}
        for col in table.columns:
            ck = kind(col)
            if ck is None or col.name in own or (name, col.name) in facts.declared:
                continue
            seen: set[tuple[str, str]] = set()
            found = _targets(names, modules, name, col.name, people, kept)
            for target, rank, why in sorted(found, key=lambda x: x[1]):
                for key in facts.keys.get(target, []):
                    if key.kind != ck or (target == name and key.column == col.name):
                        continue
                    if key.column != "id" and key.kind == "int" and key.column != _pk(facts, target):
                        continue
                    if (target, key.column) in seen:
                        continue
                    seen.add((target, key.column))
                    local = any(facts.base(target).startswith(m + "_") for m in modules)
                    out.append(Candidate(name, col.name, key, rank, why, local))
    return out


def _kept_table(facts: SchemaFacts, names: _Names, name: str) -> str | None:
    """The table a history table keeps earlier rows of (``grade_items_history`` →
    ``grade_items``), when there is one."""
    base = facts.base(name)
    for word in _HISTORY:
        if base.endswith("_" + word):
            kept = [t for t in names.by_form.get(base[: -len(word) - 1], []) if t != name]
            return kept[0] if kept else None
    return None


def _targets(
    names: _Names, modules: list[str], name: str, column: str, people: str | None, kept: str | None
) -> list[tuple[str, int, str]]:
    out: list[tuple[str, int, str]] = []
    for stem, sure in _stems(column):
        if stem == "@self":
            if kept:  # a history row's parent is a row of the table it keeps the history of
                out.append((kept, 0, f"a parent in {kept}, which {name} keeps the history of"))
            else:
                out.append((name, 0, "a parent in the same table"))
            continue
        if stem == "@person":
            if people:
                out.append((people, 3, "a person column"))
            continue
        if kept and stem in _OLD:
            out.append((kept, 1, f"the name {column!r} in a history of {kept}"))
            continue
        out += _named(names, modules, name, column, stem, sure)
    return [(t, r, why) for t, r, why in out if t != name or r >= 2 or why.startswith("a parent")]


def _every_word(names: _Names, modules: list[str], name: str, column: str, stem: str) -> list[tuple[str, int, str]]:
    """A table of the module every word of whose name the column's name holds, in any
    order (``events_queue_handlers.queuedeventid`` → ``events_queue``): rank 1."""
    out = []
    for m in modules[1:]:
        for words, t in [(m.split("_"), x) for x in names.by_form.get(m, [])]:
            if t != name and len(words) > 1 and all(singular(w) in stem for w in words):
                out.append((t, 1, f"the name {column!r}: every word of {t}"))
    return out


def _named(
    names: _Names, modules: list[str], name: str, column: str, stem: str, sure: bool
) -> list[tuple[str, int, str]]:
    """The tables a stem names: in the table's module (rank 0, 2 when qualified), by
    the name alone (1), or by an abbreviation, initials or a table's last words (2)."""
    by_form = names.by_form
    weak = 2 if sure else None
    out: list[tuple[str, int, str]] = []
    flat = stem.replace("_", "")
    local = False
    for m in modules:
        why = f"the name {column!r} in {m}_*"
        for f in forms(stem):
            for t in by_form.get(f"{m}_{f}", []):
                if t != name or sure:  # (course_modules.module is not a course_modules row)
                    out.append((t, weak or 0, why))
                    local = True
        for t, last in names.families.get(m, []):  # several words run together: externalbackpack
            if "_" in last and flat in forms(last.replace("_", "")) and t != name:
                out.append((t, weak or 0, why))
                local = True
        if stem in (m + "ment", m + "ments"):  # assign_submission.assignment → assign
            out += [(t, weak or 0, why) for t in by_form.get(m, [])]
    out += _every_word(names, modules, name, column, stem)
    # the name alone; as sure as the module's table when there is one too (grade_outcomes.courseid:
    # course or grade_outcomes_courses?), the data then decides
    for t in by_form.get(stem, []) + by_form.get(flat, []):
        out.append((t, weak or (0 if local else 1), f"the name {column!r}"))
    if len(flat) >= 6 and not local:
        for f in forms(flat):
            tails = [t for t in names.by_tail.get(f, []) if t != name]
            out += [(t, 2, f"the name {column!r} (a table named *_{f})") for t in tails]
    if 2 <= len(stem) <= 3 and stem.isalpha():
        out += [(t, 2, f"the name {column!r} (initials of {t})") for t in names.by_initials.get(stem, [])]
    if len(stem) < 4:
        return out
    for m in modules:  # an abbreviation or a qualified noun within the module
        if "_" not in m and m.startswith(stem) and m != stem:  # commid → communication
            out += [(t, 2, f"the name {column!r} (short for {m})") for t in by_form.get(m, []) if t != name]
        for t, last in names.families.get(m, []):
            if "_" in last or (t == name and not sure):
                continue
            if (last.startswith(stem) and last != stem) or any(
                len(f) >= 4 and stem.endswith(f) and stem != f for f in forms(last)
            ):
                out.append((t, 2, f"the name {column!r} in {m}_*"))
    for i in range(1, len(stem) - 3):  # issuerrole → role
        suffix = stem[i:]
        if "_" not in suffix:
            out += [(t, 2, f"the name {column!r}") for t in by_form.get(suffix, [])]
    return out


def _pk(facts: SchemaFacts, table: str) -> str | None:
    pk = list(facts.tables[table].primary_key.columns)
    return pk[0].name if len(pk) == 1 else None


# --------------------------------------------------------------------------- tables' meaning


def find_named(facts: SchemaFacts, names: tuple[str, ...]) -> list[str]:
    return [t for t in sorted(facts.tables) if facts.base(t) in names]


def is_system(facts: SchemaFacts, table: str) -> bool:
    return bool(_SYSTEM.match(facts.base(table)))


def is_sessions(facts: SchemaFacts, table: str) -> bool:
    return bool(_SESSIONS.search(facts.base(table)))


def is_retained(facts: SchemaFacts, table: str) -> bool:
    base = facts.base(table)
    return bool(_RETAIN.search(base)) and not base.endswith(("_accounts", "_gateways", "_providers"))


def secret_columns(facts: SchemaFacts, table: str) -> list[str]:
    """Columns that must not leave the building: password hashes, tokens, session data,
    gateway configuration (which holds the gateway's secret)."""
    base = facts.base(table)
    out = []
    for col in facts.tables[table].columns:
        c = col.name.lower()
        if col.primary_key:
            continue
        if _SECRET.match(c) and not (c == "hash" and "password" not in base):
            out.append(col.name)
        elif c in ("value", "config") and _SECRET_TABLE_VALUE.search(base):
            out.append(col.name)
    return out


def first_column(table: sa.Table, names: tuple[str, ...]) -> str | None:
    lower = {c.name.lower(): c.name for c in table.columns}
    for n in names:
        if n in lower:
            return lower[n]
    return None
