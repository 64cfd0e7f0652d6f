"""The engine's fast paths change nothing but speed.

Header prediction (``Connection._receive_predicted``, RFC 9293 3.10.7.4 for the
next in-order segment) and the burst sender (``_send_burst``, the loop of
``_send_new_data`` for full-sized segments) must put the same bytes on the wire at
the same virtual times as the general paths.  Each seed of the property suite's
hostile network is played twice, with and without them, and the traces compared.
"""

from __future__ import annotations

import pytest
from test_property import make_scenario, run

from rudp.core.connection import Connection

SEEDS = range(0, 400, 2)


@pytest.fixture
def general_paths_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Connection, "_receive_predicted", lambda self, data, now: False)
    monkeypatch.setattr(Connection, "_burst_size", lambda self, remaining: 0)


def _traces() -> dict[int, list[object]]:
    traces = {}
    for seed in SEEDS:
        played = run(make_scenario(seed), trace=True)
        assert played.net.trace is not None
        traces[seed] = list(played.net.trace)
    return traces


@pytest.fixture(scope="module")
def fast_traces() -> dict[int, list[object]]:
    return _traces()


def test_fast_paths_are_taken(fast_traces: dict[int, list[object]]) -> None:
    """The comparison below means something only if the fast paths run."""
    calls = {"predicted": 0, "burst": 0}
    predicted, burst = Connection._receive_predicted, Connection._send_burst

    def count_predicted(self: Connection, data: bytes, now: float) -> bool:
        taken = predicted(self, data, now)
        calls["predicted"] += taken
        return taken

    def count_burst(self: Connection, *args: object) -> None:
        calls["burst"] += 1
        burst(self, *args)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Connection, "_receive_predicted", count_predicted)
        patch.setattr(Connection, "_send_burst", count_burst)
        run(make_scenario(2), trace=False)
        run(make_scenario(4), trace=False)
    assert calls["predicted"] > 10 and calls["burst"] > 2, calls


def test_fast_paths_send_what_the_general_paths_send_rfc9293_3_10_7_4(
    fast_traces: dict[int, list[object]], general_paths_only: None
) -> None:
    slow = _traces()
    differing = [seed for seed in SEEDS if slow[seed] != fast_traces[seed]]
    assert not differing, f"traces differ for seeds {differing[:10]}"
