"""pcap capture: every datagram as an IPv4/IPv6 + TCP packet Wireshark decodes.

The file is read back with a small reader of our own (classic pcap, LINKTYPE_RAW)
that checks each IP header checksum and each TCP checksum over the RFC 9293 3.1
pseudo-header; when tshark is installed it must decode the file too, with no
malformed packet and no error.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import rudp
from rudp.core.segment import ACK, FIN, RST, SYN, Segment, decode, encode
from rudp.observe import pcap
from rudp.observe.pcap import PcapWriter
from tests.aio.aio_support import Recorder

TIMEOUT = 10
# TIME-WAIT lingers at most 2 * msl: keep the endpoints' lives short.
CONFIG = rudp.Config(msl=0.05)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


HOSTS = [
    "127.0.0.1",
    pytest.param("::1", marks=pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6")),
]


# ------------------------------------------------------------- pcap reader
def ones_complement_sum(data: bytes) -> int:
    """RFC 1071, word by word: 0xFFFF over a buffer whose checksum is right."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


@dataclass
class Packet:
    version: int
    protocol: int
    src: bytes
    dst: bytes
    payload: bytes  # the TCP segment or UDP datagram
    ip_checksum_ok: bool  # IPv4 header checksum (IPv6 has none)

    @property
    def transport_checksum_ok(self) -> bool:
        length = len(self.payload)
        if self.version == 4:
            pseudo = struct.pack("!4s4sBBH", self.src, self.dst, 0, self.protocol, length)
        else:
            pseudo = struct.pack("!16s16sI3xB", self.src, self.dst, length, self.protocol)
        return ones_complement_sum(pseudo + self.payload) == 0xFFFF

    @property
    def ports(self) -> tuple[int, int]:
        src, dst = struct.unpack_from("!HH", self.payload)
        return src, dst

    @property
    def flags(self) -> int:
        assert self.protocol == 6
        return self.payload[13]


def read_pcap(path: Path) -> tuple[tuple[Any, ...], list[Packet]]:
    data = path.read_bytes()
    header = struct.unpack_from("<IHHiIII", data)
    assert header[0] == 0xA1B2C3D4, "magic: classic pcap, microseconds, little-endian"
    packets = []
    at = 24
    last_time = 0.0
    while at < len(data):
        seconds, micros, captured, original = struct.unpack_from("<IIII", data, at)
        at += 16
        assert captured == original and micros < 1_000_000
        assert seconds + micros / 1e6 >= last_time - 1.0  # wall clock, roughly in order
        last_time = seconds + micros / 1e6
        raw = data[at : at + captured]
        assert len(raw) == captured, "truncated record"
        at += captured
        packets.append(parse_ip(raw))
    return header, packets


def parse_ip(raw: bytes) -> Packet:
    version = raw[0] >> 4
    if version == 4:
        ihl = (raw[0] & 0x0F) * 4
        _, _, total, _, frag, ttl, protocol, _, src, dst = struct.unpack_from("!BBHHHBBH4s4s", raw)
        assert ihl == 20 and total == len(raw) and ttl == 64 and frag == 0x4000
        checksum_ok = ones_complement_sum(raw[:ihl]) == 0xFFFF
        return Packet(4, protocol, src, dst, raw[ihl:], checksum_ok)
    assert version == 6
    first, length, protocol, hop_limit, src, dst = struct.unpack_from("!IHBB16s16s", raw)
    assert first == 0x6000_0000 and length == len(raw) - 40 and hop_limit == 64
    return Packet(6, protocol, src, dst, raw[40:], True)


def tcp_segment_as_sent(packet: Packet) -> bytes:
    """The segment with the ports and the checksum field blanked."""
    return b"\0" * 4 + packet.payload[4:16] + b"\0\0" + packet.payload[18:]


