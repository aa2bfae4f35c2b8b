"""The example market maker quotes, is filled through the gateway and requotes."""

from examples.market_maker import demo


def test_market_maker_demo() -> None:
    out = demo(3.0)
    assert out["fills"] > 0
    assert out["requotes"] > 0
    assert out["open_quotes"] == 6  # every filled level was quoted again
