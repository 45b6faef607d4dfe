# The optional C extension (learnexit/_speedups.c); see learnexit/exporters/speedups.py.
from collections.abc import Callable, Sequence
from typing import Any

def csv_records(columns: Sequence[Sequence[Any]], verbatim: Sequence[bool]) -> bytes | int: ...
def sql_inserts(
    columns: Sequence[Sequence[Any]],
    verbatim: Sequence[bool],
    dialect: int,
    head: str,
    max_rows: int,
    max_chars: int,
) -> bytes | int: ...
def xlsx_rows(
    columns: Sequence[Sequence[Any]],
    verbatim: Sequence[bool],
    letters: Sequence[str],
    first: int,
) -> bytes | int: ...
def sqlite_bind(library: str, connection_type: type) -> bool: ...
def sqlite_csv(
    connection: Any,
    filename: str,
    sql: str,
    params: tuple[Any, ...],
    kinds: Sequence[int],
    write: Callable[[bytes, int], Any],
    chunk: int,
) -> tuple[int, bool] | None: ...
def sqlite_inserts(
    connection: Any,
    filename: str,
    sql: str,
    params: tuple[Any, ...],
    kinds: Sequence[int],
    dialect: int,
    head: str,
    max_rows: int,
    max_chars: int,
    batch_rows: int,
    refs: Sequence[tuple[int, Any, Any]],
    write: Callable[[bytes, int], Any],
) -> tuple[int, bool] | None: ...
def pg_bind(library: str) -> bool: ...
def pg_copy_csv(
    pgconn: int,
    sql: str,
    kinds: Sequence[int],
    write: Callable[[bytes, int], Any],
    chunk: int,
) -> tuple[int, bool, str | None] | None: ...
def sqlite_rows(connection: Any, filename: str, sql: str, params: tuple[Any, ...], kinds: Sequence[int]) -> Any: ...
def sqlite_texts(
    rows: Any,
    templates: tuple[tuple[int, bytes, bytes, tuple[tuple[bytes, bytes, bytes], ...]], ...],
    key: int,
    max_rows: int,
) -> tuple[list[int], list[list[bytes]], int]: ...
def sqlite_close(rows: Any) -> None: ...
def sqlite_cells(rows: Any, letters: tuple[str, ...], first: int, max_rows: int) -> tuple[bytes, int, int]: ...
