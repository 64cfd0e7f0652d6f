"""Pacing over the simulated network: segments spread over the round trip."""

from __future__ import annotations

from collections import Counter

from test_pairs import CLIENT, open_pair, payload

from rudp.core.config import Config
from rudp.testing import Impairment

SIZE = 300_000


def largest_burst(pacing: bool) -> tuple[int, bytes]:
    """Send SIZE bytes over a 100 ms round trip; return the most datagrams the client
    sent at one instant, and what the server received."""
    pair = open_pair(5, Impairment(delay=0.05), config=Config(pacing=pacing), trace=True)
    assert pair.net.run(stop=pair.established, until=10.0) == "stopped"
    pair.client.send(payload(SIZE, 5))

    def done() -> bool:
        return len(pair.server_host.received(pair.server)) >= SIZE

    assert pair.net.run(stop=done, until=60.0) == "stopped"
    assert pair.net.trace is not None
    sends = Counter(
        round(record.time, 9)
        for record in pair.net.trace
        if record.kind == "send" and record.src == CLIENT and len(record.data) > 100
    )
    return max(sends.values()), pair.server_host.received(pair.server)


def test_pacing_spreads_the_window_over_the_round_trip() -> None:
    """With pacing the sender never emits more than its burst allowance at one
    instant; without it, the initial window (RFC 6928, 10 segments) leaves at once."""
    paced, received = largest_burst(pacing=True)
    assert received == payload(SIZE, 5)
    unpaced, received = largest_burst(pacing=False)
    assert received == payload(SIZE, 5)
    assert unpaced >= 10
    assert paced <= 3
