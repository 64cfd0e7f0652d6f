"""Path MTU discovery (RFC 8899 state machine, RFC 4821 for TCP) on its own.

A fake path of known MTU stands in for the network: a probe is acknowledged if its
size fits the path and lost otherwise.  Sizes are TCP segment sizes (UDP payloads).
Time is explicit; nothing sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rudp.core.errors import LocalProtocolError
from rudp.core.pmtud import (
    COMMON_SIZES,
    MAX_PROBES,
    MIN_PLPMTU,
    PMTU_RAISE_TIMER,
    PROBE_TIMER,
    SEARCH_GRANULARITY,
    TRANSITIONS,
    PathMtuDiscovery,
    PmtudState,
)

BASE = 1400  # Config().max_segment_size
LOOPBACK_MAX = 65507  # largest UDP payload over IPv4
ETHERNET_V4 = 1472  # 1500 - 20 (IPv4) - 8 (UDP)
RTT = 0.125


@dataclass
class FakePath:
    """Delivers a probe iff it fits ``mtu``; records every probe size sent."""

    mtu: int
    now: float = 0.0
    probes: list[int] = field(default_factory=list)

    def run(self, pmtud: PathMtuDiscovery, limit: int = 200) -> list[int]:
        """Send every probe offered now, answer each one RTT later; the probes sent."""
        sent: list[int] = []
        while (size := pmtud.should_probe(self.now)) is not None:
            pmtud.on_probe_sent(size, self.now)
            sent.append(size)
            self.now += RTT
            if size <= self.mtu:
                pmtud.on_probe_acked(size, self.now)
            else:
                pmtud.on_probe_lost(size, self.now)
            assert len(sent) < limit
        self.probes += sent
        return sent


def started(max_size: int = LOOPBACK_MAX, **kwargs: object) -> PathMtuDiscovery:
    pmtud = PathMtuDiscovery(BASE, max_size, **kwargs)  # type: ignore[arg-type]
    pmtud.start()
    return pmtud


def converged(path_mtu: int, max_size: int = LOOPBACK_MAX) -> tuple[PathMtuDiscovery, FakePath]:
    pmtud = started(max_size)
    path = FakePath(path_mtu)
    path.run(pmtud)
    return pmtud, path


# ============================================================ constants, states
def test_rfc8899_5_1_constants() -> None:
    """RFC 8899 5.1.1/5.1.2: MAX_PROBES 3, PMTU_RAISE_TIMER 600 s, PROBE_TIMER at
    least 1 s and above 15 s; MIN_PLPMTU fits a 1280-byte IPv6 packet."""
    assert MAX_PROBES == 3
    assert PMTU_RAISE_TIMER == 600.0
    assert PROBE_TIMER > 15.0
    assert MIN_PLPMTU <= 1280 - 40 - 8
    assert SEARCH_GRANULARITY == 16
    assert list(COMMON_SIZES) == sorted(COMMON_SIZES)


def test_rfc8899_5_2_state_names_and_transitions() -> None:
    """RFC 8899 5.2 figure 5: the states print with the RFC's names, and the edges
    out of each are the figure's (plus BASE-size black hole -> ERROR)."""
    assert [str(s) for s in PmtudState] == [
        "DISABLED",
        "BASE",
        "SEARCHING",
        "SEARCH_COMPLETE",
        "ERROR",
    ]
    assert TRANSITIONS[PmtudState.DISABLED] == {PmtudState.BASE}
    assert PmtudState.SEARCHING in TRANSITIONS[PmtudState.BASE]
    assert PmtudState.ERROR in TRANSITIONS[PmtudState.BASE]
    assert PmtudState.SEARCH_COMPLETE in TRANSITIONS[PmtudState.SEARCHING]
    assert PmtudState.SEARCHING in TRANSITIONS[PmtudState.SEARCH_COMPLETE]
    assert PmtudState.BASE in TRANSITIONS[PmtudState.SEARCH_COMPLETE]
    assert TRANSITIONS[PmtudState.ERROR] == {PmtudState.SEARCHING, PmtudState.DISABLED}
    for state in PmtudState:
        if state is not PmtudState.DISABLED:
            assert PmtudState.DISABLED in TRANSITIONS[state]


