"""How `notice`, `status`, `confirm`, `hold`, `release` and `audit` show their results
(the text output; --json prints the data as it is)."""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .tables import PIPED_WIDTH, print_table

__all__ = [
    "rehearsal_warning",
    "render_attention",
    "render_audit",
    "render_confirm",
    "render_hold",
    "render_list",
    "render_notice",
    "render_one",
    "render_status",
]


def _d(value: date | None) -> str:
    return value.isoformat() if value else "—"


def _local(value: datetime | None, tz: str) -> str:
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") + f" {tz}"


def _days(n: int | None) -> str:
    if n is None:
        return ""
    if n < 0:
        return f"closed {-n} day{'s' if n != -1 else ''} ago"
    if n == 0:
        return "last day today"
    return f"{n} day{'s' if n != 1 else ''} left"


def rehearsal_warning(out: Console, marked: str | None) -> None:
    """Say plainly that the ledger holds records of a rehearsal (``$LEARNEXIT_NOW``), whose
    dates may lie in the future, when this command runs on the real clock."""
    if marked is not None and not os.environ.get("LEARNEXIT_NOW"):
        out.print(
            Text.assemble(
                ("warning: ", "bold yellow"),
                "this ledger holds records made under a rehearsed clock (LEARNEXIT_NOW; the last on "
                f"{marked} real time): their dates may lie in the future; the audit log marks them clock=rehearsed",
            ),
            soft_wrap=False,  # (wrapped between words at the terminal's width)
        )


def _details(details: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, (dict, list)) else v}"
        for k, v in sorted(details.items())
    )


def _kv_table() -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    return table


def _timeline_rows(table: Table, d: dict[str, Any]) -> None:
    """received … purge due, the same for `notice` and `status CUSTOMER`."""
    received = (
        _d(d["received"]) + f"  ({d['channel']}" + (f", ref {d['reference']}" if d.get("reference") else "") + ")"
    )
    if d.get("recorded_at"):
        received += f"  recorded {d['recorded_at']:%Y-%m-%d %H:%MZ} by {d['recorded_by']}"
    table.add_row("received", received)
    table.add_row("period end", _d(d["period_end"]))
    if d["timely"]:
        table.add_row("notice", f"timely — {d['reason']}")
    else:
        table.add_row("notice", Text.assemble(("LATE: ", "bold red"), d["reason"]))
    table.add_row("termination date", f"{_d(d['termination_date'])}  (the service stays available until then)")
    purge = _local(d["purge_due_at"], d["timezone"])
    if d.get("waived"):  # (the purge comes first: "days left" would promise what will be deleted)
        table.add_row("export deadline", f"{_d(d['export_deadline'])}  (waived: the purge is due {purge})")
        purge += "  (window waived by the customer)"
    else:
        table.add_row("export deadline", f"{_d(d['export_deadline'])}  ({_days(d['days_left'])})")
    table.add_row("purge due", purge)
    table.add_row("state", Text(d["state"], style="bold"))


def render_notice(out: Console, d: dict[str, Any], *, withdrawing: bool = False) -> None:
    verb = {
        "recorded": "recorded",
        "unchanged": "already recorded — nothing changed",
        "dry_run": "dry run — nothing recorded",
        "withdrawn": "withdrawn (kept in the history)",
        "already_withdrawn": "already withdrawn — nothing changed",
    }[d["action"]]
    if d["action"] == "dry_run" and withdrawing:
        verb = "dry run — would be withdrawn, nothing changed"
    name = f"{d['name']} ({d['customer']})" if d["name"] != d["customer"] else d["customer"]
    out.print(Text(f"Notice — {name}: {verb}", style="bold"))
    if not d["timely"]:
        out.print(Text.assemble(("LATE: ", "bold red"), d["reason"] + "."))
    table = _kv_table()
    _timeline_rows(table, d)
    if d.get("withdrawn_at"):
        table.add_row("withdrawn", f"{d['withdrawn_at']:%Y-%m-%d %H:%MZ}")
    out.print(table)
    for path in d.get("letters") or []:
        out.print(f"letter: {str(path)}")
    for note in d.get("notes") or []:
        out.print(f"note: {note}")


def _closure_text(c: dict[str, Any], tz: str) -> str:
    status = c["status"]
    if status == "done":
        rows = sum((c.get("rows") or {}).values())
        return f"done {c['performed_at']:%Y-%m-%d} ({rows} rows)"
    if status in ("scheduled", "due"):
        return f"{status} {_local(c['due_at'], tz)}"
    if status == "awaiting_confirmation":
        return "after confirmation"
    return "—"


