"""HyStart++ (RFC 9406) in the initial slow start of both controllers.

First the controller alone, driven by a cwnd-limited sender model (``Sender``):
every ACK acknowledges two segments and carries one RTT sample, the sender
refills the window after each, and ``round_trip`` runs one RFC 9406 round.
Windows in bytes, MSS = 1000.  Then the connection's Config switch, and bulk
transfers over the simulated network with and without HyStart++.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest
from engine_helpers import established
from sim_helpers import bulk_transfer

from rudp.core import congestion
from rudp.core.config import Config
from rudp.core.congestion.base import CongestionControl
from rudp.core.congestion.cubic import Cubic
from rudp.core.congestion.hystart import (
    CSS_GROWTH_DIVISOR,
    CSS_ROUNDS,
    L_UNPACED,
    MAX_RTT_THRESH,
    MIN_RTT_THRESH,
    N_RTT_SAMPLE,
    HyStart,
)
from rudp.core.rtt import RttEstimator
from rudp.testing import Impairment

MSS = 1000
ACK_SIZE = 2 * MSS
BASE_RTT = 0.1
ALGORITHMS = ["newreno", "cubic"]


class Sender:
    """A cwnd-limited sender: the window goes out at once (``on_sent``), each ACK
    acknowledges the oldest two segments and carries one RTT sample, and the
    window is refilled after it.  The model keeps RFC 9406's rounds itself (a
    round ends with the ACK of windowEnd, SND.NXT when the round before ended):
    ``round_trip`` is one round.  The first ACK ends round 0 (nothing was sent
    when it began), so round 1 has 4 ACKs, round 2 8, round 3 16, ..."""

    def __init__(self, name: str = "newreno", *, spell: int = 0, **options: bool) -> None:
        self.rtt = RttEstimator(1.0, 0.2, 60.0)
        self.cc: CongestionControl = congestion.create(name, MSS, 10, self.rtt, **options)
        self.now = 0.0
        self.sent = self.acked = 0
        self.window_end = 0
        self.rounds = 0
        if spell:
            # Application-limited: sent and acknowledged, and the connection
            # reports none of its ACKs (RFC 7661: the window did not limit it).
            self.cc.on_sent(spell, self.now)
            self.sent = self.acked = spell
        self._fill()
        self.ack(BASE_RTT)

    @property
    def hystart(self) -> HyStart:
        assert self.cc.hystart is not None
        return self.cc.hystart

    def _fill(self) -> None:
        room = self.cc.cwnd - (self.sent - self.acked)
        if room > 0:
            self.cc.on_sent(room, self.now)
            self.sent += room

    def ack(self, sample: float | None, size: int = ACK_SIZE) -> int:
        """One ACK (with an RTT sample unless None); returns the window's growth."""
        self.now += 0.001
        if sample is not None:
            self.rtt.on_sample(sample)
        size = min(size, self.sent - self.acked)
        self.acked += size
        before = self.cc.cwnd
        self.cc.on_ack(size, self.now, self.rtt.srtt)
        growth = self.cc.cwnd - before
        if self.acked >= self.window_end:
            self.window_end = self.sent
            self.rounds += 1
        self._fill()
        return growth

    def round_trip(self, sample: float) -> None:
        """The rest of the round: ACKs up to windowEnd, each with ``sample``."""
        rounds = self.rounds
        while self.rounds == rounds:
            self.ack(sample)


def in_css(sender: Sender, last: float = BASE_RTT, current: float = 0.113) -> Sender:
    """Two round trips at ``last``, then a third at ``current`` (beyond RttThresh
    of 12.5 ms): CSS begins at its eighth sample."""
    sender.round_trip(last)
    sender.round_trip(last)
    for _ in range(N_RTT_SAMPLE):
        sender.ack(current)
    assert sender.hystart.in_css
    return sender


# ============================================================ the controller
def test_rfc9406_4_3_constants() -> None:
    assert (MIN_RTT_THRESH, MAX_RTT_THRESH, N_RTT_SAMPLE) == (0.004, 0.016, 8)
    assert (CSS_GROWTH_DIVISOR, CSS_ROUNDS, L_UNPACED) == (4, 5, 8)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_rfc9406_4_2_steady_rtt_keeps_slow_start_doubling(name: str) -> None:
    """RFC 9406 4.2: no delay increase, no exit: every byte acknowledged grows
    cwnd (RFC 5681 slow start: it doubles each round trip), and the rounds track
    the minimum RTT (lastRoundMinRTT)."""
    sender = Sender(name)
    for _ in range(6):
        sender.round_trip(BASE_RTT)
        assert sender.cc.cwnd == 10 * MSS + sender.acked
        assert sender.hystart.last_min == BASE_RTT
        assert not sender.hystart.in_css
    assert sender.cc.in_slow_start


