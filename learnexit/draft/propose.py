"""From the schema and the measured evidence to a proposal: what the draft will say.

The proposal is plain data (``Proposal``); ``render`` writes it as a commented TOML file.
Every choice carries its reason, which becomes the comment above it in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from .composite import CompositeEvidence
from .evidence import Evidence
from .schema import (
    COURSE_NAMES,
    CUSTOMER_NAMES,
    PEOPLE_NAMES,
    SchemaFacts,
    find_named,
    first_column,
    is_retained,
    is_sessions,
    is_system,
    secret_columns,
)

ACCEPT_SHARE = 0.9  # below this a name match is not a reference (noted as rejected)
SURE_SHARE = 0.98
FILL_IN = "FILL IN"

PERSON_NAME_COLUMNS = ("name", "fullname", "full_name", "display_name", "displayname", "sortable_name", "username")
PERSON_EMAIL_COLUMNS = ("email", "email_address", "mail")
COURSE_TITLE_COLUMNS = ("fullname", "full_name", "title", "name", "shortname")
PERSONAL_WORDS = ("name", "email", "phone", "address", "city", "birth", "ip", "url", "description", "skype")


@dataclass
class RelationProposal:
    """One ``[[relations]]`` entry; a composite one has ``from_columns``/``to_columns``
    (and its ``from_column``/``to_column`` are those lists as text, for messages only)."""

    evidence: Evidence | CompositeEvidence | None
    from_table: str
    from_column: str
    to_table: str
    to_column: str
    sentinels: tuple[int, ...] = ()
    comment: str = ""
    from_columns: tuple[str, ...] = ()
    to_columns: tuple[str, ...] = ()

    def ends(self) -> tuple[list[str], list[str]]:
        """``from`` and ``to`` as lists of ``table.column``."""
        froms = self.from_columns or (self.from_column,)
        tos = self.to_columns or (self.to_column,)
        return [f"{self.from_table}.{c}" for c in froms], [f"{self.to_table}.{c}" for c in tos]


@dataclass
class TableProposal:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)


@dataclass
class Proposal:
    source_url: str
    tenancy: str
    customer_table: str | None = None
    customer_key: str | None = None
    customer_name_column: str | None = None
    customer_name_query: str | None = None  # tenancy "database": the site's own name
    customer_comments: list[str] = field(default_factory=list)
    relations: list[RelationProposal] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # name matches the data did not bear out
    tables: dict[str, TableProposal] = field(default_factory=dict)
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    role_comments: dict[str, str] = field(default_factory=dict)
    media: dict[str, str] | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def table(self, name: str) -> TableProposal:
        return self.tables.setdefault(name, TableProposal(name))


def describe(ev: Evidence) -> str:
    c = ev.candidate
    where = f"{c.target.table}.{c.target.column}"
    if not ev.checked:
        return f"no values to check (the column is empty or all 'none'): proposed from {c.reason} alone"
    text = f"{100 * ev.share:.1f} % of {ev.checked:,} values found in {where}"
    if ev.sampled:
        text += f" (a sample of {ev.table_rows:,} rows)"
    if ev.sentinels:
        text += f"; {ev.sentinel_rows:,} rows hold {' or '.join(map(str, ev.sentinels))}, taken to mean none"
    return text


def enough_values(ev: Evidence) -> bool:
    """Whether the values can tell a reference from a flag: a column holding only ``1``
    (besides "none") is found in every table.  A name ending in ``id`` (or a ``parent``)
    is trusted with one value (a site with one root account); a bare noun
    (``nosubmissions``, ``shared``) needs two when its name is the target's, three when
    it only resembles it (two in a table of fewer than six rows)."""
    c = ev.candidate
    if c.column.lower().endswith("id") or c.reason.startswith("a parent"):
        return ev.distinct >= 1
    if c.rank <= 1:
        return ev.distinct >= 2
    return ev.distinct >= (3 if ev.checked >= 6 else 2)


def choose_relations(facts: SchemaFacts, measured: list[Evidence], proposal: Proposal) -> None:
    """One reference per column: the surest name whose values the data bears out; among
    names as sure, the target whose keys the values cover best, then one of the table's
    own module."""
    by_column: dict[tuple[str, str], list[Evidence]] = {}
    for ev in measured:
        by_column.setdefault((ev.candidate.table, ev.candidate.column), []).append(ev)
    for (table, column), options in sorted(by_column.items()):
        # a name that matches only through a module or a qualifier needs near-perfect data
        good = [
            e
            for e in options
            if e.checked and e.share >= (ACCEPT_SHARE if e.candidate.rank <= 1 else SURE_SHARE) and enough_values(e)
        ]
        if not good:
            empty = [e for e in options if not e.checked and e.candidate.rank <= 1]
            targets = {(e.candidate.target.table, e.candidate.target.column) for e in empty}
            if len(targets) == 1:
                good = empty[:1]
        if not good:
            best = max(options, key=lambda e: e.share)
            why = describe(best)
            if best.checked and not enough_values(best):
                why += f"; only {best.distinct} distinct value(s): a flag or a count, not a reference"
            proposal.rejected.append(f"{table}.{column} → {best.candidate.target.table}: {why}")
            continue
        pick = min(
            good,
            key=lambda e: (
                e.candidate.rank,
                e.share < SURE_SHARE,
                -round(e.coverage, 1),
                not e.candidate.local,
                e.candidate.target.table,
            ),
        )
        c = pick.candidate
        proposal.relations.append(
            RelationProposal(pick, table, column, c.target.table, c.target.column, pick.sentinels, describe(pick))
        )


def add_composites(proposal: Proposal, good: list[CompositeEvidence], rest: list[CompositeEvidence]) -> None:
    """Composite references the data bears out, after the single-column ones."""
    for ev in sorted(good, key=lambda e: (e.candidate.table, e.candidate.columns)):
        c = ev.candidate
        proposal.relations.append(
            RelationProposal(
                ev,
                c.table,
                ", ".join(c.columns),
                c.target,
                ", ".join(c.target_columns),
                comment=ev.describe(),
                from_columns=c.columns,
                to_columns=c.target_columns,
            )
        )
    for ev in rest:
        if ev.checked and ev.share >= 0.5:  # near misses only: most pairs match nothing, by design
            c = ev.candidate
            proposal.rejected.append(f"{c.table}.({', '.join(c.columns)}) → {c.target}: {ev.describe()}")


def drop_from_shared(proposal: Proposal) -> None:
    """A shared table keeps every row it references (the purge must not break it), so a
    reference from a system table to people would keep those people: not proposed."""
    shared = {n for n, t in proposal.tables.items() if t.settings.get("shared")}
    kept = []
    for r in proposal.relations:
        if r.from_table in shared:
            proposal.rejected.append(
                f"{r.from_table}.{r.from_column} → {r.to_table}: {r.comment}; not proposed: "
                f"{r.from_table} is shared, and a shared table keeps the rows it references"
            )
        else:
            kept.append(r)
    proposal.relations = kept


def _refs_to(proposal: Proposal, facts: SchemaFacts, table: str, target: str) -> list[str]:
    cols = [
        r.from_column
        for r in proposal.relations
        if r.from_table == table and r.to_table == target and not r.from_columns
    ]
    for fk in facts.tables[table].foreign_key_constraints:
        if fk.referred_table.name == target and len(fk.columns) == 1:
            cols.append(list(fk.columns)[0].name)
    preferred = ("userid", "user_id", "person_id", "course", "courseid", "course_id")
    return sorted(cols, key=lambda c: (c.lower() not in preferred, c))


def propose_tables(facts: SchemaFacts, proposal: Proposal) -> None:
    people = find_named(facts, PEOPLE_NAMES)
    for name in sorted(facts.tables):
        if name == proposal.customer_table:
            continue
        if is_system(facts, name) and people and _refs_to(proposal, facts, name, people[0]):
            # shared would keep every person it names: the system's log of people goes with them
            t = proposal.table(name)
            t.settings["export"] = False
            t.comments.append(
                f"system table that names people ({people[0]}): deleted with the customer, not exported "
                "(shared would keep everyone it names)"
            )
            continue
        if is_system(facts, name):
            t = proposal.table(name)
            t.settings["shared"] = True
            t.comments.append("system table (configuration, plugins, caches, tasks): belongs to no one person")
            continue
        if is_sessions(facts, name):
            t = proposal.table(name)
            t.settings["export"] = False
            t.comments.append("sessions: deleted with the customer, never exported (they hold session secrets)")
            continue
        secrets = secret_columns(facts, name)
        if secrets:
            t = proposal.table(name)
            t.settings["omit_columns"] = secrets
            t.comments.append("secrets (password hashes, tokens, keys): deleted with the row, never exported")
        if is_retained(facts, name):
            t = proposal.table(name)
            t.settings["retain"] = "P7Y"
            t.settings["legal_basis"] = FILL_IN
            t.comments.append(
                "payments/invoices: kept after the purge for the bookkeeping law's period; name the law "
                "in legal_basis (the config refuses to load until you do), or delete these two lines"
            )


def propose_roles(facts: SchemaFacts, proposal: Proposal) -> None:
    people = find_named(facts, PEOPLE_NAMES)
    courses = find_named(facts, COURSE_NAMES)
    person = people[0] if people else None
    course = courses[0] if courses else None
    if person:
        t = facts.tables[person]
        pk = _pk_name(t)
        name = first_column(t, PERSON_NAME_COLUMNS) or first_column(t, ("lastname", "last_name", "surname"))
        if pk and name:
            role: dict[str, Any] = {"table": person, "id": pk, "name": name}
            if email := first_column(t, PERSON_EMAIL_COLUMNS):
                role["email"] = email
            if any(r.to_table == person and 0 in r.sentinels for r in proposal.relations):
                role["nobody"] = [0]  # the data writes 0 for "no person": never person #0
            proposal.roles["people"] = role
        retained_refs = [
            tp.name
            for tp in proposal.tables.values()
            if tp.settings.get("retain") and _refs_to(proposal, facts, tp.name, person)
        ]
        if retained_refs:
            personal = [
                c.name
                for c in t.columns
                if not c.primary_key
                and kind_is_text(c)
                and any(w in c.name.lower() for w in PERSONAL_WORDS)
                and c.name not in proposal.table(person).settings.get("omit_columns", [])
            ]
            if personal:
                tp = proposal.table(person)
                tp.settings["personal_columns"] = personal
                tp.comments.append(
                    f"kept while {', '.join(retained_refs)} (retained) point at its rows: these columns are blanked"
                )
    if course:
        t = facts.tables[course]
        pk, title = _pk_name(t), first_column(t, COURSE_TITLE_COLUMNS)
        if pk and title:
            proposal.roles["courses"] = {"table": course, "id": pk, "title": title}
    if person:
        _record_roles(facts, proposal, person, course)


def _record_roles(facts: SchemaFacts, proposal: Proposal, person: str, course: str | None) -> None:
    """Completions, certificates, quiz results, feedback and activity: tables whose names
    say so and that reference the people table (and, where the role needs it, courses)."""

    def with_person(words: tuple[str, ...], exclude: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        out = []
        for name in sorted(facts.tables):
            base = facts.base(name)
            if not any(w in base for w in words) or any(x in base for x in exclude):
                continue
            if proposal.tables.get(name, TableProposal(name)).settings.get("shared"):
                continue
            cols = _refs_to(proposal, facts, name, person)
            if cols:
                out.append((name, cols[0]))
        # the module's own tables first: feedback_completed before assignfeedback_editpdf_quick
        return sorted(out, key=lambda x: not any(facts.base(x[0]).startswith(w + "_") for w in words))

    def course_col(table: str) -> str | None:
        cols = _refs_to(proposal, facts, table, course) if course else []
        return cols[0] if cols else None

    for name, pcol in with_person(("completion",), ("modules",)):
        if (ccol := course_col(name)) and "completions" not in proposal.roles:
            role: dict[str, Any] = {"table": name, "person": pcol, "course": ccol}
            if at := first_column(facts.tables[name], ("timecompleted", "completed_at", "completion_date")):
                role["completed_at"] = at
                if facts.tables[name].c[at].nullable:  # a row per enrolment, completed when set
                    role["completed_only"] = True
            proposal.roles["completions"] = role
    for name, pcol in with_person(("certificate",)):
        if (ccol := course_col(name)) and "certificates" not in proposal.roles:
            role = {"table": name, "person": pcol, "course": ccol}
            if at := first_column(facts.tables[name], ("timecreated", "issued_at", "dateissued", "created_at")):
                role["issued_at"] = at
            proposal.roles["certificates"] = role
    quiz = sorted(with_person(("quiz",)), key=lambda x: ("attempt" not in x[0] and "submission" not in x[0], x[0]))
    if quiz:
        name, pcol = quiz[0]
        role = {"table": name, "person": pcol}
        t = facts.tables[name]
        quiz_refs = [(c, q) for q in find_named(facts, ("quiz", "quizzes")) for c in _refs_to(proposal, facts, name, q)]
        if quiz_refs:
            role["quiz"] = quiz_refs[0][0]
        if score := first_column(t, ("score", "sumgrades", "grade", "kept_score")):
            role["score"] = score
        if most := first_column(t, ("max_score", "quiz_points_possible", "points_possible", "maxmark")):
            role["max_score"] = most
        elif quiz_refs and score and score in facts.tables[quiz_refs[0][1]].c:
            role["max_score"] = f"{quiz_refs[0][1]}.{score}"  # the quiz's own column of that name (quiz.sumgrades)
        proposal.roles["quiz_results"] = role
    feedback = with_person(("feedback", "survey"))
    if feedback:
        name, pcol = feedback[0]
        role = {"table": name, "person": pcol}
        t = facts.tables[name]
        if q := first_column(t, ("question", "question_id", "questionid", "item")):
            role["question"] = q
        if a := first_column(t, ("answer", "answer1", "value", "response")):
            role["answer"] = a
        proposal.roles["feedback"] = role
    logs = with_person(("log", "page_views", "access"), ("upgrade",))
    logs.sort(key=lambda x: -_rows_hint(facts, x[0]))
    if logs:
        name, pcol = logs[0]
        role = {"table": name, "person": pcol}
        if at := first_column(facts.tables[name], ("timecreated", "created_at", "time", "timestamp", "at")):
            role["at"] = at
        proposal.roles["activity"] = role


def _rows_hint(facts: SchemaFacts, table: str) -> int:
    """Prefer the standard log over other log-like tables (by name, not by size)."""
    base = facts.base(table)
    return 2 if "standard_log" in base or base == "page_views" else 1 if base.endswith("log") else 0


def kind_is_text(col: sa.Column[Any]) -> bool:
    try:
        return col.type.python_type is str
    except NotImplementedError:
        return False


def _pk_name(table: sa.Table) -> str | None:
    pk = list(table.primary_key.columns)
    if len(pk) == 1:
        return pk[0].name
    return "id" if "id" in table.c else None


def propose_media(facts: SchemaFacts, proposal: Proposal) -> None:
    for name in find_named(facts, ("files", "attachments")):
        t = facts.tables[name]
        if "contenthash" in t.c:
            proposal.media = {
                "root": "moodledata" + ("/{customer}" if proposal.tenancy == "database" else ""),
                "table": name,
                "path_template": "filedir/{contenthash[0:2]}/{contenthash[2:4]}/{contenthash}",
                "name_column": first_column(t, ("filename",)) or "",
                "size_column": first_column(t, ("filesize",)) or "",
                "checksum_column": "contenthash",
                "checksum_algorithm": "sha1",
            }
        elif path := first_column(t, ("storage_path", "path", "filepath", "file_path")):
            proposal.media = {"root": "FILL IN", "table": name, "path_column": path}
            if n := first_column(t, ("filename", "display_name", "name")):
                proposal.media["name_column"] = n
        if proposal.media:
            proposal.media = {k: v for k, v in proposal.media.items() if v}
            return


def propose_customer(facts: SchemaFacts, proposal: Proposal, customer_table: str | None) -> None:
    named = find_named(facts, CUSTOMER_NAMES)
    if customer_table:
        proposal.tenancy = "shared"
        proposal.customer_table = customer_table
        proposal.customer_comments.append("the customer table you named")
    elif named:
        proposal.tenancy = "shared"
        proposal.customer_table = named[0]
        proposal.customer_comments.append(f"the table whose name says tenant: {named[0]}")
        if named[1:]:
            proposal.customer_comments.append(f"other candidates: {', '.join(named[1:])}")
    else:
        proposal.tenancy = "database"
        proposal.customer_comments.append(
            "no table names a tenant (organisation, account, customer, school…): one database per customer; "
            "{customer} in [source] url stands for the database's name"
        )
        return
    t = facts.tables[proposal.customer_table]
    key = first_column(t, ("slug", "key", "code", "shortname", "short_name", "subdomain", "uuid", "name"))
    proposal.customer_key = key or _pk_name(t)
    proposal.customer_name_column = first_column(t, ("name", "display_name", "title", "fullname", "full_name"))


def propose_site_name(facts: SchemaFacts, proposal: Proposal, conn: Any) -> None:
    """Tenancy "database": Moodle keeps the site's name in its front-page course (the one
    with format 'site'); when the data has it, letters can use it."""
    if proposal.tenancy != "database":
        return
    for name in find_named(facts, COURSE_NAMES):
        t = facts.tables[name]
        title = first_column(t, ("fullname", "full_name", "name", "title"))
        if "format" not in t.c or title is None:
            continue
        stmt = sa.select(t.c[title]).where(t.c["format"] == "site").limit(1)
        if conn.execute(stmt).first() is not None:
            proposal.customer_name_query = f"SELECT {title} FROM {name} WHERE format = 'site'"
            return