# ----------------------------------------------------------- tshark, if any
def tshark(path: Path, *args: str, decode_as_data: int) -> str:
    """tshark's output, checksums validated, and what rides on ``decode_as_data``
    shown as plain data (a port another dissector claims would judge our bytes)."""
    tool = shutil.which("tshark")
    assert tool is not None
    command = [
        tool,
        "-n",
        "-r",
        str(path),
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-d",
        f"tcp.port=={decode_as_data},data",
        "-d",
        f"udp.port=={decode_as_data},data",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return result.stdout


# ------------------------------------------------------------------- tests
async def _echo_connection(host: str, config: rudp.Config, payload: bytes) -> tuple[Any, ...]:
    """A connection that sends ``payload``, gets it echoed and closes; returns once
    both sockets are closed (so the capture is complete)."""
    accepted: list[Recorder] = []

    def factory() -> Recorder:
        accepted.append(Recorder(eof_keeps_open=True))
        return accepted[-1]

    server = await rudp.create_server(factory, host, 0, config=config)
    port = server.sockets[0].getsockname()[1]
    transport, client = await rudp.create_connection(Recorder, host, port, config=config)
    transport.write(payload)
    transport.write_eof()
    while not accepted:
        await asyncio.sleep(0.001)
    server_side = accepted[0]
    await server_side.eof
    assert server_side.transport is not None
    server_side.transport.write(bytes(server_side.data))
    server_side.transport.close()
    assert await client.received(len(payload)) == payload
    assert await client.lost is None
    assert await server_side.lost is None
    server.close()
    await server.wait_closed()
    client_endpoint = transport._endpoint  # type: ignore[attr-defined]
    server_endpoint = server_side.transport._endpoint  # type: ignore[attr-defined]
    await client_endpoint.wait_closed()
    await server_endpoint.wait_closed()
    return port, transport.get_extra_info("sockname"), client_endpoint, server_endpoint


@pytest.mark.parametrize("host", HOSTS)
async def test_capture_of_a_connection_is_valid_ip_and_tcp(tmp_path: Path, host: str) -> None:
    """RFC 9293 3.1: every segment is recorded once, with the UDP ports and a checksum
    over the IP pseudo-header; the handshake and both FINs appear in order."""
    path = tmp_path / "capture.pcap"
    payload = b"rudp pcap " * 2000
    async with asyncio.timeout(TIMEOUT):
        port, client_address, client, server = await _echo_connection(
            host, rudp.Config(msl=0.05, pcap_path=str(path)), payload
        )
    header, packets = read_pcap(path)
    assert header[1:] == (2, 4, 0, 0, 262144, 101)  # version 2.4, LINKTYPE_RAW
    # Client and server share the file; what one sent the other received, once.
    assert len(packets) == client.stats.datagrams_sent + server.stats.datagrams_sent
    version = 6 if ":" in host else 4
    local = socket.inet_pton(socket.AF_INET6 if version == 6 else socket.AF_INET, host)
    client_port = client_address[1]
    for packet in packets:
        assert packet.version == version and packet.protocol == 6
        assert packet.src == packet.dst == local
        assert packet.ip_checksum_ok
        assert packet.transport_checksum_ok
        assert set(packet.ports) == {port, client_port}
    flags = [(p.ports[0], p.flags) for p in packets]
    assert flags[0] == (client_port, SYN)
    assert flags[1] == (port, SYN | ACK)
    assert flags[2][0] == client_port and flags[2][1] & (SYN | ACK) == ACK
    fins = [sender for sender, bits in flags if bits & FIN]
    assert fins and fins[0] == client_port and port in fins
    assert not any(bits & RST for _, bits in flags)
    # The data: each direction's segments carry the payload, byte for byte.
    for sender in (client_port, port):
        stream = {}
        for p in packets:
            if p.ports[0] == sender:
                seg = decode(p.payload, verify_checksum=False)
                if seg.payload:
                    stream[seg.seq] = bytes(seg.payload)
        assert b"".join(stream[seq] for seq in sorted(stream)) == payload


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("host", HOSTS)
async def test_tshark_decodes_the_capture_as_tcp(tmp_path: Path, host: str) -> None:
    path = tmp_path / "capture.pcap"
    async with asyncio.timeout(TIMEOUT):
        port, _, _, _ = await _echo_connection(
            host, rudp.Config(msl=0.05, pcap_path=str(path)), b"x" * 5000
        )
        # A datagram that is no segment is recorded as the UDP datagram it was.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        config = rudp.Config(msl=0.05, pcap_path=str(path))  # appends to the closed file
        server = await rudp.create_server(Recorder, host, port, config=config)
        with socket.socket(family, socket.SOCK_DGRAM) as junk:
            junk.sendto(b"not a segment", (host, port))
            endpoint = server._all_endpoints[0]
            while endpoint.stats.datagrams_received < 1:
                await asyncio.sleep(0.001)
        server.close()
        await endpoint.wait_closed()
    problems = tshark(
        path, "-Y", "_ws.malformed || _ws.expert.severity == error", decode_as_data=port
    )
    assert problems == ""
    fields = tshark(
        path,
        "-T",
        "fields",
        "-e",
        "ip.proto",
        "-e",
        "ipv6.nxt",
        "-e",
        "tcp.flags.str",
        decode_as_data=port,
    ).splitlines()
    flags = [line.split("\t")[-1].replace("·", "") for line in fields]
    assert flags[:3] == ["S", "AS", "A"]
    assert any("F" in each for each in flags)
    assert fields[-1].split("\t")[:2] in (["17", ""], ["", "17"])  # the junk, as UDP
    assert sum(1 for line in fields if "17" in line.split("\t")[:2]) == 1


async def test_rudp_pcap_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "from-env.pcap"
    monkeypatch.setenv("RUDP_PCAP", str(path))
    async with asyncio.timeout(TIMEOUT):
        await _echo_connection("127.0.0.1", CONFIG, b"hello")
    _, packets = read_pcap(path)
    assert packets and all(p.transport_checksum_ok for p in packets)


async def test_no_capture_without_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUDP_PCAP", raising=False)
    monkeypatch.chdir(tmp_path)
    async with asyncio.timeout(TIMEOUT):
        _, _, client, server = await _echo_connection("127.0.0.1", CONFIG, b"hello")
    assert client._pcap is None and server._pcap is None
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------- the writer on its own
LOCAL = ("10.0.0.1", 4000)
PEER = ("10.0.0.2", 5000)


def test_segment_bytes_kept_except_ports_and_checksum(tmp_path: Path) -> None:
    """Only the ports (the UDP ones) and the checksum (with pseudo-header) change."""
    path = tmp_path / "w.pcap"
    datagram = encode(
        Segment(
            src_port=1,
            dst_port=2,
            seq=7,
            ack=9,
            flags=SYN | ACK,
            window=100,
            mss=1380,
            sack_permitted=True,
            ts_val=5,
            ts_ecr=6,
            payload=b"odd",
        )
    )
    writer = PcapWriter(path)
    writer.sent(datagram, LOCAL, PEER)
    writer.received(datagram, PEER, LOCAL)
    writer.close()
    _, (sent, received) = read_pcap(path)
    assert sent.src == socket.inet_aton(LOCAL[0]) and sent.dst == socket.inet_aton(PEER[0])
    assert sent.ports == (4000, 5000) and received.ports == (5000, 4000)
    original = b"\0" * 4 + datagram[4:16] + b"\0\0" + datagram[18:]
    for packet in (sent, received):
        assert packet.protocol == 6 and packet.ip_checksum_ok and packet.transport_checksum_ok
        assert tcp_segment_as_sent(packet) == original


def test_ipv6_and_ipv4_mapped_addresses(tmp_path: Path) -> None:
    path = tmp_path / "w6.pcap"
    writer = PcapWriter(path)
    segment = encode(Segment(flags=ACK, seq=1, ack=1, window=10, payload=b"x"))
    writer.sent(segment, ("fe80::1%lo", 4000, 0, 1), ("fe80::2", 5000, 0, 1))
    writer.sent(segment, ("::", 4000, 0, 0), ("10.0.0.2", 5000))  # families mixed
    writer.close()
    _, (scoped, mixed) = read_pcap(path)
    assert scoped.version == 6 and scoped.transport_checksum_ok
    assert scoped.src == socket.inet_pton(socket.AF_INET6, "fe80::1")
    assert mixed.version == 6 and mixed.transport_checksum_ok
    assert mixed.dst == socket.inet_pton(socket.AF_INET6, "::ffff:10.0.0.2")


@pytest.mark.parametrize(
    "datagram",
    [
        b"short",
        b"\x00" * 19,
        struct.pack("!HHIIBBHHH", 1, 2, 0, 0, 0xF0, SYN, 0, 0, 0),  # offset past the end
        encode(Segment(flags=SYN))[:-1] + b"\x01",  # checksum no longer matches
    ],
    ids=["short", "19-bytes", "bad-offset", "bad-checksum"],
)
def test_a_datagram_that_is_no_segment_is_recorded_as_udp(tmp_path: Path, datagram: bytes) -> None:
    path = tmp_path / "junk.pcap"
    writer = PcapWriter(path)
    writer.received(datagram, PEER, LOCAL)
    writer.close()
    _, (packet,) = read_pcap(path)
    assert packet.protocol == 17 and packet.ip_checksum_ok and packet.transport_checksum_ok
    source, destination, length, _ = struct.unpack_from("!HHHH", packet.payload)
    assert (source, destination, length) == (5000, 4000, 8 + len(datagram))
    assert packet.payload[8:] == datagram


def test_checksum_mode_udp_segments_are_tcp(tmp_path: Path) -> None:
    """With Config(checksum="udp") the field is zero; the capture fills it in."""
    path = tmp_path / "udp-mode.pcap"
    writer = PcapWriter(path)
    writer.received(encode(Segment(flags=SYN), checksum=False), PEER, LOCAL, verify_checksum=False)
    writer.close()
    _, (packet,) = read_pcap(path)
    assert packet.protocol == 6 and packet.transport_checksum_ok


def test_an_unwritable_path_logs_once_and_captures_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = PcapWriter(tmp_path / "missing-dir" / "x.pcap")
    assert writer.closed
    writer.sent(encode(Segment(flags=SYN)), LOCAL, PEER)
    writer.close()
    assert [r.getMessage().split()[0] for r in caplog.records] == ["pcap_failed"]


def test_a_write_error_stops_the_capture_without_raising(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class FullDisk:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            pass

    writer = PcapWriter(tmp_path / "full.pcap")
    writer._file.close()  # type: ignore[union-attr]
    writer._file = FullDisk()  # type: ignore[assignment]
    for _ in range(3):
        writer.sent(encode(Segment(flags=SYN)), LOCAL, PEER)
    assert writer.closed
    writer.close()
    assert [r.getMessage().split()[0] for r in caplog.records] == ["pcap_failed"]


async def test_a_failing_capture_leaves_the_connection_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "no-such-dir" / "x.pcap"
    async with asyncio.timeout(TIMEOUT):
        await _echo_connection("127.0.0.1", rudp.Config(msl=0.05, pcap_path=str(path)), b"ok")
    assert not path.exists()
    assert any(r.getMessage().startswith("pcap_failed") for r in caplog.records)


def test_endpoints_sharing_a_path_share_a_writer(tmp_path: Path) -> None:
    """One file per process; a later endpoint, once it was closed, appends to it."""
    path = str(tmp_path / "shared.pcap")
    server = ("127.0.0.1", 4000)
    client = ("127.0.0.1", 5000)
    first = pcap.open_shared(path, server)
    second = pcap.open_shared(os.path.join(tmp_path, ".", "shared.pcap"), client)
    assert first is second
    segment = encode(Segment(flags=SYN))
    first.sent(segment, client, server)
    first.received(segment, client, server)  # sent by an endpoint of ours: recorded once
    first.received(segment, ("127.0.0.1", 6000), server)  # from elsewhere: recorded
    pcap.release(first, server)
    pcap.release(second, client)
    assert first.closed
    third = pcap.open_shared(path, server)
    assert third is not first
    third.sent(segment, server, ("127.0.0.1", 6000))
    pcap.release(third, server)
    _, packets = read_pcap(Path(path))
    assert [p.ports for p in packets] == [(5000, 4000), (6000, 4000), (4000, 6000)]


def test_a_wildcard_bound_endpoint_is_recognised_on_loopback(tmp_path: Path) -> None:
    """A server bound to 0.0.0.0 talks to local clients from 127.0.0.1: its packets
    show that address, and what it sent is not recorded again when received."""
    path = tmp_path / "wildcard.pcap"
    writer = pcap.open_shared(path, ("0.0.0.0", 4000))
    segment = encode(Segment(flags=SYN))
    writer.sent(segment, ("0.0.0.0", 4000), ("127.0.0.1", 5000))
    writer.received(segment, ("127.0.0.1", 4000), ("127.0.0.1", 5000))  # the same, at the client
    writer.received(segment, ("127.0.0.1", 5000), ("0.0.0.0", 4000))
    pcap.release(writer, ("0.0.0.0", 4000))
    _, packets = read_pcap(path)
    loopback = socket.inet_aton("127.0.0.1")
    assert [p.ports for p in packets] == [(4000, 5000), (5000, 4000)]
    assert all(p.src == p.dst == loopback and p.transport_checksum_ok for p in packets)


def test_a_datagram_no_ip_packet_can_hold_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "huge.pcap"
    writer = PcapWriter(path)
    writer.received(b"\0" * 70000, PEER, LOCAL)
    writer.sent(b"\0" * 70000, LOCAL, PEER)
    writer.close()
    assert read_pcap(path)[1] == []