@pytest.mark.parametrize("name", ALGORITHMS)
def test_rfc9406_4_2_rtt_increase_beyond_threshold_enters_css(name: str) -> None:
    """RFC 9406 4.2: once a round has N_RTT_SAMPLE samples, currentRoundMinRTT >=
    lastRoundMinRTT + RttThresh (here 100 ms + 12.5 ms) exits slow start into
    CSS, with cssBaselineMinRtt = currentRoundMinRTT; ssthresh is untouched (the
    connection still sees slow start, as the RFC's CSS is part of it)."""
    sender = Sender(name)
    sender.round_trip(BASE_RTT)
    sender.round_trip(BASE_RTT)
    for _ in range(N_RTT_SAMPLE - 1):
        sender.ack(0.113)
    assert not sender.hystart.in_css
    sender.ack(0.114)
    assert sender.hystart.in_css
    assert sender.hystart.baseline == 0.113
    assert sender.cc.in_slow_start and sender.cc.ssthresh > 2**40


@pytest.mark.parametrize("name", ALGORITHMS)
def test_rfc9406_4_2_rtt_increase_below_threshold_stays_in_slow_start(name: str) -> None:
    """RFC 9406 4.2: 12 ms more than last round's 100 ms is below RttThresh."""
    sender = Sender(name)
    sender.round_trip(BASE_RTT)
    sender.round_trip(BASE_RTT)
    sender.round_trip(0.112)
    assert not sender.hystart.in_css
    assert sender.hystart.last_min == 0.112


@pytest.mark.parametrize("name", ALGORITHMS)
def test_rfc9406_4_2_css_grows_a_quarter_of_slow_start(name: str) -> None:
    """RFC 9406 4.2: in CSS, cwnd += min(N, L*SMSS) / CSS_GROWTH_DIVISOR: an ACK
    of two segments adds half a segment, where slow start added two."""
    sender = Sender(name)
    assert sender.ack(BASE_RTT) == ACK_SIZE
    in_css(sender)
    assert sender.ack(0.113) == ACK_SIZE // CSS_GROWTH_DIVISOR == 500
    # Over the rest of the round: a quarter of what was acknowledged.
    cwnd, acked = sender.cc.cwnd, sender.acked
    sender.round_trip(0.113)
    assert sender.cc.cwnd - cwnd == (sender.acked - acked) // CSS_GROWTH_DIVISOR


@pytest.mark.parametrize("name", ALGORITHMS)
def test_rfc9406_4_2_round_below_css_baseline_resumes_slow_start(name: str) -> None:
    """RFC 9406 4.2: in CSS, a round whose minimum (after N_RTT_SAMPLE samples)
    falls below cssBaselineMinRtt says the exit was spurious: slow start
    resumes, HyStart++ included (a later delay increase enters CSS again)."""
    sender = in_css(Sender(name))
    sender.round_trip(0.113)  # the round CSS began in ends
    assert sender.hystart.css_rounds == 1
    for _ in range(N_RTT_SAMPLE - 1):
        sender.ack(0.105)
    assert sender.hystart.in_css
    sender.ack(0.105)
    assert not sender.hystart.in_css
    assert sender.hystart.css_rounds == 0
    assert sender.ack(0.105) == ACK_SIZE  # slow start's growth again
    sender.round_trip(0.105)
    for _ in range(N_RTT_SAMPLE):
        sender.ack(0.120)
    assert sender.hystart.in_css and sender.hystart.baseline == 0.120


@pytest.mark.parametrize("name", ALGORITHMS)
def test_rfc9406_4_2_css_rounds_end_in_congestion_avoidance(name: str) -> None:
    """RFC 9406 4.2: CSS lasts CSS_ROUNDS rounds, the one it began in counted;
    then ssthresh = cwnd: congestion avoidance, and HyStart++ is over."""
    sender = in_css(Sender(name))
    for completed in range(1, CSS_ROUNDS):
        sender.round_trip(0.113)
        assert sender.hystart.css_rounds == completed
        assert sender.cc.in_slow_start
    sender.round_trip(0.113)
    cc = sender.cc
    assert cc.hystart is None
    assert cc.ssthresh == cc.cwnd
    assert not cc.in_slow_start
    # Congestion avoidance: an ACK of two segments no longer adds two.
    assert 0 <= sender.ack(0.113) < MSS


def test_rfc9438_4_10_cubic_after_hystart_exit_starts_epoch_at_cwnd() -> None:
    """RFC 9438 4.10: leaving slow start through HyStart++ without a loss, W_max is
    undefined: cwnd_prior = cwnd, and the congestion avoidance stage begins with
    K = 0 and W_max = cwnd (its convex part: growth from the current window)."""
    sender = in_css(Sender("cubic"))
    for _ in range(CSS_ROUNDS):
        sender.round_trip(0.113)
    cc = sender.cc
    assert isinstance(cc, Cubic)
    assert cc.hystart is None
    segments = cc.cwnd / MSS
    assert cc._cwnd_prior == segments
    sender.ack(0.113)
    assert cc.w_max == segments
    assert cc._k == 0.0
    assert cc.w_cubic(0.0) == segments


