"""Per-endpoint (per UDP socket) counters, summed over its connections."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(slots=True)
class EndpointStats:
    """A snapshot of one UDP socket's counters (``Endpoint.stats``).

    Every field but ``connections_active`` only grows.  ``dropped_malformed`` and
    ``resets_sent`` add up the listener's, the live connections' and those of the
    connections already finished.  Two snapshots add up field by field.
    """

    #: Datagrams the socket received, valid or not, and their bytes.
    datagrams_received: int = 0
    bytes_received: int = 0
    #: Datagrams handed to the socket, and their bytes.
    datagrams_sent: int = 0
    bytes_sent: int = 0
    #: Datagrams that were no valid segment: too short, bad data offset or option
    #: lengths, bad checksum, larger than a UDP datagram can be.
    dropped_malformed: int = 0
    #: RSTs sent: RFC 9293 3.10.7.1 replies, aborts and resets by the engine.
    resets_sent: int = 0
    #: Passive opens that completed the three-way handshake.
    connections_accepted: int = 0
    #: Connections the socket carries now, TIME-WAIT included.
    connections_active: int = 0

    def __add__(self, other: EndpointStats) -> EndpointStats:
        if not isinstance(other, EndpointStats):
            return NotImplemented
        return EndpointStats(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(self))
        )
