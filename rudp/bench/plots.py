"""Figures of the lossy-path measure, drawn with matplotlib when it is installed.

matplotlib is an optional extra (``pip install 'rudp[plot]'``): it is imported
only here, only when a plot is asked for, with the Agg backend so that no
display is needed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from .common import IMPL_TITLES

GOODPUT_PNG = "goodput_vs_loss.png"
CWND_PNG = "cwnd_srtt.png"


def require_matplotlib() -> Any:
    """The pyplot module on the Agg backend, or SystemExit saying how to get it."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(
            "--plot needs matplotlib: pip install 'rudp[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ticker() -> Any:
    import matplotlib.ticker

    return matplotlib.ticker


def plot_goodput(results: list[dict[str, Any]], out_dir: Path) -> Path:
    """Goodput against loss rate, one line per implementation and loop (median,
    min-max bars); the rate-limited variant beside it."""
    plt = require_matplotlib()
    ticker = _ticker()
    lines: dict[tuple[str, str], list[tuple[float, dict[str, Any]]]] = defaultdict(list)
    limited: list[tuple[str, dict[str, Any]]] = []
    rate: float | None = None
    for cell in results:
        goodput = cell["metrics"].get("mb_per_s")
        if goodput is None:
            continue
        label = f"{IMPL_TITLES.get(cell['impl'], cell['impl'])}, {cell['loop']}"
        if cell["params"].get("rate"):
            rate = cell["params"]["rate"]
            limited.append((label, goodput))
        else:
            lines[(cell["impl"], cell["loop"])].append((cell["params"]["loss"] * 100, goodput))
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(11, 4.8), gridspec_kw={"width_ratios": [3, 2]}
    )
    for (impl, loop), points in sorted(lines.items()):
        points.sort()
        xs = [loss for loss, _ in points]
        medians = [summary["median"] for _, summary in points]
        below = [summary["median"] - summary["min"] for _, summary in points]
        above = [summary["max"] - summary["median"] for _, summary in points]
        left.errorbar(
            xs,
            medians,
            yerr=[below, above],
            marker="o",
            capsize=4,
            linestyle="-" if impl == "rudp" else "--",
            label=f"{IMPL_TITLES.get(impl, impl)}, {loop}",
        )
    left.set_xscale("log")
    left.set_yscale("log")
    # Plain numbers, not powers of ten: the loss rates measured on x, and on y
    # the 1-2-5 steps between the decades.
    measured = sorted({loss for points in lines.values() for loss, _ in points})
    left.set_xticks(measured, [f"{loss:g}" for loss in measured])
    left.xaxis.set_minor_formatter(ticker.NullFormatter())
    left.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    left.yaxis.set_minor_formatter(
        ticker.FuncFormatter(lambda value, _: f"{value:g}" if f"{value:.0e}"[0] in "25" else "")
    )
    left.set_xlabel("loss each way (%)")
    left.set_ylabel("goodput (MB/s)")
    left.set_title("Goodput vs loss, 20 ms delay each way")
    left.grid(True, which="both", alpha=0.3)
    if lines:
        left.legend()
    if limited:
        labels = [label for label, _ in limited]
        medians = [summary["median"] for _, summary in limited]
        errors = [
            [summary["median"] - summary["min"] for _, summary in limited],
            [summary["max"] - summary["median"] for _, summary in limited],
        ]
        right.barh(labels, medians, xerr=errors, capsize=4, color="tab:blue", alpha=0.7)
        if rate:
            right.axvline(rate / 1e6, color="tab:red", linestyle=":", label="link rate")
            right.legend(loc="lower right")
        right.set_xlabel("goodput (MB/s)")
        right.set_title(f"{(rate or 0) / 1e6:g} MB/s bottleneck, 20 ms each way")
        right.invert_yaxis()
    else:
        right.set_axis_off()
    figure.tight_layout()
    return _save(figure, plt, out_dir / GOODPUT_PNG)


def plot_cwnd_srtt(trace: dict[str, Any], out_dir: Path) -> Path:
    """One rudp sender's cwnd, bytes in flight and smoothed RTT over its transfer,
    with a tick at each sample where retransmissions happened; the samples go
    beside the PNG as JSON."""
    plt = require_matplotlib()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CWND_PNG).with_suffix(".json").write_text(json.dumps(trace) + "\n")
    t = trace["t"]
    kib = 1 / 1024
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    top.plot(t, [v * kib for v in trace["cwnd"]], label="cwnd", linewidth=1.4)
    top.plot(t, [v * kib for v in trace["bytes_in_flight"]], label="bytes in flight", linewidth=0.9)
    ssthresh = [(x, v * kib) for x, v in zip(t, trace["ssthresh"], strict=True) if v >= 0]
    if ssthresh:
        top.plot(*zip(*ssthresh, strict=True), label="ssthresh", linestyle="--", linewidth=0.9)
    retransmitted = trace["retransmitted_segments"]
    marks = [t[i] for i in range(1, len(t)) if retransmitted[i] > retransmitted[i - 1]]
    if marks:
        top.plot(
            marks,
            [0] * len(marks),
            linestyle="none",
            marker="|",
            markersize=12,
            color="tab:red",
            label="retransmissions",
        )
    top.set_ylabel("KiB")
    top.legend(loc="upper left")
    top.grid(True, alpha=0.3)
    top.set_title(
        f"rudp sender, {trace.get('variant', '')} each way, {trace.get('loop', '')} "
        f"({trace.get('mb_per_s', 0):.2f} MB/s)"
    )
    srtt = [(x, v * 1e3) for x, v in zip(t, trace["srtt"], strict=True) if v >= 0]
    if srtt:
        bottom.plot(*zip(*srtt, strict=True), color="tab:green", label="smoothed RTT")
    bottom.set_ylabel("srtt (ms)")
    bottom.set_xlabel("time since the first write (s)")
    bottom.set_ylim(bottom=0)
    bottom.grid(True, alpha=0.3)
    bottom.legend(loc="upper left")
    figure.tight_layout()
    return _save(figure, plt, out_dir / CWND_PNG)


def _save(figure: Any, plt: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
