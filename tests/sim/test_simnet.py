"""The simulated network on its own, with trivial hosts: each impairment does what it
says, on the virtual clock, and a seed fixes everything."""

from __future__ import annotations

import functools
import itertools

import pytest

from rudp.testing import (
    GilbertElliott,
    Impairment,
    SimulatedNetwork,
    StepLimitExceeded,
    VirtualClock,
)

A = ("10.0.0.1", 4000)
B = ("10.0.0.2", 5000)


class Recorder:
    """Remembers what it receives; sends what a test puts in ``outbox``."""

    def __init__(self) -> None:
        self.received: list[tuple[float, object, bytes]] = []
        self.outbox: list[tuple[bytes, object]] = []

    def deliver(self, data: bytes, src: object, now: float) -> None:
        self.received.append((now, src, data))

    def poll_transmit(self, now: float) -> list[tuple[bytes, object]]:
        out, self.outbox = self.outbox, []
        return out

    def next_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass

    @property
    def payloads(self) -> list[bytes]:
        return [data for _, _, data in self.received]


class Ticker(Recorder):
    """Sends a numbered datagram to ``peer`` every ``interval`` seconds, ``count`` times."""

    def __init__(self, peer: object, interval: float, count: int) -> None:
        super().__init__()
        self.peer = peer
        self.interval = interval
        self.remaining = count
        self.sent_at: list[float] = []
        self._next: float | None = 0.0

    def next_timer(self) -> float | None:
        return self._next

    def handle_timer(self, now: float) -> None:
        self.outbox.append((len(self.sent_at).to_bytes(4, "big"), self.peer))
        self.sent_at.append(now)
        self.remaining -= 1
        self._next = now + self.interval if self.remaining else None


def numbered(n: int, size: int = 32) -> list[bytes]:
    return [i.to_bytes(4, "big") + bytes(size - 4) for i in range(n)]


def pair(seed: int = 1, **impairment: object) -> tuple[SimulatedNetwork, Recorder, Recorder]:
    net = SimulatedNetwork(seed, default=Impairment(**impairment))  # type: ignore[arg-type]
    return net, net.attach(A, Recorder()), net.attach(B, Recorder())


def send_spread(net: SimulatedNetwork, datagrams: list[bytes], gap: float) -> None:
    """Send ``datagrams`` from A to B, one every ``gap`` seconds from t=0."""
    for i, data in enumerate(datagrams):
        net.call_at(i * gap, functools.partial(net.send, A, B, data))


# -- the clock -----------------------------------------------------------------------


def test_clock_moves_forward_only() -> None:
    clock = VirtualClock(5.0)
    assert clock.now == clock() == 5.0
    assert clock.advance(1.5) == 6.5
    assert clock.advance_to(10.0) == 10.0
    assert clock.advance_to(3.0) == 10.0  # a time already past: stays put
    with pytest.raises(ValueError):
        clock.advance(-0.1)


# -- delay, jitter, ordering ------------------------------------------------------------


def test_delay_is_respected_on_the_virtual_clock() -> None:
    net, _, b = pair(delay=0.25)
    send_spread(net, numbered(5), gap=0.1)
    assert net.run() == "idle"
    assert [t for t, _, _ in b.received] == pytest.approx([0.25, 0.35, 0.45, 0.55, 0.65])
    assert all(src == A for _, src, _ in b.received)
    assert net.now == pytest.approx(0.65)


def test_jitter_stays_within_bounds_and_keeps_order() -> None:
    net, _, b = pair(delay=0.1, jitter=0.05)
    sent = numbered(500)
    send_spread(net, sent, gap=0.001)
    net.run()
    assert b.payloads == sent  # jitter alone never reorders
    for i, (t, _, _) in enumerate(b.received):
        assert i * 0.001 + 0.1 <= t <= i * 0.001 + 0.15  # a FIFO wait stays in the bound
    assert net.stats(A, B).reordered == 0


