"""The batching UDP transport: asyncio's datagram contract, GSO/GRO batches, the
GSO fallback, the write queue and its flow control, errors, close and abort.

Sockets whose sends stall or fail on cue (``GatedSocket``) make the kernel's
EAGAIN and GSO refusals deterministic; everything goes over loopback.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
from collections.abc import Callable
from typing import Any

import pytest

from rudp.aio import udpio
from rudp.aio.udpio import SPARSE_PROBE, UdpTransport, create_datagram_endpoint

HOST = "127.0.0.1"
TIMEOUT = 5
LINUX = sys.platform == "linux"


class Recorder(asyncio.DatagramProtocol):
    """Records every datagram (copied, with the type it came as) and callback."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.made: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[Exception | None] = loop.create_future()
        self.lost_calls = 0
        self.datagrams: list[bytes] = []
        self.addrs: list[Any] = []
        self.types: set[type] = set()
        self.errors: list[Exception] = []
        self.error: asyncio.Future[Exception] = loop.create_future()
        self.done_calls = 0
        self.on_error: Callable[[Exception], object] | None = None
        self.paused = self.resumed = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.set_result(None)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.types.add(type(data))
        self.datagrams.append(bytes(data))
        self.addrs.append(addr)
        for count, waiter in self._waiters:
            if len(self.datagrams) >= count and not waiter.done():
                waiter.set_result(None)

    def datagrams_done(self) -> None:
        self.done_calls += 1

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)
        if not self.error.done():
            self.error.set_result(exc)
        if self.on_error is not None:
            self.on_error(exc)

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost_calls += 1
        self.lost.set_result(exc)

    async def received(self, count: int) -> list[bytes]:
        if len(self.datagrams) < count:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append((count, waiter))
            await waiter
        return self.datagrams


class GatedSocket(socket.socket):
    """A UDP socket whose next ``stall`` sends raise BlockingIOError, whose next
    ``refuse_gso`` GSO sends raise EINVAL, as a kernel or NIC might, and whose
    send number n raises ``script[n]`` (counting from 1)."""

    def __init__(self) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_DGRAM)
        self.stall = 0
        self.refuse_gso = 0
        self.calls = 0
        self.gso_calls = 0
        self.script: dict[int, OSError] = {}

    def _gate(self) -> None:
        self.calls += 1
        if self.calls in self.script:
            raise self.script.pop(self.calls)
        if self.stall:
            self.stall -= 1
            raise BlockingIOError(errno.EAGAIN, "stalled")

    def send(self, data: Any, flags: int = 0) -> int:
        self._gate()
        return super().send(data, flags)

    def sendto(self, data: Any, *args: Any) -> int:
        self._gate()
        return super().sendto(data, *args)

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        self._gate()
        self.gso_calls += 1
        if self.refuse_gso:
            self.refuse_gso -= 1
            raise OSError(errno.EINVAL, "GSO refused")
        return super().sendmsg(buffers, *args)


class CountingSocket(socket.socket):
    """A UDP socket that counts its reads that found nothing (EAGAIN)."""

    def __init__(self) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_DGRAM)
        self.empty_reads = 0

    def recvmsg(self, *args: Any) -> Any:
        try:
            return super().recvmsg(*args)
        except BlockingIOError:
            self.empty_reads += 1
            raise

    def recvfrom(self, *args: Any) -> Any:
        try:
            return super().recvfrom(*args)
        except BlockingIOError:
            self.empty_reads += 1
            raise


def _bound(sock: socket.socket | None = None) -> socket.socket:
    sock = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # no drops at bursts
    sock.bind((HOST, 0))
    return sock


async def _endpoint(sock: socket.socket) -> tuple[UdpTransport, Recorder]:
    return await create_datagram_endpoint(asyncio.get_running_loop(), Recorder, sock)


async def _pair(
    sender_sock: socket.socket | None = None,
) -> tuple[UdpTransport, Recorder, UdpTransport, Recorder]:
    """A receiver on an unconnected socket and a sender connected to it."""
    receiver, received = await _endpoint(_bound())
    sock = _bound(sender_sock)
    sock.connect(receiver.get_extra_info("sockname"))
    sender, sent = await _endpoint(sock)
    return receiver, received, sender, sent


