"""Generated docs match the code they are generated from."""

from pyx import enums
from tools import gen_docs


def test_generated_docs_are_fresh() -> None:
    assert gen_docs.main(["--check"]) == 0


def test_reject_table_matches_compiled_enum() -> None:
    parsed = {
        n: v
        for n, v, _ in gen_docs.parse_enum(
            gen_docs.ROOT.joinpath("pyx/enums.pxd").read_text(), "Reason"
        )
    }
    compiled = {m.name: int(m.value) for m in enums.Reason}
    assert parsed == compiled
    assert len(set(compiled.values())) == len(compiled), "reason codes must be unique"


def test_every_reason_is_documented() -> None:
    text = gen_docs.ROOT.joinpath("docs/reject-codes.md").read_text()
    for m in enums.Reason:
        assert f"`{m.name}`" in text
        for n, _, comment in gen_docs.parse_enum(
            gen_docs.ROOT.joinpath("pyx/enums.pxd").read_text(), "Reason"
        ):
            if n == m.name and int(m.value) >= 100:
                assert comment, f"{n} needs a one-line meaning in pyx/enums.pxd"
