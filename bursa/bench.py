"""`bursa bench`: the benchmark suite (``make bench``) from a source checkout.

The benchmarks live in ``bench/`` beside the sources and are not installed with the
wheel (they are development tools); this command runs ``bench.run_all`` when it is
importable and otherwise says how to get it.  Arguments are those of
``python -m bench.run_all`` (``--quick``, ``--only core,e2e``, ``--list``, ...).
"""

from __future__ import annotations

import importlib
import sys

EXIT_USAGE = 2
NO_SUITE = (
    "bursa bench: the benchmark suite is not installed (bench/ ships with the source, "
    "not the wheel): clone the repository and run `make bench` or `bursa bench` there"
)


def main(argv: list[str] | None = None) -> int:
    """Run ``bench.run_all`` with ``argv``; exit 2 with a hint when it is absent."""
    try:
        run_all = importlib.import_module("bench.run_all")
    except ModuleNotFoundError as e:
        if e.name not in ("bench", "bench.run_all"):
            raise
        print(NO_SUITE, file=sys.stderr)
        return EXIT_USAGE
    rc: int = run_all.main(sys.argv[1:] if argv is None else argv)
    return rc
