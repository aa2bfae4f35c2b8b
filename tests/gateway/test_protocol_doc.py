"""docs/protocol.md is generated from the layouts (drift test) and covers every message."""

from bursa_wire.gw_layout import ALL_MESSAGES
from gateway.wire import gen_doc
from gateway.wire.codes import GwReason


def test_protocol_doc_is_fresh() -> None:
    assert gen_doc.main(["--check"]) == 0


def test_every_message_and_code_is_documented() -> None:
    text = gen_doc.DOC.read_text()
    for spec in ALL_MESSAGES:
        assert f"### {spec.name} " in text
    for g in GwReason:
        assert f"| {int(g)} | `{g.name}` | gateway |" in text
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| {int(g)} | `{g.name}` | "))
        assert line.split("|")[3].strip(), f"{g.name} needs a meaning in codes.py"
