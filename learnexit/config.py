"""Settings: defaults < learnexit.toml < LEARNEXIT_* environment < command-line flags.

The file is validated strictly: every error names the file, the key and what is
wrong, and unknown keys are errors (a typo such as ``owend_via`` must not silently
turn a table's ownership rule off).  Relative SQLite paths, the media root and the
export folder are resolved against the config file's folder, so cron (which runs
from ``/``) sees the same files as an engineer in that folder.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .contract import DEFAULT_TIMEZONE
from .documents.i18n import LANGS
from .errors import ConfigError
from .urls import backend, has_control, resolve_url
from .urls import mask_url as mask_url  # (re-exported: most modules import these from config)
from .urls import normalise_driver as normalise_driver
from .urls import register_secret as register_secret
from .urls import scrub as scrub

CONFIG_ENV = "LEARNEXIT_CONFIG"
SOURCE_URL_ENV = "LEARNEXIT_SOURCE_URL"
SOURCE_READ_URL_ENV = "LEARNEXIT_SOURCE_READ_URL"
STATE_URL_ENV = "LEARNEXIT_STATE_URL"
DEFAULT_CONFIG_NAME = "learnexit.toml"
FILL_IN = "FILL IN"  # what `init --from-database` writes where only a person can answer

CATEGORIES = ("users", "courses", "reports", "other")
TENANCIES = ("shared", "database")
SQL_DIALECTS = ("sqlite", "postgresql", "mysql")
CHECKSUM_ALGORITHMS = ("md5", "sha1", "sha256")
ALL_FORMATS = ("csv", "xlsx", "json", "xml", "pdf", "docx", "media", "sql")

# Which columns each role must name (design §2).  Optional columns may be left out.
ROLE_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "people": (("id", "name"), ("email",)),
    "courses": (("id", "title"), ()),
    "completions": (("person", "course"), ("completed_at", "score")),
    "certificates": (("person",), ("course", "title", "issued_at", "number")),
    "quiz_results": (("person",), ("quiz", "score", "max_score")),
    "feedback": (("person",), ("question", "answer")),
    "activity": (("person",), ("at",)),
}

# Role keys that are no column: [roles.people] nobody (person ids that mean no one),
# [roles.completions] completed_only (a row counts only with its completed_at set).
ROLE_OPTIONS: dict[str, tuple[str, ...]] = {
    "people": ("nobody",),
    "completions": ("completed_only",),
}
# Role columns that may live in another table, reached through a reference from the
# role's table: ``max_score = "quiz.grade"``, a badge's ``title = "badge.name"``.
ROLE_REMOTE_COLUMNS: dict[str, tuple[str, ...]] = {"quiz_results": ("max_score",), "certificates": ("title",)}

# Every key the loader accepts, per section: the one table that both the validation
# (an unknown key is an error) and the documentation test (docs/configuration.md lists
# exactly these) read.  "tables.*" is any [tables.NAME]; the [roles.NAME] keys come from
# ROLE_COLUMNS (see ``allowed_keys``).
SECTIONS = (
    "source", "state", "vendor", "contract", "customer", "relations",
    "tables", "media", "roles", "closure", "export", "purge",
)  # fmt: skip
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "source": ("url", "read_url", "schema"),
    "state": ("url",),
    "vendor": ("name",),
    "contract": (
        "notice_days", "export_window_days", "timezone", "term_months",
        "table", "customer_column", "start_column", "term_column",
    ),
    "customer": ("table", "key", "name_column", "tenancy", "name", "name_query"),
    "relations": ("from", "to", "sentinels"),
    "tables.*": (
        "category", "retain", "legal_basis", "shared", "owned_via", "personal_columns", "ignore_references",
        "sentinels", "omit_columns", "export",
    ),
    "media": (
        "root", "table", "path_column", "path_template", "name_column",
        "size_column", "checksum_column", "checksum_algorithm",
    ),
    "closure": ("set",),
    "export": ("out", "formats", "sql_dialect", "lang", "batch_size"),
    "purge": ("batch_size", "backup_note", "certificates", "lock_stale_minutes"),
}  # fmt: skip


def allowed_keys() -> dict[str, frozenset[str]]:
    """Section → the keys it accepts (``[roles.NAME]`` one entry per role)."""
    keys = {section: frozenset(names) for section, names in SECTION_KEYS.items()}
    for role, (required, optional) in ROLE_COLUMNS.items():
        keys[f"roles.{role}"] = frozenset(("table", *required, *optional, *ROLE_OPTIONS.get(role, ())))
    return keys


_ALLOWED = allowed_keys()


@dataclass(frozen=True)
class Relation:
    """A reference the database does not declare: ``from`` table.column → ``to``."""

    from_table: str
    from_columns: tuple[str, ...]
    to_table: str
    to_columns: tuple[str, ...]
    # Values that mean "no reference" (Moodle writes 0 where it means none): a row whose
    # column holds one is neither owned through this relation nor a dangling reference.
    sentinels: tuple[Any, ...] = ()


@dataclass(frozen=True)
class TableRule:
    name: str
    category: str | None = None
    retain: str | None = None
    legal_basis: str | None = None
    shared: bool = False
    owned_via: tuple[tuple[str, str], ...] = ()
    personal_columns: tuple[str, ...] = ()
    ignore_references: tuple[str, ...] = ()
    # column -> values that mean "no reference" in that column (for every reference
    # the column takes part in, declared or not)
    sentinels: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def sentinels_of(self, column: str) -> tuple[Any, ...]:
        return next((values for col, values in self.sentinels if col == column), ())

    omit_columns: tuple[str, ...] = ()  # never exported (any format); the rows are still purged
    export: bool = True  # false: the table is not exported at all, still purged


@dataclass(frozen=True)
class MediaSettings:
    root: str
    table: str
    path_column: str | None = None
    path_template: str | None = None
    name_column: str | None = None
    size_column: str | None = None
    checksum_column: str | None = None
    checksum_algorithm: str | None = None


@dataclass(frozen=True)
class Role:
    name: str
    table: str
    columns: dict[str, str]  # key → column of ``table``
    # key → (table, column) reached through a reference from ``table`` (ROLE_REMOTE_COLUMNS)
    remote: dict[str, tuple[str, str]] = field(default_factory=dict)
    nobody: tuple[Any, ...] = ()  # [roles.people] nobody: person ids that mean no one
    completed_only: bool = False  # [roles.completions] completed_only


@dataclass(frozen=True)
class ContractSettings:
    notice_days: int = 30
    export_window_days: int = 90
    timezone: str = DEFAULT_TIMEZONE
    term_months: int = 12
    table: str | None = None
    customer_column: str | None = None
    start_column: str | None = None
    term_column: str | None = None


@dataclass(frozen=True)
class CustomerSettings:
    table: str | None = None
    key: str = "slug"
    name_column: str | None = None
    tenancy: str = "shared"
    name: str | None = None  # a literal display name (tenancy "database": one customer per config is rare)
    name_query: str | None = None  # SQL returning the display name, run on the customer's database


@dataclass(frozen=True)
class ExportSettings:
    out: Path = Path("exports")
    formats: tuple[str, ...] = ALL_FORMATS
    sql_dialect: str = "sqlite"
    lang: str = "en"
    batch_size: int = 5000


@dataclass(frozen=True)
class PurgeSettings:
    batch_size: int = 20000
    backup_note: str | None = None
    certificates: Path = Path("certificates")
    lock_stale_minutes: int = 60


@dataclass(frozen=True)
class Settings:
    path: Path | None
    base_dir: Path
    source_url: str
    state_url: str
    vendor_name: str = "The vendor"
    source_schema: str | None = None
    # [source] read_url: a read replica of ``source_url`` the export reads (None: it reads
    # the primary).  Nothing else reads it: the purge always works on the primary.
    source_read_url: str | None = None
    contract: ContractSettings = field(default_factory=ContractSettings)
    customer: CustomerSettings = field(default_factory=CustomerSettings)
    relations: tuple[Relation, ...] = ()
    tables: dict[str, TableRule] = field(default_factory=dict)
    media: MediaSettings | None = None
    roles: dict[str, Role] = field(default_factory=dict)
    closure: dict[str, Any] = field(default_factory=dict)
    export: ExportSettings = field(default_factory=ExportSettings)
    purge: PurgeSettings = field(default_factory=PurgeSettings)

    @property
    def label(self) -> str:
        return str(self.path) if self.path else "(defaults)"

    def rule(self, table: str) -> TableRule:
        return self.tables.get(table) or TableRule(name=table)

    def for_customer(self, customer: str) -> Settings:
        """These settings with ``{customer}`` filled in where a path may hold it (the
        media root: one file store per customer, like one database per customer)."""
        if self.media is None or "{customer}" not in self.media.root:
            return self
        if not customer or "/" in customer or "\\" in customer or customer.startswith(".") or has_control(customer):
            raise ConfigError(
                f"{self.label}: [media] root contains {{customer}}: the key {customer[:40]!r} cannot name a folder"
            )
        root = self.media.root.replace("{customer}", customer)
        if not root.startswith("s3://"):
            root = str(Path(root).resolve())
        return replace(self, media=replace(self.media, root=root))

    def source_url_for(self, customer: str | None) -> str:
        """The source URL with ``{customer}`` filled in (tenancy = "database")."""
        if "{customer}" in self.source_url:
            if customer is None:
                raise ConfigError(f"{self.label}: [source] url contains {{customer}}; name a customer")
            return self.source_url.replace("{customer}", customer)
        return self.source_url

    def source_read_url_for(self, customer: str | None) -> str:
        """Where the export reads: ``[source] read_url`` with ``{customer}`` filled in, or
        the primary (``source_url_for``) when no read replica is configured."""
        if self.source_read_url is None:
            return self.source_url_for(customer)
        if "{customer}" in self.source_read_url:
            if customer is None:
                raise ConfigError(f"{self.label}: [source] read_url contains {{customer}}; name a customer")
            return self.source_read_url.replace("{customer}", customer)
        return self.source_read_url


# ---------------------------------------------------------------------------
# parsing helpers: each knows where it is so that errors can name the key


class _Section:
    def __init__(self, label: str, name: str, data: Any, schema: str | None = None) -> None:
        self.label = label
        self.name = name
        self.allowed = _ALLOWED[schema or name]
        if not isinstance(data, dict):
            self.fail(None, f"must be a table, not {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def fail(self, key: str | None, problem: str) -> None:
        where = f"[{self.name}]" + (f" {key}" if key else "")
        raise ConfigError(f"{self.label}: {where}: {problem}")

    def _get(self, key: str, kinds: tuple[type, ...], kind_name: str, default: Any) -> Any:
        assert key in self.allowed, f"{key} is missing from SECTION_KEYS[{self.name!r}]"
        self.used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in kinds:
            self.fail(key, f"must be {kind_name}, not a boolean")
        if not isinstance(value, kinds):
            self.fail(key, f"must be {kind_name}, not {type(value).__name__} {value!r}")
        return value

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> Any:
        value = self._get(key, (str,), "a string", default)
        if required and value is None:
            self.fail(key, "is required")
        if value is not None and not value.strip():
            self.fail(key, "must not be empty")
        if value is not None and has_control(value):
            self.fail(key, "must not contain control characters (NUL, line breaks, escapes)")
        return value

    def integer(self, key: str, default: int, *, minimum: int = 0, maximum: int = 10**9) -> int:
        value = self._get(key, (int,), "a whole number", default)
        if not minimum <= value <= maximum:
            self.fail(key, f"must be between {minimum} and {maximum}, not {value}")
        return int(value)

    def flag(self, key: str, default: bool = False) -> bool:
        return bool(self._get(key, (bool,), "true or false", default))

    def texts(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(key, (list,), "a list of strings", None)
        if value is None:
            return default
        for item in value:
            if not isinstance(item, str) or not item.strip():
                self.fail(key, f"must be a list of non-empty strings, found {item!r}")
            if has_control(item):
                self.fail(key, f"must not contain control characters, found {item!r}")
        return tuple(value)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in choices:
            self.fail(key, f"must be one of {', '.join(choices)}, not {value!r}")
        return str(value)

    def table(self, key: str) -> dict[str, Any] | None:
        return self._get(key, (dict,), "a table", None)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.allowed)
        if unknown:
            self.fail(unknown[0], "unknown key" + (f" (also: {', '.join(unknown[1:])})" if unknown[1:] else ""))


def _column_ref(section: _Section, key: str, text: str) -> tuple[str, str]:
    """``table.column`` → (table, column)."""
    parts = text.split(".")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        section.fail(key, f"must be written table.column, not {text!r}")
    return parts[0], parts[1]


def _column_refs(section: _Section, key: str) -> tuple[str, tuple[str, ...]]:
    """``table.column`` or a list of them (one table: a composite reference)."""
    section.used.add(key)
    raw = section.data.get(key)
    if raw is None:
        section.fail(key, "is required")
    items: list[Any] = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(item, str) and item.strip() for item in items):
        section.fail(key, "must be table.column or a list of table.column (one table)")
    if any(has_control(item) for item in items):
        section.fail(key, "must not contain control characters (NUL, line breaks, escapes)")
    refs = [_column_ref(section, key, str(item)) for item in items]
    tables = {table for table, _col in refs}
    if len(tables) != 1:
        section.fail(key, f"a composite reference names one table, not {', '.join(sorted(tables))}")
    columns = tuple(col for _table, col in refs)
    if len(set(columns)) != len(columns):
        section.fail(key, "names a column twice")
    return refs[0][0], columns


def _sentinel_values(section: _Section, key: str, values: list[Any]) -> tuple[Any, ...]:
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            section.fail(key, f"values must be whole numbers or strings, found {value!r}")
    return tuple(values)


def _table_sentinels(section: _Section) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    raw = section.table("sentinels")
    if raw is None:
        return ()
    out = []
    for column, values in sorted(raw.items()):
        if not isinstance(values, list):
            section.fail("sentinels", f"{column} must be a list of values, not {type(values).__name__}")
        out.append((column, _sentinel_values(section, "sentinels", values)))
    return tuple(out)


def find_config_path(explicit: str | os.PathLike[str] | None, env: dict[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    default = Path(DEFAULT_CONFIG_NAME)
    return default if default.exists() else None


def load_settings(
    config: str | os.PathLike[str] | None = None,
    *,
    env: dict[str, str] | None = None,
    source_url: str | None = None,
    state_url: str | None = None,
    require_file: bool = True,
) -> Settings:
    """Resolve the settings once: defaults < file < environment < flags."""
    env = dict(os.environ) if env is None else env
    path = find_config_path(config, env)
    if path is None:
        if require_file:
            raise ConfigError(
                "no configuration: pass --config PATH, set LEARNEXIT_CONFIG, "
                "or run `learnexit init` to write ./learnexit.toml"
            )
        data: dict[str, Any] = {}
        base_dir = Path.cwd()
        label = "(no config file)"
    else:
        label = str(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"{label}: config file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{label}: is a folder, not a config file") from None
        except OSError as exc:
            raise ConfigError(f"{label}: cannot read: {exc.strerror}") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"{label}: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{label}: invalid TOML: {exc}") from None
        base_dir = path.resolve().parent
    return settings_from_data(data, label, path, base_dir, env, source_url, state_url)


def settings_from_data(
    data: dict[str, Any],
    label: str,
    path: Path | None,
    base_dir: Path,
    env: dict[str, str],
    source_url_flag: str | None,
    state_url_flag: str | None,
) -> Settings:
    """Settings from the parsed TOML ``data`` (``label`` names it in errors; the flags
    and ``env`` override its URLs), validated section by section.  ``load_settings`` reads
    the file; the draft checks the file it writes with this."""
    if not isinstance(data, dict):  # (tomllib always gives a table)
        raise ConfigError(f"{label}: must be a TOML table")
    known = set(SECTIONS)
    for key in data:
        if key not in known:
            raise ConfigError(f"{label}: [{key}]: unknown section")
    source_url, read_url, schema = _source(data, label, base_dir, env, source_url_flag)
    state_url = _state(data, label, base_dir, env, state_url_flag)
    vendor = _Section(label, "vendor", data.get("vendor", {}))
    vendor_name = vendor.text("name", "The vendor")
    vendor.finish()
    contract = _contract(data, label)  # (sections checked in the file's documented order)
    customer = _customer(data, label, source_url, read_url)
    relations = _relations(data, label)
    tables = _tables(data, label)
    media = _media(data["media"], label, base_dir) if "media" in data else None
    roles = _roles(data, label, tables)
    closure = _closure(data, label)
    export = _export(data, label, base_dir)
    return Settings(
        path=path,
        base_dir=base_dir,
        source_url=source_url,
        state_url=state_url,
        vendor_name=vendor_name,
        source_schema=schema,
        source_read_url=read_url,
        contract=contract,
        customer=customer,
        relations=relations,
        tables=tables,
        media=media,
        roles=roles,
        closure=closure,
        export=export,
        purge=_purge(data, label, base_dir),
    )


def _source(
    data: dict[str, Any], label: str, base_dir: Path, env: dict[str, str], flag: str | None
) -> tuple[str, str | None, str | None]:
    """[source]: the URL (flag < environment < file), the read replica's URL (environment <
    file) and the schema."""
    source = _Section(label, "source", data.get("source", {}))
    overridden = flag or env.get(SOURCE_URL_ENV)
    url = overridden or source.text("url")
    source.used.add("url")
    read = env.get(SOURCE_READ_URL_ENV) or source.text("read_url")
    schema = source.text("schema")
    source.finish()
    if not url:
        raise ConfigError(f"{label}: [source] url: is required (or set {SOURCE_URL_ENV})")
    url = resolve_url(normalise_driver(url), base_dir, label, "[source] url")
    if read is None:
        return url, None, schema
    read = resolve_url(normalise_driver(read), base_dir, label, "[source] read_url")
    in_file = source.data.get("url")
    if overridden and not env.get(SOURCE_READ_URL_ENV) and isinstance(in_file, str) and in_file != overridden:
        # (the file's replica is a copy of the file's primary, not of the one that replaced it)
        source.fail("read_url", f"url comes from {SOURCE_URL_ENV} or the command line: set {SOURCE_READ_URL_ENV} too")
    if read == url:
        source.fail("read_url", "is the same database as url (leave read_url out to read the primary)")
    if backend(read) != backend(url):
        source.fail(
            "read_url", f"names a {backend(read)} database, url a {backend(url)} one: a replica is the same kind"
        )
    return url, read, schema


def _state(data: dict[str, Any], label: str, base_dir: Path, env: dict[str, str], flag: str | None) -> str:
    """[state] url: the ledger's database (one for every customer)."""
    state = _Section(label, "state", data.get("state", {}))
    surl = flag or env.get(STATE_URL_ENV) or state.text("url", "sqlite:///learnexit-state.db")
    state.used.add("url")
    state.finish()
    if "{customer}" in surl:
        state.fail("url", "must not contain {customer}: the ledger is one database")
    return resolve_url(normalise_driver(surl), base_dir, label, "[state] url")


