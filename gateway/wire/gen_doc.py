"""Generate docs/protocol.md from the layouts, so the byte tables cannot drift.

``python -m gateway.wire.gen_doc`` rewrites it; ``--check`` exits 1 if it is stale
(tests/gateway/test_protocol_doc.py runs the check).
"""

from __future__ import annotations

import sys
from pathlib import Path

from bursa_wire.gw_layout import (
    APP_IN,
    APP_OUT,
    FRAME_HEAD,
    LOGIN_DOMAIN,
    MAX_FRAME_LEN,
    SEQ_HEAD,
    SESSION_MESSAGES,
    SIZES,
    MsgSpec,
)
from gateway.wire.codec import encode_spec
from gateway.wire.codes import GwReason
from pyx.enums import Reason

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "protocol.md"

# Example values for the hex dumps (every other field is 0).
EXAMPLE: dict[str, int | bytes] = {
    "key_id": 7,
    "next_seq": 1,
    "ts_ns": 1_700_000_000_000_000_000,
    "nonce": 0x1122334455667788,
    "flags": 1,
    "signature": bytes(range(64)),
    "first_seq": 1,
    "last_seq": 3,
    "user_id": 42,
    "heartbeat_ms": 1000,
    "reason": int(GwReason.BAD_SIGNATURE),
    "cl_ord_id": 1001,
    "price_ticks": 65_000,
    "qty_lots": 5,
    "leaves_lots": 5,
    "symbol_id": 1,
    "side": 1,
    "ord_type": 1,
    "tif": 1,
    "match_id": 9,
    "fee_minor": 325,
    "fee_asset_id": 2,
    "liquidity": 1,
    "request_id": 77,
    "asset_id": 2,
}


def _table(spec: MsgSpec, start: int) -> list[str]:
    rows = ["| offset | size | type | field | unit | meaning |", "|---:|---:|---|---|---|---|"]
    off = start
    for f in spec.fields:
        size = SIZES[f.code]
        rows.append(f"| {off} | {size} | `{f.code}` | `{f.name}` | {f.unit} | {f.doc} |")
        off += size
    return rows


def _hex(data: bytes) -> list[str]:
    lines = ["```"]
    for i in range(0, len(data), 16):
        lines.append(f"{i:04x}  " + " ".join(f"{b:02x}" for b in data[i : i + 16]))
    lines.append("```")
    return lines


def _section(spec: MsgSpec) -> list[str]:
    who = "client → gateway" if spec.inbound else "gateway → client"
    if spec.layer == "session":
        where = f"frame type `{spec.code.decode()}`"
        start = FRAME_HEAD.size
    elif spec.inbound:
        where = f"`U` frame, message type `{spec.code.decode()}`"
        start = FRAME_HEAD.size + 1
    else:
        where = f"`S` frame, message type `{spec.code.decode()}`, after the sequence number"
        start = FRAME_HEAD.size + SEQ_HEAD.size + 1
    frame = encode_spec(spec, EXAMPLE, seq=3)
    shown = [
        f"`{f.name}`=" + ("bytes 00..3f" if f.code == "S64" else str(EXAMPLE[f.name]))
        for f in spec.fields
        if f.name in EXAMPLE
    ]
    seq_note = "seq=3, " if spec.layer == "app" and not spec.inbound else ""
    example = "Example (" + seq_note + (", ".join(shown) if shown else "no fields") + "):"
    out = [
        f"### {spec.name} ({who})",
        "",
        f"{spec.doc[0].upper()}{spec.doc[1:]}. {where}; message {spec.struct.size} bytes,"
        f" frame {len(frame)} bytes (offsets below count from the frame's first byte).",
        "",
        *_table(spec, start),
        "",
        example,
        "",
        *_hex(frame),
        "",
    ]
    return out


