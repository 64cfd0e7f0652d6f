"""What every measure shares: options, statistics, the result cells, JSON and Markdown.

A *cell* is one (measure, variant, loop, implementation) with one metrics dict
per run; the JSON keeps every run and a median/min/max summary of each metric,
the Markdown shows ``median (min-max)`` and each row's headline relative to
kernel TCP and raw UDP on the same loop and variant, measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import re
import socket
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rudp

IMPLS = ("rudp", "tcp", "udp", "aioquic", "rudp-udpsum")
# Measured unless --impls says otherwise (rudp-udpsum on request: the same
# stack with Config(checksum="udp"), which trusts UDP's checksum).
DEFAULT_IMPLS = ("rudp", "tcp", "udp", "aioquic")
LOOPS = ("asyncio", "uvloop")
IMPL_TITLES = {
    "rudp": "rudp",
    "rudp-udpsum": 'rudp, checksum="udp"',
    "tcp": "kernel TCP (asyncio streams)",
    "udp": "raw asyncio UDP",
    "aioquic": "aioquic (QUIC)",
}
HOST = "127.0.0.1"
KIB = 1024
MIB = 1024 * 1024

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3}


def parse_size(text: str) -> int:
    """``"65536"``, ``"64KiB"``, ``"16MiB"``, ``"1MB"`` as a number of bytes."""
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    number, unit = match.group(1), (match.group(2) or "").lower()
    scale = 1024 ** "kmg".index(unit[0]) * 1024 if "i" in unit else _UNITS[unit[:1]]
    return int(float(number) * scale)


def csv_of(choices: Sequence[str]) -> Any:
    """An argparse type: a comma-separated subset of ``choices``, order kept."""

    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in items if item not in choices]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)} (got {text!r})")
        return items

    return parse


def aioquic_available() -> bool:
    return importlib.util.find_spec("aioquic") is not None


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every script takes (the measure adds its own sizes)."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and 1 run, for a smoke test (explicit sizes still win)",
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="runs per figure (default 5, 1 with --quick)"
    )
    parser.add_argument(
        "--loops",
        type=csv_of(LOOPS),
        default=None,
        help="event loops, comma-separated (default: asyncio,uvloop when uvloop is installed)",
    )
    parser.add_argument(
        "--impls",
        type=csv_of(IMPLS),
        default=None,
        help="implementations, comma-separated (default: rudp,tcp,udp and aioquic when installed)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds one run may take before it is recorded as failed (default per measure)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--md", type=Path, default=None, help="write the Markdown tables here")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def resolve_common(args: argparse.Namespace) -> None:
    """Fill the defaults that depend on ``--quick`` and on what is installed."""
    if args.runs is None:
        args.runs = 1 if args.quick else 5
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    if args.loops is None:
        args.loops = list(LOOPS) if uvloop_available() else ["asyncio"]
    if args.impls is None:
        args.impls = [impl for impl in DEFAULT_IMPLS if impl != "aioquic" or aioquic_available()]
    if "aioquic" in args.impls and not aioquic_available():
        raise SystemExit("aioquic is not installed (pip install 'rudp[bench]')")
    if "uvloop" in args.loops and not uvloop_available():
        raise SystemExit("uvloop is not installed")


def progress(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ statistics
def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (``fraction`` in 0..1)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of one metric over the runs, with the runs themselves."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {
        "median": median,
        "min": min(values),
        "max": max(values),
        "runs": list(values),
    }


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class Metric:
    """One column of a measure's table."""

    key: str
    header: str
    digits: int = 1
    #: The figure compared with TCP and UDP in the ratio columns.
    headline: bool = False


@dataclass
class Cell:
    """Every run of one implementation on one loop for one variant of a measure."""

    measure: str
    variant: str
    loop: str
    impl: str
    params: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, Any]]:
        keys = sorted({key for run in self.runs for key in run})
        return {key: summarize([run[key] for run in self.runs if key in run]) for key in keys}

    def to_json(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "variant": self.variant,
            "loop": self.loop,
            "impl": self.impl,
            "params": self.params,
            "metrics": self.summary(),
            "errors": self.errors,
        }


@dataclass(frozen=True)
class Table:
    """How one measure is shown: a title, a note and its columns."""

    measure: str
    title: str
    note: str
    metrics: tuple[Metric, ...]


