"""The purge: plan → delete → verify → certify, one customer at a time (design §1 and §5).

Modules, each importing only those listed before it:

* ``results`` — the plan and the result (data only); ``faults`` — test-only fault hooks;
* ``keys`` — row keys as the ledger records them, batches of keys; ``conditions`` — SQL
  conditions and counts;
* ``history`` — what the ledger says about earlier purges; ``source`` — the purge's view
  of the source (works once the customer's own row is gone); ``rounds`` — the cycles of
  tables whose kept rows decide each other's, and how many rounds settle them; ``scope``
  — which rows go and which stay;
* ``journal`` — pending batches and progress of a running purge; ``record`` — the
  ``purges`` row and its audit entries; ``exports`` — the customer's export packages;
* ``media`` — media files (path rules, store, matcher); ``media_refs`` — which rows name
  them, and the plan's and the run's media steps;
* ``delete`` — deleting rows in batches, blanking kept rows; ``verify`` — the re-count;
  ``certificate`` — the PDF;
* ``plan`` — :func:`plan.plan_purge`; ``run`` — :func:`run.execute_purge` (one customer,
  under the purge lock); ``reapply`` — deleted stays deleted (data a restored backup
  brought back); ``due`` — cron mode, :func:`due.purge_due`.

Nothing here imports this package's ``__init__``: import the modules themselves.
"""
