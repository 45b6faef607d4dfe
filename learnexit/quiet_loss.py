"""Warnings where a config would lose data without a word (issue 18).

A schema without declared references makes export and purge "succeed" while the
per-person documents nest nothing and retained payments lose the people they point at.
These checks read only the schema and the config (no data) and return one-line notes for
``inspect`` and the export's notes:

- a retained table with a column whose name says it points at an owned table, but no
  reference (declared or ``[[relations]]``) that says so: the purge keeps what retained
  rows reference only when it knows the reference, so those rows would be deleted;
- a role table (completions, quiz results, …) with no reference from its person column
  to the people table: nothing of it can be nested under a person;
- a people table no owned table references at all: every person's record is empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .draft.schema import candidates, collect_facts

if TYPE_CHECKING:
    from .source import DataMap

# Roles whose rows belong under a person (``people`` and ``courses`` are the anchors).
_PERSON_ROLES = ("completions", "certificates", "quiz_results", "feedback", "activity")


def quiet_loss_notes(datamap: DataMap) -> list[str]:
    settings = datamap.settings
    edges = datamap.edges
    referenced = {(e.child, e.child_cols) for e in edges}
    notes: list[str] = []
    retained = [n for n in sorted(datamap.by_name) if settings.rule(n).retain and datamap.info[n].owned]
    if retained:
        facts = collect_facts(datamap.metadata)
        people = settings.roles["people"].table if "people" in settings.roles else None
        seen: set[tuple[str, str]] = set()
        for cand in candidates(facts, people, only=set(retained)):
            if cand.table not in retained or (cand.table, (cand.column,)) in referenced:
                continue
            target = cand.target.table
            if target == cand.table or not datamap.info[target].owned or settings.rule(target).retain:
                continue
            if (cand.table, cand.column) in seen:
                continue
            seen.add((cand.table, cand.column))
            notes.append(
                f"{cand.table} is retained, but {cand.table}.{cand.column} looks like a reference to {target} "
                f"that no foreign key or [[relations]] entry declares: the purge would delete the {target} rows "
                "it points at (add the relation, or `init --from-database` to measure it)"
            )
    people_role = settings.roles.get("people")
    if people_role is None:
        return notes
    people = people_role.table
    into_people = [e for e in edges if e.parent == people and e.child != people and datamap.info[e.child].owned]
    if datamap.info.get(people) is not None and datamap.info[people].owned and not into_people:
        notes.append(
            f"no owned table references the people table {people}: each person's record in the nested "
            "JSON/XML will be empty (declare the references, e.g. with `init --from-database`)"
        )
    for name in _PERSON_ROLES:
        role = settings.roles.get(name)
        if role is None or "person" not in role.columns:
            continue
        column = role.columns["person"]
        if not any(e.child == role.table and e.child_cols == (column,) and e.parent == people for e in edges):
            notes.append(
                f"[roles.{name}] {role.table}.{column} has no reference to {people}: its rows will not be "
                "nested under their person (add a [[relations]] entry)"
            )
    return notes
