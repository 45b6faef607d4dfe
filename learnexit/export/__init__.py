"""``learnexit export``: every row of one customer, in every chosen format, in one package.

``run`` (``run_export``) orchestrates; ``options`` resolves formats and recipients;
``specs`` builds and counts the tables; ``reading`` is the read pass; ``parallel`` runs
the formats side by side; ``records`` keeps the export's ledger records (its lock, and
the reaping of interrupted exports); ``hooks`` are the points tests reach in through.

The run, in order (design §4, issue 4):

1. Resolve the options (formats from the config unless given; an unknown format, dialect,
   language or age recipient is bad input, exit 2, before anything is touched).
2. Check the export window against the ledger's active notice: after the export deadline
   the export is refused (exit 3) unless a reason for the late export is given.  No
   notice at all is allowed, and said in the notes.
3. Record the export as ``running`` (with an audit entry), create ``<name>.partial/``.
4. Open ONE snapshot (of the read replica, ``[source] read_url``, when one is set; its
   first statement records where it reads: ``ReadPoint``, a standby's replay position,
   a warning when it lags).  Build the table specs (owned tables parents first, column kinds,
   references among exported tables whose targets are all exported), count each table,
   then read each table once, feeding every selected format's ``TableWriter``; then run
   each format's ``after`` step in ``order``, still in the snapshot.  With several cores
   (``parallel.run_formats``) the formats run side by side instead, in groups (one read
   pass feeds every writer of a group; ``parallel.group_formats``) spread over several
   processes, each reading its own snapshot of the same data: PostgreSQL imports this
   process's exported snapshot (``SET TRANSACTION SNAPSHOT``); SQLite has no such thing,
   so the workers begin their own read transactions and the parallel run goes ahead only
   if nothing was committed since this process's snapshot began (``PRAGMA
   data_version``), else everything runs here; MySQL/MariaDB always run in one process.
   When the formats make one group (``--format csv``), the biggest table is read in key
   ranges instead, one per process, by formats that can join ranges written by other
   processes (CSV, SQL: ``TableWriter.start_part``/``join_part``); the files come out
   as one process writes them.
5. Problems reported by the formats (missing media) fail the export unless allowed.
6. ``package.build.finish_package`` writes datapackage.json, index.html and the bag, and
   renames the package into place.  Only then is the ledger row marked ``complete``; any failure
   marks it ``failed`` and removes the partial build.
"""
