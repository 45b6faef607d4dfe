"""The source LMS: reflect it, work out what belongs to a customer, stream those rows.

- ``reflect``: engines, reflection, value-free database errors (``sqlite_pragmas``: a
  SQLite schema's per-table reflection read for every table in a few statements);
- ``customer``: what a customer key may be, the customer's row, the row a case pinned;
- ``datamap``: every table classified, the references (``Edge``), parents-first order;
- ``ownership``: the customer's rows as SQL conditions, contested rows;
- ``snapshot``: consistent reads, shared with other processes where possible, and where
  they were read (``ReadPoint``: the primary or its read replica, ``Reads``);
- ``reader``: ``Source``, one customer's view tying those together;
- ``inspection``: ``inspect_customer`` (imported from there: it reads the config's
  quiet-loss checks, which build on this package);
- ``keys``: rows in key order, in batches (the closure and the purge walk tables by it);
- ``keysets``: the key sets the ownership conditions name, as temporary tables;
  ``sqlite_fk``: SQLite parent rows deleted with the foreign keys checked once per
  referencing table;
- ``naming``: the customer's display name; ``text_decode``: SQLite text that is not UTF-8.

The names most modules need are importable from the package itself.
"""

from .customer import PinnedRow, check_customer_key
from .datamap import DataMap, Edge
from .ownership import ContestedTable, sentinels_typed
from .reader import Source, cycle_can_break, unbreakable_cycle_note
from .reflect import describe_db_error, make_engine
from .snapshot import ReadPoint, Reads

__all__ = [
    "ContestedTable",
    "DataMap",
    "Edge",
    "PinnedRow",
    "ReadPoint",
    "Reads",
    "Source",
    "check_customer_key",
    "cycle_can_break",
    "describe_db_error",
    "make_engine",
    "sentinels_typed",
    "unbreakable_cycle_note",
]
