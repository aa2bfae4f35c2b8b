# cython: language_level=3
"""The shared enums, importable from Python (declared in enums.pxd)."""