def _purge_text(d: dict[str, Any]) -> str:
    if d["purged_at"] is not None:
        text = f"purged {d['purged_at']:%Y-%m-%d}"
        if d.get("retained_until"):
            text += f", retained until {d['retained_until'].isoformat()}"
        return text
    if d["purge_due"] is None:
        return "—"
    failed = d["purges"] and d["purges"][-1]["status"] == "failed"
    return f"due {d['purge_due'].isoformat()}" + (" (last purge FAILED)" if failed else "")


def _short_closure(c: dict[str, Any], tz: str) -> str:
    status = c["status"]
    if status == "done":
        return f"done {c['performed_at']:%Y-%m-%d}"
    if status in ("scheduled", "due"):
        return f"{status} {c['due_at'].astimezone(ZoneInfo(tz)):%Y-%m-%d}"
    if status == "awaiting_confirmation":
        return "on confirm"
    return "—"


def render_list(out: Console, statuses: list[dict[str, Any]], as_of: datetime) -> None:
    if not statuses:
        out.print("No customer is in offboarding (no notice recorded).")
        return
    table = Table(title=f"Offboarding — as of {as_of:%Y-%m-%d %H:%MZ}")
    for col in (
        "customer",
        "state",
        "ends",
        "export until",
        "left",
        "exports",
        "confirmed",
        "closure",
        "purge",
        "hold",
    ):
        table.add_column(col, no_wrap=col not in ("customer", "state", "purge"))
    for d in statuses:
        conf = d["confirmation"]
        confirmed = "no"
        if conf:
            confirmed = f"{conf['confirmed_at']:%Y-%m-%d}" + (" waived" if conf["waived"] else "")
        table.add_row(
            d["customer"],
            d["state"] + ("" if d["timely"] in (None, True) else " (late)"),
            _d(d["termination_date"]),
            _d(d["export_deadline"]),
            "" if d["days_left"] is None else "waived" if d.get("waived") else str(d["days_left"]),
            str(d["exports"]["complete"]),
            confirmed,
            _short_closure(d["closure"], d["timezone"]),
            _purge_text(d),
            "HELD" if d["hold_active"] else "",
        )
    print_table(out, table, piped_width=PIPED_WIDTH)


def render_one(out: Console, d: dict[str, Any], audit: list[dict[str, Any]]) -> None:
    out.print(Text.assemble((d["customer"], "bold"), " — state ", (d["state"], "bold")))
    if d["received"] is None:
        out.print("No notice recorded.")
    else:
        if d.get("withdrawn_at"):
            out.print(f"The notice was withdrawn on {d['withdrawn_at']:%Y-%m-%d}.")
        table = _kv_table()
        _timeline_rows(table, d)
        ex = d["exports"]
        last = ex["last_complete"]
        table.add_row(
            "exports",
            f"{ex['complete']} complete"
            + (f", last {last['finished_at'] or last['started_at']:%Y-%m-%d}: {str(last['path'])}" if last else "")
            + (f"; {ex['failed']} failed" if ex["failed"] else ""),
        )
        conf = d["confirmation"]
        if conf:
            text = f"{conf['confirmed_at']:%Y-%m-%d} by {conf['confirmed_by']}"
            if conf["reference"]:
                text += f" (ref {conf['reference']})"
            if conf["waived"]:
                text += "; rest of the window waived"
            if conf["without_export_reason"]:
                text += f"; without export: {conf['without_export_reason']}"
            table.add_row("confirmed", text)
        else:
            table.add_row("confirmed", "no")
        table.add_row("account closure", _closure_text(d["closure"], d["timezone"]))
        table.add_row("purge", _purge_text(d))
        out.print(table)
    for h in d["holds"]:
        if h["active"]:
            out.print(
                Text.assemble(
                    ("HOLD", "bold red"), f" since {h['placed_at']:%Y-%m-%d} by {h['placed_by']}: {h['reason']}"
                )
            )
    if audit:
        events = Table(title="Audit events")
        for col in ("#", "at (UTC)", "who", "event", "details"):
            events.add_column(col)
        for e in audit:
            events.add_row(
                str(e["id"]),
                f"{e['at']:%Y-%m-%d %H:%M}",
                e["actor"],
                e["event"],
                _details(e["details"]),
            )
        print_table(out, events, piped_width=PIPED_WIDTH)