@pytest.mark.parametrize(
    ("base", "max_size", "kwargs"),
    [
        (1400, 1399, {}),
        (1400, 1472, {"min_size": 1401}),
        (1400, 1472, {"min_size": 0}),
        (1400, 1472, {"max_probes": 0}),
        (1400, 1472, {"granularity": 0}),
        (1400, 1472, {"probe_timeout": 0.5}),
        (1400, 1472, {"raise_interval": 0}),
    ],
)
def test_invalid_configuration_rejected(base: int, max_size: int, kwargs: dict[str, int]) -> None:
    """RFC 8899 5.1.2 MIN_PLPMTU <= BASE_PLPMTU <= MAX_PLPMTU; 5.1.1 PROBE_TIMER >= 1 s."""
    with pytest.raises(ValueError):
        PathMtuDiscovery(base, max_size, **kwargs)  # type: ignore[arg-type]


def test_min_size_defaults_to_min_plpmtu_or_base() -> None:
    assert PathMtuDiscovery(BASE, LOOPBACK_MAX).min_size == MIN_PLPMTU
    assert PathMtuDiscovery(1000, LOOPBACK_MAX).min_size == 1000


# ============================================================ DISABLED and BASE
def test_rfc8899_5_2_disabled_until_started() -> None:
    """RFC 8899 5.2 DISABLED: the initial state; no probe, no timer, base size."""
    pmtud = PathMtuDiscovery(BASE, LOOPBACK_MAX)
    assert pmtud.state is PmtudState.DISABLED
    assert pmtud.plpmtu == BASE
    assert pmtud.should_probe(0.0) is None
    assert pmtud.next_timer() is None
    pmtud.handle_timer(1e9)
    assert pmtud.state is PmtudState.DISABLED


def test_rfc8899_5_2_base_probes_base_plpmtu_first() -> None:
    """RFC 8899 5.2 BASE: on entry PROBED_SIZE = BASE_PLPMTU and PROBE_COUNT = 0;
    the acknowledged base probe moves to SEARCHING."""
    pmtud = started()
    assert pmtud.state is PmtudState.BASE
    assert pmtud.plpmtu == BASE
    assert (pmtud.probed_size, pmtud.probe_count) == (BASE, 0)
    assert pmtud.should_probe(0.0) == BASE
    pmtud.on_probe_sent(BASE, 0.0)
    pmtud.on_probe_acked(BASE, RTT)
    assert pmtud.state is PmtudState.SEARCHING
    assert pmtud.plpmtu == BASE
    assert pmtud.should_probe(RTT) == 1452  # the first table step above the base


def test_rfc8899_5_2_base_max_probes_lost_enters_error() -> None:
    """RFC 8899 5.2 BASE: PROBE_COUNT reaching MAX_PROBES -> ERROR, which signals a
    conservative size (MIN_PLPMTU).  Before that, data keeps the base size."""
    pmtud = started()
    now = 0.0
    for lost in range(1, MAX_PROBES + 1):
        assert pmtud.state is PmtudState.BASE
        assert pmtud.plpmtu == BASE
        pmtud.on_probe_sent(BASE, now)
        now += 1.0
        pmtud.on_probe_lost(BASE, now)
        assert pmtud.probe_count == (lost if lost < MAX_PROBES else 0)
    assert pmtud.state is PmtudState.ERROR
    assert pmtud.plpmtu == MIN_PLPMTU


def test_start_is_idempotent_and_stop_disables() -> None:
    """RFC 8899 5.2: DISABLED is entered from any state; probes in flight are forgotten."""
    pmtud = started()
    pmtud.start()
    assert pmtud.state is PmtudState.BASE
    pmtud.on_probe_sent(BASE, 0.0)
    pmtud.stop()
    assert pmtud.state is PmtudState.DISABLED
    assert pmtud.should_probe(0.0) is None
    assert pmtud.next_timer() is None
    pmtud.on_probe_acked(BASE, RTT)  # the forgotten probe
    assert (pmtud.state, pmtud.probes_acked) == (PmtudState.DISABLED, 0)
    pmtud.stop()
    pmtud.start()
    assert pmtud.should_probe(1.0) == BASE


# ============================================================ search
def test_rfc8899_5_3_loopback_climbs_table_to_max_plpmtu() -> None:
    """RFC 8899 5.3.2 table of common sizes, 5.2: a MAX_PLPMTU probe acknowledged ->
    SEARCH_COMPLETE with no PMTU_RAISE_TIMER (nothing larger to find)."""
    pmtud, path = converged(LOOPBACK_MAX)
    assert path.probes == [BASE, 1452, 1472, 8952, 8972, 65487, 65507]
    assert pmtud.state is PmtudState.SEARCH_COMPLETE
    assert pmtud.plpmtu == LOOPBACK_MAX
    assert pmtud.next_timer() is None


