"""`notice`, `status`, `confirm`, `hold`, `release`, `audit`: the customer's timeline."""

from __future__ import annotations

import importlib
import json
import os
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import BadInput, OperationalError
from .app import ConfigOpt, Ctx, JsonOpt, TracebackOpt, app, run
from .tables import PIPED_WIDTH, print_table

CustomerArg = Annotated[str, typer.Argument(help="The customer's key (e.g. the organisation slug).")]


def _date(text: str | None, what: str) -> date | None:
    from ..contract import parse_date

    return None if text is None else parse_date(text, what=what)


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


def _rehearsal_warning(out: Console, marked: str | None) -> None:
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
    table.add_row("export deadline", f"{_d(d['export_deadline'])}  ({_days(d['days_left'])})")
    purge = _local(d["purge_due_at"], d["timezone"])
    if d.get("waived"):
        purge += "  (window waived by the customer)"
    table.add_row("purge due", purge)
    table.add_row("state", Text(d["state"], style="bold"))


def _render_notice(out: Console, d: dict[str, Any], *, withdrawing: bool = False) -> None:
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


@app.command("notice")
def notice_command(
    customer: CustomerArg,
    received: Annotated[
        str | None,
        typer.Option(
            "--received", metavar="DATE", help="The day the written notice arrived (YYYY-MM-DD); back-dating is fine."
        ),
    ] = None,
    channel: Annotated[str, typer.Option("--channel", help="How it arrived: email | letter | other.")] = "email",
    reference: Annotated[
        str | None, typer.Option("--reference", metavar="TEXT", help="Ticket or letter reference.")
    ] = None,
    contract_start: Annotated[
        str | None,
        typer.Option(
            "--contract-start",
            metavar="DATE",
            help="Contract start (with --term-months); default: the source's contract table.",
        ),
    ] = None,
    term_months: Annotated[
        int | None,
        typer.Option(
            "--term-months", min=1, max=1200, help="Months per contract period (default: [contract] term_months)."
        ),
    ] = None,
    period_end: Annotated[
        str | None,
        typer.Option("--period-end", metavar="DATE", help="The current period's end date, instead of start and term."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Compute and show the timeline; record nothing.")] = False,
    withdraw: Annotated[
        bool, typer.Option("--withdraw", help="Withdraw the active notice (kept in the history).")
    ] = False,
    letter: Annotated[
        Path | None,
        typer.Option("--letter", metavar="DIR", help="Also write the confirmation letter (PDF, .docx, .txt) into DIR."),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    show_traceback: TracebackOpt = False,
) -> None:
    """Record a customer's written notice and show the timeline it sets.

    Prints received, period end, timely or LATE (and why), termination date, export
    deadline, purge due and days left.  The contract period comes from the source's
    contract table ([contract] table) unless --contract-start/--term-months or
    --period-end is given.  Recording the same notice again changes nothing; a
    different one is refused until the first is withdrawn.

    Examples:

        learnexit notice acme --received 2026-11-20 --channel letter

        learnexit notice acme --received 2026-11-20 --reference T-1234

        learnexit notice acme --received 2026-11-20 --dry-run \\
            --period-end 2027-01-30

        learnexit notice acme --received 2026-11-20 --letter letters/

        learnexit notice acme --withdraw

    Exit codes: 0 done (or nothing to change) · 1 source or ledger unreachable · 2 unknown
    customer, invalid date or terms · 3 refused (another notice is active, already
    purged).
    """
    ctx = Ctx(config, as_json, show_traceback)

    def body() -> None:
        from .. import calendar as cal
        from ..ledger import Ledger

        settings = ctx.settings()
        now = cal.now(settings.contract.timezone)
        received_day = _date(received, "--received")
        start_day = _date(contract_start, "--contract-start")
        end_day = _date(period_end, "--period-end")
        if withdraw:
            if start_day or end_day or term_months or letter or reference:
                raise BadInput("--withdraw takes only --received (to check which notice) and --dry-run")
            with Ledger(settings.state_url) as ledger:
                outcome = cal.withdraw_notice(
                    settings, ledger, customer, received=received_day, dry_run=dry_run, now=now
                )
            data = outcome.as_dict()
            ctx.emit(data, lambda out: _render_notice(out, data, withdrawing=True))
            return
        if received_day is None:
            raise BadInput("--received DATE is required (the day the written notice arrived)")
        writer: Any = None
        if letter is not None:
            if dry_run:
                raise BadInput("--letter writes the letter for a recorded notice; drop --dry-run to record it")
            try:
                letter_module = importlib.import_module("learnexit.documents.letter")
            except ImportError as exc:
                raise OperationalError(f"letters not available: {exc}") from None
            writer = letter_module.write_notice_letter
        with Ledger(settings.state_url) as ledger:
            outcome = cal.record_notice(
                settings,
                ledger,
                customer,
                received_day,
                channel=channel,
                reference=reference,
                start=start_day,
                term_months=term_months,
                period_end=end_day,
                dry_run=dry_run,
                now=now,
            )
        data = outcome.as_dict()
        if writer is not None and letter is not None:
            paths = writer(settings, customer, outcome.name, outcome.timeline, letter, settings.export.lang)
            data["letters"] = [str(p) for p in paths]
        ctx.emit(data, lambda out: _render_notice(out, data))

    run(ctx, body)


# --------------------------------------------------------------------------- status


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


def _render_list(out: Console, statuses: list[dict[str, Any]], as_of: datetime) -> None:
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
            "" if d["days_left"] is None else str(d["days_left"]),
            str(d["exports"]["complete"]),
            confirmed,
            _short_closure(d["closure"], d["timezone"]),
            _purge_text(d),
            "HELD" if d["hold_active"] else "",
        )
    print_table(out, table, piped_width=PIPED_WIDTH)


def _render_one(out: Console, d: dict[str, Any], audit: list[dict[str, Any]]) -> None:
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


def _render_attention(out: Console, items: list[dict[str, Any]]) -> None:
    if not items:
        out.print("Nothing needs attention.")
        return
    out.print(Text(f"Needs attention ({len(items)}):", style="bold red"))
    for item in items:
        out.print(f"  - {item['kind']}: {item['message']}")


@app.command("status")
def status_command(
    customer: Annotated[
        str | None, typer.Argument(help="One customer's timeline; all customers when left out.")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 5 when something needs a human, listing exactly what.")
    ] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    show_traceback: TracebackOpt = False,
) -> None:
    """Show the customers in offboarding, or one customer's timeline with its audit events.

    All customers: state, termination date, export deadline with days left, exports,
    confirmation, account closure, purge due/done and holds.  --check lists what needs
    a human and exits 5: an export window closing within 14 days with no complete
    export, a purge overdue, a failed purge, unclassified tables in the customer's
    source, data a finished purge deleted back in the source (a restored backup).  LEARNEXIT_NOW=YYYY-MM-DD (noon local time) or an ISO datetime pretends it is
    that moment — for tests and runbook rehearsals only.

    Examples:

        learnexit status

        learnexit status acme --json

        learnexit status --check          # from cron or monitoring

        LEARNEXIT_NOW=2027-04-20 learnexit status --check

    Exit codes: 0 done (nothing needs attention) · 1 ledger or source unreachable · 2
    unknown customer, bad config or bad LEARNEXIT_NOW · 5 --check found something.
    """
    ctx = Ctx(config, as_json, show_traceback)

    def body() -> int:
        from .. import calendar as cal
        from ..ledger import Ledger

        settings = ctx.settings()
        now = cal.now(settings.contract.timezone)
        with Ledger(settings.state_url) as ledger:
            if customer is not None:
                cal.require_customer(settings, ledger, customer)
                data = cal.customer_status(settings, ledger, customer, now)
                audit = cal.audit_report(ledger, customer)["entries"]
                data["audit"] = audit
                items = cal.check_attention(settings, ledger, [customer], now) if check else []
            else:
                statuses = cal.all_statuses(settings, ledger, now)
                data = {"customers": statuses}
                items = cal.check_attention(settings, ledger, None, now) if check else []
            rehearsed = ledger.rehearsed_clock()
        data["as_of"] = now
        data["rehearsed_clock"] = rehearsed is not None
        if check:
            data["attention"] = items

        def render(out: Console) -> None:
            _rehearsal_warning(out, rehearsed)
            if customer is not None:
                _render_one(out, data, data["audit"])
            else:
                _render_list(out, data["customers"], now)
            if check:
                _render_attention(out, items)

        ctx.emit(data, render)
        return 5 if check and items else 0

    run(ctx, body)


# --------------------------------------------------------------------------- confirm


def _render_confirm(out: Console, d: dict[str, Any]) -> None:
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


@app.command("confirm")
def confirm_command(
    customer: CustomerArg,
    by: Annotated[str, typer.Option("--by", metavar="NAME", help="Who confirmed for the customer.")],
    reference: Annotated[
        str | None, typer.Option("--reference", metavar="TEXT", help="Ticket or letter reference.")
    ] = None,
    waive_window: Annotated[
        bool,
        typer.Option(
            "--waive-window",
            help="The customer waives the rest of the export window: purge after the termination date.",
        ),
    ] = False,
    without_export: Annotated[
        bool,
        typer.Option("--without-export", help="Confirm although no complete export was delivered (needs --reason)."),
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", metavar="TEXT", help="Why no export is needed.")] = None,
    package: Annotated[
        str | None,
        typer.Option(
            "--package",
            metavar="PATH|EXPORT_ID",
            help="The export the customer received (default: the latest complete one); "
            "the deletion certificate lists it as delivered.",
        ),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    show_traceback: TracebackOpt = False,
) -> None:
    """Record the customer's confirmation that the handover is complete.

    Needs a complete export first (or --without-export --reason).  The account closure
    ([closure] actions on this customer's rows only) runs now when the termination date
    has passed, else it is scheduled for 00:00 local time the day after it.  Confirming
    again changes nothing; a later --waive-window adds the waiver.  The delivered
    package (--package, else the latest complete export) is recorded with it.

    Examples:

        learnexit confirm acme --by "Jane Doe" --reference T-1240

        learnexit confirm acme --by "Jane Doe" --package 3

        learnexit confirm acme --by "Jane Doe" --waive-window

        learnexit confirm acme --by "Jane Doe" --without-export \\
            --reason "the customer keeps its own copy"

    Exit codes: 0 done · 1 ledger or source failure (the closure is retried by purge
    --due), or the customer's ledger records disagree with the audit (audit --verify) · 2
    bad input · 3 refused (no export yet, no notice, already purged).
    """
    ctx = Ctx(config, as_json, show_traceback)

    def body() -> None:
        from .. import calendar as cal
        from ..ledger import Ledger

        if without_export and not (reason and reason.strip()):
            raise BadInput("--without-export needs --reason TEXT")
        if reason is not None and not without_export:
            raise BadInput("--reason goes with --without-export")
        settings = ctx.settings()
        now = cal.now(settings.contract.timezone)
        with Ledger(settings.state_url) as ledger:
            data = cal.confirm_handover(
                settings,
                ledger,
                customer,
                by=by,
                reference=reference,
                waive_window=waive_window,
                without_export_reason=reason if without_export else None,
                package=package,
                now=now,
            )
        ctx.emit(data, lambda out: _render_confirm(out, data))

    run(ctx, body)


# --------------------------------------------------------------------------- holds


def _render_hold(out: Console, d: dict[str, Any]) -> None:
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


@app.command("hold")
def hold_command(
    customer: CustomerArg,
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why (e.g. the legal matter).")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    show_traceback: TracebackOpt = False,
) -> None:
    """Place a legal hold: no purge of this customer runs until it is released.

    Examples:

        learnexit hold acme --reason "Litigation hold, case 2026-17"

    Exit codes: 0 done (or already held for that reason) · 1 ledger or source unreachable
    · 2 unknown customer · 3 refused (held already for another reason).
    """
    ctx = Ctx(config, as_json, show_traceback)

    def body() -> None:
        from .. import calendar as cal
        from ..ledger import Ledger

        settings = ctx.settings()
        with Ledger(settings.state_url) as ledger:
            data = cal.place_hold(settings, ledger, customer, reason, now=cal.now(settings.contract.timezone))
        ctx.emit(data, lambda out: _render_hold(out, data))

    run(ctx, body)


@app.command("release")
def release_command(
    customer: CustomerArg,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    show_traceback: TracebackOpt = False,
) -> None:
    """Release the customer's legal hold (purges may run again when due).

    Examples:

        learnexit release acme

    Exit codes: 0 done (or no hold was active) · 1 ledger unreachable, or the customer's
    ledger records disagree with the audit (audit --verify) · 2 unknown customer.
    """
    ctx = Ctx(config, as_json, show_traceback)

    def body() -> None:
        from .. import calendar as cal
        from ..ledger import Ledger

        settings = ctx.settings()
        with Ledger(settings.state_url) as ledger:
            data = cal.release_hold(settings, ledger, customer, now=cal.now(settings.contract.timezone))
        ctx.emit(data, lambda out: _render_hold(out, data))

    run(ctx, body)


# --------------------------------------------------------------------------- audit


@app.command("audit")
def audit_command(
    customer: Annotated[str | None, typer.Argument(help="Only this customer's entries.")] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Recompute the hash chain, check the records against it; exit 1 if not.")
    ] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    show_traceback: TracebackOpt = False,
) -> None:
    """Show the hash-chained audit log (who did what, when) and check it.

    Examples:

        learnexit audit

        learnexit audit acme

        learnexit audit --verify --json

    With --verify, the ledger's records (notices, holds, confirmations, closures, exports,
    purges) are also checked against the entries that recorded them: a record edited,
    added or deleted by hand is reported.

    Exit codes: 0 done (chain intact, records agree) · 1 ledger unreachable, the chain is
    broken (an entry edited, reordered or deleted) or a record disagrees with its entries
    · 2 bad config.
    """
    ctx = Ctx(config, as_json, show_traceback)

    def body() -> int:
        from .. import calendar as cal
        from ..ledger import Ledger

        settings = ctx.settings()
        with Ledger(settings.state_url) as ledger:
            data = cal.audit_report(ledger, customer, verify=verify)
            rehearsed = ledger.rehearsed_clock()
        data["rehearsed_clock"] = rehearsed is not None

        def render(out: Console) -> None:
            _rehearsal_warning(out, rehearsed)
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

        ctx.emit(data, render)
        if verify and not data["valid"]:
            what = "audit chain broken" if not data["chain_valid"] else "ledger disagrees with the audit chain"
            sys.stderr.write(f"learnexit: error: {what}: {data['problems'][0]}\n")
            return 1
        return 0

    run(ctx, body)
