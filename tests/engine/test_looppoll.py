"""engine.looppoll.LoopPoller: zmq.Poller's answers over one epoll."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest
import zmq

from engine.looppoll import POLLERR, POLLIN, POLLOUT, LoopPoller


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    """A ROUTER (the watched side) and a DEALER connected to it over inproc."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind("inproc://looppoll")
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect("inproc://looppoll")
    yield router, dealer
    router.close(0)
    dealer.close(0)
    ctx.term()


def _wait(poller: LoopPoller, want: object, timeout_s: float = 5.0) -> dict[object, int]:
    """Poll until ``want`` is reported (the poller may wake for libzmq's own commands)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        got = poller.poll(100)
        ready = dict(got)
        assert len(ready) == len(got), got  # each socket reported once
        if want in ready:
            return ready
    raise AssertionError(f"{want!r} never reported ready")


def test_zmq_socket_readable_and_idle(pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]]) -> None:
    router, dealer = pair
    p = LoopPoller()
    p.register(router, POLLIN)
    assert p.poll(0) == []  # nothing sent: not ready (its ZMQ_EVENTS asked once)
    dealer.send(b"x")
    assert _wait(p, router)[router] == POLLIN
    assert router.recv_multipart(zmq.NOBLOCK)[1] == b"x"
    p.touch(router)
    assert p.poll(0) == []
    p.close()


def test_touched_socket_with_messages_left_is_ready_without_waiting(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    """A socket read only partly (a turn's bound) is ready at once next poll, even though
    its descriptor was cleared by the receive: the edge-triggered descriptor trap."""
    router, dealer = pair
    p = LoopPoller()
    p.register(router, POLLIN)
    for k in range(3):
        dealer.send(bytes([k]))
    _wait(p, router)
    while not router.poll(0):  # all three queued in the ROUTER
        time.sleep(0.001)
    time.sleep(0.05)
    router.recv_multipart(zmq.NOBLOCK)
    p.touch(router)
    t0 = time.monotonic()
    assert dict(p.poll(5000)).get(router) == POLLIN
    assert time.monotonic() - t0 < 2.5  # did not wait for the timeout
    router.recv_multipart(zmq.NOBLOCK)
    router.recv_multipart(zmq.NOBLOCK)
    p.touch(router)
    assert p.poll(0) == []


def test_send_on_socket_then_new_message_still_wakes(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    """A reply sent on the watched socket may process the command that announced a new
    message; the touch makes the next poll ask the socket itself."""
    router, dealer = pair
    p = LoopPoller()
    p.register(router, POLLIN)
    for k in range(50):
        dealer.send(b"q%d" % k)
        ready = _wait(p, router)
        assert ready[router] & POLLIN
        ident, body = router.recv_multipart(zmq.NOBLOCK)
        dealer.send(b"next%d" % k)  # may arrive while the reply below is sent
        router.send_multipart([ident, body])
        p.touch(router)
        assert _wait(p, router)[router] & POLLIN
        assert router.recv_multipart(zmq.NOBLOCK)[1] == b"next%d" % k
        p.touch(router)
        assert dealer.recv() == body
    p.close()


def test_raw_descriptors_in_out_err_modify_unregister() -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    p = LoopPoller()
    p.register(a.fileno(), POLLIN)
    assert p.poll(0) == []
    b.send(b"hello")
    assert dict(p.poll(1000)) == {a.fileno(): POLLIN}
    p.modify(a.fileno(), POLLIN | POLLOUT)
    assert dict(p.poll(0))[a.fileno()] == POLLIN | POLLOUT
    p.modify(a.fileno(), POLLIN)
    a.recv(100)
    assert p.poll(0) == []
    b.close()  # hang-up: reported readable and as an error, as zmq_poll does
    ev = dict(p.poll(1000))[a.fileno()]
    assert ev & POLLIN and ev & POLLERR
    p.unregister(a.fileno())
    assert p.poll(0) == []
    a.close()
    p.close()


def test_unregister_zmq_socket(pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]]) -> None:
    router, dealer = pair
    p = LoopPoller()
    p.register(router, POLLIN)
    p.unregister(router)
    dealer.send(b"x")
    time.sleep(0.05)
    assert p.poll(50) == []
    r, w = os.pipe()
    p.register(r, POLLIN)
    os.write(w, b"1")
    assert dict(p.poll(1000)) == {r: POLLIN}
    os.close(r)
    os.close(w)
    p.close()
