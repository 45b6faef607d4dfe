"""`purge`: delete a customer's data for good — planned, confirmed, verified, certified."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from ..documents.i18n import LANGS
from ..errors import BadInput, Refused
from .app import ConfigOpt, Ctx, JsonOpt, TracebackOpt, app, is_interactive, run
from .progress import progress_bars
from .tables import print_table

if TYPE_CHECKING:  # (the library is imported when the command runs: --help stays fast)
    from ..config import Settings
    from ..ledger.store import Ledger
    from ..purge.faults import Faults


class _Bars:
    """One progress bar per table on stderr (only when stderr is a terminal)."""

    def __init__(self) -> None:
        self.progress = progress_bars(Console(stderr=True), transient=True)
        self.tasks: dict[str, Any] = {}
        self.done: dict[str, int] = {}

    def __enter__(self) -> _Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, label: str, rows: int, total: int | None) -> None:
        self.done[label] = self.done.get(label, 0) + rows
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=total)
        self.progress.update(self.tasks[label], completed=self.done[label], total=total)


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _render_plan(out: Console, plan: Any) -> None:
    """Exactly what the purge would do (the dry run, and the screen before confirming)."""
    title = f"{plan.name} ({plan.customer})" if plan.name != plan.customer else plan.customer
    kind = {
        "full": "purge",
        "retention": "retention purge",
        "reapply": "delete again what came back after the purge (a restored backup?)",
        "none": "nothing to do",
    }[plan.kind]
    out.print(f"Purge plan — {title}: {kind}")
    if plan.termination_date is not None:
        due = "—"
        if plan.purge_due_at is not None:
            due = f"{plan.purge_due_at.astimezone(ZoneInfo(plan.timezone)):%Y-%m-%d %H:%M} {plan.timezone}"
        out.print(f"termination date {plan.termination_date.isoformat()} · purge due {due}")
    for note in plan.notes:
        out.print(f"note: {note}")
    for refusal in plan.refusals:
        out.print(f"REFUSED: {refusal}")
    if plan.kind == "none" or not plan.tables:
        return
    if plan.refusals:
        out.print("Not now; once it is allowed, the purge would do this:")
    for action in plan.closure_pending:
        out.print(f"Would first close the accounts: {action}")
    for column in plan.unlink:
        out.print(f"Would first clear {column} (it closes a cycle of references)")
    total = 0
    for t in plan.tables:
        if t.delete:
            how = f" ({t.strategy})" if t.strategy else ""
            out.print(f"Would delete {_n(t.delete, 'row')} from {t.table}{how}")
            total += t.delete
    out.print(f"Would delete {_n(total, 'row')} in {_n(sum(1 for t in plan.tables if t.delete), 'table')} in all")
    if plan.media_files or plan.media_kept_shared or plan.media_retained:
        line = f"Would delete {_n(plan.media_files, 'media file')}"
        if plan.media_kept_shared:
            line += f"; keep {_n(plan.media_kept_shared, 'file')} other customers' rows still name"
        if plan.media_retained:
            line += f"; keep {_n(plan.media_retained, 'file')} of retained rows"
        out.print(line)
    for e in plan.exports:
        package = str(e.get("path") or "").rsplit("/", 1)[-1]
        out.print(f"Would destroy export package {package} (export #{e['id']}, {e['status']})")
    for t in plan.tables:
        if t.retained:
            until = t.until.isoformat() if t.until else "—"
            extra = ""
            if t.reason:
                extra = f"; {t.reason}" + (f"; {', '.join(t.minimise)} blanked" if t.minimise else "")
            out.print(f"Retained: {_n(t.retained, 'row')} of {t.table} until {until} — {t.legal_basis or '—'}{extra}")
    for t in plan.tables:
        if t.kept_shared:
            out.print(
                f"Kept shared: {_n(t.kept_shared, 'row')} of {t.table} — other customers still use them; "
                f"only {plan.customer}'s references go"
            )
    if plan.backup_note:
        out.print(f"Backups: {plan.backup_note}")
    else:
        out.print(
            "warning: [purge] backup_note is not set: the certificate will say nothing about "
            "backups; say in the config what happens to copies outside the platform"
        )


_DONE_WORDS = {"retention": "retention purge", "reapply": "re-applied purge"}


def _render_result(out: Console, result: Any) -> None:
    title = f"{result.name} ({result.customer})" if result.name and result.name != result.customer else result.customer
    if result.status == "nothing":
        out.print(f"{title}: already purged; nothing left to delete.")
        for note in result.notes:
            out.print(f"note: {note}")
        if result.certificate:
            out.print(f"certificate: {result.certificate}")
        return
    if result.status in ("refused", "failed") and not result.deleted:
        out.print(f"{title}: {result.status.upper()}: {result.error}")
        return
    what = _DONE_WORDS.get(result.kind or "", "purge")
    verb = "done" if result.status == "done" else "FAILED"
    resumed = " (resumed)" if result.resumed else ""
    out.print(f"{title}: {what} #{result.purge_id} {verb}{resumed}")
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("table")
    table.add_column("deleted", justify="right")
    table.add_column("retained", justify="right")
    table.add_column("kept shared", justify="right")
    table.add_column("left", justify="right")
    checks = (result.verification or {}).get("tables", {})
    for name, rows in result.deleted.items():
        left = checks.get(name, {}).get("after", 0)
        table.add_row(
            name,
            f"{rows:,}",
            f"{result.retained.get(name, 0):,}" if result.retained.get(name) else "",
            f"{result.kept_shared.get(name, 0):,}" if result.kept_shared.get(name) else "",
            f"{left:,}" if left else "",
        )
    print_table(out, table)
    out.print(f"Deleted {_n(sum(result.deleted.values()), 'row')}; {_n(result.media.get('deleted', 0), 'media file')}.")
    for e in result.exports:
        out.print(f"Export package {e.get('package')} (export #{e.get('id')}): {e.get('status')}")
    for name, info in result.retention.items():
        extra = f"; {info['reason']}" if info.get("reason") else ""
        if info.get("minimised"):
            extra += f"; {', '.join(info['minimised'])} blanked"
        out.print(
            f"Retained: {_n(info['rows'], 'row')} of {name} until {info.get('until')} — {info.get('legal_basis')}{extra}"
        )
    for name, rows in result.kept_shared.items():
        out.print(f"Kept shared: {_n(rows, 'row')} of {name} — other customers still use them")
    if result.status == "done":
        out.print("Verified: no row of the customer is left outside retention; no deleted media file remains.")
        out.print(f"Certificate: {result.certificate}")
        out.print(f"Audit chain head: {result.audit_head}")
    else:
        for problem in result.problems:
            out.print(f"LEFT: {problem}")
        out.print("Verification FAILED: run the purge again to resume; see `learnexit status --check`.")
    for note in result.notes:
        out.print(f"note: {note}")


def _confirm_customer(ctx: Ctx, plan: Any) -> None:
    if not is_interactive():
        raise Refused("refusing to purge without --yes: there is no terminal to confirm on (use --yes in scripts)")
    _render_plan(ctx.err, plan)
    typed = typer.prompt(
        f"This deletes {plan.customer}'s data for good. Type the customer key ({plan.customer}) to go on",
        default="",
        show_default=False,
        err=True,
    )
    if typed.strip() != plan.customer:
        raise Refused("the typed key did not match; nothing was deleted")


def _confirm_due(ctx: Ctx, closures: list[str], plans: list[Any]) -> list[str]:
    keys = sorted({p.customer for p in plans if not p.refusals} | set(closures))
    if not keys:
        return []
    if not is_interactive():
        raise Refused("refusing to purge without --yes: there is no terminal to confirm on (cron: use --due --yes)")
    for customer in closures:
        ctx.err.print(f"Would close the accounts of {customer} (closure due)")
    for plan in plans:
        _render_plan(ctx.err, plan)
    typed = typer.prompt(
        f"Type the customer keys to go on ({' '.join(keys)})", default="", show_default=False, err=True
    )
    if sorted(typed.split()) != keys:
        raise Refused("the typed keys did not match; nothing was changed")
    return keys


PurgeCustomerArg = Annotated[str | None, typer.Argument(help="The customer's key (or use --due).", show_default=False)]
DueOpt = Annotated[
    bool,
    typer.Option(
        "--due",
        help="Cron mode: run due closures, due purges and due retention purges; delete again what "
        "a purge deleted and a restore brought back; clean up exports killed on this host.",
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask (scripts, cron). Without it a terminal must confirm.")
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Purge before it is due (needs --reason; audited). Never lifts a hold.")
]
ForceReasonOpt = Annotated[
    str | None, typer.Option("--reason", metavar="TEXT", help="Why the purge is forced (goes to the ledger).")
]
CertificateLangOpt = Annotated[
    str | None, typer.Option("--lang", metavar="en|sv", help="Language of the deletion certificate.")
]


@app.command("purge")
def purge_command(
    customer: PurgeCustomerArg = None,
    due: DueOpt = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    force: ForceOpt = False,
    reason: ForceReasonOpt = None,
    lang: CertificateLangOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    show_traceback: TracebackOpt = False,
) -> None:
    """Delete a customer's data for good: plan, confirm, delete in batches, verify, certify.

    Deletes every row the customer owns (children first, in batches, one transaction per
    batch, resumable after a crash), its media files and the export packages learnexit
    wrote; keeps rows under a legal retention rule (and the rows they reference, with
    personal columns blanked) until they are due; keeps people other customers still
    use. Afterwards the source is searched again and a PDF deletion certificate is
    written. Refused while a legal hold is active, before the purge is due (unless
    --force --reason) and while tables are unclassified. With --due, data a finished
    purge deleted that is in the source again (a restored backup) is deleted again, under
    the same case, with a certificate addendum. The plan, the dry run, the deletion and
    the verification all work on [source] url, never on a read replica ([source] read_url).

    Examples:

        learnexit purge acme --dry-run          # exactly what would be deleted and kept

        learnexit purge acme                    # asks you to type "acme" first

        learnexit purge --due --yes --json      # cron, every few minutes

        learnexit purge acme --force --reason "customer asked in writing, ticket 4711" --yes

    Exit codes: 0 done (or nothing due) · 1 failure or verification failed (run again to
    resume), or the ledger's records disagree with the audit (audit --verify) · 2 bad
    input or config · 3 refused (not due, hold, unclassified tables, not confirmed; a dry
    run exits 3 when the real run would be refused) · 4 busy: another purge holds the lock.
    """
    ctx = Ctx(config, as_json, show_traceback)

    def body() -> int:
        from ..ledger.store import Ledger
        from ..offboarding.clock import now as clock
        from ..purge.faults import faults_from_environ

        _check_flags(customer, due, force, reason, lang)
        settings = ctx.settings()
        now = clock(settings.contract.timezone)
        faults = faults_from_environ(os.environ)  # test-only hooks: the one place they are read
        with Ledger(settings.state_url) as ledger:
            if due:
                return _due(ctx, _Run(settings, ledger, now, faults, dry_run, yes, lang))
            assert customer is not None
            forced = reason if force else None
            return _one(ctx, _Run(settings, ledger, now, faults, dry_run, yes, lang), customer, forced)

    run(ctx, body)


def _check_flags(customer: str | None, due: bool, force: bool, reason: str | None, lang: str | None) -> None:
    """Bad combinations of arguments, refused before anything is read."""
    if due == (customer is not None):
        raise BadInput("name one customer, or use --due (not both)")
    if force and reason is None:
        raise BadInput("--force needs --reason TEXT: say why the purge cannot wait")
    if reason is not None and not force:
        raise BadInput("--reason goes with --force")
    if force and due:
        raise BadInput("--force cannot be used with --due: force one customer at a time")
    if force and reason is not None and not reason.strip():
        raise BadInput("--reason must say why the purge is forced")
    if lang is not None and lang not in LANGS:
        raise BadInput(f"--lang must be en or sv, not {lang!r}")


@dataclass(frozen=True)
class _Run:
    """What one `purge` invocation works with, for the two modes below."""

    settings: Settings
    ledger: Ledger
    now: datetime
    faults: Faults
    dry_run: bool
    yes: bool
    lang: str | None


def _one(ctx: Ctx, r: _Run, customer: str, forced: str | None) -> int:
    """`purge CUSTOMER`: plan, show and confirm (unless --yes), run, render."""
    from ..purge.plan import plan_purge
    from ..purge.run import execute_purge, start_certificate

    # With --yes nothing is shown or confirmed: check the refusals without counting
    # (bad input still changes nothing); the purge plans and counts under its lock.
    counted = r.dry_run or not r.yes
    if not counted:
        start_certificate(r.settings, r.lang)  # (it is needed in a moment, unless refused)
    plan = plan_purge(r.settings, r.ledger, customer, r.now, forced, count=counted)
    if r.dry_run:
        ctx.emit({"customers": [plan.as_dict()]}, lambda out: _render_plan(out, plan))
        return 3 if plan.refusals else 0
    if plan.refusals:
        raise Refused("; ".join(plan.refusals))
    if plan.kind != "none" and not r.yes:
        _confirm_customer(ctx, plan)
    bars = _Bars() if sys.stderr.isatty() and plan.kind != "none" else None
    args = (r.settings, r.ledger, customer, r.now)
    if bars is not None:
        with bars:
            result = execute_purge(*args, force_reason=forced, lang=r.lang, progress=bars, faults=r.faults)
    else:
        result = execute_purge(*args, force_reason=forced, lang=r.lang, faults=r.faults)
    ctx.emit({"customers": [result.as_dict()]}, lambda out: _render_result(out, result))
    return result.exit_code


def _due(ctx: Ctx, r: _Run) -> int:
    """`purge --due`: every closure, purge and reapply that is due (cron)."""
    from ..purge.due import plan_due, purge_due

    confirmed = None
    if r.dry_run or not r.yes:  # (cron, --yes: purge_due plans each purge under its lock)
        closures, plans, skipped = plan_due(r.settings, r.ledger, r.now)
    if r.dry_run:
        data = {
            "now": r.now,
            "customers": [p.as_dict() for p in plans],
            "closures": [{"customer": c, "dry_run": True} for c in closures],
            "skipped": skipped,
        }
        ctx.emit(data, lambda out: _render_due_plan(out, closures, plans, skipped))
        return 3 if any(p.refusals for p in plans) else 0
    if not r.yes:
        confirmed = _confirm_due(ctx, closures, plans)
    report = purge_due(r.settings, r.ledger, r.now, lang=r.lang, confirmed=confirmed, faults=r.faults)
    ctx.emit(report.as_dict(), lambda out: _render_due_report(out, report))
    return report.exit_code


def _render_due_plan(out: Console, closures: list[str], plans: list[Any], skipped: list[dict[str, Any]]) -> None:
    if not closures and not plans:
        out.print("Nothing is due.")
    for c in closures:
        out.print(f"Would close the accounts of {c} (closure due)")
    for plan in plans:
        _render_plan(out, plan)
    for s in skipped:
        out.print(f"Skipped {s['customer']}: {s['reason']} ({s['would']})")


def _render_due_report(out: Console, report: Any) -> None:
    for x in report.interrupted_exports:
        gone = ", ".join(x["removed"]) or "nothing left to remove"
        line = f"{x['customer']}: export #{x['export_id']} was interrupted: recorded as failed ({gone} removed)"
        out.print(line + "".join(f"; NOT removed: {why}" for why in x["left"]))
    if not report.closures and not report.results:
        out.print("Nothing is due.")
    for c in report.closures:
        if c.get("error"):
            out.print(f"{c['customer']}: closure FAILED: {c['error']}")
        else:
            rows = ", ".join(f"{k}: {v}" for k, v in c["rows"].items()) or "nothing to change"
            out.print(f"{c['customer']}: accounts closed ({rows})")
    for res in report.results:
        _render_result(out, res)
    for s in report.skipped:
        out.print(f"Skipped {s['customer']}: {s['reason']} ({s['would']})")
