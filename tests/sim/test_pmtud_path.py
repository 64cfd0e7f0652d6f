"""Path MTU discovery end to end over the simulated network (RFC 8899, RFC 4821)."""

from __future__ import annotations

import pytest
from test_pairs import CLIENT, open_pair, payload

from rudp.core.config import Config
from rudp.testing import Impairment

SIZE = 600_000


def transfer(path_mtu: int, *, loss: float = 0.0, seed: int = 1) -> tuple[int, int, bytes]:
    """Send SIZE bytes client -> server over a path that drops datagrams above
    ``path_mtu``; return the client's confirmed size, how many of its datagrams
    exceeded that size, and the bytes the server received."""
    config = Config(pmtud=True)
    impairment = Impairment(delay=0.01, mtu=path_mtu, loss=loss)
    pair = open_pair(seed, impairment, config=config, trace=True)
    assert pair.net.run(stop=pair.established, until=10.0) == "stopped"
    pair.client.send(payload(SIZE, seed))

    def done() -> bool:
        return len(pair.server_host.received(pair.server)) >= SIZE

    assert pair.net.run(stop=done, until=300.0) == "stopped"
    pmtud = pair.client.pmtud
    assert pmtud is not None
    assert pair.net.trace is not None
    oversized = sum(
        1
        for record in pair.net.trace
        if record.kind == "send" and record.src == CLIENT and len(record.data) > pmtud.plpmtu
    )
    assert oversized <= pmtud.probes_sent
    return pmtud.plpmtu, oversized, pair.server_host.received(pair.server)


@pytest.mark.parametrize("path_mtu", [1472, 4000, 8972, 65507])
def test_rfc8899_search_converges_below_the_path_mtu(path_mtu: int) -> None:
    """RFC 8899 (5.3): probing from the base size finds a size the path carries,
    within the search granularity when the limit lies between table steps, and the
    byte stream arrives intact meanwhile (lost probes are resent at the old size)."""
    plpmtu, _, received = transfer(path_mtu)
    assert received == payload(SIZE, 1)
    assert plpmtu <= path_mtu
    assert plpmtu > 1400 or path_mtu < 1416


def test_rfc8899_ordinary_data_never_exceeds_the_confirmed_size() -> None:
    """RFC 8899 (4, invariant): only probes are larger than PLPMTU; with loss on the
    path too, every segment the client sends fits the size confirmed at the time."""
    plpmtu, _, received = transfer(8972, loss=0.02, seed=3)
    assert received == payload(SIZE, 3)
    assert 1400 < plpmtu <= 8972


def test_pmtud_off_by_default_sends_no_probe() -> None:
    pair = open_pair(2, Impairment(delay=0.01))
    assert pair.net.run(stop=pair.established, until=10.0) == "stopped"
    assert pair.client.pmtud is None
