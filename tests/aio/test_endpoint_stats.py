"""Per-endpoint statistics: every malformed datagram is dropped and counted, and a
live connection on the same socket does not notice."""

from __future__ import annotations

import asyncio
import os
import socket
import struct

import pytest

import rudp
from rudp.core.segment import ACK, RST, SYN, Segment, encode, internet_checksum
from rudp.observe.stats import EndpointStats
from tests.aio.aio_support import HOST, Recorder

TIMEOUT = 10
CONFIG = rudp.Config(msl=0.05)


def _with_checksum(segment: bytes) -> bytes:
    """``segment`` with a correct rudp checksum (RFC 1071, no pseudo-header)."""
    blank = segment[:16] + b"\0\0" + segment[18:]
    return blank[:16] + struct.pack("!H", internet_checksum(blank)) + blank[18:]


def _header(offset_words: int, flags: int = SYN) -> bytes:
    return struct.pack("!HHIIBBHHH", 1, 2, 1000, 0, offset_words << 4, flags, 1024, 0, 0)


def malformed_datagrams() -> dict[str, bytes]:
    """One of each way a datagram can fail to be a segment (RFC 9293 3.1)."""
    syn = encode(Segment(src_port=1, dst_port=2, seq=1000, flags=SYN, window=1024, mss=1380))
    return {
        "empty": b"",
        "short": b"\x45" * 19,
        "offset-too-small": _with_checksum(_header(4) + b"data"),
        "offset-past-the-end": _with_checksum(_header(15)),
        "option-length-past-the-header": _with_checksum(_header(6) + b"\x02\x09\x05\x00"),
        "option-length-below-two": _with_checksum(_header(6) + b"\x08\x01\x00\x00"),
        "bad-checksum": syn[:-1] + bytes([syn[-1] ^ 0xFF]),
        "oversized-garbage": b"\xa5" * 65507,  # the largest IPv4 UDP payload
    }


async def _until(condition: object) -> None:
    while not condition():  # type: ignore[operator]
        await asyncio.sleep(0.001)


async def _connected_pair(host: str) -> tuple[rudp.Server, asyncio.Transport, Recorder, Recorder]:
    accepted: list[Recorder] = []

    def factory() -> Recorder:
        accepted.append(Recorder())
        return accepted[-1]

    server = await rudp.create_server(factory, host, 0, config=CONFIG)
    port = server.sockets[0].getsockname()[1]
    transport, client = await rudp.create_connection(Recorder, host, port, config=CONFIG)
    await _until(lambda: accepted)
    await accepted[0].made
    return server, transport, client, accepted[0]


async def test_malformed_datagrams_are_dropped_and_counted_per_endpoint() -> None:
    """RFC 9293 3.10.7: a bad segment is dropped; whether it comes from a stranger
    (the listener's) or from the peer of a live connection (the connection's), the
    server socket's dropped_malformed counts it, and the connection carries on."""
    junk = malformed_datagrams()
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(TIMEOUT):
        server, transport, client, accepted = await _connected_pair(HOST)
        port = server.sockets[0].getsockname()[1]
        before = server.stats()
        assert before.connections_accepted == 1 and before.connections_active == 1
        assert before.dropped_malformed == 0 and before.resets_sent == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.setblocking(False)
            stranger.connect((HOST, port))
            # The client's own socket, duplicated: the server sees its peer's address.
            client_fd = os.dup(transport.get_extra_info("socket").fileno())
            with socket.socket(fileno=client_fd) as as_peer:
                for datagram in junk.values():
                    stranger.send(datagram)
                    as_peer.send(datagram)
            expected = 2 * len(junk)
            received = before.datagrams_received + expected
            await _until(lambda: server.stats().datagrams_received >= received)
            stats = server.stats()
            assert stats.dropped_malformed == expected
            assert stats.bytes_received - before.bytes_received == 2 * sum(map(len, junk.values()))
            assert stats.resets_sent == 0  # nothing malformed is answered
            with pytest.raises(BlockingIOError):
                stranger.recv(65535)
            server_transport = accepted.transport
            assert server_transport is not None
            conn_stats = server_transport.get_extra_info("rudp_stats")
            assert conn_stats.dropped_malformed == len(junk)
            # RFC 9293 3.10.7.1: a stray ACK from a stranger is answered with RST.
            stranger.send(encode(Segment(seq=5, ack=77, flags=ACK, window=10)))
            reply = await asyncio.wait_for(loop.sock_recv(stranger, 65535), TIMEOUT)
            assert reply[13] == RST and struct.unpack_from("!I", reply, 4)[0] == 77
            assert server.stats().resets_sent == 1
        # The live connection is unaffected.
        assert str(server_transport._conn.state) == "ESTABLISHED"  # type: ignore[attr-defined]
        transport.write(b"still here")
        assert await accepted.received(10) == b"still here"
        assert accepted.transport is not None
        accepted.transport.write(b"and so am I")
        assert await client.received(11) == b"and so am I"
        # Once the connection is gone, its counters stay with the endpoint.
        transport.close()
        assert await client.lost is None
        assert await accepted.lost is None
        server.close()
        await server.wait_closed()
        await _until(lambda: server.stats().connections_active == 0)
        await transport._endpoint.wait_closed()  # type: ignore[attr-defined]
    final = server.stats()
    assert final.dropped_malformed == expected and final.resets_sent == 1
    assert final.connections_accepted == 1 and final.connections_active == 0
    client_stats = transport.get_extra_info("rudp_endpoint_stats")
    # Loopback loses nothing: all one socket sent, the other received, and the rest
    # came from the stranger and the duplicated socket.
    assert final.datagrams_received == client_stats.datagrams_sent + expected + 1
    assert client_stats.datagrams_received == final.datagrams_sent - 1
    assert client_stats.bytes_received == final.bytes_sent - len(reply)
    assert client_stats.dropped_malformed == 0 and client_stats.connections_accepted == 0


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
async def test_a_datagram_larger_than_ipv4_allows_is_malformed() -> None:
    """Over IPv6 a UDP payload may reach 65527 bytes; more than 65507 cannot be a
    rudp segment (see segment.MAX_DATAGRAM), checksum or not."""
    try:
        server = await rudp.create_server(Recorder, "::1", 0, config=CONFIG)
    except OSError:
        pytest.skip("no IPv6 loopback")
    async with asyncio.timeout(TIMEOUT):
        port = server.sockets[0].getsockname()[1]
        oversized = _with_checksum(
            encode(Segment(src_port=1, dst_port=2, flags=SYN, payload=b"\0" * (65527 - 20)))
        )
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as stranger:
            try:
                stranger.sendto(oversized, ("::1", port))
            except OSError as exc:
                pytest.skip(f"cannot send a 65527-byte datagram: {exc}")
            await _until(lambda: server.stats().datagrams_received == 1)
        stats = server.stats()
        assert stats.bytes_received == 65527
        assert stats.dropped_malformed == 1 and stats.connections_active == 0
        server.close()
        await server.wait_closed()