def protocol_md() -> str:
    """The text of docs/protocol.md."""
    out = [
        "# Order-entry protocol",
        "",
        "Generated from `bursa_wire/gw_layout.py` by `python -m gateway.wire.gen_doc`;",
        "do not edit by hand. How to operate the gateway and the session rules in prose:",
        "[gateway.md](gateway.md).",
        "",
        "## Frames",
        "",
        "TCP carries frames back to back. Every frame is:",
        "",
        "| offset | size | type | field | meaning |",
        "|---:|---:|---|---|---|",
        f"| 0 | 2 | `<u2` | `length` | bytes after this field (type + body), 1..{MAX_FRAME_LEN} |",
        "| 2 | 1 | `u1` | `type` | ASCII frame type |",
        "| 3 | length-1 | | `body` | per type |",
        "",
        "All integers are little-endian; prices are integer ticks, quantities integer lots,",
        "amounts integer minor units (never a float). A frame whose length is 0 or above",
        f"{MAX_FRAME_LEN}, whose type is unknown, or whose body is not exactly the size of",
        "its message ends the session (`END_OF_SESSION` with `MALFORMED_MESSAGE` or",
        "`OVERSIZED_FRAME`).",
        "",
        "Application messages travel inside two frame types:",
        "",
        "- `U` (unsequenced, client → gateway): body = message type (1 byte) + message.",
        "- `S` (sequenced, gateway → client): body = `seq` (`<u8`, the session's",
        "  sequence number, 1, 2, 3, ... with no gap) + message type (1 byte) + message.",
        "",
        "## Session flow",
        "",
        "1. The client connects and sends `LOGIN` (its first frame), naming the next",
        "   sequenced message it expects (`next_seq`: 1 = all, 0 = only new ones).",
        "2. The gateway answers `LOGIN_REJECTED(reason)` and closes, or",
        "   `LOGIN_ACCEPTED(first_seq, last_seq)`, then sends the stored messages",
        "   `first_seq..last_seq` (the replay), then live messages, in sequence, no gap.",
        "   Stored messages are kept for a bounded time and count (gateway.md,",
        '   "Retention"): a `next_seq` older than the session\'s oldest kept message',
        "   is refused with `SEQUENCE_BEFORE_RETENTION` (418), never answered with a gap;",
        "   the client then logs in with `next_seq` 0 and asks `ORDER_STATUS` for the",
        "   orders it tracks (and `BALANCE_QUERY` for its balances).",
        "3. Either side sends a heartbeat when it has sent nothing for `heartbeat_ms`;",
        "   the gateway ends a session silent for 3 x `heartbeat_ms`.",
        "4. `LOGOUT` (client) or `END_OF_SESSION(reason)` (gateway) ends the session;",
        "   after any end the client may log in again with its next expected seq.",
        "",
        "Rules, replay design, throttles and cancel-on-disconnect:",
        "[gateway.md](gateway.md).",
        "",
        "## Login signature",
        "",
        "`signature` = Ed25519 signature, by the API key's private key, of",
        f"`{LOGIN_DOMAIN.decode()}`",
        "(ASCII, 13 bytes) followed by the LOGIN body's first 33 bytes (key_id, next_seq,",
        "ts_ns, nonce, flags as on the wire). The gateway stores only the public key.",
        "",
        "## Session messages",
        "",
    ]
    for spec in SESSION_MESSAGES:
        out += _section(spec)
    out += ["## Application messages, client → gateway", ""]
    for spec in APP_IN:
        out += _section(spec)
    out += ["## Application messages, gateway → client", ""]
    for spec in APP_OUT:
        out += _section(spec)
    out += [
        "## Reason codes",
        "",
        "One numbering space: `reason` fields carry the core's codes (0-399, the same",
        "table as [reject-codes.md](reject-codes.md)) or the gateway's (400-499).",
        "",
        "| code | name | layer |",
        "|---:|---|---|",
    ]
    for r in Reason:
        out.append(f"| {int(r)} | `{r.name}` | core |")
    for g in GwReason:
        out.append(f"| {int(g)} | `{g.name}` | gateway |")
    out += [
        "",
        "Meanings of the gateway's codes:",
        "",
        "| code | name | meaning |",
        "|---:|---|---|",
    ]
    src = (ROOT / "gateway" / "wire" / "codes.py").read_text().splitlines()
    for g in GwReason:
        doc = next(
            (ln.split("#", 1)[1].strip() for ln in src if f" {g.name} = " in ln and "#" in ln), ""
        )
        out.append(f"| {int(g)} | `{g.name}` | {doc} |")
    out.append("")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """Write docs/protocol.md, or with ``--check`` exit 1 if it is stale."""
    text = protocol_md()
    if DOC.exists() and DOC.read_text() == text:
        return 0
    if "--check" in argv:
        print("stale docs/protocol.md (run: python -m gateway.wire.gen_doc)")
        return 1
    DOC.write_text(text)
    print("wrote docs/protocol.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