def _contract(data: dict[str, Any], label: str) -> ContractSettings:
    c = _Section(label, "contract", data.get("contract", {}))
    contract = ContractSettings(
        notice_days=c.integer("notice_days", 30, maximum=3650),
        export_window_days=c.integer("export_window_days", 90, maximum=3650),
        timezone=c.text("timezone", DEFAULT_TIMEZONE),
        term_months=c.integer("term_months", 12, minimum=1, maximum=1200),
        table=c.text("table"),
        customer_column=c.text("customer_column"),
        start_column=c.text("start_column"),
        term_column=c.text("term_column"),
    )
    try:
        ZoneInfo(contract.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        c.fail("timezone", f"unknown time zone {contract.timezone!r}")
    if contract.table and not (contract.customer_column and contract.start_column):
        c.fail("table", "needs customer_column and start_column too")
    c.finish()
    return contract


def _customer(data: dict[str, Any], label: str, source_url: str, read_url: str | None) -> CustomerSettings:
    cu = _Section(label, "customer", data.get("customer", {}))
    tenancy = cu.choice("tenancy", "shared", TENANCIES)
    customer = CustomerSettings(
        table=cu.text("table", required=tenancy == "shared"),
        key=cu.text("key", "slug"),
        name_column=cu.text("name_column"),
        tenancy=tenancy,
        name=cu.text("name"),
        name_query=cu.text("name_query"),
    )
    if sum(x is not None for x in (customer.name, customer.name_query, customer.name_column)) > 1:
        cu.fail("name", "give at most one of name, name_query and name_column")
    if customer.name_query is not None and not re.match(r"(?is)\s*(select|with)\b", customer.name_query):
        cu.fail("name_query", "must be a SELECT query returning one value")
    cu.finish()
    for key, url in (("url", source_url), ("read_url", read_url or source_url)):
        if tenancy == "database" and "{customer}" not in url:
            raise ConfigError(f'{label}: [source] {key}: tenancy = "database" needs {{customer}} in the URL')
        if tenancy == "shared" and "{customer}" in url:
            raise ConfigError(f'{label}: [source] {key}: {{customer}} in the URL needs tenancy = "database"')
    return customer


def _relations(data: dict[str, Any], label: str) -> tuple[Relation, ...]:
    relations = []
    raw_rel = data.get("relations", [])
    if not isinstance(raw_rel, list):
        raise ConfigError(f"{label}: [[relations]]: must be an array of tables")
    for i, item in enumerate(raw_rel):
        r = _Section(label, f"relations #{i + 1}", item, "relations")
        ft, fcs = _column_refs(r, "from")
        tt, tcs = _column_refs(r, "to")
        if len(fcs) != len(tcs):
            r.fail("to", f"names {len(tcs)} columns where from names {len(fcs)}")
        sentinels = _sentinel_values(r, "sentinels", r._get("sentinels", (list,), "a list of values", []))
        r.finish()
        relations.append(Relation(ft, fcs, tt, tcs, sentinels))
    return tuple(relations)


def _tables(data: dict[str, Any], label: str) -> dict[str, TableRule]:
    tables: dict[str, TableRule] = {}
    raw_tables = data.get("tables", {})
    if not isinstance(raw_tables, dict):
        raise ConfigError(f"{label}: [tables]: must be a table of tables")
    for name, item in raw_tables.items():
        tables[name] = _table_rule(label, name, item)
    return tables


def _table_rule(label: str, name: str, item: Any) -> TableRule:
    t = _Section(label, f"tables.{name}", item, "tables.*")
    category = t.text("category")
    if category is not None and category not in CATEGORIES:
        t.fail("category", f"must be one of {', '.join(CATEGORIES)}, not {category!r}")
    retain = t.text("retain")
    if retain is not None:
        if not re.fullmatch(r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?", retain):
            t.fail("retain", f"must be an ISO-8601 duration such as P7Y, not {retain!r}")
    owned_via = tuple(_column_ref(t, "owned_via", v) for v in t.texts("owned_via"))
    rule = TableRule(
        name=name,
        category=category,
        retain=retain,
        legal_basis=t.text("legal_basis"),
        shared=t.flag("shared"),
        owned_via=owned_via,
        personal_columns=t.texts("personal_columns"),
        ignore_references=t.texts("ignore_references"),
        sentinels=_table_sentinels(t),
        omit_columns=t.texts("omit_columns"),
        export=t.flag("export", True),
    )
    if rule.legal_basis is not None and rule.legal_basis.strip().upper().startswith(FILL_IN):
        t.fail("legal_basis", "still says FILL IN: name the law that obliges you to keep these rows")
    if rule.retain and not rule.legal_basis:
        t.fail("legal_basis", "is required with retain: say which law obliges you")
    if rule.legal_basis and not rule.retain:
        t.fail("retain", "is required with legal_basis")
    if rule.shared and (rule.owned_via or rule.retain):
        t.fail("shared", "a shared table cannot also be owned_via or retained")
    t.finish()
    return rule


def _media(raw: Any, label: str, base_dir: Path) -> MediaSettings:
    m = _Section(label, "media", raw)
    root = m.text("root", required=True)
    if has_control(root):
        m.fail("root", "must not contain control characters")
    if "{" in root.replace("{customer}", ""):
        m.fail("root", "the only placeholder allowed is {customer}")
    if root.startswith("s3://"):
        media_root = root
    else:  # (resolved with the placeholder in place: the customer's key never climbs out)
        media_root = str(base_dir / root) if "{customer}" in root else str((base_dir / root).resolve())
    media = MediaSettings(
        root=media_root,
        table=m.text("table", required=True),
        path_column=m.text("path_column"),
        path_template=m.text("path_template"),
        name_column=m.text("name_column"),
        size_column=m.text("size_column"),
        checksum_column=m.text("checksum_column"),
        checksum_algorithm=m.text("checksum_algorithm"),
    )
    if bool(media.path_column) == bool(media.path_template):
        m.fail("path_column", "give exactly one of path_column and path_template")
    if media.checksum_column and media.checksum_algorithm not in CHECKSUM_ALGORITHMS:
        m.fail("checksum_algorithm", f"must be one of {', '.join(CHECKSUM_ALGORITHMS)}")
    m.finish()
    return media


def _roles(data: dict[str, Any], label: str, tables: dict[str, TableRule]) -> dict[str, Role]:
    roles: dict[str, Role] = {}
    raw_roles = data.get("roles", {})
    if not isinstance(raw_roles, dict):
        raise ConfigError(f"{label}: [roles]: must be a table of tables")
    for name, item in raw_roles.items():
        if name not in ROLE_COLUMNS:
            raise ConfigError(f"{label}: [roles.{name}]: unknown role (known: {', '.join(ROLE_COLUMNS)})")
        roles[name] = _role(label, name, item, tables)
    return roles


def _role(label: str, name: str, item: Any, tables: dict[str, TableRule]) -> Role:
    ro = _Section(label, f"roles.{name}", item)
    required, optional = ROLE_COLUMNS[name]
    table = ro.text("table", required=True)
    columns = {}
    for key in required:
        columns[key] = ro.text(key, required=True)
    remote: dict[str, tuple[str, str]] = {}
    for key in optional:
        value = ro.text(key)
        if value and key in ROLE_REMOTE_COLUMNS.get(name, ()) and "." in value:
            other, _, column = value.partition(".")
            if not other or not column or "." in column:
                ro.fail(key, f"must be a column or TABLE.COLUMN, not {value!r}")
            remote[key] = (other, column)
        elif value:
            columns[key] = value
    nobody: tuple[Any, ...] = ()
    if "nobody" in ROLE_OPTIONS.get(name, ()):
        nobody = _sentinel_values(ro, "nobody", ro._get("nobody", (list,), "a list of values", []))
    completed_only = False
    if "completed_only" in ROLE_OPTIONS.get(name, ()):
        completed_only = ro.flag("completed_only")
        if completed_only and "completed_at" not in columns:
            ro.fail("completed_only", "needs completed_at (the column that is set once completed)")
    ro.finish()
    omitted = set(tables[table].omit_columns) if table in tables else set()
    if not tables.get(table, TableRule(table)).export:
        ro.fail("table", f"{table} has export = false: a role's table is exported (letters, nested documents)")
    for key, column in columns.items():
        if column in omitted:
            ro.fail(key, f"{table}.{column} is in omit_columns: the documents would export it after all")
    for key, (other, column) in remote.items():
        if other in tables and column in tables[other].omit_columns:
            ro.fail(key, f"{other}.{column} is in omit_columns: the documents would export it after all")
    return Role(name, table, columns, remote, nobody, completed_only)


def _closure(data: dict[str, Any], label: str) -> dict[str, Any]:
    closure: dict[str, Any] = {}
    if "closure" in data:
        cl = _Section(label, "closure", data["closure"])
        actions = cl.table("set") or {}
        for ref, value in actions.items():
            _column_ref(cl, "set", ref)
            if not isinstance(value, (str, int, float, bool)):
                cl.fail(f"set.{ref}", "must be a string, number or boolean")
            closure[ref] = value
        cl.finish()
    return closure


def _export(data: dict[str, Any], label: str, base_dir: Path) -> ExportSettings:
    e = _Section(label, "export", data.get("export", {}))
    formats = e.texts("formats", ALL_FORMATS)
    for fmt in formats:
        if fmt not in ALL_FORMATS:
            e.fail("formats", f"unknown format {fmt!r} (known: {', '.join(ALL_FORMATS)})")
    export = ExportSettings(
        out=(base_dir / e.text("out", "exports")).resolve(),
        formats=formats,
        sql_dialect=e.choice("sql_dialect", "sqlite", SQL_DIALECTS),
        lang=e.choice("lang", "en", LANGS),
        batch_size=e.integer("batch_size", 5000, minimum=1, maximum=1_000_000),
    )
    e.finish()
    return export


def _purge(data: dict[str, Any], label: str, base_dir: Path) -> PurgeSettings:
    p = _Section(label, "purge", data.get("purge", {}))
    purge = PurgeSettings(
        batch_size=p.integer("batch_size", 20000, minimum=1, maximum=1_000_000),
        backup_note=p.text("backup_note"),
        certificates=(base_dir / p.text("certificates", "certificates")).resolve(),
        lock_stale_minutes=p.integer("lock_stale_minutes", 60, minimum=1, maximum=10_000),
    )
    p.finish()
    return purge