def render_attention(out: Console, items: list[dict[str, Any]]) -> None:
    if not items:
        out.print("Nothing needs attention.")
        return
    out.print(Text(f"Needs attention ({len(items)}):", style="bold red"))
    for item in items:
        out.print(f"  - {item['kind']}: {item['message']}")


def render_confirm(out: Console, d: dict[str, Any]) -> None:
    verb = {
        "recorded": "handover confirmation recorded",
        "waiver_added": "waiver of the rest of the export window recorded",
        "unchanged": "already confirmed — nothing changed",
    }[d["action"]]
    if d["action"] == "unchanged" and d["closure"].get("ran_now"):
        verb = "already confirmed; the account closure was due and ran now"
    out.print(Text(f"{d['customer']}: {verb}", style="bold"))
    conf = d["confirmation"]
    table = _kv_table()
    table.add_row("confirmed", f"{conf['confirmed_at']:%Y-%m-%d %H:%MZ} by {conf['confirmed_by']}")
    if d.get("delivered_export_id") is not None:
        table.add_row("delivered", f"export #{d['delivered_export_id']}")
    if conf["without_export_reason"]:
        table.add_row("without export", conf["without_export_reason"])
    c = d["closure"]
    if c.get("ran_now"):
        changed = ", ".join(f"{k}: {v} rows" for k, v in (c.get("changed") or {}).items()) or "no actions configured"
        table.add_row("account closure", f"done now ({changed})")
    elif c["status"] == "done":
        table.add_row("account closure", f"done {c['performed_at']:%Y-%m-%d}")
    else:
        table.add_row(
            "account closure",
            f"scheduled for {_local(c['due_at'], d['timezone'])} (after the termination date "
            f"{_d(d['termination_date'])}; `learnexit purge --due` performs it)",
        )
    purge = _local(d["purge_due_at"], d["timezone"])
    table.add_row("purge due", purge + ("  (window waived)" if d["waived"] else ""))
    table.add_row("state", d["state"])
    out.print(table)


def render_hold(out: Console, d: dict[str, Any]) -> None:
    action = d["action"]
    if action == "placed":
        out.print(
            f"{d['customer']}: legal hold placed — every purge is blocked until `learnexit release {d['customer']}`."
        )
    elif action == "unchanged":
        out.print(
            f"{d['customer']}: already on hold since {d['placed_at']:%Y-%m-%d} for this reason — nothing changed."
        )
    elif action == "released":
        out.print(f"{d['customer']}: hold released (placed {d['placed_at']:%Y-%m-%d} by {d['placed_by']}).")
    else:
        out.print(f"{d['customer']}: no active hold — nothing changed.")


def render_audit(
    out: Console, data: dict[str, Any], customer: str | None, *, verify: bool, rehearsed: str | None
) -> None:
    """`audit`: the entries, then the chain check (with --verify)."""
    rehearsal_warning(out, rehearsed)
    table = Table(title="Audit log" + (f" — {customer}" if customer else ""))
    for col in ("#", "at (UTC)", "who", "command", "customer", "event", "details"):
        table.add_column(col)
    for e in data["entries"]:
        table.add_row(
            str(e["id"]),
            f"{e['at']:%Y-%m-%d %H:%M:%S}",
            e["actor"],
            e["command"],
            e["customer"] or "",
            e["event"],
            _details(e["details"]),
        )
    print_table(out, table, piped_width=PIPED_WIDTH)
    if verify:
        if data["valid"]:
            out.print(f"Chain intact: {data['checked']} entries, head {data['head']}.", soft_wrap=False)
        elif not data["chain_valid"]:
            out.print(Text.assemble(("Chain BROKEN", "bold red"), f" ({data['checked']} entries):"))
            for problem in data["problems"]:
                out.print(f"  - {problem}")
        else:
            out.print(
                Text.assemble(
                    ("Ledger DISAGREES", "bold red"),
                    f" with its intact chain ({data['checked']} entries, head {data['head']}):",
                )
            )
            for problem in data["problems"]:
                out.print(f"  - {problem}")
    else:
        out.print(f"{len(data['entries'])} entries; head {data['head']}.", soft_wrap=False)


def render_status(out: Console, data: dict[str, Any], *, one: bool, rehearsed: str | None) -> None:
    """`status`: one customer's timeline (``one``) or the list, then what needs attention."""
    rehearsal_warning(out, rehearsed)
    if one:
        render_one(out, data, data["audit"])
    else:
        render_list(out, data["customers"], data["as_of"])
    if "attention" in data:
        render_attention(out, data["attention"])
