"""The example LMS: a realistic, awkward, deterministic source to demo and test against.

``build_example(dest)`` writes a shared-tenancy LMS (``lms.db``, Canvas-flavoured: a
global ``users`` table tied to customers through ``logins`` and ``memberships``), its
media files, its ``learnexit.toml``, and a database-tenancy Moodle-flavoured example
under ``legacy/``.  Everything is derived from the seed: two builds with one seed hold
identical rows and byte-identical media files.

The data is deliberately unkind: å/ä/ö and emoji, quotes, commas, newlines, tabs,
backslashes, values starting with ``=``, NULLs, a 40 000-character text, one person in
two organisations, self-referencing sections, a shared catalogue and a key store with a
tenant column that is nevertheless shared.

``ExampleInfo.counts`` is the truth known by construction: each row is counted for its
customer at the moment it is generated, never by querying with ownership logic, so it
can be used to check the ownership discovery.

Instants are naive ``datetime`` values meaning UTC, in whole seconds (MariaDB's
``DATETIME`` keeps no fractions by default).

Modules: ``schema`` (tables and names), ``pools`` (fixed data), ``rows`` (generator
state and helpers), ``people``/``courses``/``learning``/``business`` (generating steps),
``data`` (generate and insert), ``media`` (file bytes), ``legacy`` (Moodle example),
``config`` (the TOML written), ``build`` (writing to disk).
"""

from __future__ import annotations

from .build import build_example, build_legacy_example
from .data import ExampleInfo, populate_shared
from .legacy import LEGACY_METADATA
from .schema import (
    CUSTOMERS,
    DEFAULT_SEED,
    LEGACY_CUSTOMERS,
    OWNED_TABLES,
    SHARED_METADATA,
    SHARED_TABLES,
    SHARED_USER_NAME,
    build_shared_schema,
)

__all__ = [
    "CUSTOMERS",
    "DEFAULT_SEED",
    "LEGACY_CUSTOMERS",
    "LEGACY_METADATA",
    "OWNED_TABLES",
    "SHARED_METADATA",
    "SHARED_TABLES",
    "SHARED_USER_NAME",
    "ExampleInfo",
    "build_example",
    "build_legacy_example",
    "build_shared_schema",
    "populate_shared",
]