def test_reorder_lets_later_datagrams_overtake() -> None:
    net, _, b = pair(delay=0.01, reorder=0.2, reorder_delay=0.05)
    sent = numbered(1000)
    send_spread(net, sent, gap=0.001)
    net.run()
    assert sorted(b.payloads) == sent  # nothing lost or invented
    assert b.payloads != sent
    overtaken = sum(1 for x, y in itertools.pairwise(b.payloads) if x > y)
    assert overtaken > 50
    assert 150 < net.stats(A, B).reordered < 250


# -- loss, duplication, corruption, size -----------------------------------------------------


def test_loss_rate_is_roughly_honoured() -> None:
    net, _, b = pair(loss=0.1)
    send_spread(net, numbered(10_000), gap=0.0001)
    net.run()
    stats = net.stats(A, B)
    assert stats.sent == 10_000
    assert stats.delivered + stats.lost == stats.sent == len(b.received) + stats.lost
    assert 900 <= stats.lost <= 1100


def test_duplicates_arrive_twice() -> None:
    net, _, b = pair(duplicate=0.2, delay=0.01)
    sent = numbered(2000)
    send_spread(net, sent, gap=0.001)
    net.run()
    stats = net.stats(A, B)
    assert 300 < stats.duplicated < 500
    assert len(b.received) == stats.delivered == 2000 + stats.duplicated
    counts = {d: b.payloads.count(d) for d in set(b.payloads)}
    assert set(counts) == set(sent)
    assert sum(1 for c in counts.values() if c == 2) == stats.duplicated


def test_corruption_flips_one_to_three_bits() -> None:
    net, _, b = pair(corrupt=1.0)
    sent = numbered(300, size=100)
    send_spread(net, sent, gap=0.001)
    net.run()
    assert net.stats(A, B).corrupted == 300
    flipped = set()
    for original, got in zip(sent, b.payloads, strict=True):
        assert len(got) == len(original)
        bits = (int.from_bytes(original, "big") ^ int.from_bytes(got, "big")).bit_count()
        assert 1 <= bits <= 3
        flipped.add(bits)
    assert flipped == {1, 2, 3}


def test_datagrams_above_the_mtu_are_dropped() -> None:
    net, _, b = pair(mtu=100)
    for size in (99, 100, 101, 1500):
        net.send(A, B, bytes(size))
    net.run()
    assert [len(d) for d in b.payloads] == [99, 100]
    assert net.stats(A, B).too_big == 2


def test_unroutable_datagrams_are_counted() -> None:
    net, a, _ = pair()
    a.outbox.append((b"x", ("10.9.9.9", 1)))
    net.run()
    assert net.stats(A, ("10.9.9.9", 1)).unroutable == 1


# -- rate limit, blackholes, bursts ---------------------------------------------------------


def test_rate_limit_serialises_and_drops_on_a_full_queue() -> None:
    net, _, b = pair(rate=1000.0, queue_limit=500, delay=0.01)
    for _ in range(10):
        net.send(A, B, bytes(100))  # all at t=0: 1000 bytes into a 500-byte queue
    net.run()
    stats = net.stats(A, B)
    assert stats.overflowed == 5
    assert [t for t, _, _ in b.received] == pytest.approx([0.11, 0.21, 0.31, 0.41, 0.51])


def test_blackhole_windows_drop_everything_sent_inside_them() -> None:
    net, _, b = pair(blackholes=((0.1, 0.2), (0.5, 0.6)))
    send_spread(net, numbered(100), gap=0.01)
    net.run()
    got = {int.from_bytes(d[:4], "big") for d in b.payloads}
    assert got == set(range(100)) - set(range(10, 20)) - set(range(50, 60))
    assert net.stats(A, B).blackholed == 20


def test_gilbert_elliott_losses_come_in_bursts() -> None:
    ge = GilbertElliott(p_good_to_bad=0.01, p_bad_to_good=0.25, loss_in_bad=1.0)
    net, _, b = pair(gilbert_elliott=ge)
    n = 20_000
    send_spread(net, numbered(n), gap=0.0001)
    net.run()
    got = {int.from_bytes(d[:4], "big") for d in b.payloads}
    lost = [i for i in range(n) if i not in got]
    bursts = 1 + sum(1 for x, y in itertools.pairwise(lost) if y != x + 1)
    mean_burst = len(lost) / bursts
    # Stationary loss p_gb / (p_gb + p_bg) ~ 3.8 %; mean burst 1 / p_bg = 4 datagrams.
    assert 0.025 < len(lost) / n < 0.055
    assert 3.0 < mean_burst < 5.0
    assert net.stats(A, B).lost == len(lost)


