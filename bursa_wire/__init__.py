"""Record layouts of bursa: the leaf package every layer may import.

The tables here (binary record layouts, their numpy dtypes and the market-data
message layouts) are pure data: this package imports nothing of bursa, so the
compiled engine (``pyx``), the core (``engine``), the client bindings and every
service can all import it without a cycle (tests/test_layering.py checks the
edges).  It stays import-free: import the modules themselves.
"""
