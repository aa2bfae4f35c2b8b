"""Names of the deliberately broken durability variants.

They exist only so the simulator's self-test can prove it catches each kind of
bug (issue 12: "proving the simulator can fail"); production never sets them.
The core's own variants (``double_release``, ``dup_deposit``) live in
``pyx.core.VARIANTS``; the durability layer strips its names before handing
the rest to the core.
"""

ACK_BEFORE_SYNC = "ack_before_sync"  # fsync mode acknowledges before the data is synced
SKIP_CRC = "skip_crc"  # recovery accepts records without checking their CRCs
SNAPSHOT_RENAME_NOSYNC = "snapshot_rename_nosync"  # snapshot renamed before its data is synced

DURABILITY: frozenset[str] = frozenset({ACK_BEFORE_SYNC, SKIP_CRC, SNAPSHOT_RENAME_NOSYNC})


def core_variants(variants: frozenset[str]) -> frozenset[str]:
    """The variants meant for the core: everything but the durability layer's."""
    return variants - DURABILITY