@pytest.mark.parametrize(
    ("last", "threshold"),
    [
        (0.020, MIN_RTT_THRESH),  # 20 ms / 8 = 2.5 ms, raised to 4 ms
        (0.080, 0.080 / 8),  # 10 ms: within the bounds
        (0.300, MAX_RTT_THRESH),  # 37.5 ms, lowered to 16 ms
    ],
)
def test_rfc9406_4_2_rtt_thresh_is_an_eighth_clamped_to_4_and_16_ms(
    last: float, threshold: float
) -> None:
    """RFC 9406 4.2: RttThresh = max(MIN_RTT_THRESH, min(lastRoundMinRTT /
    MIN_RTT_DIVISOR, MAX_RTT_THRESH)); the exit needs the whole threshold."""
    for current, exits in ((last + threshold - 0.0001, False), (last + threshold, True)):
        sender = Sender()
        sender.round_trip(last)
        sender.round_trip(last)
        sender.round_trip(current)
        assert sender.hystart.in_css is exits, (last, current)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_rfc9406_4_2_fewer_than_n_rtt_sample_samples_decide_nothing(name: str) -> None:
    """RFC 9406 4.2: a round decides only once it has N_RTT_SAMPLE samples: a
    round of four (the initial window's) keeps slow start whatever the delay,
    and so does a longer one after seven; ACKs that bring no new sample
    (without timestamps, one segment is timed per round trip) are not samples."""
    short = Sender(name)
    short.round_trip(0.5)
    assert short.hystart.last_min == 0.5 and not short.hystart.in_css
    sender = Sender(name)
    sender.round_trip(BASE_RTT)
    sender.round_trip(BASE_RTT)
    for _ in range(N_RTT_SAMPLE - 1):
        sender.ack(0.5)
    for _ in range(5):
        sender.ack(None)
    assert sender.hystart.samples == N_RTT_SAMPLE - 1
    assert not sender.hystart.in_css
    sender.ack(0.5)
    assert sender.hystart.in_css
    # And in CSS, seven samples below the baseline do not resume slow start.
    sender.round_trip(0.5)
    for _ in range(N_RTT_SAMPLE - 1):
        sender.ack(BASE_RTT)
    assert sender.hystart.in_css


@pytest.mark.parametrize("name", ALGORITHMS)
def test_rfc9406_4_3_one_ack_adds_at_most_l_segments_unless_paced(name: str) -> None:
    """RFC 9406 4.2/4.3: cwnd += min(N, L*SMSS), L = 8 for a sender that does not
    pace, infinite for one that does; in CSS, a quarter of that."""
    unpaced, paced = Sender(name), Sender(name, paced=True)
    for sender in (unpaced, paced):
        sender.round_trip(BASE_RTT)
        sender.round_trip(BASE_RTT)
    assert unpaced.ack(BASE_RTT, 20 * MSS) == L_UNPACED * MSS
    assert paced.ack(BASE_RTT, 20 * MSS) == 20 * MSS
    in_css(unpaced)
    assert unpaced.ack(0.113, 20 * MSS) == L_UNPACED * MSS // CSS_GROWTH_DIVISOR


@pytest.mark.parametrize("name", ALGORITHMS)
@pytest.mark.parametrize("when", ["slow start", "CSS"])
def test_rfc9406_4_2_loss_ends_hystart_with_the_controllers_own_ssthresh(
    name: str, when: str
) -> None:
    """RFC 9406 4.2: a loss in slow start or CSS ends it, ssthresh as the
    algorithm's own loss response sets it (NewReno FlightSize / 2, CUBIC
    beta * cwnd); 4.3: HyStart++ is for the initial slow start only, so after a
    timeout slow start is the standard one again."""
    sender = Sender(name)
    sender.round_trip(BASE_RTT)
    sender.round_trip(BASE_RTT)
    if when == "CSS":
        in_css(sender)
    cc = sender.cc
    cwnd, flight = cc.cwnd, sender.sent - sender.acked
    cc.on_loss(sender.now, flight)
    assert cc.hystart is None
    expected = flight // 2 if name == "newreno" else int(cwnd * 0.7)
    assert cc.ssthresh == expected
    cc.on_rto(sender.now, flight)
    assert cc.in_slow_start and cc.ssthresh > 12 * MSS
    assert sender.ack(0.3, 10 * MSS) == 10 * MSS  # no L cap, no RTT check


