"""Coverage-guided fuzzing (atheris) of the order-entry frame and message decoders.

Run: ``python -m tests.gateway.fuzz_decoders -runs=100000`` (the test suite does) or
``make fuzz`` for a longer run.  Any exception other than WireError is a finding.
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-untyped]

with atheris.instrument_imports():
    from gateway.wire import codec

from gateway import batch  # after the instrumented import: not instrumented itself
from pyx.gwentry import ENTER_RUN, EntryReader  # compiled: not instrumented


def _gateway_split(body: bytes, cut: int) -> tuple[list[tuple[int, bytes]], str]:
    """The gateway's compiled splitter (runs expanded), with the error it ends on."""
    r = EntryReader(codec.frame_length_error)
    out: list[tuple[int, bytes]] = []
    size = batch.ENTER_BODY_LEN
    try:
        for part in (body[:cut], body[cut:]):
            for t, b in r.feed(part):
                if t == ENTER_RUN:
                    out.extend((ord("U"), b[k : k + size]) for k in range(0, len(b), size))
                else:
                    out.append((t, b))
        r.check()
    except codec.WireError as e:
        return out, e.reason.name
    return out, ""


def _reference_split(body: bytes, cut: int) -> tuple[list[tuple[int, bytes]], str]:
    r = codec.FrameReader()
    out: list[tuple[int, bytes]] = []
    try:
        for part in (body[:cut], body[cut:]):
            out.extend(r.feed(part))
        r.check()
    except codec.WireError as e:
        return out, e.reason.name
    return out, ""


def one_input(data: bytes) -> None:
    """Split ``data`` into frames at a fuzzer-chosen cut and decode both directions."""
    if not data:
        return
    cut = data[0] % (len(data) + 1)
    body = data[1:]
    # The gateway's compiled splitter agrees with the reference on every input.
    assert _gateway_split(body, cut) == _reference_split(body, cut)
    for inbound in (True, False):
        r = codec.FrameReader()
        try:
            frames = r.feed(body[:cut]) + r.feed(body[cut:])
            for t, b in frames:
                msg = codec.decode(t, b, inbound)
                # Whatever decodes re-encodes to the same bytes.
                again = codec.encode_spec(msg.spec, msg.values, msg.seq)
                assert again[2] == t and again[3:] == b, (t, b, again)
            r.check()
        except codec.WireError:
            pass


def main() -> None:
    """atheris entry point (libFuzzer flags on the command line)."""
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
