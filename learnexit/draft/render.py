"""The proposal as a commented ``learnexit.toml`` for the operator to read and edit."""

from __future__ import annotations

import json
from typing import Any

from ..contract import DEFAULT_TIMEZONE
from .propose import FILL_IN, Proposal, RelationProposal

HEADER = """\
# learnexit configuration drafted by `learnexit init --from-database` from
#   {source}
# {tables} tables read; {relations} references found in the data, {rejected} name matches rejected.
# Nothing here is applied on its own: read every section, edit it, and run
# `learnexit inspect CUSTOMER` to see what export and purge would do with it.
# Lines marked FILL IN must be filled in: the config refuses to load until they are.
"""


def q(value: Any) -> str:
    """A TOML value (strings as basic strings: JSON's escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(q(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _key(name: str) -> str:
    """A table name as a TOML key (quoted when it is not a bare key)."""
    bare = name.replace("_", "").replace("-", "").isalnum() and name.isascii()
    return name if bare else q(name)


def _relation(r: RelationProposal) -> list[str]:
    """One ``[[relations]]`` entry: ``from``/``to`` a column, or lists for a composite key."""
    froms, tos = r.ends()
    lines = [
        f"[[relations]]  # {r.comment}",
        f"from = {q(froms if r.from_columns else froms[0])}",
        f"to = {q(tos if r.to_columns else tos[0])}",
    ]
    return lines + ([f"sentinels = {q(list(r.sentinels))}"] if r.sentinels else []) + [""]


def render(proposal: Proposal, tables: int, masked_source: str) -> str:
    out: list[str] = [
        HEADER.format(
            source=masked_source, tables=tables, relations=len(proposal.relations), rejected=len(proposal.rejected)
        )
    ]
    add = out.append
    add("[source]")
    if proposal.tenancy == "database":
        add("# one database per customer: {customer} is replaced by the key you type (`learnexit export site_a`)")
    add(f"url = {q(proposal.source_url)}")
    add("")
    add("[state]")
    add('url = "sqlite:///learnexit-state.db"     # the ledger; use PostgreSQL for a team')
    add("")
    add("[vendor]")
    add('name = "Your company"')
    add("")
    add("[contract]")
    add("notice_days = 30")
    add("export_window_days = 90")
    add(f'timezone = "{DEFAULT_TIMEZONE}"')
    add("term_months = 12")
    add("")
    add("[customer]")
    for c in proposal.customer_comments:
        add(f"# {c}")
    add(f"tenancy = {q(proposal.tenancy)}")
    if proposal.tenancy == "shared":
        add(f"table = {q(proposal.customer_table)}")
        add(f"key = {q(proposal.customer_key)}")
        if proposal.customer_name_column:
            add(f"name_column = {q(proposal.customer_name_column)}")
    elif proposal.customer_name_query:
        add("# the name letters use: the front page course (format 'site') holds the site's name")
        add(f"name_query = {q(proposal.customer_name_query)}")
    else:
        add("# the name letters use (else the key): a literal, or a query returning one value, e.g.")
        add("# name_query = \"SELECT value FROM config WHERE name = 'sitename'\"")
    add("")
    if proposal.relations:
        add("# References the schema does not declare, found in the data.  Each names its evidence;")
        add("# delete any you know to be wrong.  sentinels: values that mean 'none' (not a reference).")
    for r in proposal.relations:
        out += _relation(r)
    if proposal.rejected:
        add("# Name matches the data did not bear out (not references):")
        for text in proposal.rejected:
            add(f"#   {text}")
        add("")
    for name in sorted(proposal.tables):
        t = proposal.tables[name]
        if not t.settings:
            continue
        for c in t.comments:
            add(f"# {c}")
        add(f"[tables.{_key(name)}]")
        for key, value in t.settings.items():
            suffix = "   # FILL IN: e.g. the bookkeeping law and section" if value == FILL_IN else ""
            add(f"{key} = {q(value)}{suffix}")
        add("")
    if proposal.media:
        add("# Files: check root (where the file store is on this machine) and uncomment.")
        add("# [media]")
        for key, value in proposal.media.items():
            add(f"# {key} = {q(value)}")
        add("")
    for role, columns in proposal.roles.items():
        add(f"[roles.{role}]")
        for key, value in columns.items():
            add(f"{key} = {q(value)}")
        add("")
    for note in proposal.notes:
        add(f"# note: {note}")
    return "\n".join(out).rstrip() + "\n"
