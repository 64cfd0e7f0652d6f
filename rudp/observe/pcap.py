"""pcap capture: each rudp datagram as the IP + TCP packet it stands for.

rudp's segments travel as UDP payloads, so a capture of the wire shows UDP.  This
writer records instead what the segment means: an IPv4 header (IPv6 when an
address is IPv6) between the two UDP addresses, then the segment with its ports
replaced by the UDP ports (so ``tcp.port == 5000`` matches the socket) and its
checksum recomputed over the IP pseudo-header (RFC 9293 3.1), which Wireshark and
tshark validate; the rest of the segment is byte for byte what went on the wire.
A received datagram that is not a valid segment (too short, bad data offset or
option lengths, bad rudp checksum, oversized) is recorded as the UDP datagram it
was, so it can be seen but not taken for TCP.

The file is classic pcap with LINKTYPE_RAW, so IPv4 and IPv6 packets share it.
Writes are buffered and flushed at least every ``FLUSH_INTERVAL`` seconds and on
close.  An I/O error is logged once and ends the capture, never the connection.

Every endpoint of a process that names the same path shares one writer (see
:func:`open_shared`): one file holds the process's traffic, as a capture of the
loopback interface would.  A datagram between two endpoints of the same process
is recorded once, when sent, not again when received.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import functools
import ipaddress
import os
import struct
import threading
import time
from collections.abc import Hashable
from typing import BinaryIO, TypeVar

from ..core.errors import MalformedSegment
from ..core.segment import HEADER_LEN, MAX_DATAGRAM, decode, internet_checksum
from .log import get_logger

PCAP_MAGIC = 0xA1B2C3D4  # microsecond timestamps
PCAP_VERSION = (2, 4)
LINKTYPE_RAW = 101  # the packet starts with its IP header, version 4 or 6
SNAPLEN = 262144
IPPROTO_TCP, IPPROTO_UDP = 6, 17
TTL = 64
FLUSH_INTERVAL = 1.0
BUFFER_SIZE = 256 * 1024
# The most an IPv4 packet can carry after its header and a UDP header.
MAX_IP_PAYLOAD = 65535 - 20 - 8
# Local addresses of endpoints gone from a shared writer that are still matched
# (their last datagrams may arrive after the socket closed).
DEPARTED_REMEMBERED = 256

_GLOBAL_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")  # RFC 8200 3
_IPV4_PSEUDO = struct.Struct("!4s4sBBH")  # RFC 9293 3.1
_IPV6_PSEUDO = struct.Struct("!16s16sI3xB")  # RFC 8200 8.1
_PORTS = struct.Struct("!HH")
_U16 = struct.Struct("!H")
_UDP = struct.Struct("!HHHH")
_TCP_CHECKSUM_OFFSET = 16
_IPV4_DONT_FRAGMENT = 0x4000
_V4_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"
_UNSPECIFIED_V4 = b"\x00" * 4

_log = get_logger()
_K = TypeVar("_K")


class _Host:
    """An address's packed bytes and what the capture needs to know of it."""

    __slots__ = ("loopback", "packed", "unspecified")

    def __init__(self, packed: bytes, loopback: bool, unspecified: bool) -> None:
        self.packed = packed
        self.loopback = loopback
        self.unspecified = unspecified


_NO_HOST = _Host(_UNSPECIFIED_V4, False, True)


@functools.lru_cache(maxsize=4096)
def _host(name: object) -> _Host:
    if not isinstance(name, str):
        return _NO_HOST
    try:
        address = ipaddress.ip_address(name.partition("%")[0])  # drop an IPv6 scope id
    except ValueError:
        return _NO_HOST
    return _Host(address.packed, address.is_loopback, address.is_unspecified)


def _split(address: Hashable) -> tuple[_Host, int]:
    if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[1], int):
        return _host(address[0]), address[1]
    return _NO_HOST, 0


def _is_segment(data: bytes, verify_checksum: bool) -> bool:
    if len(data) > MAX_DATAGRAM:
        return False
    try:
        decode(data, verify_checksum=verify_checksum)
    except MalformedSegment:
        return False
    return True


