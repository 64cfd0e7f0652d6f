"""Lossy paths: goodput of a one-way bulk transfer through a UDP impairment relay.

The client sends ``--lossy-size`` bytes (64 KiB writes, each followed by
``drain()``, then ``write_eof()``) to the server through an
:class:`~rudp.testing.ImpairmentRelay` on loopback; the server reads until EOF
and answers one byte, which stops the client's clock.  Variants: Bernoulli loss
of 0.1 %, 1 % and 5 % (``--loss-rates``) with 20 ms delay each way, the same
impairment on both directions (data and acknowledgments); and a 10 MB/s
bottleneck each way, 20 ms delay, a drop-tail queue of one bandwidth-delay
product (400 kB) and no random loss.

The relay runs in a thread of the parent process, on uvloop when installed,
whatever loop the workers run; each run gets a fresh relay seeded with the
run's number, so run ``i`` of every implementation meets the same loss pattern
(for the same sequence of datagrams).  Kernel TCP is left out (it cannot cross
a UDP relay), and so is the raw UDP baseline (it recovers nothing, so it has no
goodput under loss).  rudp's figures for retransmissions come from the sender's
``transport.get_extra_info("rudp_stats")``; aioquic exposes none.

``--plot DIR`` (needs matplotlib, ``pip install 'rudp[plot]'``) draws
``goodput_vs_loss.png`` and ``cwnd_srtt.png``: the sender's cwnd, bytes in
flight and smoothed RTT sampled every 10 ms through one rudp run at 1 % loss
(the loss rate nearest 1 % among those run).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import math
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..testing import Impairment, ImpairmentRelay
from .bulk import CHUNK, BulkServer, check_answer, send_then_eof
from .common import (
    HOST,
    KIB,
    MIB,
    Cell,
    Metric,
    Table,
    parse_size,
    progress,
    script_main,
    uvloop_available,
)
from .procs import WorkerError
from .runner import Plan, RunOnce, Team, run_plan
from .stacks import cpu_seconds, open_stream

NAME = "lossy"
DELAY = 0.020  # seconds, each way
RATE = 10e6  # bytes/s, the bottleneck variant
#: The bottleneck's queue: one bandwidth-delay product of the 40 ms round trip.
QUEUE_LIMIT = int(RATE * 2 * DELAY)
LOSS_RATES = (0.001, 0.01, 0.05)
QUICK_LOSS_RATES = (0.001, 0.05)
DEFAULT_SIZE = 8 * MIB
QUICK_SIZE = 256 * KIB
#: The heavier the loss, the slower the transfer: a smaller share of the size
#: keeps every run to seconds (TCP's goodput falls as 1/sqrt(loss)).
SIZE_SHARE = {0.01: 4, 0.05: 8}
#: Below this goodput a run is a stall: it fails at its timeout.
FLOOR_BYTES_PER_S = 50e3
TRACE_INTERVAL = 0.010
#: Seconds a relay outlives its run, for the close handshake.
LINGER = 0.3
TRACE_LOSS = 0.01
IMPLS = ("rudp", "aioquic")
LEFT_OUT = {
    "tcp": "kernel TCP cannot cross a UDP relay",
    "udp": "raw UDP recovers nothing, so it has no goodput under loss",
}

TABLE = Table(
    NAME,
    "Lossy paths: one way through a UDP impairment relay",
    "Goodput MB/s = 10^6 bytes/s delivered, from the first write to the receiver's "
    "acknowledgment of EOF, through a seeded relay on loopback with 20 ms delay each way "
    "and the loss on both directions (data and ACKs); the 10 MB/s variant has a "
    f"{QUEUE_LIMIT // 1000} kB drop-tail queue and no random loss. Retransmissions and "
    "RTOs are the rudp sender's (aioquic exposes none); relay drops count each direction's "
    "datagrams lost or tail-dropped. rudp runs with its default Config: a 256 KiB receive "
    "buffer that autotuning grows (up to 4 MiB) as the receiver keeps up. Kernel TCP (no "
    "UDP) and raw UDP (no recovery) are left out.",
    (
        Metric("mb_per_s", "goodput MB/s", 2),
        Metric("retransmitted_segments", "retransmitted segments", 0),
        Metric("retransmitted_kb", "retransmitted kB", 0),
        Metric("timeouts", "RTOs", 0),
        Metric("relay_dropped_to_server", "relay drops → server", 0),
        Metric("relay_dropped_to_client", "relay drops → client", 0),
    ),
)


@dataclass(frozen=True)
class Variant:
    """One path: its loss rate or its rate limit, and the bytes sent over it."""

    name: str
    loss: float
    rate: float | None
    size: int

    def impairment(self) -> Impairment:
        if self.rate is None:
            return Impairment(loss=self.loss, delay=DELAY)
        return Impairment(loss=self.loss, delay=DELAY, rate=self.rate, queue_limit=QUEUE_LIMIT)

    @property
    def params(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "loss": self.loss,
            "delay": DELAY,
            "rate": self.rate,
            "queue_limit": QUEUE_LIMIT if self.rate is not None else None,
        }


# ------------------------------------------------------------------ worker side
class LossyClient:
    """Sends one transfer per ``run``; on rudp, reads the sender's counters and,
    when asked, samples its congestion state every TRACE_INTERVAL."""

    def __init__(self, impl: str, params: dict[str, Any]) -> None:
        self.impl = impl
        self.size: int = params["size"]

    async def start(self) -> dict[str, Any]:
        return {}

    async def handle(self, cmd: str, message: dict[str, Any]) -> dict[str, Any]:
        if cmd != "run":
            raise ValueError(f"unknown command {cmd!r}")
        conn = await open_stream(self.impl, message["port"])
        writer = conn.writer
        stats = writer.transport.get_extra_info("rudp_stats")
        samples: dict[str, list[float]] = collections.defaultdict(list)
        sampler = None
        started, cpu_start = time.perf_counter(), cpu_seconds()
        if stats is not None and message.get("trace"):
            sampler = asyncio.ensure_future(_sample(stats, started, samples))
        try:
            answer = await send_then_eof(conn, self.size)
            elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu_start
        finally:
            if sampler is not None:
                sampler.cancel()
        counters = stats.as_dict() if stats is not None else None
        await conn.aclose()
        check_answer(answer)
        return {
            "seconds": elapsed,
            "cpu_s": cpu,
            "bytes": self.size,
            "rudp_stats": counters,
            "trace": dict(samples) if sampler is not None else None,
        }


async def _sample(stats: Any, started: float, samples: dict[str, list[float]]) -> None:
    """The sender's live congestion state, every TRACE_INTERVAL, until cancelled."""
    while True:
        samples["t"].append(time.perf_counter() - started)
        samples["cwnd"].append(stats.cwnd or 0)
        ssthresh = stats.ssthresh
        samples["ssthresh"].append(ssthresh if ssthresh is not None and ssthresh < 1 << 40 else -1)
        samples["bytes_in_flight"].append(stats.bytes_in_flight or 0)
        samples["srtt"].append(stats.srtt if stats.srtt is not None else -1.0)
        samples["retransmitted_segments"].append(stats.retransmitted_segments)
        await asyncio.sleep(TRACE_INTERVAL)


