"""api.market.hub's grouped fan-out against a per-connection model (hypothesis).

Every connection must receive exactly the frames published while it was subscribed,
in publication order, plus its own messages where they were sent, whatever the
mix of subscription changes, combined switches, sends, detaches and turns; the
connections of one group get the very same bytes, written once per turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from api.market.frames import text_frame
from api.market.hub import Conn, Hub, dumps

STREAMS = ("a@trade", "b@trade", "a@depth@100ms")
N_CONNS = 4


class _Transport(asyncio.Transport):
    """Records writes; never buffers (so nobody is slow) unless told."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.buffered = 0
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def _frame(name: str, data: Any, combined: bool) -> bytes:
    if combined:
        return text_frame(b'{"stream":' + dumps(name) + b',"data":' + dumps(data) + b"}")
    return text_frame(dumps(data))


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("sub"), st.integers(0, N_CONNS - 1), st.sampled_from(STREAMS)),
        st.tuples(st.just("unsub"), st.integers(0, N_CONNS - 1), st.sampled_from(STREAMS)),
        st.tuples(st.just("combined"), st.integers(0, N_CONNS - 1), st.booleans()),
        st.tuples(st.just("send"), st.integers(0, N_CONNS - 1), st.integers(0, 99)),
        st.tuples(st.just("pub"), st.sampled_from(STREAMS), st.integers(0, 99)),
        st.tuples(st.just("turn"), st.just(0), st.just(0)),
        st.tuples(st.just("detach"), st.integers(0, N_CONNS - 1), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(OPS, st.lists(st.booleans(), min_size=N_CONNS, max_size=N_CONNS))
def test_grouped_fanout_matches_per_connection_model(
    ops: list[tuple[str, Any, Any]], combined0: list[bool]
) -> None:
    async def go() -> None:
        hub = Hub()
        trs = [_Transport() for _ in range(N_CONNS)]
        conns = [Conn(t, c) for t, c in zip(trs, combined0, strict=True)]
        # The model: what each connection must have received, in order.
        want: list[list[bytes]] = [[] for _ in conns]
        subs: list[set[str]] = [set() for _ in conns]
        comb = list(combined0)
        alive = [True] * N_CONNS
        published = 0
        for c in conns:
            hub.attach(c)
        for op, x, y in ops:
            if op == "sub" and alive[x]:
                hub.subscribe(conns[x], y)
                subs[x].add(y)
            elif op == "unsub" and alive[x]:
                hub.unsubscribe(conns[x], y)
                subs[x].discard(y)
            elif op == "combined" and alive[x]:
                hub.set_combined(conns[x], y)
                comb[x] = y
            elif op == "send" and alive[x]:
                hub.send(conns[x], {"id": y})
                want[x].append(text_frame(dumps({"id": y})))
            elif op == "pub":
                data = {"s": x, "v": y}
                hub.publish(x, data)
                for i in range(N_CONNS):
                    if alive[i] and x in subs[i]:
                        want[i].append(_frame(x, data, comb[i]))
                        published += 1
            elif op == "turn":
                await asyncio.sleep(0)
            elif op == "detach" and alive[x]:
                # What was queued but not yet written is lost with the connection.
                await asyncio.sleep(0)
                hub.detach(conns[x])
                alive[x] = False
        await asyncio.sleep(0)
        for i in range(N_CONNS):
            assert b"".join(trs[i].writes) == b"".join(want[i]), i
            assert hub.has(STREAMS[0]) == any(
                alive[k] and STREAMS[0] in subs[k] for k in range(N_CONNS)
            )
        assert hub.slow_dropped == 0
        sends = sum(1 for op, x, _ in ops if op == "send")
        assert hub.msgs_sent >= published
        assert hub.msgs_sent <= published + sends
        # Groups are only those of live connections with streams.
        keys = {(frozenset(subs[i]), comb[i]) for i in range(N_CONNS) if alive[i] and subs[i]}
        assert hub.groups == len(keys)

    asyncio.run(go())


def test_one_group_one_join_same_bytes_for_all() -> None:
    """1,000 clients of the same ten streams are one group: every client gets the same
    bytes object, one write per turn, ten frames in publication order."""

    async def go() -> None:
        hub = Hub()
        trs = [_Transport() for _ in range(1000)]
        names = [f"s{i}@depth@100ms" for i in range(10)]
        for t in trs:
            c = Conn(t, True)
            hub.attach(c)
            for n in names:
                hub.subscribe(c, n)
        assert hub.groups == 1
        for i, n in enumerate(names):
            hub.publish(n, {"u": i})
        await asyncio.sleep(0)
        first = trs[0].writes
        assert len(first) == 1
        assert first[0] == b"".join(_frame(n, {"u": i}, True) for i, n in enumerate(names))
        assert all(len(t.writes) == 1 and t.writes[0] is first[0] for t in trs)
        assert hub.msgs_sent == 10_000

    asyncio.run(go())


def test_slow_member_of_a_group_dropped_alone() -> None:
    """A member whose buffer passes the bound is aborted; the rest of its group go on."""

    async def go() -> None:
        hub = Hub(send_buffer_bytes=100)
        trs = [_Transport() for _ in range(3)]
        conns = [Conn(t, False) for t in trs]
        for c in conns:
            hub.attach(c)
            hub.subscribe(c, "x@trade")
        trs[1].buffered = 101
        hub.publish("x@trade", {"a": 1})
        await asyncio.sleep(0)
        assert trs[1].aborted and hub.slow_dropped == 1
        assert conns[1] not in hub.subs["x@trade"] and hub.groups == 1
        hub.publish("x@trade", {"a": 2})
        await asyncio.sleep(0)
        assert len(trs[0].writes) == len(trs[2].writes) == 2 and len(trs[1].writes) == 1

    asyncio.run(go())
