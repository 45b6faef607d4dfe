"""Shared fixtures: real databases, created and dropped by the tests themselves.

SQLite files live in tmp_path.  PostgreSQL (127.0.0.1:5432, trust auth) and MariaDB
(127.0.0.1:3306, root, no password) get a fresh database per use, dropped afterwards.
A server that is not running skips its tests locally; with CI=true it fails them.  The
same holds for optional system programs (``needs_tool``): the README's set-up does not
install them, ``.ci/run`` does.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import copy_example
from hypothesis import settings as hypothesis_settings

from learnexit.demo import ExampleInfo, build_example

# Timing belongs in bench/, not in tests: no per-example deadline (a loaded CI machine
# must not turn a correct property into a flaky failure).
hypothesis_settings.register_profile("learnexit", deadline=None)
hypothesis_settings.load_profile("learnexit")

PG_ADMIN = os.environ.get("LEARNEXIT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MY_ADMIN = os.environ.get("LEARNEXIT_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")
ENGINES = ("sqlite", "postgresql", "mariadb")


def _unavailable(kind: str, exc: Exception) -> None:
    message = f"{kind} server not reachable: {str(exc).splitlines()[0]}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: a missing database server is a failure)")
    pytest.skip(message)


def missing_tools(*programs: str) -> list[str]:
    """The programs of ``programs`` that are not on the PATH."""
    return [p for p in programs if shutil.which(p) is None]


def needs_tool(*programs: str, package: str, why: str = "") -> None:
    """Skip the calling test when an optional system program is missing, with the reason
    and the package that brings it; with CI=true fail it instead (``.ci/run`` installs
    every one of them, so there a missing program is a broken set-up, not a choice)."""
    missing = missing_tools(*programs)
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (apt-get install {package}){': ' + why if why else ''}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: .ci/run installs it, so a missing program is a failure)")
    pytest.skip(message)


class DatabaseFactory:
    """Creates empty databases of one engine kind and drops them at teardown."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.created: list[str] = []
        self.admin: sa.Engine | None = None
        if kind == "postgresql":
            self.admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        elif kind == "mariadb":
            self.admin = sa.create_engine(MY_ADMIN, isolation_level="AUTOCOMMIT")
        if self.admin is not None:
            try:
                with self.admin.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
            except Exception as exc:  # noqa: BLE001
                self.admin.dispose()
                _unavailable(kind, exc)

    def new(self, label: str = "db") -> str:
        """A URL to a new, empty database."""
        name = f"le_{label}_{uuid.uuid4().hex[:10]}"
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp_path / (name + '.db')}"
        assert self.admin is not None
        with self.admin.connect() as conn:
            if self.kind == "postgresql":
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            else:
                conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        self.created.append(name)
        base = PG_ADMIN if self.kind == "postgresql" else MY_ADMIN
        return base.rsplit("/", 1)[0] + "/" + name

    def drop_all(self) -> None:
        if self.admin is None:
            return
        with self.admin.connect() as conn:
            for name in self.created:
                if self.kind == "postgresql":
                    conn.exec_driver_sql(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                    )
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
                else:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        self.admin.dispose()


@pytest.fixture(params=ENGINES)
def engine_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def dbs(engine_kind: str, tmp_path: Path) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(engine_kind, tmp_path)
    try:
        yield factory
    finally:
        factory.drop_all()


@pytest.fixture
def db_factory(tmp_path: Path) -> Iterator[Callable[[str], DatabaseFactory]]:
    """For tests that choose the engine themselves: db_factory("postgresql")."""
    made: list[DatabaseFactory] = []

    def make(kind: str) -> DatabaseFactory:
        f = DatabaseFactory(kind, tmp_path)
        made.append(f)
        return f

    yield make
    for f in made:
        f.drop_all()


# --------------------------------------------------------------------------- the order of the files

