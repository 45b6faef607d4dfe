"""The ledger: learnexit's own database of what was done for each customer.

* :mod:`.schema` — the tables (SQLAlchemy Core) and their migration;
* :mod:`.store` — :class:`~.store.Ledger` (transactions, offboarding cases, the
  hash-chained audit log, the purge lock) and the stored time conventions;
* :mod:`.records` — typed reads and writes of a customer's case records, what the
  rest of learnexit uses instead of the tables;
* :mod:`.purge_records` — the same for a purge's records (its row, progress, keys);
* :mod:`.export_records` — the same for exports, their locks and deliveries;
* :mod:`.consistency` — the records checked against the audit entries that made them.
"""
