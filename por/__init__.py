"""Proof of reserves: a Merkle sum tree of liabilities, inclusion proofs, reserves report.

``por.verify`` is the standalone verifier (stdlib only, one file); ``por.tree``
builds the tree; ``por.source`` reads balances from a core data directory or a
JSON file; ``por.reserves`` checks address-control signatures and compares
reserves with liabilities; ``por.cli`` is ``bursa por``.  See docs/por.md.
"""
