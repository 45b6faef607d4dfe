"""The customer's offboarding case: notice, confirmation, closure, holds, status.

The date rules live in :mod:`learnexit.contract` (pure); these modules apply them to
the ledger (through :mod:`learnexit.ledger.records`) and the source:

* :mod:`.clock` — "now": the clock, or ``$LEARNEXIT_NOW`` for tests and rehearsals;
* :mod:`.cases` — the source of a case (pinned to its row), the customer known;
* :mod:`.facts` — what the records say (``contract.Facts``, closure due, timeline);
* :mod:`.terms` — the contract terms of a notice (flags or the contract table);
* :mod:`.notice`, :mod:`.confirm`, :mod:`.holds`, :mod:`.closure` — the commands'
  state changes (the closure writes the source);
* :mod:`.status` — status and the audit report; :mod:`.attention` — ``status --check``.

Every state change writes its ledger row and its audit entry in one ledger transaction.
Audit details hold ids, dates, flags and counts — free text (references, reasons, the
customer's contact person) stays in the ledger tables and never enters the audit chain.
State is derived from the recorded events and ``now``, never stored.  Library code
never prints.
"""
