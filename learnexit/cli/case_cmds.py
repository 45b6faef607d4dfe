"""`notice`, `status`, `confirm`, `hold`, `release`, `audit`: the customer's timeline."""

from __future__ import annotations

import importlib
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import BadInput, OperationalError
from .app import ConfigOpt, Ctx, JsonOpt, TracebackOpt, app, run
from .case_views import render_audit, render_confirm, render_hold, render_notice, render_status

CustomerArg = Annotated[str, typer.Argument(help="The customer's key (e.g. the organisation slug).")]


def _date(text: str | None, what: str) -> date | None:
    from ..contract import parse_date

    return None if text is None else parse_date(text, what=what)


def _notice(
    ctx: Ctx,
    customer: str,
    received: str | None,
    channel: str,
    reference: str | None,
    contract_start: str | None,
    term_months: int | None,
    period_end: str | None,
    *,
    dry_run: bool,
    withdraw: bool,
    letter: Path | None,
) -> None:
    """`notice`: record (or withdraw) the notice, write the letter, show the timeline."""
    from ..ledger.store import Ledger
    from ..offboarding import clock
    from ..offboarding.notice import record_notice, withdraw_notice

    settings = ctx.settings()
    now = clock.now(settings.contract.timezone)
    received_day = _date(received, "--received")
    start_day = _date(contract_start, "--contract-start")
    end_day = _date(period_end, "--period-end")
    if withdraw:
        if start_day or end_day or term_months or letter or reference:
            raise BadInput("--withdraw takes only --received (to check which notice) and --dry-run")
        with Ledger(settings.state_url) as ledger:
            outcome = withdraw_notice(settings, ledger, customer, received=received_day, dry_run=dry_run, now=now)
        data = outcome.as_dict()
        ctx.emit(data, lambda out: render_notice(out, data, withdrawing=True))
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
        outcome = record_notice(
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
    ctx.emit(data, lambda out: render_notice(out, data))


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
    run(ctx, lambda: _notice(ctx, customer, received, channel, reference, contract_start, term_months, period_end,
                             dry_run=dry_run, withdraw=withdraw, letter=letter))  # fmt: skip


# --------------------------------------------------------------------------- status


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
        from ..ledger.store import Ledger
        from ..offboarding import clock
        from ..offboarding.attention import AttentionCheck, check_attention
        from ..offboarding.cases import require_customer
        from ..offboarding.status import all_statuses, audit_report, customer_status

        settings = ctx.settings()
        now = clock.now(settings.contract.timezone)
        more: list[AttentionCheck] = []
        if check:  # the purge's check: data a finished purge deleted, back in the source
            from ..purge.reapply import attention as reappeared_data

            more.append(reappeared_data)
        with Ledger(settings.state_url) as ledger:
            if customer is not None:
                require_customer(settings, ledger, customer)
                data = customer_status(settings, ledger, customer, now)
                audit = audit_report(ledger, customer)["entries"]
                data["audit"] = audit
                items = check_attention(settings, ledger, [customer], now, more=more) if check else []
            else:
                statuses = all_statuses(settings, ledger, now)
                data = {"customers": statuses}
                items = check_attention(settings, ledger, None, now, more=more) if check else []
            rehearsed = ledger.rehearsed_clock()
        data["as_of"] = now
        data["rehearsed_clock"] = rehearsed is not None
        if check:
            data["attention"] = items

        ctx.emit(data, lambda out: render_status(out, data, one=customer is not None, rehearsed=rehearsed))
        return 5 if check and items else 0

    run(ctx, body)


# --------------------------------------------------------------------------- confirm


def _confirm(
    ctx: Ctx,
    customer: str,
    by: str,
    reference: str | None,
    *,
    waive_window: bool,
    without_export: bool,
    reason: str | None,
    package: str | None,
) -> None:
    """`confirm`: record the confirmation (and run the closure when due), show it."""
    from ..ledger.store import Ledger
    from ..offboarding import clock
    from ..offboarding.confirm import confirm_handover

    if without_export and not (reason and reason.strip()):
        raise BadInput("--without-export needs --reason TEXT")
    if reason is not None and not without_export:
        raise BadInput("--reason goes with --without-export")
    settings = ctx.settings()
    now = clock.now(settings.contract.timezone)
    with Ledger(settings.state_url) as ledger:
        data = confirm_handover(
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
    ctx.emit(data, lambda out: render_confirm(out, data))


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
    run(ctx, lambda: _confirm(ctx, customer, by, reference, waive_window=waive_window, without_export=without_export,
                              reason=reason, package=package))  # fmt: skip


# --------------------------------------------------------------------------- holds


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
        from ..ledger.store import Ledger
        from ..offboarding import clock
        from ..offboarding.holds import place_hold

        settings = ctx.settings()
        with Ledger(settings.state_url) as ledger:
            data = place_hold(settings, ledger, customer, reason, now=clock.now(settings.contract.timezone))
        ctx.emit(data, lambda out: render_hold(out, data))

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
        from ..ledger.store import Ledger
        from ..offboarding import clock
        from ..offboarding.holds import release_hold

        settings = ctx.settings()
        with Ledger(settings.state_url) as ledger:
            data = release_hold(settings, ledger, customer, now=clock.now(settings.contract.timezone))
        ctx.emit(data, lambda out: render_hold(out, data))

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
        from ..ledger.store import Ledger
        from ..offboarding.status import audit_report

        settings = ctx.settings()
        with Ledger(settings.state_url) as ledger:
            data = audit_report(ledger, customer, verify=verify)
            rehearsed = ledger.rehearsed_clock()
        data["rehearsed_clock"] = rehearsed is not None

        ctx.emit(data, lambda out: render_audit(out, data, customer, verify=verify, rehearsed=rehearsed))
        if verify and not data["valid"]:
            what = "audit chain broken" if not data["chain_valid"] else "ledger disagrees with the audit chain"
            sys.stderr.write(f"learnexit: error: {what}: {data['problems'][0]}\n")
            return 1
        return 0

    run(ctx, body)
