"""Tables that stay readable at any width: whole words, never an ellipsis.

A rich table squeezed into a narrow terminal shrinks its columns until they hold ``…``
or nothing at all, and then customer keys, states, dates and table names are lost.
``print_table`` prints a table as it is only when every column's longest word fits (its
text then wraps between words); otherwise it prints each row as a block of ``column
value`` lines, whose values fold only when one word is wider than the whole terminal.
Piped output is laid out for $COLUMNS (80 unless set); the ledger's wide tables (``status``,
``audit``) for at least 160 columns there (mail from cron, CI logs).
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

PIPED_WIDTH = 160


def output_width(out: Console, piped_width: int | None = None) -> int:
    """The width to lay tables out for: the terminal's; piped, at least ``piped_width``."""
    return out.width if out.is_terminal or piped_width is None else max(out.width, piped_width)


def fitted_widths(out: Console, table: Table, width: int) -> list[int] | None:
    """Column widths (without padding) that fit ``table`` into ``width`` columns with every
    word whole, or None when the longest words alone are too wide.  Each column gets its
    longest word; the space left goes first to the columns that need little more to be
    on one line (dates, names), the rest shared evenly.  (rich's own allocation may
    squeeze a column below its longest word.)"""
    unbounded = out.options.update_width(1_000_000)
    measured = [table._measure_column(out, unbounded, column) for column in table.columns]
    spare = width - table._extra_width - sum(m.minimum for m in measured)
    if spare < 0:
        return None
    wants = [m.maximum - m.minimum for m in measured]
    give = [0] * len(wants)
    left = len(wants)
    for i in sorted(range(len(wants)), key=lambda i: wants[i]):
        give[i] = min(wants[i], spare // left)
        spare -= give[i]
        left -= 1
    return [
        m.minimum + extra - table._get_padding_width(column._index)
        for m, extra, column in zip(measured, give, table.columns, strict=True)
    ]


def print_table(out: Console, table: Table, *, piped_width: int | None = None) -> None:
    """Print ``table`` whole: as a table when it fits, else one key/value block per row.
    ``piped_width``: lay piped output out for at least that many columns (``PIPED_WIDTH``
    for the wide ledger tables of ``status`` and ``audit``, read in mail from cron)."""
    width = output_width(out, piped_width)
    target = out
    if width != out.width:
        target = Console(highlight=False, markup=False, soft_wrap=False, width=width, force_terminal=False)
    widths = fitted_widths(target, table, width)
    if widths is not None:
        if target.soft_wrap and table.title:  # (the command's console: the title on its own line, as ever)
            target.print(Text(str(table.title), style="table.title"), soft_wrap=False)
            table.title = None
        unbounded = target.options.update_width(1_000_000)
        if sum(table._measure_column(target, unbounded, c).maximum for c in table.columns) + table._extra_width > width:
            for column, column_width in zip(table.columns, widths, strict=True):  # (it wraps: between words)
                column.width = max(column_width, 1)
                column.overflow = "fold"  # (never an ellipsis)
        target.print(table, soft_wrap=False)  # (the title too wraps between words)
        return
    if table.title:
        target.print(Text(str(table.title), style="bold"), soft_wrap=False)
    headers = [str(column.header) for column in table.columns]
    cells = [list(column.cells) for column in table.columns]
    for row in range(table.row_count):
        block = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2, 0, 0))
        block.add_column(style="bold", no_wrap=True)
        block.add_column(overflow="fold")
        for header, values in zip(headers, cells, strict=True):
            value = values[row] if row < len(values) else ""
            if isinstance(value, str | Text) and not str(value).strip():
                continue  # an empty cell says nothing
            block.add_row(header, value)
        target.print(block, soft_wrap=False)
        if row + 1 < table.row_count:
            target.print()