async def _close(*transports: UdpTransport) -> None:
    for transport in transports:
        transport.close()
    for transport in transports:
        protocol = transport.get_protocol()
        if isinstance(protocol, Recorder):
            await protocol.lost


def _datagrams(count: int, size: int, tail: int = 0) -> list[bytes]:
    """Distinct datagrams: each starts with its number."""
    out = [i.to_bytes(4, "big") + bytes([i % 251]) * (size - 4) for i in range(count)]
    if tail:
        out.append(count.to_bytes(4, "big") + b"t" * (tail - 4))
    return out


# ------------------------------------------------------------- the contract
async def test_datagrams_both_ways_and_extra_info() -> None:
    async with asyncio.timeout(TIMEOUT):
        raw = _bound()
        receiver, received = await _endpoint(raw)
        sock = _bound()
        sock.connect(raw.getsockname())
        sender, sent = await _endpoint(sock)
        assert received.made.done() and sent.made.done()  # before create returned
        sender.sendto(b"ping")
        assert await received.received(1) == [b"ping"]
        assert received.addrs == [sender.get_extra_info("sockname")]
        assert received.done_calls == 1
        receiver.sendto(bytearray(b"pong"), received.addrs[0])
        assert await sent.received(1) == [b"pong"]

        info = receiver.get_extra_info("socket")
        assert isinstance(info, asyncio.trsock.TransportSocket)
        assert info.fileno() == raw.fileno() and not raw.getblocking()
        assert receiver.get_extra_info("peername") is None
        assert sender.get_extra_info("peername") == receiver.get_extra_info("sockname")
        assert receiver.get_extra_info("nothing", 7) == 7
        assert "read=polling" in repr(receiver) and "bufsize=0" in repr(receiver)
        assert not receiver.is_closing()
        await _close(receiver, sender)


async def test_sendto_argument_checks_as_asyncio() -> None:
    async with asyncio.timeout(TIMEOUT):
        receiver, _, sender, _ = await _pair()
        with pytest.raises(TypeError, match="bytes-like"):
            sender.sendto("text")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="Invalid address"):
            sender.sendto(b"x", ("127.0.0.2", 9))
        sender.sendto(b"x", sender.get_extra_info("peername"))  # its own peer is fine
        sender.sendto(b"")  # nothing to send, as asyncio
        await _close(receiver, sender)


async def test_write_buffer_limits_as_asyncio() -> None:
    async with asyncio.timeout(TIMEOUT):
        transport, _ = await _endpoint(_bound())
        assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        transport.set_write_buffer_limits(low=1000)
        assert transport.get_write_buffer_limits() == (1000, 4000)
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=1, low=2)
        await _close(transport)


async def test_a_failed_send_is_error_received_and_the_next_goes(
    loop_errors: list[dict[str, Any]],
) -> None:
    async with asyncio.timeout(TIMEOUT):
        gated = GatedSocket()
        receiver, received, sender, sent = await _pair(gated)
        original = gated.send

        def unreachable(data: Any, *args: Any) -> int:
            gated.send = original  # type: ignore[method-assign]
            raise OSError(errno.ENETUNREACH, "no route")

        gated.send = unreachable  # type: ignore[method-assign]
        sender.sendto(b"lost")
        sender.sendto(b"next")
        assert await received.received(1) == [b"next"]
        assert [e.errno for e in sent.errors] == [errno.ENETUNREACH]  # type: ignore[attr-defined]
        # A bad address on an unconnected socket is fatal, as in asyncio.
        receiver.sendto(b"x", None)
        assert isinstance(await received.lost, TypeError)
        assert [type(e["exception"]) for e in loop_errors] == [TypeError]
        loop_errors.clear()
        await _close(sender)


async def test_create_rejects_a_stream_socket() -> None:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(ValueError):
        await create_datagram_endpoint(loop, Recorder, sock)


# ---------------------------------------------------------------- batches
async def test_send_batch_arrives_whole_in_order_as_gro_slices() -> None:
    async with asyncio.timeout(TIMEOUT):
        receiver, received, sender, _ = await _pair()
        batch = _datagrams(100, 1200, tail=300)
        sender.send_batch(batch)
        assert await received.received(101) == batch
        if LINUX:
            assert sender.gso_enabled and receiver.gro_enabled
            assert sender.batches_sent == 2  # 64 + 36 and the short tail
            assert receiver.batches_received >= 1
            assert memoryview in received.types
            assert received.done_calls < 101  # once per readable pass, not per datagram
        await _close(receiver, sender)