class PcapWriter:
    """One pcap file; ``sent`` and ``received`` record datagrams of a UDP socket."""

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False) -> None:
        """``append``: add to the file if it exists (its header is kept) instead of
        starting a new one."""
        self.path = os.fspath(path)
        self.packets_written = 0
        self._file: BinaryIO | None = None
        self._lock = threading.Lock()
        self._ident = 0
        self._flushed_at = time.monotonic()
        # How many endpoints writing here are bound to each (address, port).
        self._locals: dict[tuple[bytes, int], int] = {}
        self._wildcard_ports: dict[int, int] = {}
        self._departed: collections.OrderedDict[tuple[bytes, int], None] = collections.OrderedDict()
        try:
            self._file = _open(self.path, append)
            if self._file.tell() == 0:  # a new file (or an empty one to append to)
                self._file.write(
                    _GLOBAL_HEADER.pack(PCAP_MAGIC, *PCAP_VERSION, 0, 0, SNAPLEN, LINKTYPE_RAW)
                )
        except OSError as exc:
            self._fail(exc)

    def __repr__(self) -> str:
        state = "closed" if self._file is None else f"{self.packets_written} packets"
        return f"<PcapWriter {self.path!r} {state}>"

    @property
    def closed(self) -> bool:
        return self._file is None

    # ------------------------------------------------------------ datagrams
    def sent(self, data: bytes, local: Hashable, peer: Hashable) -> None:
        """``data`` left the socket bound to ``local`` for ``peer``."""
        if self._file is not None:
            # The engine's own segments: their header length is all there is to check.
            size = len(data)
            is_tcp = size >= HEADER_LEN and HEADER_LEN <= (data[12] >> 4) * 4 <= size
            self._write_datagram(data, local, peer, is_tcp)

    def received(
        self, data: bytes, peer: Hashable, local: Hashable, *, verify_checksum: bool = True
    ) -> None:
        """``data`` came from ``peer`` to the socket bound to ``local``;
        ``verify_checksum`` as the receiving endpoint checks the rudp checksum."""
        if self._file is None or self._from_local(peer):
            return
        self._write_datagram(data, peer, local, _is_segment(data, verify_checksum))

    # ----------------------------------------------- endpoints sharing the file
    def add_local(self, address: Hashable) -> None:
        """An endpoint bound to ``address`` writes here: what it sends to another
        such endpoint is recorded when sent, not again when received."""
        host, port = _split(address)
        key = (host.packed, port)
        if host.unspecified:
            self._wildcard_ports[port] = self._wildcard_ports.get(port, 0) + 1
        self._locals[key] = self._locals.get(key, 0) + 1
        self._departed.pop(key, None)

    def remove_local(self, address: Hashable) -> None:
        host, port = _split(address)
        key = (host.packed, port)
        if host.unspecified:
            _decrement(self._wildcard_ports, port)
        _decrement(self._locals, key)
        if key not in self._locals:
            self._departed[key] = None
            if len(self._departed) > DEPARTED_REMEMBERED:
                self._departed.popitem(last=False)

    def _from_local(self, peer: Hashable) -> bool:
        if not self._locals and not self._departed:
            return False
        host, port = _split(peer)
        key = (host.packed, port)
        # A socket bound to every address answers from loopback for loopback peers.
        return (
            key in self._locals
            or key in self._departed
            or (host.loopback and port in self._wildcard_ports)
        )

    # --------------------------------------------------------------- packets
    def _write_datagram(self, data: bytes, src: Hashable, dst: Hashable, is_tcp: bool) -> None:
        if len(data) > MAX_IP_PAYLOAD:
            return  # no socket sends or receives that much in one datagram
        src_host, src_port = _split(src)
        dst_host, dst_port = _split(dst)
        src_ip, dst_ip = src_host.packed, dst_host.packed
        # A socket bound to the wildcard sends to and receives from loopback
        # peers on the loopback address: show that rather than 0.0.0.0.
        if src_host.unspecified and dst_host.loopback:
            src_ip = dst_ip
        elif dst_host.unspecified and src_host.loopback:
            dst_ip = src_ip
        if len(src_ip) != len(dst_ip):
            src_ip, dst_ip = _as_v6(src_ip), _as_v6(dst_ip)
        if is_tcp:
            protocol, transport = IPPROTO_TCP, _tcp(data, src_ip, src_port, dst_ip, dst_port)
        else:
            protocol, transport = IPPROTO_UDP, _udp(data, src_ip, src_port, dst_ip, dst_port)
        if len(src_ip) == 4:
            self._ident = (self._ident + 1) & 0xFFFF
            header = _ipv4_header(self._ident, protocol, len(transport), src_ip, dst_ip)
        else:
            # Version 6, traffic class 0, flow label 0.
            header = _IPV6.pack(0x6000_0000, len(transport), protocol, TTL, src_ip, dst_ip)
        self.write_packet(header + transport)

    def write_packet(self, packet: bytes) -> None:
        """One raw IP packet, time-stamped now."""
        file = self._file
        if file is None:
            return
        seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
        size = len(packet)
        record = _RECORD_HEADER.pack(seconds, nanoseconds // 1000, size, size) + packet
        try:
            with self._lock:
                file.write(record)
                self.packets_written += 1
                now = time.monotonic()
                if now - self._flushed_at >= FLUSH_INTERVAL:
                    self._flushed_at = now
                    file.flush()
        except (OSError, ValueError) as exc:  # ValueError: the file was closed
            self._fail(exc)

    def flush(self) -> None:
        file = self._file
        if file is not None:
            try:
                with self._lock:
                    file.flush()
            except (OSError, ValueError) as exc:
                self._fail(exc)

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                with self._lock:
                    file.close()
            except OSError as exc:
                _log.warning("pcap_failed", path=self.path, error=repr(exc))

    def _fail(self, exc: BaseException) -> None:
        _log.warning("pcap_failed", path=self.path, error=repr(exc))
        file, self._file = self._file, None
        if file is not None:
            # Already reported; the capture is over either way.
            with contextlib.suppress(OSError, ValueError):
                file.close()


def _tcp(data: bytes, src_ip: bytes, src_port: int, dst_ip: bytes, dst_port: int) -> bytes:
    """The segment with the UDP ports and a checksum over the IP pseudo-header."""
    segment = bytearray(data)
    _PORTS.pack_into(segment, 0, src_port, dst_port)
    segment[_TCP_CHECKSUM_OFFSET : _TCP_CHECKSUM_OFFSET + 2] = b"\x00\x00"
    # RFC 9293 3.1: the checksum covers the pseudo-header, then the whole segment.
    pseudo = _pseudo_header(src_ip, dst_ip, IPPROTO_TCP, len(segment))
    _U16.pack_into(segment, _TCP_CHECKSUM_OFFSET, internet_checksum(pseudo + segment))
    return bytes(segment)


def _udp(data: bytes, src_ip: bytes, src_port: int, dst_ip: bytes, dst_port: int) -> bytes:
    """The datagram as it was: UDP header and payload."""
    length = _UDP.size + len(data)
    datagram = bytearray(_UDP.pack(src_port, dst_port, length, 0))
    datagram += data
    pseudo = _pseudo_header(src_ip, dst_ip, IPPROTO_UDP, length)
    # RFC 768: a computed zero is sent as all ones (zero means "no checksum").
    _U16.pack_into(datagram, 6, internet_checksum(pseudo + datagram) or 0xFFFF)
    return bytes(datagram)


def _ipv4_header(ident: int, protocol: int, payload: int, src: bytes, dst: bytes) -> bytes:
    """RFC 791 header, no options, Don't Fragment, with its checksum."""
    header = bytearray(
        _IPV4.pack(0x45, 0, 20 + payload, ident, _IPV4_DONT_FRAGMENT, TTL, protocol, 0, src, dst)
    )
    _U16.pack_into(header, 10, internet_checksum(header))
    return bytes(header)


def _open(path: str, append: bool) -> BinaryIO:
    if append:
        return open(path, "ab", buffering=BUFFER_SIZE)
    return open(path, "wb", buffering=BUFFER_SIZE)


def _pseudo_header(src: bytes, dst: bytes, protocol: int, length: int) -> bytes:
    if len(src) == 4:
        return _IPV4_PSEUDO.pack(src, dst, 0, protocol, length)
    return _IPV6_PSEUDO.pack(src, dst, length, protocol)


def _as_v6(packed: bytes) -> bytes:
    return _V4_MAPPED_PREFIX + packed if len(packed) == 4 else packed


def _decrement(counts: dict[_K, int], key: _K) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


# ------------------------------------------------------- one writer per path
_shared: dict[str, tuple[PcapWriter, int]] = {}
_opened_before: set[str] = set()
_shared_lock = threading.Lock()


def open_shared(path: str | os.PathLike[str], local: Hashable) -> PcapWriter:
    """The process's writer for ``path``, for an endpoint bound to ``local``;
    :func:`release` it when the endpoint closes.

    The first open in a process starts a new file; once every endpoint released
    it, the file is closed, and a later endpoint appends to it.
    """
    key = os.path.abspath(os.fspath(path))
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None:
            writer = PcapWriter(key, append=key in _opened_before)
            _opened_before.add(key)
            users = 0
        else:
            writer, users = entry
        _shared[key] = (writer, users + 1)
        writer.add_local(local)
    return writer


def release(writer: PcapWriter, local: Hashable) -> None:
    """The endpoint bound to ``local`` no longer writes to ``writer``."""
    with _shared_lock:
        writer.remove_local(local)
        entry = _shared.get(writer.path)
        if entry is None or entry[0] is not writer:
            writer.close()
            return
        users = entry[1] - 1
        if users > 0:
            _shared[writer.path] = (writer, users)
        else:
            del _shared[writer.path]
    if users > 0:
        writer.flush()  # what this endpoint saw is on disk once it is closed
    else:
        writer.close()


@atexit.register
def _close_all() -> None:
    """Flush what endpoints never released (a loop stopped before their sockets
    closed), so the capture on disk is complete."""
    with _shared_lock:
        writers = [writer for writer, _ in _shared.values()]
        _shared.clear()
    for writer in writers:
        writer.close()
