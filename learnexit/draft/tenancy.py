"""Shared tenancy: classify what the reference chain from the customer table misses.

The draft so far is classified as ``inspect`` would classify it (the same ``DataMap``),
and every table left unclassified gets a proposal: the people table, referenced by the
customer's membership rows, ``owned_via`` those; a table only the customer's rows
reference (a global catalogue) ``shared``; anything else stays for the operator, with
the reason in a comment.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import sqlalchemy as sa

from ..config import settings_from_data
from ..errors import LearnexitError
from ..source import DataMap
from .propose import FILL_IN, Proposal
from .render import render
from .schema import SchemaFacts, is_system

MEMBERSHIP_WORDS = ("membership", "login", "pseudonym", "account_user", "association", "enrol", "member")


def _datamap(proposal: Proposal, metadata: sa.MetaData, tables: int) -> DataMap | None:
    text = render(proposal, tables, "").replace(f'"{FILL_IN}"', '"(to fill in)"')
    try:
        settings = settings_from_data(tomllib.loads(text), "(draft)", None, Path.cwd(), {}, None, "sqlite://")
        return DataMap(settings, metadata)
    except (LearnexitError, tomllib.TOMLDecodeError):
        return None


def classify_shared(facts: SchemaFacts, proposal: Proposal, metadata: sa.MetaData, people: str | None) -> None:
    if proposal.tenancy != "shared":
        return
    dm = _datamap(proposal, metadata, len(facts.tables))
    if dm is None:
        return
    unclassified = set(dm.unclassified())
    if people in unclassified:
        refs = sorted(
            (e.child, e.child_cols[0])
            for e in dm.edges
            if e.parent == people and len(e.child_cols) == 1 and dm.info[e.child].owned
        )
        members = [r for r in refs if any(w in facts.base(r[0]) for w in MEMBERSHIP_WORDS)] or refs
        if members:
            t = proposal.table(people)
            t.settings["owned_via"] = [f"{a}.{b}" for a, b in members]
            t.comments.append(
                "people live in one global table: a person is the customer's when these rows of the customer "
                "name them (people of several customers are kept until the last one leaves)"
            )
        dm = _datamap(proposal, metadata, len(facts.tables)) or dm
    for name in dm.unclassified():
        owned_refs = sorted(
            (e.child, e.child_cols[0])
            for e in dm.edges
            if e.parent == name and len(e.child_cols) == 1 and dm.info[e.child].owned and e.child != name
        )
        references = [e.parent for e in dm.edges if e.child == name and e.parent != name]
        t = proposal.table(name)
        if owned_refs and references:  # a person's row the customer's rows point at
            t.settings["owned_via"] = [f"{a}.{b}" for a, b in owned_refs]
            t.comments.append(
                "a global table the customer's rows point at, which points at people: the customer's rows "
                "decide which of its rows are the customer's"
            )
        elif owned_refs:
            t.settings["shared"] = True
            t.comments.append("a lookup table the customer's rows point at, no reference to any customer: shared")
        elif not references and is_system(facts, name):
            t.settings["shared"] = True
            t.comments.append("a system table with no reference to or from the customer's tables: shared")
        else:
            proposal.notes.append(
                f"{name} stays unclassified: it reaches the customer only through "
                f"{', '.join(sorted(set(references))) or 'nothing'}; add a [[relations]] entry or classify it"
            )