async def test_send_batch_on_an_unconnected_socket_splits_runs_by_size() -> None:
    async with asyncio.timeout(TIMEOUT):
        receiver, received = await _endpoint(_bound())
        sender, _ = await _endpoint(_bound())
        # Runs: 3 x 500 and a shorter last one; the empty one skipped; 900 with the
        # first 100 as its shorter last; the second 100 alone, by sendto.
        batch = [*_datagrams(3, 500, tail=200), b"", *_datagrams(1, 900), *_datagrams(2, 100)]
        sender.send_batch(batch, receiver.get_extra_info("sockname"))
        assert await received.received(7) == [each for each in batch if each]
        if LINUX:
            assert sender.batches_sent == 2
        await _close(receiver, sender)


@pytest.mark.parametrize("how", ["refused", "off"])
async def test_without_gso_every_datagram_arrives_once_in_order(how: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        gated = GatedSocket()
        receiver, received, sender, _ = await _pair(gated)
        if how == "refused":
            gated.refuse_gso = 1
        else:
            sender.gso_enabled = False
        batch = _datagrams(100, 1000, tail=10)
        sender.send_batch(batch)
        sender.send_batch(batch[:5])  # GSO stays off for this socket
        assert await received.received(106) == batch + batch[:5]
        assert not sender.gso_enabled
        assert sender.batches_sent == 0
        assert gated.gso_calls == (1 if how == "refused" and LINUX else 0)
        assert not received.errors
        await _close(receiver, sender)


async def test_a_network_error_on_a_gso_send_is_reported_and_gso_stays_on() -> None:
    if not LINUX:
        pytest.skip("GSO is Linux's")
    async with asyncio.timeout(TIMEOUT):
        gated = GatedSocket()
        receiver, received, sender, sent = await _pair(gated)
        original = gated.sendmsg

        def unreachable(buffers: Any, *args: Any) -> int:
            gated.sendmsg = original  # type: ignore[method-assign]
            raise OSError(errno.EHOSTUNREACH, "no route")

        gated.sendmsg = unreachable  # type: ignore[method-assign]
        sender.send_batch(_datagrams(3, 100))  # dropped as one failed send
        batch = _datagrams(3, 100)
        sender.send_batch(batch)
        assert await received.received(3) == batch
        assert [e.errno for e in sent.errors] == [errno.EHOSTUNREACH]  # type: ignore[attr-defined]
        assert sender.gso_enabled and sender.batches_sent == 1
        await _close(receiver, sender)


# ------------------------------------------------------------ sparse reads
async def _one_at_a_time(receiver: Recorder, peer: socket.socket, dest: Any, count: int) -> None:
    """``count`` datagrams, each sent once the one before has arrived: every
    readable event brings a single datagram."""
    for i in range(count):
        peer.sendto(b"one %d" % i, dest)
        await receiver.received(len(receiver.datagrams) + 1)


@pytest.mark.parametrize("poll", ["poll", "no poll"])
async def test_after_single_datagrams_a_burst_is_read_whole_in_order(
    poll: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sparse traffic reads one datagram per event; a burst then arriving is read
    as a batch once the periodic check (poll, or reading on where there is no
    poll) finds more waiting -- nothing is lost or reordered on the way."""
    if poll == "no poll":
        monkeypatch.setattr(udpio, "_HAS_POLL", False)
    async with asyncio.timeout(TIMEOUT):
        receiver, received = await _endpoint(_bound())
        dest = receiver.get_extra_info("sockname")
        with _bound() as peer:
            await _one_at_a_time(received, peer, dest, 1)
            assert received.done_calls == 1
            assert receiver._poll is None  # made at the first check only
            burst = _datagrams(40, 100)
            for datagram in burst:
                peer.sendto(datagram, dest)
            assert (await received.received(41))[1:] == burst
        # One event per datagram until the check, then the rest in one batch.
        assert received.done_calls <= 2 + SPARSE_PROBE
        assert (receiver._poll is None) == (poll == "no poll")
        await _close(receiver)


@pytest.mark.parametrize("poll", ["poll", "no poll"])
async def test_sparse_reads_ask_poll_instead_of_reading_into_eagain(
    poll: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if poll == "no poll":
        monkeypatch.setattr(udpio, "_HAS_POLL", False)
    async with asyncio.timeout(TIMEOUT):
        sock = _bound(CountingSocket())
        receiver, received = await _endpoint(sock)
        with _bound() as peer:
            await _one_at_a_time(received, peer, receiver.get_extra_info("sockname"), 1)
            assert sock.empty_reads == 1  # not sparse yet: read on until EAGAIN
            await _one_at_a_time(
                received, peer, receiver.get_extra_info("sockname"), 2 * SPARSE_PROBE
            )
        if poll == "poll":
            assert sock.empty_reads == 1
        else:
            assert sock.empty_reads == 3  # the two checks read on, into EAGAIN
        assert received.done_calls == 1 + 2 * SPARSE_PROBE
        await _close(receiver)
        assert receiver._poll is None  # the fd may be another socket's now


# ------------------------------------------------------- queue and flow control
async def test_a_socket_that_would_block_queues_in_order_with_flow_control() -> None:
    async with asyncio.timeout(TIMEOUT):
        gated = GatedSocket()
        receiver, received, sender, sent = await _pair(gated)
        sender.set_write_buffer_limits(high=20_000)
        assert sender.get_write_buffer_limits() == (5_000, 20_000)
        batch = _datagrams(150, 1000, tail=20)
        gated.stall = 5  # the first sends, then every writable event for a while
        sender.send_batch(batch[:70])
        assert sender.get_write_buffer_size() == 70_000
        assert sent.paused == 1  # at once, within send_batch
        sender.sendto(batch[70])  # behind the queue, not ahead of it
        sender.send_batch(batch[71:])
        assert sent.paused == 1
        assert await received.received(151) == batch
        assert sent.resumed == 1
        assert sender.get_write_buffer_size() == 0
        assert "write=<idle" in repr(sender)
        await _close(receiver, sender)


async def test_a_send_blocking_mid_batch_queues_only_the_rest() -> None:
    async with asyncio.timeout(TIMEOUT):
        gated = GatedSocket()
        receiver, received, sender, sent = await _pair(gated)
        sender.gso_enabled = False  # one call per datagram: block after the third

        calls = 0
        original = gated.send

        def third_blocks(data: Any, *args: Any) -> int:
            nonlocal calls
            calls += 1
            if calls == 3:
                gated.send = original  # type: ignore[method-assign]
                raise BlockingIOError(errno.EAGAIN, "full")
            return original(data, *args)

        gated.send = third_blocks  # type: ignore[method-assign]
        batch = _datagrams(10, 300)
        sender.send_batch(batch)
        assert sender.get_write_buffer_size() == 8 * 300
        assert sent.paused == 0  # under the high-water mark
        assert await received.received(10) == batch
        await _close(receiver, sender)


@pytest.mark.parametrize("then", ["send", "abort"])
async def test_a_send_from_error_received_keeps_its_place_and_abort_stops_a_batch(
    then: str,
) -> None:
    async with asyncio.timeout(TIMEOUT):
        gated = GatedSocket()
        receiver, received, sender, sent = await _pair(gated)
        sender.gso_enabled = False
        calls = gated.calls
        gated.script = {
            calls + 3: OSError(errno.ENETUNREACH, "no route"),  # the third is dropped
            calls + 4: BlockingIOError(errno.EAGAIN, "full"),  # the callback's is queued
        }
        sent.on_error = lambda exc: sender.sendto(b"cb") if then == "send" else sender.abort()
        batch = _datagrams(6, 100)
        sender.send_batch(batch)
        if then == "send":
            # As six sendto calls: the callback's datagram after the third.
            expected = [*batch[:2], b"cb", *batch[3:]]
            assert await received.received(6) == expected
            assert sender.get_write_buffer_size() == 0
        else:
            assert await sent.lost is None
            assert gated.calls == calls + 3
            assert await received.received(2) == batch[:2]
        await _close(receiver, sender)


# ------------------------------------------------------------------ errors
async def test_icmp_port_unreachable_on_a_connected_socket_is_error_received() -> None:
    async with asyncio.timeout(TIMEOUT):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
            closed.bind((HOST, 0))
            nobody = closed.getsockname()
        sock = _bound()
        sock.connect(nobody)
        transport, protocol = await _endpoint(sock)
        transport.sendto(b"anyone?")
        assert isinstance(await protocol.error, ConnectionRefusedError)
        # Reading goes on: once someone listens there, its datagrams arrive.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as somebody:
            somebody.bind(nobody)
            somebody.sendto(b"here", transport.get_extra_info("sockname"))
            assert await protocol.received(1) == [b"here"]
        assert len(protocol.errors) == 1
        await _close(transport)


async def test_reading_goes_on_when_a_send_took_the_icmp_error_first() -> None:
    """The error is consumed by a send from another fd's callback run earlier in
    the same loop pass, after the poll reported it: libuv has already given up
    on the fd then (see ``UdpTransport._rearm``)."""
    async with asyncio.timeout(TIMEOUT):
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
            closed.bind((HOST, 0))
            nobody = closed.getsockname()
        sock = _bound()
        sock.connect(nobody)
        transport, protocol = await _endpoint(sock)
        wake, waker = socket.socketpair()
        wake.setblocking(False)

        def send_again() -> None:
            loop.remove_reader(wake.fileno())
            wake.recv(1)
            transport.sendto(b"again")

        loop.add_reader(wake.fileno(), send_again)
        waker.send(b"!")  # ready first in the next pass...
        transport.sendto(b"anyone?")  # ...then this socket, with the ICMP error
        assert isinstance(await protocol.error, ConnectionRefusedError)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as somebody:
            somebody.bind(nobody)
            somebody.sendto(b"here", transport.get_extra_info("sockname"))
            assert await protocol.received(1) == [b"here"]
        wake.close()
        waker.close()
        await _close(transport)


async def test_a_failing_callback_reaches_the_handler_and_reading_goes_on(
    loop_errors: list[dict[str, Any]],
) -> None:
    async with asyncio.timeout(TIMEOUT):
        receiver, received, sender, _ = await _pair()
        record = received.datagram_received
        failures = [b"\x00\x00\x00\x02"]

        def fragile(data: bytes, addr: Any) -> None:
            record(data, addr)
            if bytes(data[:4]) in failures:
                raise RuntimeError("protocol bug")

        received.datagram_received = fragile  # type: ignore[method-assign]
        batch = _datagrams(5, 200)
        sender.send_batch(batch)
        assert await received.received(5) == batch
        sender.sendto(b"after")
        assert (await received.received(6))[-1] == b"after"
        assert [type(e["exception"]) for e in loop_errors] == [RuntimeError]
        assert loop_errors[0]["transport"] is receiver
        loop_errors.clear()
        await _close(receiver, sender)


# --------------------------------------------------------------- lifecycle
async def test_close_sends_the_queue_then_connection_lost_once() -> None:
    async with asyncio.timeout(TIMEOUT):
        gated = GatedSocket()
        receiver, received, sender, sent = await _pair(gated)
        gated.stall = 3
        batch = _datagrams(20, 500)
        sender.send_batch(batch)
        assert sender.get_write_buffer_size() == 20 * 500
        sender.close()
        sender.close()
        assert sender.is_closing() and "closing" in repr(sender)
        sender.sendto(b"late")  # still queued behind: close lets the queue go
        assert await sent.lost is None
        assert await received.received(21) == [*batch, b"late"]
        assert gated.fileno() == -1 and "closed" in repr(sender)
        await asyncio.sleep(0)
        assert sent.lost_calls == 1
        sender.sendto(b"lost")  # dropped, as asyncio drops writes after the end
        await _close(receiver)


async def test_close_with_nothing_queued_ends_at_the_next_pass() -> None:
    async with asyncio.timeout(TIMEOUT):
        transport, protocol = await _endpoint(_bound())
        transport.close()
        assert not protocol.lost.done()
        assert await protocol.lost is None
        assert transport.get_extra_info("socket").fileno() == -1


async def test_abort_drops_the_queue() -> None:
    async with asyncio.timeout(TIMEOUT):
        gated = GatedSocket()
        receiver, received, sender, sent = await _pair(gated)
        gated.stall = 1_000_000
        sender.send_batch(_datagrams(10, 100))
        calls = gated.calls
        sender.abort()
        assert sender.get_write_buffer_size() == 0 and sender.is_closing()
        assert await sent.lost is None
        assert gated.calls == calls and sent.lost_calls == 1
        sender.close()  # no second connection_lost
        await asyncio.sleep(0)
        assert sent.lost_calls == 1 and not received.datagrams
        await _close(receiver)