ROLES = {"server": BulkServer, "client": LossyClient}


# ------------------------------------------------------------------ the relay's thread
_T = TypeVar("_T")


class RelayThread:
    """An event loop in a thread of the parent process, where the relays run.

    The parent only waits on its workers' pipes meanwhile, so the relay has the
    process to itself, apart from the client and server processes."""

    def __init__(self) -> None:
        if uvloop_available():
            import uvloop

            self.loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="relay", daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, _T], timeout: float = 10.0) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10.0)
        if not self._thread.is_alive():
            self.loop.close()


async def _close_relay(relay: ImpairmentRelay) -> dict[str, dict[str, int]]:
    # The counters are the transfer's; the close handshake's last segments still
    # need the relay, or the server's connection lingers in LAST-ACK resending
    # its FIN to a closed port.
    counters = relay.stats.as_dict()
    await asyncio.sleep(LINGER)
    await relay.close()
    return counters


# ------------------------------------------------------------------ parent side
def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("lossy")
    group.add_argument(
        "--lossy-size",
        type=parse_size,
        default=None,
        help="bytes per transfer at 0.1%% loss and through the rate limit; a quarter of it "
        "at 1%%, an eighth at 5%% (default 8MiB; 256KiB for every variant with --quick)",
    )
    group.add_argument(
        "--loss-rates",
        type=_percentages,
        default=None,
        help="loss rates in percent, comma-separated (default 0.1,1,5; 0.1,5 with --quick)",
    )
    group.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="DIR",
        help="draw goodput_vs_loss.png and cwnd_srtt.png in DIR (needs matplotlib)",
    )


