# pyx.ledgermap: event records -> ledger rows (the compiled path of clearing.ledger).
# Nothing is cimported from it; the declaration file keeps the pyx/ convention.