def test_rfc8899_5_3_1_ethernet_path_ends_after_max_probes_consecutive_losses() -> None:
    """RFC 8899 5.3.1: each lost probe increments PROBE_COUNT; at MAX_PROBES probing
    stops (SEARCH_COMPLETE) with the last confirmed size.  The lost sizes bisect
    the range (RFC 4821 7.3)."""
    pmtud, path = converged(ETHERNET_V4)
    assert path.probes == [BASE, 1452, 1472, 8952, (1472 + 8952) // 2, (1472 + 5212) // 2]
    assert pmtud.state is PmtudState.SEARCH_COMPLETE
    assert pmtud.plpmtu == ETHERNET_V4
    assert pmtud.probes_lost == MAX_PROBES
    assert pmtud.next_timer() == pytest.approx(path.now + PMTU_RAISE_TIMER)


def test_rfc8899_5_3_1_probe_count_resets_on_ack() -> None:
    """RFC 8899 5.2 SEARCHING: each acknowledged probe sets PROBE_COUNT to zero, so
    losses interleaved with acknowledgments do not end the search early."""
    pmtud, path = converged(4000)
    assert path.probes == [
        BASE, 1452, 1472, 8952, 5212, 3342, 4277, 3809, 4043, 3926, 3984, 4013, 3998,
    ]  # fmt: skip
    assert pmtud.plpmtu == 3998


@pytest.mark.parametrize("path_mtu", range(BASE, ETHERNET_V4 + 1))
def test_rfc8899_5_3_2_converges_within_granularity(path_mtu: int) -> None:
    """RFC 8899 5.3.2 / RFC 4821 7.3: with an Ethernet ceiling, every path between
    the base and the ceiling is found to within the search granularity in at most
    four probes, and never overshoots."""
    pmtud, path = converged(path_mtu, max_size=ETHERNET_V4)
    assert path_mtu - SEARCH_GRANULARITY < pmtud.plpmtu <= path_mtu
    assert len(path.probes) <= 4
    assert pmtud.state is PmtudState.SEARCH_COMPLETE


def test_rfc8899_5_2_base_equal_to_max_completes_after_base_probe() -> None:
    """RFC 8899 5.2: BASE_PLPMTU = MAX_PLPMTU, so confirming it ends the search."""
    pmtud = PathMtuDiscovery(BASE, BASE)
    pmtud.start()
    path = FakePath(ETHERNET_V4)
    assert path.run(pmtud) == [BASE]
    assert pmtud.state is PmtudState.SEARCH_COMPLETE
    assert pmtud.next_timer() is None


@pytest.mark.parametrize("path_mtu", [BASE, 1401, 1452, 1460, 2000, 4000, 8972, 9000, 65507])
def test_rfc8899_4_4_plpmtu_never_above_confirmed(path_mtu: int) -> None:
    """RFC 8899 4.4: no packet other than a probe is larger than the PLPMTU, which only
    an acknowledged probe raises: after every step it is at most the path's MTU."""
    pmtud = started()
    path = FakePath(path_mtu)
    acked: set[int] = {BASE}
    while (size := pmtud.should_probe(path.now)) is not None:
        assert BASE <= size <= LOOPBACK_MAX
        pmtud.on_probe_sent(size, path.now)
        assert pmtud.plpmtu <= path_mtu
        path.now += RTT
        if size <= path_mtu:
            pmtud.on_probe_acked(size, path.now)
            acked.add(size)
        else:
            pmtud.on_probe_lost(size, path.now)
        assert pmtud.plpmtu <= path_mtu
        assert pmtud.plpmtu in acked


# ============================================================ timers
def test_rfc8899_5_1_1_pmtu_raise_timer_searches_again() -> None:
    """RFC 8899 5.1.1 PMTU_RAISE_TIMER: after 600 s in SEARCH_COMPLETE the search
    restarts from the PLPMTU, with the failed sizes forgotten (RFC 4821 7.3)."""
    pmtud, path = converged(ETHERNET_V4)
    done_at = path.now
    assert pmtud.next_timer() == pytest.approx(done_at + PMTU_RAISE_TIMER)
    pmtud.handle_timer(done_at + PMTU_RAISE_TIMER - 1)
    assert pmtud.state is PmtudState.SEARCH_COMPLETE
    assert pmtud.should_probe(done_at + PMTU_RAISE_TIMER - 1) is None

    path.now = done_at + PMTU_RAISE_TIMER
    pmtud.handle_timer(path.now)
    assert pmtud.state is PmtudState.SEARCHING
    assert pmtud.next_timer() is None
    assert pmtud.should_probe(path.now) == 8952  # the table again, not the bisection
    path.mtu = 8972  # the path now takes jumbo frames
    path.run(pmtud)
    assert pmtud.plpmtu == 8972
    assert pmtud.state is PmtudState.SEARCH_COMPLETE


def test_rfc8899_5_1_1_probe_timer_expiry_counts_as_loss() -> None:
    """RFC 8899 5.3.1: if the PROBE_TIMER expires before an acknowledgment, the
    probe failed; a late acknowledgment of it is then ignored (RFC 8899 4.1)."""
    pmtud = started()
    pmtud.on_probe_sent(BASE, 0.0)
    pmtud.on_probe_acked(BASE, RTT)  # BASE confirmed, SEARCHING, 1452 next
    pmtud.on_probe_sent(1452, 10.0)
    assert pmtud.probe_in_flight
    assert pmtud.should_probe(10.0) is None  # one probe at a time
    assert pmtud.next_timer() == 10.0 + PROBE_TIMER
    pmtud.handle_timer(10.0 + PROBE_TIMER - 0.5)
    assert pmtud.probe_in_flight
    pmtud.handle_timer(10.0 + PROBE_TIMER)
    assert not pmtud.probe_in_flight
    assert pmtud.probe_count == 1
    assert pmtud.next_timer() is None
    pmtud.on_probe_acked(1452, 10.0 + PROBE_TIMER + 1)  # too late
    assert pmtud.plpmtu == BASE
    assert pmtud.should_probe(50.0) == (BASE + 1452) // 2


def test_stale_reports_are_ignored() -> None:
    """RFC 8899 4.1: robust to replayed or reordered acknowledgments: only the probe
    in flight, by its size, is acted on."""
    pmtud = started()
    pmtud.on_probe_acked(BASE, 0.0)  # nothing in flight
    pmtud.on_probe_lost(BASE, 0.0)
    assert (pmtud.state, pmtud.probe_count) == (PmtudState.BASE, 0)
    pmtud.on_probe_sent(BASE, 0.0)
    pmtud.on_probe_acked(1452, RTT)  # not the probe in flight
    pmtud.on_probe_lost(9000, RTT)
    assert pmtud.probe_in_flight
    assert pmtud.state is PmtudState.BASE


def test_on_probe_sent_misuse_raises() -> None:
    """Sending a probe that was not asked for is the sender's bug."""
    pmtud = PathMtuDiscovery(BASE, LOOPBACK_MAX)
    with pytest.raises(LocalProtocolError):
        pmtud.on_probe_sent(BASE, 0.0)  # DISABLED
    pmtud.start()
    with pytest.raises(LocalProtocolError):
        pmtud.on_probe_sent(BASE + 1, 0.0)  # wrong size
    pmtud.on_probe_sent(BASE, 0.0)
    with pytest.raises(LocalProtocolError):
        pmtud.on_probe_sent(BASE, 0.0)  # one already in flight
    assert pmtud.probes_sent == 1


# ============================================================ black holes
def test_rfc8899_4_3_black_hole_falls_back_to_base_and_searches_again() -> None:
    """RFC 8899 4.3 / 5.2: a black hole detected in SEARCH_COMPLETE -> BASE with the
    PLPMTU at BASE_PLPMTU; once that is confirmed the search finds the new, smaller
    path MTU."""
    pmtud, path = converged(LOOPBACK_MAX)
    path.mtu = 1420  # a tunnel appeared on the path
    pmtud.on_black_hole_suspected(path.now)
    assert pmtud.state is PmtudState.BASE
    assert pmtud.plpmtu == BASE
    assert pmtud.black_holes == 1
    path.run(pmtud)
    assert pmtud.state is PmtudState.SEARCH_COMPLETE
    assert 1420 - SEARCH_GRANULARITY < pmtud.plpmtu <= 1420


def test_rfc8899_4_3_black_hole_while_searching_forgets_probe() -> None:
    """RFC 8899 5.2 SEARCHING: a black hole -> BASE; the probe in flight is dropped,
    so its late acknowledgment cannot raise the size again."""
    pmtud = started()
    path = FakePath(ETHERNET_V4)
    for _ in range(3):  # BASE, 1452, 1472 acknowledged
        size = pmtud.should_probe(path.now)
        assert size is not None
        pmtud.on_probe_sent(size, path.now)
        pmtud.on_probe_acked(size, path.now)
    pmtud.on_probe_sent(8952, 1.0)
    pmtud.on_black_hole_suspected(2.0)
    assert (pmtud.state, pmtud.plpmtu) == (PmtudState.BASE, BASE)
    assert not pmtud.probe_in_flight
    pmtud.on_probe_acked(8952, 3.0)
    assert (pmtud.state, pmtud.plpmtu) == (PmtudState.BASE, BASE)
    assert pmtud.should_probe(3.0) == BASE


def test_rfc4821_7_7_black_hole_at_base_enters_error_then_recovers() -> None:
    """RFC 4821 7.7: a full-stop timeout with nothing larger than the base to fall
    back from lowers the size to MIN_PLPMTU (RFC 8899 5.2 ERROR).  ERROR retries
    BASE_PLPMTU once per PROBE_TIMER and returns to SEARCHING when it is acked."""
    pmtud, path = converged(BASE, max_size=ETHERNET_V4)
    assert pmtud.plpmtu == BASE
    path.mtu = 1300
    pmtud.on_black_hole_suspected(100.0)
    assert pmtud.state is PmtudState.ERROR
    assert pmtud.plpmtu == MIN_PLPMTU
    assert pmtud.next_timer() is None  # the raise timer is cancelled
    pmtud.on_black_hole_suspected(101.0)  # already at the floor
    assert (pmtud.plpmtu, pmtud.black_holes) == (MIN_PLPMTU, 1)

    assert pmtud.should_probe(100.0 + PROBE_TIMER - 1) is None
    path.now = 100.0 + PROBE_TIMER
    assert path.run(pmtud) == [BASE]  # lost: the path is still too small
    assert pmtud.state is PmtudState.ERROR
    assert pmtud.plpmtu == MIN_PLPMTU
    assert pmtud.should_probe(path.now) is None
    path.now += PROBE_TIMER
    path.mtu = ETHERNET_V4  # the path recovered
    path.run(pmtud)
    assert pmtud.state is PmtudState.SEARCH_COMPLETE
    assert pmtud.plpmtu == ETHERNET_V4


def test_black_hole_ignored_when_disabled() -> None:
    pmtud = PathMtuDiscovery(BASE, LOOPBACK_MAX)
    pmtud.on_black_hole_suspected(0.0)
    assert (pmtud.state, pmtud.black_holes) == (PmtudState.DISABLED, 0)


# ============================================================ any sequence of inputs
EVENTS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["probe", "ack", "lose", "black_hole", "stop", "start"])),
        st.tuples(st.just("wait"), st.floats(0.0, 1000.0)),
        st.tuples(st.just("stale_ack"), st.integers(1, 70000)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    events=EVENTS,
    base=st.integers(548, 9000),
    extra=st.integers(0, 60000),
)
def test_invariants_hold_for_any_input_sequence(
    events: list[tuple[object, ...]], base: int, extra: int
) -> None:
    """RFC 8899 4.4 and 5.2 invariants under arbitrary sender behaviour: PLPMTU is
    the base, the minimum, or a confirmed size; probes are never below BASE_PLPMTU
    nor above MAX_PLPMTU; in SEARCHING they are larger than the PLPMTU."""
    max_size = min(base + extra, LOOPBACK_MAX)
    pmtud = PathMtuDiscovery(base, max_size)
    pmtud.start()
    now = 0.0
    confirmed: set[int] = set()
    in_flight: int | None = None
    for event in events:
        kind = event[0]
        offered = pmtud.should_probe(now)
        if offered is not None:
            assert base <= offered <= max_size
            if pmtud.state is PmtudState.SEARCHING:
                assert offered > pmtud.plpmtu
            else:
                assert offered == base
        if kind == "probe" and offered is not None:
            pmtud.on_probe_sent(offered, now)
            in_flight = offered
        elif kind == "ack" and in_flight is not None:
            before = pmtud.probes_acked
            pmtud.on_probe_acked(in_flight, now)
            if pmtud.probes_acked > before:
                confirmed.add(in_flight)
            in_flight = None
        elif kind == "lose" and in_flight is not None:
            pmtud.on_probe_lost(in_flight, now)
            in_flight = None
        elif kind == "black_hole":
            pmtud.on_black_hole_suspected(now)
            if pmtud.state in (PmtudState.BASE, PmtudState.ERROR):
                confirmed.clear()
        elif kind == "stop":
            pmtud.stop()
        elif kind == "start":
            pmtud.start()
        elif kind == "wait":
            assert isinstance(event[1], float)
            now += event[1]
            pmtud.handle_timer(now)
        elif kind == "stale_ack":
            assert isinstance(event[1], int)
            if event[1] != in_flight:
                before_plpmtu = pmtud.plpmtu
                pmtud.on_probe_acked(event[1], now)
                assert pmtud.plpmtu == before_plpmtu
        if not pmtud.probe_in_flight:
            in_flight = None
        assert pmtud.min_size <= pmtud.plpmtu <= max_size
        assert pmtud.plpmtu in confirmed | {base, pmtud.min_size}
        assert pmtud.plpmtu <= max(confirmed | {base})
