"""A finished connection is freed when its owner drops it, not by the cycle collector.

A server that accepts thousands of connections a second would otherwise pile them
up between full garbage collections (each collection then walks all of them).
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from engine_helpers import PEER_ISN, established, feed, payload, sent

from rudp.core.segment import ACK, Segment
from rudp.core.seq import seq_add


@pytest.fixture
def no_cycle_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def test_a_used_connection_is_freed_by_reference_counting(no_cycle_collector: None) -> None:
    conn = established()
    conn.send(payload(3000))
    segments = sent(conn, 0.2)
    assert segments
    end = seq_add(segments[-1].seq, len(segments[-1].payload))
    feed(conn, Segment(seq=seq_add(PEER_ISN, 1), ack=end, flags=ACK, window=65535), 0.3)
    stats = conn.stats
    assert stats.state == "ESTABLISHED" and stats.cwnd is not None and stats.srtt is not None
    freed = weakref.ref(conn)
    del conn, segments
    assert freed() is None
    # What a caller kept: the counters stay, the live values are gone.
    assert stats.bytes_acked == 3000
    assert stats.state == "CLOSED"
    assert stats.cwnd is None and stats.srtt is None and stats.bytes_in_flight is None
    assert stats.as_dict()["bytes_acked"] == 3000
