"""Clearing: a double-entry ledger of the core's events in SQLite or PostgreSQL.

``clearing.rules`` maps events to balanced entries (a pure function),
``clearing.ledger`` writes them exactly once, ``clearing.process`` is the
``bursa clearing`` process, ``clearing.queries`` the read API and
``clearing.reconcile`` the comparison with the core.  See docs/clearing.md.
"""