# The test files that take longest, longest first: those over 20 s in a parallel run on
# the 2-core machine (2026-12-06, later: 152 s for test_faults.py down to 20 s for
# test_sqlite_direct.py, of 1,255 s in all; the figure after each name).  The suite runs
# on pytest-xdist workers that each take a whole file at a time (pyproject: --dist
# loadfile) and ask for the next file when they are nearly done: handed out longest
# first, the long files run side by side and the many short ones fill in at the end, so
# the workers finish within seconds of each other instead of one of them being left with
# a long file while the other sits idle.  Only the order of whole files changes; the
# tests of a file keep their written order.  A file missing here runs after these, in
# the usual order; a name that no longer exists is harmless.  When a file grows past
# about 20 s, add it in its place.
LONGEST_FILES = (
    "test_faults_purge.py",  # ~75 s (slow; the purge's part of the 152 s test_faults.py had)
    "test_faults.py",  # ~75 s (slow; the export's part)
    "test_ownership_oracle.py",  # 114 s
    "test_ownership_regressions.py",  # 88 s
    "test_purge.py",  # 49 s
    "test_concurrency.py",  # 47 s
    "test_secrets.py",  # 46 s
    "test_speedups.py",  # 44 s
    "test_purge_chains.py",  # 40 s
    "test_restore_reapplied.py",  # 37 s
    "test_purge_kill.py",  # 35 s (slow)
    "test_parallel_export.py",  # 35 s
    "test_formats.py",  # 33 s
    "test_isolation_property.py",  # 30 s
    "test_no_values_leak.py",  # 30 s
    "test_media_aliases.py",  # 27 s
    "test_customer_identity.py",  # 27 s
    "test_documents.py",  # 24 s
    "test_release.py",  # 24 s (slow)
    "test_runbook.py",  # 23 s
    "test_draft.py",  # 22 s
    "test_sqlite_direct.py",  # 20 s
)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Write learnexit's bytecode (``__pycache__``, gitignored) before any test runs.

    Hundreds of tests start learnexit as a process of its own (``python -m learnexit``,
    the runbook, the recipes, multiprocessing's spawn and forkserver).  An editable
    install has no bytecode, and with PYTHONDONTWRITEBYTECODE=1 (set on the CI machines)
    Python never writes it either, so every one of those processes compiled learnexit
    from source again: 0.05-0.2 s of each.  ``compileall`` writes it whatever that
    setting says and skips what is up to date (a few milliseconds then).  The bytecode
    holds the source's modification time, so an edited file is compiled afresh by the
    next process that imports it: this changes only how fast the code starts, never
    which code runs.  It runs once, in the process that starts the xdist workers.
    """
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller did it
        return
    import compileall

    import learnexit

    try:
        compileall.compile_dir(Path(learnexit.__file__).parent, quiet=2)
    except OSError:  # a read-only copy: it is only slower
        pass


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # (a stable sort)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's own learnexit settings."""
    for var in (
        "LEARNEXIT_CONFIG", "LEARNEXIT_SOURCE_URL", "LEARNEXIT_SOURCE_READ_URL", "LEARNEXIT_STATE_URL",
        "LEARNEXIT_LOG_FORMAT",
    ):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LEARNEXIT_ACTOR", "tester@example")


# --------------------------------------------------------------------------- the example LMS


def _tree_state(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` with its mode, size and modification time."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[p.relative_to(root).as_posix()] = (
            st.st_mode,
            0 if stat.S_ISDIR(st.st_mode) else st.st_size,
            st.st_mtime_ns,
        )
    return out


@pytest.fixture(scope="session")
def example_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ExampleInfo]]:
    """The example LMS (``build_example`` with its defaults), built once per test session,
    and what ``build_example`` said about it.

    Read-only: every test of the session sees the same folder.  A test that changes the
    database, the media or the folder works on a copy (``example_site``, or
    ``helpers.copy_example`` for a module-scoped copy).  At the end of the session the
    folder must be exactly as built, or the session reports an error.
    """
    dest = tmp_path_factory.mktemp("example-template") / "ex"
    info = build_example(dest)
    built = _tree_state(dest)
    yield dest, info
    assert _tree_state(dest) == built, "a test changed the shared example: use example_site or copy_example()"


@pytest.fixture(scope="session")
def example_template(example_build: tuple[Path, ExampleInfo]) -> Path:
    """The folder of the session's example LMS (read-only, see ``example_build``)."""
    return example_build[0]


@pytest.fixture(scope="session")
def example_info(example_build: tuple[Path, ExampleInfo]) -> ExampleInfo:
    """What ``build_example`` reported for the session's example LMS."""
    return example_build[1]


@pytest.fixture
def example_site(example_template: Path, tmp_path: Path) -> Path:
    """A private copy of the example LMS (``tmp_path / "ex"``) for one test to change."""
    return copy_example(example_template, tmp_path / "ex")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3 endpoint of moto's own (a server on a free port), empty at the start and at
    the end (moto keeps its buckets per process, and a worker runs many test files), with
    the credentials and ``LEARNEXIT_S3_ENDPOINT`` set for the test; yields its URL."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()
    for key, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "eu-north-1"),
        ("LEARNEXIT_S3_ENDPOINT", endpoint),
    ):
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        yield endpoint
    finally:
        urllib.request.urlopen(reset, timeout=10).close()
        server.stop()