def _percentages(text: str) -> list[float]:
    """``"0.1,1,5"`` as loss probabilities ``[0.001, 0.01, 0.05]``."""
    try:
        rates = [float(item) / 100 for item in text.split(",") if item.strip()]
    except ValueError:
        rates = []
    if not rates or not all(0 < rate < 1 for rate in rates):
        raise argparse.ArgumentTypeError(f"percentages above 0 and below 100, please: {text!r}")
    return rates


def variants(args: argparse.Namespace) -> list[Variant]:
    rates = args.loss_rates or list(QUICK_LOSS_RATES if args.quick else LOSS_RATES)
    base = args.lossy_size or (QUICK_SIZE if args.quick else DEFAULT_SIZE)
    flat = args.quick and args.lossy_size is None

    def size_at(loss: float) -> int:
        share = max((share for at, share in SIZE_SHARE.items() if loss >= at), default=1)
        return base if flat else max(CHUNK, base // share)

    made = [Variant(f"{_percent(loss)} loss, 20 ms", loss, None, size_at(loss)) for loss in rates]
    made.append(Variant(f"{RATE / 1e6:g} MB/s, 20 ms", 0.0, RATE, base))
    return made


def run(args: argparse.Namespace) -> list[Cell]:
    if args.plot is not None:
        from .plots import require_matplotlib

        require_matplotlib()
    for impl, why in LEFT_OUT.items():
        if impl in args.impls:
            progress(args, f"lossy: {impl} left out: {why}")
    impls = [impl for impl in args.impls if impl in IMPLS]
    if not impls:
        return []
    planned = variants(args)
    traced = _traced_variant(planned) if args.plot is not None and "rudp" in impls else None
    traces: list[dict[str, Any]] = []
    cells: list[Cell] = []
    relays = RelayThread()
    try:
        for variant in planned:
            timeout = args.timeout or 30.0 + variant.size / FLOOR_BYTES_PER_S
            for loop in args.loops:
                want_trace = variant is traced and not traces
                run_once = _run_once(relays, variant, traces if want_trace else None)
                plan = Plan(NAME, variant.name, loop, impls, variant.params)
                cells += run_plan(args, plan, run_once, timeout, _describe)
                if want_trace and traces:
                    traces[0].update(variant=variant.name, loop=loop)
    finally:
        relays.close()
    if args.plot is not None:
        from .plots import plot_cwnd_srtt, plot_goodput

        written = [plot_goodput([cell.to_json() for cell in cells], args.plot)]
        if traces:
            written.append(plot_cwnd_srtt(traces[0], args.plot))
        progress(args, f"lossy: wrote {', '.join(str(path) for path in written)}")
    return cells


def _traced_variant(planned: Sequence[Variant]) -> Variant | None:
    """The loss variant nearest TRACE_LOSS (on a log scale)."""
    lossy = [variant for variant in planned if variant.loss > 0]
    if not lossy:
        return None
    return min(lossy, key=lambda variant: abs(math.log(variant.loss / TRACE_LOSS)))


def _run_once(
    relays: RelayThread, variant: Variant, traces: list[dict[str, Any]] | None
) -> RunOnce:
    """A run through a fresh relay; the first rudp run fills ``traces`` when given."""
    seeds: collections.Counter[str] = collections.Counter()
    impairment = variant.impairment()

    def run_once(team: Team, timeout: float) -> dict[str, float]:
        seeds[team.impl] += 1
        trace = traces is not None and not traces and team.impl == "rudp"
        relay = relays.call(
            ImpairmentRelay.start(
                (HOST, team.port),
                to_server=impairment,
                to_client=impairment,
                seed=seeds[team.impl],
            )
        )
        try:
            sent = team.clients[0].ask("run", timeout, port=relay.address[1], trace=trace)
            received = team.server.ask("take", timeout)
        finally:
            relay_stats = relays.call(_close_relay(relay))
        if received["bytes"] != sent["bytes"]:
            raise WorkerError(f"sent {sent['bytes']} bytes, received {received['bytes']}")
        metrics = _metrics(sent, received, relay_stats)
        if trace and sent["trace"] is not None:
            assert traces is not None
            traces.append({**sent["trace"], "mb_per_s": metrics["mb_per_s"]})
        return metrics

    return run_once


def _metrics(
    sent: dict[str, Any], received: dict[str, Any], relay: dict[str, dict[str, int]]
) -> dict[str, float]:
    to_server, to_client = relay["to_server"], relay["to_client"]
    metrics: dict[str, float] = {
        "mb_per_s": sent["bytes"] / sent["seconds"] / 1e6,
        "seconds": sent["seconds"],
        "client_cpu_s": sent["cpu_s"],
        "server_cpu_s": received["cpu_s"],
        "relay_dropped_to_server": to_server["dropped"],
        "relay_dropped_to_client": to_client["dropped"],
        "relay_lost_to_server": to_server["lost"],
        "relay_lost_to_client": to_client["lost"],
        "relay_queue_drops": to_server["queue_drops"] + to_client["queue_drops"],
        "relay_forwarded_to_server": to_server["forwarded"],
        "relay_forwarded_to_client": to_client["forwarded"],
        # Loss nobody asked for: the relay's own sockets overflowed.
        "relay_socket_overflows": to_server["socket_overflows"] + to_client["socket_overflows"],
    }
    stats = sent.get("rudp_stats")
    if stats is not None:
        metrics["retransmitted_segments"] = stats["retransmitted_segments"]
        metrics["retransmitted_kb"] = stats["bytes_retransmitted"] / 1e3
        metrics["timeouts"] = stats["timeouts"]
        metrics["fast_retransmits"] = stats["fast_retransmits"]
        metrics["segments_sent"] = stats["segments_sent"]
    return metrics


def _describe(metrics: dict[str, float]) -> str:
    text = (
        f"{metrics['mb_per_s']:.2f} MB/s in {metrics['seconds']:.1f} s, relay dropped "
        f"{metrics['relay_dropped_to_server']:.0f} → server / "
        f"{metrics['relay_dropped_to_client']:.0f} → client"
    )
    if "retransmitted_segments" in metrics:
        text += (
            f", {metrics['retransmitted_segments']:.0f} retransmitted "
            f"({metrics['timeouts']:.0f} RTOs)"
        )
    if metrics["relay_socket_overflows"]:
        text += f", ⚠ {metrics['relay_socket_overflows']:.0f} lost at the relay's sockets"
    return text


def _percent(loss: float) -> str:
    return f"{loss * 100:g} %"


def main(argv: Sequence[str] | None = None) -> int:
    return script_main(argv, "lossy.py", __doc__, add_arguments, run, [TABLE])