def machine_description() -> dict[str, Any]:
    """What the figures depend on, for the JSON and the Markdown heading."""
    import platform

    described: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "rudp": rudp.__version__,
        "uvloop": _version_of("uvloop"),
        "aioquic": _version_of("aioquic"),
        "loopback_mtu": loopback_path_mtu() + 28,
        "loadavg": _loadavg(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if hasattr(os, "sched_getaffinity"):
        described["usable_cpus"] = len(os.sched_getaffinity(0))
    return described


def loopback_path_mtu() -> int:
    """Largest UDP payload on the path to 127.0.0.1: the path MTU less the IPv4
    and UDP headers, capped at what an IPv4 datagram can hold."""
    mtu = 65535
    ip_mtu = getattr(socket, "IP_MTU", 14 if sys.platform.startswith("linux") else None)
    if ip_mtu is not None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect((HOST, 9))
                mtu = sock.getsockopt(socket.IPPROTO_IP, ip_mtu)
            except OSError:
                pass
    return min(mtu - 28, 65507)


def _version_of(module: str) -> str | None:
    try:
        imported = __import__(module)
    except ImportError:
        return None
    return str(getattr(imported, "__version__", "?"))


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or None


def _loadavg() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def results_document(
    cells: Iterable[Cell], meta: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    meta = dict(meta)
    meta["finished_loadavg"] = _loadavg()
    meta["runs"] = args.runs
    meta["quick"] = args.quick
    meta["argv"] = sys.argv[1:]
    return {"meta": meta, "results": [cell.to_json() for cell in cells]}


def write_outputs(
    document: dict[str, Any], tables: Sequence[Table], args: argparse.Namespace
) -> str:
    """Write ``--json`` and ``--md`` when asked; return the Markdown."""
    markdown = render_markdown(document, tables)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=1) + "\n")
    if args.md is not None:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(markdown)
    return markdown


# ------------------------------------------------------------------ Markdown
def render_markdown(document: dict[str, Any], tables: Sequence[Table]) -> str:
    meta = document["meta"]
    lines = ["# rudp benchmarks", "", _machine_line(meta), ""]
    lines.append(
        f"Each figure: median of {meta['runs']} run(s), (min-max) beside it. "
        "vs TCP, vs UDP: this row's median over the median of kernel TCP / raw UDP "
        "on the same loop and variant, measured in the same invocation."
    )
    results = document["results"]
    for table in tables:
        rows = [result for result in results if result["measure"] == table.measure]
        if rows:
            lines += ["", *_render_table(table, rows)]
    return "\n".join(lines) + "\n"


def _machine_line(meta: dict[str, Any]) -> str:
    parts = [
        f"{meta.get('nproc')} CPUs ({meta.get('cpu') or 'unknown CPU'})",
        f"{meta.get('implementation', 'Python')} {meta.get('python')}",
        f"uvloop {meta.get('uvloop') or 'not installed'}",
        f"aioquic {meta.get('aioquic') or 'not installed'}",
        f"rudp {meta.get('rudp')}",
        f"loopback MTU {meta.get('loopback_mtu')}",
        f"load average {meta.get('loadavg')} → {meta.get('finished_loadavg')}",
        f"{meta.get('platform')}, {meta.get('started')}",
    ]
    return "Machine: " + "; ".join(parts) + "."


def _render_table(table: Table, rows: list[dict[str, Any]]) -> list[str]:
    headline = next((metric for metric in table.metrics if metric.headline), None)
    headers = ["variant", "loop", "implementation", *(m.header for m in table.metrics)]
    if headline is not None:
        headers += ["vs TCP", "vs UDP"]
    out = [f"## {table.title}", "", table.note, ""]
    out.append("| " + " | ".join(headers) + " |")
    out.append("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        cells = [row["variant"], row["loop"], IMPL_TITLES.get(row["impl"], row["impl"])]
        metrics = row["metrics"]
        for metric in table.metrics:
            cells.append(_figure(metrics.get(metric.key), metric.digits))
        if headline is not None:
            for base in ("tcp", "udp"):
                cells.append(_ratio(row, rows, base, headline.key))
        if row["errors"]:
            cells[2] += f" ⚠ {len(row['errors'])} failed run(s)"
        out.append("| " + " | ".join(cells) + " |")
    return out


def _figure(summary: dict[str, Any] | None, digits: int) -> str:
    if not summary:
        return "—"
    median, low, high = summary["median"], summary["min"], summary["max"]
    return f"{median:,.{digits}f} ({low:,.{digits}f}-{high:,.{digits}f})"


def _ratio(row: dict[str, Any], rows: list[dict[str, Any]], base: str, key: str) -> str:
    if row["impl"] == base:
        return "1"
    other = next(
        (
            candidate
            for candidate in rows
            if candidate["impl"] == base
            and candidate["loop"] == row["loop"]
            and candidate["variant"] == row["variant"]
        ),
        None,
    )
    if other is None or key not in other["metrics"] or key not in row["metrics"]:
        return "—"
    denominator = other["metrics"][key]["median"]
    if not denominator:
        return "—"
    return f"{row['metrics'][key]['median'] / denominator:.2f}"


def script_main(
    argv: Sequence[str] | None,
    prog: str,
    doc: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], list[Cell]],
    tables: Sequence[Table],
) -> int:
    """The command line of one measure's script: parse, run, print the Markdown.

    Exit status 0 when every cell has at least one run, 1 otherwise."""
    summary, _, details = (doc or "").strip().partition("\n")
    parser = argparse.ArgumentParser(
        prog=prog,
        description=summary,
        epilog=details.strip() + "\n\nPrints the Markdown tables; --json/--md write the results.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser)
    add_arguments(parser)
    args = parser.parse_args(argv)
    resolve_common(args)
    meta = machine_description()
    cells = run(args)
    document = results_document(cells, meta, args)
    sys.stdout.write(write_outputs(document, tables, args))
    return 0 if cells and all(cell.runs for cell in cells) else 1
