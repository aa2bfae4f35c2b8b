"""pyx.ledgermap takes clearing's rules from its caller instead of importing them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_mapper_refuses_to_run_unbound_and_does_not_import_clearing() -> None:
    r = _run(
        "import sys, numpy as np\n"
        "from bursa_wire.layout import EV_DTYPE\n"
        "from pyx import ledgermap\n"
        "assert not any(m.split('.')[0] == 'clearing' for m in sys.modules)\n"
        "ledgermap.apply_events(None, np.zeros(0, dtype=EV_DTYPE), 0)\n"
    )
    assert r.returncode == 1 and "bind_rules(clearing.rules) was not called" in r.stderr


def test_importing_the_ledger_binds_the_rules() -> None:
    """After `import clearing.ledger` the mapper passes its bind check (and then fails
    only on the missing ledger object)."""
    r = _run(
        "import numpy as np\n"
        "from bursa_wire.layout import EV_DTYPE\n"
        "import clearing.ledger\n"
        "from pyx import ledgermap\n"
        "ledgermap.apply_events(None, np.zeros(0, dtype=EV_DTYPE), 0)\n"
    )
    assert r.returncode == 1 and "AttributeError" in r.stderr, r.stderr
    assert "bind_rules" not in r.stderr