@pytest.mark.parametrize("name", ALGORITHMS)
def test_hystart_off_keeps_classic_slow_start_rfc5681_3_1(name: str) -> None:
    """hystart=False (or no RTT estimator): RFC 5681 slow start, whatever the
    delay does -- cwnd doubles every round trip and one ACK adds all it acks."""
    sender = Sender(name, hystart=False)
    assert sender.cc.hystart is None
    assert congestion.create(name, MSS, 10).hystart is None
    for rtt in (BASE_RTT, BASE_RTT, 0.2, 0.3, 0.4):
        sender.round_trip(rtt)
        assert sender.cc.cwnd == 10 * MSS + sender.acked
    assert sender.ack(0.4, 20 * MSS) == 20 * MSS


def test_rfc9406_4_2_rounds_survive_acks_the_connection_does_not_report() -> None:
    """RFC 9406 4.2 rounds, counted in bytes: the connection reports no ACK
    while the window is not what limits it (RFC 7661), yet those bytes left the
    network.  Counting at least what the window lets be in flight (sent - cwnd),
    HyStart++'s count trails the truth by two ACKs at most, not by the 100 kB of
    an application-limited spell, and a delay increase is still seen."""
    sender = Sender(spell=100 * MSS)
    for _ in range(3):
        sender.round_trip(BASE_RTT)
        assert 0 <= sender.acked - sender.hystart.acked <= 2 * ACK_SIZE
    assert sender.hystart.last_min == BASE_RTT
    sender.round_trip(0.113)
    assert sender.hystart.in_css


# ============================================================ the connection
def test_rfc9406_config_hystart_on_by_default_and_reaches_the_controller() -> None:
    """Config.hystart (RFC 9406, on by default as Linux's HyStart) decides whether
    the connection's controller runs HyStart++, with the connection's own RTT
    estimator; Config.pacing lifts the per-ACK cap (RFC 9406 4.3)."""
    assert Config().hystart is True
    conn = established()
    assert conn.cc.hystart is not None and not conn.cc.hystart.paced
    assert conn.cc.hystart._rtt is conn.rtt
    assert established(hystart=False).cc.hystart is None
    paced = established(pacing=True).cc.hystart
    assert paced is not None and paced.paced


def test_rtt_estimator_keeps_the_latest_sample_rfc9406_4_2_currrtt() -> None:
    """RFC 9406 4.2 needs currRTT, the latest sample, not SRTT."""
    rtt = RttEstimator(1.0, 0.2, 60.0)
    for sample in (0.1, 0.3, 0.2):
        rtt.on_sample(sample)
        assert rtt.latest == sample
    assert rtt.srtt != 0.2 and rtt.samples == 3


# ==================================================== bulk transfers, simulated
RATE = 8_000_000  # bytes per second
ONE_WAY = 0.020
BDP = int(RATE * 2 * ONE_WAY)  # 320 KB
QUEUE = 400_000  # drop-tail, as the benchmark's path (there 1 BDP; here 1.25)
PATH = Impairment(delay=ONE_WAY, rate=RATE, queue_limit=QUEUE)
BACK = Impairment(delay=ONE_WAY)
SIZE = 8_000_000


@dataclass(frozen=True)
class Transfer:
    seconds: float  # from the first byte sent to the last byte read
    retransmitted: int  # segments the client sent again
    intact: bool


@functools.cache
def transfer(name: str, hystart: bool) -> Transfer:
    """The client sends SIZE bytes through the bottleneck to a server that reads
    everything at once."""
    config = Config(congestion_control=name, hystart=hystart)
    run = bulk_transfer(config, SIZE, PATH, BACK)
    return Transfer(
        seconds=run.seconds,
        retransmitted=run.client.stats.retransmitted_segments,
        intact=run.server_host.received(run.server) == run.data,
    )


@pytest.mark.parametrize("name", ALGORITHMS)
def test_rfc9406_bulk_transfer_through_drop_tail_queue_loses_far_less(name: str) -> None:
    """RFC 9406 (1, 4.1): classic slow start doubles the window until the queue
    overflows; HyStart++ sees the round's minimum RTT grow and slows to CSS.
    8 MB through 8 MB/s, 20 ms each way, a 400 kB drop-tail queue: at most half
    the segments resent, and no slower than classic slow start (10 %).

    On a queue of one BDP or less (the benchmark's 10 MB/s path) the queue goes
    from empty to overflowing within one round of doubling, and the first
    samples of the next round (which date from its empty start) keep the
    round's minimum low: HyStart++ cannot see it before the loss, and changes
    nothing there."""
    classic, hystart = transfer(name, False), transfer(name, True)
    assert classic.intact and hystart.intact
    assert classic.retransmitted > 100
    assert hystart.retransmitted <= classic.retransmitted // 2, (classic, hystart)
    assert hystart.seconds <= 1.1 * classic.seconds, (classic, hystart)