def test_impairments_are_per_direction() -> None:
    net, a, b = pair()
    net.set_impairment(A, B, Impairment(loss=1.0))
    net.send(A, B, b"to b")
    net.send(B, A, b"to a")
    net.run()
    assert b.received == [] and a.payloads == [b"to a"]
    assert net.stats(A, B).lost == 1 and net.stats(B, A).delivered == 1
    assert net.total_stats().sent == 2


def test_impairment_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Impairment(loss=1.5)
    with pytest.raises(ValueError):
        Impairment(delay=-1.0)
    with pytest.raises(ValueError):
        Impairment(blackholes=((2.0, 1.0),))
    with pytest.raises(ValueError):
        GilbertElliott(p_good_to_bad=0.1, p_bad_to_good=2.0)


# -- the run loop ------------------------------------------------------------------------------


def test_host_timers_drive_the_clock() -> None:
    net = SimulatedNetwork(3, default=Impairment(delay=0.05))
    ticker = net.attach(A, Ticker(B, interval=0.5, count=4))
    b = net.attach(B, Recorder())
    assert net.run() == "idle"
    assert ticker.sent_at == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert [t for t, _, _ in b.received] == pytest.approx([0.05, 0.55, 1.05, 1.55])


def test_run_until_leaves_the_clock_there() -> None:
    net = SimulatedNetwork(3)
    net.attach(A, Ticker(B, interval=1.0, count=100))
    b = net.attach(B, Recorder())
    assert net.run(until=4.5) == "until"
    assert net.now == 4.5
    assert len(b.received) == 5  # t = 0, 1, 2, 3, 4
    assert net.run(stop=lambda: len(b.received) >= 8) == "stopped"
    assert net.now == 7.0


def test_a_timer_that_never_clears_is_reported() -> None:
    class Stuck(Recorder):
        def next_timer(self) -> float | None:
            return 1.0

    net = SimulatedNetwork(0)
    net.attach(A, Stuck())
    with pytest.raises(StepLimitExceeded):
        net.run(max_steps_per_instant=1000)


def test_call_at_runs_in_time_order() -> None:
    net = SimulatedNetwork(0)
    seen: list[tuple[float, str]] = []
    net.call_at(2.0, lambda: seen.append((net.now, "b")))
    net.call_at(1.0, lambda: seen.append((net.now, "a")))
    net.call_at(2.0, lambda: seen.append((net.now, "c")))
    net.run()
    assert seen == [(1.0, "a"), (2.0, "b"), (2.0, "c")]


# -- determinism ------------------------------------------------------------------------------


def hostile_trace(seed: int) -> list[object]:
    impairment = Impairment(
        loss=0.1, duplicate=0.1, reorder=0.1, delay=0.02, jitter=0.01, corrupt=0.05,
        gilbert_elliott=GilbertElliott(0.02, 0.3),
    )  # fmt: skip
    net = SimulatedNetwork(seed, default=impairment, trace=True)
    net.attach(A, Ticker(B, interval=0.003, count=300))
    net.attach(B, Ticker(A, interval=0.005, count=200))
    net.run()
    assert net.trace is not None
    return list(net.trace)


def test_same_seed_same_trace() -> None:
    first = hostile_trace(42)
    assert hostile_trace(42) == first
    assert hostile_trace(43) != first
    kinds = {record.kind for record in first}  # type: ignore[attr-defined]
    assert kinds == {"send", "deliver", "drop"}


def test_format_trace_shows_fates() -> None:
    net = SimulatedNetwork(0, default=Impairment(mtu=10), trace=True)
    net.attach(B, Recorder())
    net.send(A, B, b"short")
    net.send(A, B, b"far too long for the mtu")
    net.run()
    text = net.format_trace(lambda d: d.decode())
    assert "deliver" in text and "too big" in text and "far too long" in text
    assert net.format_trace(since=1.0) == ""
