"""Names of the deliberately broken durability variants, and the build check.

They exist only so the simulator's self-test can prove it catches each kind of
bug (issue 12: "proving the simulator can fail").  They are compiled out of the
production build: only a build made with ``BURSA_VARIANTS=1`` (the debug build,
``make debug`` into ``build/debug/``) has them (``pyx.core.VARIANTS_BUILT``), and
every entry point that takes variants (:func:`check`: the sequencer, recovery,
snapshots, the core's constructor) refuses them elsewhere.  The core's own
variants (``double_release``, ``dup_deposit``) live in ``pyx.core.VARIANTS``; the
durability layer strips its names before handing the rest to the core.
"""

from pyx.core import VARIANTS as CORE_VARIANTS
from pyx.core import VARIANTS_BUILT

ACK_BEFORE_SYNC = "ack_before_sync"  # fsync mode acknowledges before the data is synced
SKIP_CRC = "skip_crc"  # recovery accepts records without checking their CRCs
SNAPSHOT_RENAME_NOSYNC = "snapshot_rename_nosync"  # snapshot renamed before its data is synced

DURABILITY: frozenset[str] = frozenset({ACK_BEFORE_SYNC, SKIP_CRC, SNAPSHOT_RENAME_NOSYNC})

#: Every variant this build can switch on: none in the production build.
AVAILABLE: frozenset[str] = (DURABILITY | CORE_VARIANTS) if VARIANTS_BUILT else frozenset()


def core_variants(variants: frozenset[str]) -> frozenset[str]:
    """The variants meant for the core: everything but the durability layer's."""
    return variants - DURABILITY


def check(variants: frozenset[str]) -> frozenset[str]:
    """``variants`` if this build has them all; else ``ValueError`` naming the rest.

    Raises
    ------
    ValueError
        A name this build does not know; in the production build every name.
    """
    unknown = frozenset(variants) - AVAILABLE
    if unknown:
        hint = (
            ""
            if VARIANTS_BUILT
            else " (the production build compiles the broken variants out; the debug "
            "build has them: `make debug`, PYTHONPATH=build/debug)"
        )
        raise ValueError(f"unknown variants: {sorted(unknown)}{hint}")
    return frozenset(variants)