async def test_a_closed_server_still_counts_what_it_refuses() -> None:
    """After close(), segments from strangers get RST (RFC 9293 3.10.7.1) and
    malformed ones are dropped, both still counted."""
    async with asyncio.timeout(TIMEOUT):
        server, transport, client, _ = await _connected_pair(HOST)
        port = server.sockets[0].getsockname()[1]
        server.close()  # the established connection keeps the socket open
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.setblocking(False)
            stranger.connect((HOST, port))
            stranger.send(b"junk")
            stranger.send(encode(Segment(seq=1, flags=SYN, window=10)))
            reply = await asyncio.get_running_loop().sock_recv(stranger, 100)
        assert reply[13] == RST | ACK
        stats = server.stats()
        assert stats.dropped_malformed == 1 and stats.resets_sent == 1
        transport.close()
        assert await client.lost is None
        await server.wait_closed()


async def test_server_stats_add_up_its_sockets() -> None:
    """Server.stats() is the sum over its sockets (one per bound address); each
    connection's transport reports its own socket's."""
    accepted: list[Recorder] = []

    def factory() -> Recorder:
        accepted.append(Recorder())
        return accepted[-1]

    try:
        server = await rudp.create_server(factory, ["127.0.0.1", "::1"], 0, config=CONFIG)
    except OSError:
        pytest.skip("no IPv6 loopback")
    async with asyncio.timeout(TIMEOUT):
        addresses = [sock.getsockname()[:2] for sock in server.sockets]
        assert len(addresses) == 2
        clients = [
            await rudp.create_connection(Recorder, host, port, config=CONFIG)
            for host, port in addresses
        ]
        await _until(lambda: len(accepted) == 2)
        for recorder in accepted:
            await recorder.made
        per_socket = [
            recorder.transport.get_extra_info("rudp_endpoint_stats")  # type: ignore[union-attr]
            for recorder in accepted
        ]
        assert [each.connections_accepted for each in per_socket] == [1, 1]
        total = server.stats()
        assert total.connections_accepted == 2 and total.connections_active == 2
        assert total.datagrams_received >= sum(each.datagrams_received for each in per_socket)
        for transport, protocol in clients:
            transport.close()
            assert await protocol.lost is None
        server.close()
        await server.wait_closed()


def test_endpoint_stats_add_field_by_field() -> None:
    one = EndpointStats(datagrams_received=1, bytes_sent=10, connections_active=1)
    two = EndpointStats(datagrams_received=2, dropped_malformed=3, connections_active=1)
    assert one + two == EndpointStats(
        datagrams_received=3, bytes_sent=10, dropped_malformed=3, connections_active=2
    )
